//! `/v1/coupons` and `/v1/promotion_codes` (stripe.md §2.6). A coupon's `valid` is Stripe's
//! verdict: false once `redeem_by` has passed or `max_redemptions` is used up. Coupons do not apply
//! to PaymentIntents, so redemptions are counted by `/_sandbox/stripe/.../redeem`.

use chrono::Utc;
use serde_json::{json, Value};

use super::{currency, deleted, new_id, page, Row};
use crate::stripe::{
    errors::{StripeError, StripeResult},
    form::{Metadata, Params},
    Ctx, State,
};

#[derive(Clone, Debug)]
pub(crate) struct Coupon {
    pub(crate) id: String,
    pub(crate) created: i64,
    pub(crate) amount_off: Option<i64>,
    pub(crate) currency: Option<String>,
    pub(crate) percent_off: Option<f64>,
    pub(crate) duration: String,
    pub(crate) duration_in_months: Option<i64>,
    pub(crate) max_redemptions: Option<i64>,
    pub(crate) redeem_by: Option<i64>,
    pub(crate) times_redeemed: i64,
    pub(crate) name: Option<String>,
    pub(crate) metadata: Metadata,
}

impl Row for Coupon {
    fn id(&self) -> &str {
        &self.id
    }
}

impl Coupon {
    /// Redeemable now: not past `redeem_by`, not used up.
    pub(crate) fn valid(&self, now: i64) -> bool {
        self.redeem_by.is_none_or(|by| now < by) && self.max_redemptions.is_none_or(|max| self.times_redeemed < max)
    }

    pub(crate) fn render(&self) -> Value {
        json!({
            "id": self.id,
            "object": "coupon",
            "amount_off": self.amount_off,
            "applies_to": null,
            "created": self.created,
            "currency": self.currency,
            "currency_options": null,
            "duration": self.duration,
            "duration_in_months": self.duration_in_months,
            "livemode": false,
            "max_redemptions": self.max_redemptions,
            "metadata": self.metadata,
            "name": self.name,
            "percent_off": self.percent_off,
            "redeem_by": self.redeem_by,
            "times_redeemed": self.times_redeemed,
            "valid": self.valid(Utc::now().timestamp()),
        })
    }
}

#[derive(Clone, Debug)]
pub(crate) struct PromotionCode {
    pub(crate) id: String,
    pub(crate) created: i64,
    pub(crate) code: String,
    pub(crate) coupon: String,
    pub(crate) active: bool,
    pub(crate) customer: Option<String>,
    pub(crate) expires_at: Option<i64>,
    pub(crate) max_redemptions: Option<i64>,
    pub(crate) times_redeemed: i64,
    pub(crate) metadata: Metadata,
    pub(crate) first_time_transaction: bool,
    pub(crate) minimum_amount: Option<i64>,
    pub(crate) minimum_amount_currency: Option<String>,
}

impl Row for PromotionCode {
    fn id(&self) -> &str {
        &self.id
    }
}

impl PromotionCode {
    /// Both shapes at once: the top-level `coupon` object of API versions before
    /// `2025-09-30.clover`, and the `promotion` link of later ones (stripe.md §2.6).
    pub(crate) fn render(&self, st: &State) -> Value {
        json!({
            "id": self.id,
            "object": "promotion_code",
            "active": self.active,
            "code": self.code,
            "coupon": st.coupons.get(&self.coupon).map(Coupon::render),
            "created": self.created,
            "customer": self.customer,
            "expires_at": self.expires_at,
            "livemode": false,
            "max_redemptions": self.max_redemptions,
            "metadata": self.metadata,
            "promotion": { "type": "coupon", "coupon": self.coupon },
            "restrictions": {
                "currency_options": {},
                "first_time_transaction": self.first_time_transaction,
                "minimum_amount": self.minimum_amount,
                "minimum_amount_currency": self.minimum_amount_currency,
            },
            "times_redeemed": self.times_redeemed,
        })
    }

    /// Redeemable now: active, not expired, not used up, and its coupon valid.
    pub(crate) fn redeemable(&self, st: &State, now: i64) -> bool {
        self.active
            && self.expires_at.is_none_or(|at| now < at)
            && self.max_redemptions.is_none_or(|max| self.times_redeemed < max)
            && st.coupons.get(&self.coupon).is_some_and(|c| c.valid(now))
    }
}

fn find_coupon(cx: &Ctx<'_>, id: &str, param: &str) -> StripeResult<Coupon> {
    cx.st
        .coupons
        .get(id)
        .cloned()
        .ok_or_else(|| StripeError::no_such("coupon", id, param))
}

pub(crate) fn create(cx: &mut Ctx<'_>, p: &Params, _: &[String]) -> StripeResult<Value> {
    p.allow(&[
        "id",
        "amount_off",
        "currency",
        "percent_off",
        "duration",
        "duration_in_months",
        "max_redemptions",
        "redeem_by",
        "name",
        "metadata",
    ])?;
    let amount_off = p.positive_int("amount_off")?;
    let currency = currency(p, "currency")?;
    let percent_off = p.float("percent_off")?;
    match (amount_off, percent_off) {
        (None, None) => {
            return Err(StripeError::param(
                "parameter_missing",
                "You must pass either amount_off or percent_off.".to_owned(),
                "percent_off",
            ))
        }
        (Some(_), Some(_)) => {
            return Err(StripeError::param(
                "parameter_invalid_string",
                "You may only specify one of these parameters: amount_off, percent_off.".to_owned(),
                "amount_off",
            ))
        }
        _ => {}
    }
    if amount_off.is_some() && currency.is_none() {
        return Err(StripeError::param(
            "parameter_missing",
            "You must pass currency when passing amount_off.".to_owned(),
            "currency",
        ));
    }
    if percent_off.is_some_and(|p| p <= 0.0 || p > 100.0) {
        return Err(StripeError::param(
            "parameter_invalid_float",
            "Invalid percent_off: must be greater than 0 and at most 100.".to_owned(),
            "percent_off",
        ));
    }
    let duration = p
        .choice("duration", &["forever", "once", "repeating"])?
        .unwrap_or_else(|| "once".into());
    let duration_in_months = p.positive_int("duration_in_months")?;
    if duration == "repeating" && duration_in_months.is_none() {
        return Err(StripeError::param(
            "parameter_missing",
            "You must pass duration_in_months when duration is repeating.".to_owned(),
            "duration_in_months",
        ));
    }
    let max_redemptions = p.positive_int("max_redemptions")?;
    let redeem_by = p.int("redeem_by")?;
    if redeem_by.is_some_and(|by| by <= cx.now) {
        return Err(StripeError::param(
            "parameter_invalid_integer",
            "Invalid redeem_by: must be in the future.".to_owned(),
            "redeem_by",
        ));
    }
    let metadata = p.metadata()?.build()?;
    let name = p.str("name")?;
    let id = p.str("id")?.unwrap_or_else(|| new_id("", 8));
    if cx.st.coupons.get(&id).is_some() {
        return Err(StripeError::invalid_code(
            "resource_already_exists",
            "Coupon already exists.",
            Some("id"),
        ));
    }
    let coupon = Coupon {
        id: id.clone(),
        created: cx.now,
        amount_off,
        currency: amount_off.and(currency),
        percent_off,
        duration: duration.clone(),
        duration_in_months: duration_in_months.filter(|_| duration == "repeating"),
        max_redemptions,
        redeem_by,
        times_redeemed: 0,
        name,
        metadata,
    };
    let rendered = coupon.render();
    cx.st.coupons.insert(coupon);
    cx.emit("coupon.created", rendered.clone(), None);
    Ok(rendered)
}

pub(crate) fn retrieve(cx: &mut Ctx<'_>, p: &Params, path: &[String]) -> StripeResult<Value> {
    p.allow(&[])?;
    Ok(find_coupon(cx, &path[1], "coupon")?.render())
}

pub(crate) fn update(cx: &mut Ctx<'_>, p: &Params, path: &[String]) -> StripeResult<Value> {
    p.allow(&["name", "metadata"])?;
    let metadata = p.metadata()?;
    let name = p.patch_str("name")?;
    let mut coupon = find_coupon(cx, &path[1], "coupon")?;
    let old = coupon.render();
    metadata.apply(&mut coupon.metadata)?;
    if let Some(n) = name {
        coupon.name = n;
    }
    let new = coupon.render();
    cx.st.coupons.insert(coupon);
    if let Some(previous) = super::customers::previous_attributes(&old, &new) {
        cx.emit("coupon.updated", new.clone(), Some(previous));
    }
    Ok(new)
}

pub(crate) fn delete(cx: &mut Ctx<'_>, p: &Params, path: &[String]) -> StripeResult<Value> {
    p.allow(&[])?;
    let coupon = find_coupon(cx, &path[1], "coupon")?;
    cx.st.coupons.remove(&coupon.id);
    cx.emit("coupon.deleted", coupon.render(), None);
    Ok(deleted("coupon", &coupon.id))
}

pub(crate) fn list(cx: &mut Ctx<'_>, p: &Params, _: &[String]) -> StripeResult<Value> {
    p.allow(&["limit", "starting_after", "ending_before", "created"])?;
    let items = cx
        .st
        .coupons
        .newest_first()
        .map(|c| (c.id.clone(), c.render()))
        .collect();
    page("/v1/coupons", "coupon", items, p)
}

/// Bumps `times_redeemed` if the coupon is valid (the `/_sandbox` control).
pub(crate) fn redeem(cx: &mut Ctx<'_>, id: &str) -> StripeResult<Value> {
    let now = cx.now;
    let coupon = cx
        .st
        .coupons
        .get_mut(id)
        .ok_or_else(|| StripeError::no_such("coupon", id, "coupon"))?;
    if !coupon.valid(now) {
        return Err(StripeError::invalid_code(
            "coupon_expired",
            format!("Coupon {id} is no longer valid (expired or fully redeemed)."),
            Some("coupon"),
        ));
    }
    coupon.times_redeemed += 1;
    let rendered = coupon.render();
    cx.effect(
        "coupon.redeemed",
        id,
        Some(format!("times_redeemed {}", rendered["times_redeemed"])),
    );
    Ok(rendered)
}

fn find_code(cx: &Ctx<'_>, id: &str) -> StripeResult<PromotionCode> {
    cx.st
        .promotion_codes
        .get(id)
        .cloned()
        .ok_or_else(|| StripeError::no_such("promotion code", id, "promotion_code"))
}

pub(crate) fn create_promotion_code(cx: &mut Ctx<'_>, p: &Params, _: &[String]) -> StripeResult<Value> {
    p.allow(&[
        "coupon",
        "promotion",
        "code",
        "active",
        "customer",
        "expires_at",
        "max_redemptions",
        "metadata",
        "restrictions",
    ])?;
    let coupon_id = match (p.str("coupon")?, p.nested_str("promotion", "coupon")?) {
        (Some(c), _) | (None, Some(c)) => c,
        (None, None) => return Err(StripeError::missing("coupon")),
    };
    let active = p.bool("active")?.unwrap_or(true);
    let expires_at = p.int("expires_at")?;
    let max_redemptions = p.positive_int("max_redemptions")?;
    let metadata = p.metadata()?.build()?;
    let first_time_transaction = match p.nested_str("restrictions", "first_time_transaction")?.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(StripeError::param(
                "parameter_invalid_boolean",
                format!("Invalid boolean: {other}"),
                "restrictions[first_time_transaction]",
            ))
        }
    };
    let minimum_amount = match p.nested_str("restrictions", "minimum_amount")? {
        None => None,
        Some(m) => Some(m.parse::<i64>().map_err(|_| {
            StripeError::param(
                "parameter_invalid_integer",
                format!("Invalid integer: {m}"),
                "restrictions[minimum_amount]",
            )
        })?),
    };
    let minimum_amount_currency = p
        .nested_str("restrictions", "minimum_amount_currency")?
        .map(|c| c.to_ascii_lowercase());
    if let Some(code) = p.str("code")? {
        let ok = code.len() <= 500 && code.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok {
            return Err(StripeError::param(
                "parameter_invalid_string",
                "Invalid code: promotion codes may only contain letters, digits, dashes and underscores.".to_owned(),
                "code",
            ));
        }
    }
    let coupon = find_coupon(cx, &coupon_id, "coupon")?;
    if expires_at.is_some_and(|at| at <= cx.now) {
        return Err(StripeError::invalid("The expires_at timestamp must be in the future.").with("param", "expires_at"));
    }
    if let (Some(at), Some(by)) = (expires_at, coupon.redeem_by) {
        if at > by {
            return Err(
                StripeError::invalid("The expires_at timestamp cannot be later than the coupon's redeem_by.")
                    .with("param", "expires_at"),
            );
        }
    }
    let customer = match p.str("customer")? {
        Some(c) => Some(super::customers::find(cx, &c, "customer")?.id.clone()),
        None => None,
    };
    let code = p.str("code")?.unwrap_or_else(|| new_id("", 8).to_uppercase());
    if active
        && cx
            .st
            .promotion_codes
            .iter()
            .any(|c| c.active && c.code.eq_ignore_ascii_case(&code))
    {
        return Err(
            StripeError::invalid(format!("An active promotion code with `code: {code}` already exists."))
                .with("param", "code"),
        );
    }
    let promo = PromotionCode {
        id: new_id("promo_", 24),
        created: cx.now,
        code,
        coupon: coupon.id,
        active,
        customer,
        expires_at,
        max_redemptions,
        times_redeemed: 0,
        metadata,
        first_time_transaction,
        minimum_amount,
        minimum_amount_currency,
    };
    let rendered = promo.render(cx.st);
    cx.st.promotion_codes.insert(promo);
    cx.emit("promotion_code.created", rendered.clone(), None);
    Ok(rendered)
}

pub(crate) fn retrieve_promotion_code(cx: &mut Ctx<'_>, p: &Params, path: &[String]) -> StripeResult<Value> {
    p.allow(&[])?;
    Ok(find_code(cx, &path[1])?.render(cx.st))
}

pub(crate) fn update_promotion_code(cx: &mut Ctx<'_>, p: &Params, path: &[String]) -> StripeResult<Value> {
    p.allow(&["active", "metadata", "restrictions"])?;
    let active = p.bool("active")?;
    let metadata = p.metadata()?;
    let mut promo = find_code(cx, &path[1])?;
    let old = promo.render(cx.st);
    if active == Some(true)
        && !promo.active
        && cx
            .st
            .promotion_codes
            .iter()
            .any(|c| c.active && c.id != promo.id && c.code.eq_ignore_ascii_case(&promo.code))
    {
        return Err(StripeError::invalid(format!(
            "An active promotion code with `code: {}` already exists.",
            promo.code
        ))
        .with("param", "active"));
    }
    if let Some(a) = active {
        promo.active = a;
    }
    metadata.apply(&mut promo.metadata)?;
    let new = promo.render(cx.st);
    cx.st.promotion_codes.insert(promo);
    if let Some(previous) = super::customers::previous_attributes(&old, &new) {
        cx.emit("promotion_code.updated", new.clone(), Some(previous));
    }
    Ok(new)
}

/// `GET /v1/promotion_codes?code=SPRING&active=true` (the code matches case-insensitively).
pub(crate) fn list_promotion_codes(cx: &mut Ctx<'_>, p: &Params, _: &[String]) -> StripeResult<Value> {
    p.allow(&[
        "active",
        "code",
        "coupon",
        "customer",
        "limit",
        "starting_after",
        "ending_before",
        "created",
    ])?;
    let active = p.bool("active")?;
    let code = p.str("code")?;
    let coupon = p.str("coupon")?;
    let customer = p.str("customer")?;
    let items = cx
        .st
        .promotion_codes
        .newest_first()
        .filter(|c| active.is_none_or(|a| c.active == a))
        .filter(|c| code.as_ref().is_none_or(|code| c.code.eq_ignore_ascii_case(code)))
        .filter(|c| coupon.as_ref().is_none_or(|coupon| c.coupon == *coupon))
        .filter(|c| customer.is_none() || c.customer == customer)
        .map(|c| (c.id.clone(), c.render(cx.st)))
        .collect();
    page("/v1/promotion_codes", "promotion code", items, p)
}

/// Redeems a promotion code (by id or code): bumps its and its coupon's `times_redeemed`.
pub(crate) fn redeem_promotion_code(cx: &mut Ctx<'_>, id_or_code: &str) -> StripeResult<Value> {
    let now = cx.now;
    let id = cx
        .st
        .promotion_codes
        .newest_first()
        .find(|c| c.id == id_or_code || (c.active && c.code.eq_ignore_ascii_case(id_or_code)))
        .map(|c| c.id.clone())
        .ok_or_else(|| StripeError::no_such("promotion code", id_or_code, "promotion_code"))?;
    let promo = find_code(cx, &id)?;
    if !promo.redeemable(cx.st, now) {
        return Err(StripeError::invalid_code(
            "promotion_code_expired",
            format!("Promotion code {} is inactive, expired or fully redeemed.", promo.code),
            Some("promotion_code"),
        ));
    }
    redeem(cx, &promo.coupon)?;
    if let Some(p) = cx.st.promotion_codes.get_mut(&id) {
        p.times_redeemed += 1;
    }
    Ok(find_code(cx, &id)?.render(cx.st))
}
