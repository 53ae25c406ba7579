//! Discount codes: a Stripe coupon id or promotion code, checked against an amount. Coupons do not
//! apply to PaymentIntents, so the service works out the discount itself, in cents: `amount_off` is
//! already cents (the old service divided it by 100 again), and a percentage rounds to the cent in
//! the patient's favour.

use era_kit::error::FieldViolation;
use era_proto::payments::v1 as pb;

use crate::{
    app::App,
    charges::currency_of,
    error::{Error, Result},
    stripe::{types, Params},
};

pub(crate) async fn validate(
    app: &App,
    req: &pb::ValidateDiscountCodeRequest,
) -> Result<pb::ValidateDiscountCodeResponse> {
    let mut bad = Vec::new();
    let code = req.code.trim();
    if code.is_empty() {
        bad.push(FieldViolation::new("code", "is required"));
    } else if code.len() > 64
        || !code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        bad.push(FieldViolation::new(
            "code",
            "is not a discount code (letters, digits, '-' and '_')",
        ));
    }
    if req.amount_cents <= 0 {
        bad.push(FieldViolation::new(
            "amount_cents",
            "must be a positive number of cents",
        ));
    } else if req.amount_cents > crate::charges::MAX_CHARGE_CENTS {
        bad.push(FieldViolation::new(
            "amount_cents",
            format!("must be at most {} cents", crate::charges::MAX_CHARGE_CENTS),
        ));
    }
    let currency = currency_of("currency", &req.currency, &mut bad);
    if !bad.is_empty() {
        return Err(Error::InvalidArgument(bad));
    }
    let now = chrono::Utc::now().timestamp();

    // The code as a coupon id first (staff only), then as a promotion code.
    let as_coupon = if req.promotion_codes_only {
        None
    } else {
        match app
            .stripe
            .get::<types::Coupon>(&format!("/v1/coupons/{code}"), &Vec::new())
            .await
        {
            Ok(c) => Some(c),
            Err(e) if e.is_missing() => None,
            Err(e) => return Err(e.into()),
        }
    };
    let (coupon, promotion) = match as_coupon {
        Some(c) => (c, None),
        None => {
            let params: Params = vec![
                ("code".into(), code.into()),
                ("active".into(), "true".into()),
                ("limit".into(), "10".into()),
            ];
            let found: types::List<types::PromotionCode> = app.stripe.get("/v1/promotion_codes", &params).await?;
            let Some(promo) = found.data.into_iter().find(|p| p.code.eq_ignore_ascii_case(code)) else {
                return Ok(verdict(
                    pb::DiscountCodeStatus::Invalid,
                    "This code is not valid",
                    &currency,
                    req.amount_cents,
                ));
            };
            let coupon = match (
                promo.coupon.clone(),
                promo.promotion.as_ref().and_then(|p| p.coupon.clone()),
            ) {
                (Some(c), _) => c,
                (None, Some(types::CouponRef::Object(c))) => *c,
                (None, Some(types::CouponRef::Id(id))) => {
                    app.stripe.get(&format!("/v1/coupons/{id}"), &Vec::new()).await?
                }
                (None, None) => {
                    return Ok(verdict(
                        pb::DiscountCodeStatus::Invalid,
                        "This code is not valid",
                        &currency,
                        req.amount_cents,
                    ))
                }
            };
            (coupon, Some(promo))
        }
    };

    let mut out = verdict(pb::DiscountCodeStatus::Valid, "", &currency, req.amount_cents);
    out.coupon_id = coupon.id.clone();
    out.name = coupon.name.clone().unwrap_or_default();
    out.amount_off_cents = coupon.amount_off.unwrap_or(0);
    out.percent_off_basis_points = coupon.percent_off.map_or(0, |p| (p * 100.0).round() as i32);
    if let Some(p) = &promotion {
        out.promotion_code_id = p.id.clone();
    }

    let refuse = |mut out: pb::ValidateDiscountCodeResponse, status: pb::DiscountCodeStatus, message: &str| {
        out.status = status as i32;
        out.message = message.to_owned();
        out.discount_cents = 0;
        out.total_cents = req.amount_cents;
        Ok(out)
    };
    // Each reason its own answer, before Stripe's overall `valid`, which does not say why.
    let expired = coupon.redeem_by.is_some_and(|t| t <= now)
        || promotion.as_ref().and_then(|p| p.expires_at).is_some_and(|t| t <= now);
    if expired {
        return refuse(out, pb::DiscountCodeStatus::Expired, "This code has expired");
    }
    let exhausted = coupon.max_redemptions.is_some_and(|m| coupon.times_redeemed >= m)
        || promotion
            .as_ref()
            .is_some_and(|p| p.max_redemptions.is_some_and(|m| p.times_redeemed >= m));
    if exhausted {
        return refuse(out, pb::DiscountCodeStatus::Exhausted, "This code has been used up");
    }
    if !coupon.valid || promotion.as_ref().is_some_and(|p| !p.active) {
        return refuse(out, pb::DiscountCodeStatus::Invalid, "This code is not valid");
    }
    if coupon.amount_off.is_some()
        && coupon.currency.as_deref().map(str::to_ascii_lowercase).as_deref() != Some(currency.as_str())
    {
        return refuse(
            out,
            pb::DiscountCodeStatus::CurrencyMismatch,
            "This code is for another currency",
        );
    }
    if let Some(p) = &promotion {
        let r = &p.restrictions;
        let same_currency = r
            .minimum_amount_currency
            .as_deref()
            .is_none_or(|c| c.eq_ignore_ascii_case(&currency));
        if r.minimum_amount.is_some() && !same_currency {
            return refuse(
                out,
                pb::DiscountCodeStatus::CurrencyMismatch,
                "This code is for another currency",
            );
        }
    }
    if let Some(min) = promotion.as_ref().and_then(|p| p.restrictions.minimum_amount) {
        if req.amount_cents < min {
            return refuse(
                out,
                pb::DiscountCodeStatus::MinimumNotMet,
                "The order is below this code's minimum",
            );
        }
    }
    out.discount_cents = discount(req.amount_cents, coupon.amount_off, out.percent_off_basis_points);
    out.total_cents = req.amount_cents - out.discount_cents;
    out.message = "Discount applied".into();
    Ok(out)
}

fn verdict(
    status: pb::DiscountCodeStatus,
    message: &str,
    currency: &str,
    amount: i64,
) -> pb::ValidateDiscountCodeResponse {
    pb::ValidateDiscountCodeResponse {
        status: status as i32,
        message: message.into(),
        currency: currency.into(),
        total_cents: amount,
        ..Default::default()
    }
}

/// The discount on `amount` cents: `amount_off` cents (never more than the amount), or
/// `basis_points` hundredths of a percent rounded up to the cent, in the patient's favour.
pub(crate) fn discount(amount: i64, amount_off: Option<i64>, basis_points: i32) -> i64 {
    match amount_off {
        Some(off) => off.clamp(0, amount),
        None => {
            let bp = i64::from(basis_points.clamp(0, 10_000));
            ((amount * bp + 9_999) / 10_000).min(amount)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amount_off_is_cents_and_never_more_than_the_amount() {
        assert_eq!(discount(29_900, Some(5_000), 0), 5_000);
        assert_eq!(discount(3_000, Some(5_000), 0), 3_000);
    }

    #[test]
    fn percentages_round_in_the_patients_favour() {
        assert_eq!(discount(29_900, None, 2_000), 5_980);
        // 15 % of 333 cents is 49.95 cents: the patient gets 50.
        assert_eq!(discount(333, None, 1_500), 50);
        // 25.5 % of 1001 cents is 255.255: 256.
        assert_eq!(discount(1_001, None, 2_550), 256);
        assert_eq!(discount(100, None, 10_000), 100);
    }
}
