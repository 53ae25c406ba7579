//! The Stripe objects the service uses, and Stripe's errors by kind.

use serde::Deserialize;

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Customer {
    pub id: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct SetupIntent {
    pub id: String,
    #[serde(default)]
    pub status: String,
    pub client_secret: Option<String>,
    pub customer: Option<String>,
    pub payment_method: Option<String>,
    pub last_setup_error: Option<ErrorObject>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct CardDetails {
    #[serde(default)]
    pub brand: String,
    #[serde(default)]
    pub last4: String,
    #[serde(default)]
    pub exp_month: i32,
    #[serde(default)]
    pub exp_year: i32,
    #[serde(default)]
    pub funding: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct PaymentMethod {
    pub id: String,
    pub customer: Option<String>,
    pub card: Option<CardDetails>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct PaymentIntent {
    pub id: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub amount: i64,
    #[serde(default)]
    pub amount_received: i64,
    #[serde(default)]
    pub currency: String,
    pub latest_charge: Option<String>,
    pub last_payment_error: Option<ErrorObject>,
    #[serde(default)]
    pub metadata: std::collections::HashMap<String, String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Refund {
    pub id: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub amount: i64,
    pub charge: Option<String>,
    pub payment_intent: Option<String>,
    pub failure_reason: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Coupon {
    pub id: String,
    pub name: Option<String>,
    pub amount_off: Option<i64>,
    pub currency: Option<String>,
    pub percent_off: Option<f64>,
    pub max_redemptions: Option<i64>,
    #[serde(default)]
    pub times_redeemed: i64,
    pub redeem_by: Option<i64>,
    #[serde(default)]
    pub valid: bool,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct PromotionRestrictions {
    pub minimum_amount: Option<i64>,
    pub minimum_amount_currency: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct PromotionCode {
    pub id: String,
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub active: bool,
    /// The coupon, on API versions before 2025-09-30 (the sandbox's shape).
    pub coupon: Option<Coupon>,
    /// The coupon, on later versions: `{type: "coupon", coupon: ...}`.
    pub promotion: Option<PromotionSource>,
    pub expires_at: Option<i64>,
    pub max_redemptions: Option<i64>,
    #[serde(default)]
    pub times_redeemed: i64,
    #[serde(default)]
    pub restrictions: PromotionRestrictions,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct PromotionSource {
    pub coupon: Option<CouponRef>,
}

/// A coupon given inline or as its id.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum CouponRef {
    Object(Box<Coupon>),
    Id(String),
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct List<T> {
    #[serde(default = "Vec::new")]
    pub data: Vec<T>,
    #[serde(default)]
    pub has_more: bool,
}

/// Stripe's `error` object.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ErrorObject {
    #[serde(rename = "type", default)]
    pub kind: String,
    pub code: Option<String>,
    pub decline_code: Option<String>,
    pub message: Option<String>,
    pub param: Option<String>,
    pub payment_intent: Option<Box<PaymentIntent>>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ApiErrorBody {
    #[serde(default)]
    pub(crate) error: ErrorObject,
}

/// What went wrong, by the kinds callers treat differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StripeErrorKind {
    /// The card was declined or needs the patient (402): a terminal answer, never retried.
    Card,
    /// A parameter Stripe refused (400/404): our bug or a bad id.
    InvalidRequest,
    /// The same idempotency key with other parameters.
    Idempotency,
    /// The API key was refused (401/403): configuration.
    Authentication,
    /// Too many requests, after the retries.
    RateLimit,
    /// Stripe failed (5xx), after the retries.
    Api,
    /// No answer: Stripe may or may not have acted; the same key settles it later.
    Network,
}

#[derive(Clone, Debug, thiserror::Error)]
#[error("Stripe {kind:?} error ({status}): {}", code.as_deref().unwrap_or("-"))]
pub struct StripeError {
    pub kind: StripeErrorKind,
    pub status: u16,
    pub code: Option<String>,
    pub decline_code: Option<String>,
    pub message: String,
    pub param: Option<String>,
    /// For card errors on a PaymentIntent: the intent as Stripe left it.
    pub payment_intent: Option<Box<PaymentIntent>>,
}

impl StripeError {
    pub(crate) fn network(message: String) -> Self {
        Self {
            kind: StripeErrorKind::Network,
            status: 0,
            code: None,
            decline_code: None,
            message,
            param: None,
            payment_intent: None,
        }
    }

    pub(crate) fn api(status: u16, message: &str) -> Self {
        Self {
            kind: StripeErrorKind::Api,
            status,
            code: None,
            decline_code: None,
            message: message.to_owned(),
            param: None,
            payment_intent: None,
        }
    }

    pub(crate) fn from_body(status: u16, e: ErrorObject) -> Self {
        let kind = match (status, e.kind.as_str()) {
            // The same key still in flight: Stripe is working on it, try again later.
            (409, _) => StripeErrorKind::Api,
            (_, "card_error") | (402, _) => StripeErrorKind::Card,
            (_, "idempotency_error") => StripeErrorKind::Idempotency,
            (401 | 403, _) => StripeErrorKind::Authentication,
            (429, _) => StripeErrorKind::RateLimit,
            (400 | 404, _) | (_, "invalid_request_error") => StripeErrorKind::InvalidRequest,
            _ => StripeErrorKind::Api,
        };
        Self {
            kind,
            status,
            code: e.code,
            decline_code: e.decline_code,
            message: e.message.unwrap_or_default(),
            param: e.param,
            payment_intent: e.payment_intent,
        }
    }

    pub fn is_missing(&self) -> bool {
        self.status == 404 || self.code.as_deref() == Some("resource_missing")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_sorted_by_kind() {
        let card = StripeError::from_body(
            402,
            ErrorObject {
                kind: "card_error".into(),
                code: Some("card_declined".into()),
                ..Default::default()
            },
        );
        assert_eq!(card.kind, StripeErrorKind::Card);
        let idem = StripeError::from_body(
            400,
            ErrorObject {
                kind: "idempotency_error".into(),
                ..Default::default()
            },
        );
        assert_eq!(idem.kind, StripeErrorKind::Idempotency);
        assert_eq!(
            StripeError::from_body(401, ErrorObject::default()).kind,
            StripeErrorKind::Authentication
        );
        assert_eq!(
            StripeError::from_body(429, ErrorObject::default()).kind,
            StripeErrorKind::RateLimit
        );
        assert_eq!(
            StripeError::from_body(500, ErrorObject::default()).kind,
            StripeErrorKind::Api
        );
        assert!(StripeError::from_body(
            404,
            ErrorObject {
                kind: "invalid_request_error".into(),
                code: Some("resource_missing".into()),
                ..Default::default()
            }
        )
        .is_missing());
    }

    #[test]
    fn promotion_codes_read_either_api_shape() {
        let old: PromotionCode = serde_json::from_str(r#"{"id":"promo_1","code":"SPRING","active":true,"coupon":{"id":"WELCOME20","percent_off":20.0,"valid":true}}"#).unwrap();
        assert_eq!(old.coupon.unwrap().id, "WELCOME20");
        let new: PromotionCode = serde_json::from_str(
            r#"{"id":"promo_1","code":"SPRING","active":true,"promotion":{"type":"coupon","coupon":"WELCOME20"}}"#,
        )
        .unwrap();
        assert!(matches!(new.promotion.unwrap().coupon, Some(CouponRef::Id(ref id)) if id == "WELCOME20"));
    }
}
