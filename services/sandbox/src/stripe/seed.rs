//! The demo coupons and promotion code every fresh (or reset) sandbox starts with.

use super::{
    form::Metadata,
    objects::coupons::{Coupon, PromotionCode},
    State,
};

/// 20% off, forever, valid.
pub const WELCOME20: &str = "WELCOME20";
/// $50.00 (5000 cents, usd) off once, valid.
pub const SAVE50: &str = "SAVE50";
/// 10% off, but its `redeem_by` has passed: `valid` is false.
pub const EXPIRED10: &str = "EXPIRED10";
/// $10.00 off, `max_redemptions` 1 and already redeemed once: `valid` is false.
pub const ONCE: &str = "ONCE";
/// The customer-facing code `SPRING`, for [`WELCOME20`].
pub const SPRING_CODE: &str = "SPRING";
/// The id of the `SPRING` promotion code.
pub const SPRING_ID: &str = "promo_era_spring";
/// The code `BIGORDER`, for [`SAVE50`] on orders of at least $150.00 (15000 cents).
pub const BIGORDER_CODE: &str = "BIGORDER";
pub const BIGORDER_ID: &str = "promo_era_bigorder";

fn coupon(id: &str, now: i64) -> Coupon {
    Coupon {
        id: id.to_owned(),
        created: now,
        amount_off: None,
        currency: None,
        percent_off: None,
        duration: "once".into(),
        duration_in_months: None,
        max_redemptions: None,
        redeem_by: None,
        times_redeemed: 0,
        name: None,
        metadata: Metadata::new(),
    }
}

pub(crate) fn state(now: i64) -> State {
    let mut st = State::default();
    st.coupons.insert(Coupon {
        percent_off: Some(20.0),
        duration: "forever".into(),
        name: Some("Welcome 20% off".into()),
        ..coupon(WELCOME20, now)
    });
    st.coupons.insert(Coupon {
        amount_off: Some(5000),
        currency: Some("usd".into()),
        name: Some("$50 off".into()),
        ..coupon(SAVE50, now)
    });
    st.coupons.insert(Coupon {
        percent_off: Some(10.0),
        redeem_by: Some(now - 86_400),
        name: Some("10% off (expired)".into()),
        ..coupon(EXPIRED10, now - 30 * 86_400)
    });
    st.coupons.insert(Coupon {
        amount_off: Some(1000),
        currency: Some("usd".into()),
        max_redemptions: Some(1),
        times_redeemed: 1,
        name: Some("$10 off, one use (used)".into()),
        ..coupon(ONCE, now)
    });
    st.promotion_codes.insert(PromotionCode {
        id: SPRING_ID.into(),
        created: now,
        code: SPRING_CODE.into(),
        coupon: WELCOME20.into(),
        active: true,
        customer: None,
        expires_at: None,
        max_redemptions: None,
        times_redeemed: 0,
        metadata: Metadata::new(),
        first_time_transaction: false,
        minimum_amount: None,
        minimum_amount_currency: None,
    });
    st.promotion_codes.insert(PromotionCode {
        id: BIGORDER_ID.into(),
        created: now,
        code: BIGORDER_CODE.into(),
        coupon: SAVE50.into(),
        active: true,
        customer: None,
        expires_at: None,
        max_redemptions: None,
        times_redeemed: 0,
        metadata: Metadata::new(),
        first_time_transaction: false,
        minimum_amount: Some(15_000),
        minimum_amount_currency: Some("usd".into()),
    });
    st
}
