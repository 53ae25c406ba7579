//! Stripe's error bodies (stripe.md §1.4): `{"error": {type, code?, decline_code?, message, param?,
//! doc_url?, payment_intent?, setup_intent?, payment_method?, charge?}}` with the matching status.

use http::StatusCode;
use serde_json::{json, Map, Value};

pub(crate) type StripeResult<T> = Result<T, StripeError>;

#[derive(Clone, Debug)]
pub(crate) struct StripeError {
    pub(crate) status: StatusCode,
    pub(crate) error: Map<String, Value>,
    /// Failed parameter validation before any work began: not stored under an idempotency key.
    pub(crate) validation: bool,
}

impl StripeError {
    fn new(status: StatusCode, kind: &str, message: impl Into<String>) -> Self {
        let mut error = Map::new();
        error.insert("type".into(), kind.into());
        error.insert("message".into(), Value::String(message.into()));
        Self {
            status,
            error,
            validation: false,
        }
    }

    pub(crate) fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.error.insert(key.to_owned(), value.into());
        self
    }

    fn with_code(self, code: &str) -> Self {
        self.with("code", code).with(
            "doc_url",
            format!("https://stripe.com/docs/error-codes/{}", code.replace('_', "-")),
        )
    }

    #[cfg(test)]
    pub(crate) fn code(&self) -> Option<&str> {
        self.error.get("code").and_then(Value::as_str)
    }

    /// A 400 `invalid_request_error` about one parameter, found before any work began.
    pub(crate) fn param(code: &str, message: String, param: &str) -> Self {
        let mut e = Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
            .with_code(code)
            .with("param", param);
        e.validation = true;
        e
    }

    pub(crate) fn missing(param: &str) -> Self {
        Self::param("parameter_missing", format!("Missing required param: {param}."), param)
    }

    /// A 400 `invalid_request_error` decided while executing (stored under an idempotency key).
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    /// A 400 with a code (and optionally a param) decided while executing.
    pub(crate) fn invalid_code(code: &str, message: impl Into<String>, param: Option<&str>) -> Self {
        let e = Self::invalid(message).with_code(code);
        match param {
            Some(p) => e.with("param", p),
            None => e,
        }
    }

    /// 404 `resource_missing`: `No such <object>: '<id>'`.
    pub(crate) fn no_such(object: &str, id: &str, param: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("No such {object}: '{id}'"),
        )
        .with_code("resource_missing")
        .with("param", param)
    }

    pub(crate) fn unrecognized_url(method: &str, path: &str) -> Self {
        let mut e = Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!(
                "Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/."
            ),
        );
        e.validation = true;
        e
    }

    pub(crate) fn no_api_key() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "You did not provide an API key. You need to provide your API key in the Authorization header, using \
             Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication \
             for details, or we can help at https://support.stripe.com/.",
        )
    }

    pub(crate) fn invalid_api_key(masked: &str) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            format!("Invalid API Key provided: {masked}"),
        )
    }

    /// The same key was used with other parameters (or another endpoint).
    pub(crate) fn idempotency_mismatch(key: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "idempotency_error",
            format!(
                "Keys for idempotent requests can only be used with the same parameters they were first used with. \
                 Try using a key other than '{key}' if you meant to execute a different request."
            ),
        )
    }

    /// Another request with this key is still executing.
    pub(crate) fn idempotency_in_use(key: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "invalid_request_error",
            format!(
                "There is currently another in-progress request using this Idempotent Key (that probably means you \
                 submitted twice, and the other request is still going through): {key}. Please try again later."
            ),
        )
        .with_code("idempotency_key_in_use")
    }

    /// HTTP 402 `card_error`.
    pub(crate) fn card(decline: &super::cards::Decline) -> Self {
        let e = Self::new(StatusCode::PAYMENT_REQUIRED, "card_error", decline.message).with_code(decline.code);
        let e = e.with("decline_code", decline.decline_code);
        match decline.param {
            Some(p) => e.with("param", p),
            None => e,
        }
    }

    /// The error object alone, as `last_payment_error`/`last_setup_error` embed it.
    pub(crate) fn object(&self) -> Value {
        Value::Object(self.error.clone())
    }

    pub(crate) fn body(&self) -> Value {
        json!({ "error": self.error })
    }
}
