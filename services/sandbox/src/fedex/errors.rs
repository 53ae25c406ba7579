//! FedEx's error envelope (external-apis.md §5): `{"transactionId", "customerTransactionId"?,
//! "errors": [{"code", "message"}]}`, the same at the token endpoint and the Track API. The codes
//! and messages below are the ones community clients and FedEx's own examples show; where none was
//! seen, the one used is the sandbox's assumption and says so.

use axum::{
    response::{IntoResponse, Response},
    Json,
};
use http::{HeaderValue, StatusCode};
use serde_json::{json, Value};

pub(crate) type FedexResult<T> = Result<T, FedexError>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FedexError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

impl FedexError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// A wrong client id or secret at `/oauth/token` (401; wording seen in community mocks of the
    /// token endpoint).
    pub(crate) fn bad_client() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "NOT.AUTHORIZED.ERROR",
            "The given client credentials were not valid. Please modify your request and try again.",
        )
    }

    /// A token request missing `grant_type`, `client_id` or `client_secret` (400; wording seen in
    /// community mocks of the token endpoint).
    pub(crate) fn missing_parameters() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "BAD.REQUEST.ERROR",
            "Missing or duplicate parameters. Please modify your request and try again.",
        )
    }

    /// A `grant_type` FedEx does not have. Sandbox assumption: FedEx's answer to one was never seen;
    /// this is its 400 for a malformed token request, worded for the grant type.
    pub(crate) fn unsupported_grant_type() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "BAD.REQUEST.ERROR",
            "Invalid grant_type. Please modify your request and try again.",
        )
    }

    /// A token this project was issued that has passed its hour (the message is the example in
    /// FedEx's API definitions).
    pub(crate) fn expired_token() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "NOT.AUTHORIZED.ERROR",
            "Access token expired. Please modify your request and try again.",
        )
    }

    /// No bearer token, or one FedEx never issued. Sandbox assumption: the code is FedEx's 401 code,
    /// the wording is ours.
    pub(crate) fn invalid_token() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "NOT.AUTHORIZED.ERROR",
            "Invalid access token. Please modify your request and try again.",
        )
    }

    /// The per-project throttle (1,400 transactions per 10 seconds): the message is FedEx's
    /// documented one; the code is the sandbox's assumption (FedEx names none).
    pub(crate) fn rate_limited() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TOO.MANY.REQUESTS.ERROR",
            "We have received too many requests in a short duration. Please wait a while to try again.",
        )
    }

    /// No tracking number in the request, or an empty one (400, as community fixtures show).
    pub(crate) fn empty_tracking_number() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "TRACKING.TRACKINGNUMBER.EMPTY",
            "Please provide tracking number.",
        )
    }

    /// More than 30 numbers in one request. FedEx documents the limit; the code and wording of its
    /// refusal are the sandbox's assumption.
    pub(crate) fn too_many_numbers(max: usize) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "BAD.REQUEST.ERROR",
            format!("Please provide no more than {max} tracking numbers in one request."),
        )
    }

    /// A body that is not the JSON object the Track API takes (sandbox assumption for the wording).
    pub(crate) fn invalid_body(why: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "BAD.REQUEST.ERROR",
            format!("The given JSON is invalid: {why}. Please modify your request and try again."),
        )
    }

    /// The envelope for this error; `customer_transaction_id` is echoed when the caller sent one.
    pub(crate) fn respond(&self, customer_transaction_id: Option<&str>) -> Response {
        let mut body = json!({
            "transactionId": transaction_id(),
            "errors": [{ "code": self.code, "message": self.message }],
        });
        if let Some(id) = customer_transaction_id {
            body["customerTransactionId"] = json!(id);
        }
        json_response(self.status, body)
    }
}

impl IntoResponse for FedexError {
    fn into_response(self) -> Response {
        self.respond(None)
    }
}

/// A new `transactionId`: FedEx's are UUIDs.
pub(crate) fn transaction_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A JSON answer with the content type FedEx sends.
pub(crate) fn json_response(status: StatusCode, body: Value) -> Response {
    let mut response = (status, Json(body)).into_response();
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    response
}

/// The body an injected fault answers with when the fault names none: FedEx's envelope with the
/// code FedEx uses for that status (seen in community error tables; 429's is the sandbox's).
pub(crate) fn injected_body(status: StatusCode) -> Value {
    const SORRY: &str = "We apologize for any inconvenience. Please check back at a later time.";
    let (code, message) = match status.as_u16() {
        400 => (
            "BAD.REQUEST.ERROR",
            "Bad request. Please modify your request and try again.".to_owned(),
        ),
        401 => ("NOT.AUTHORIZED.ERROR", FedexError::expired_token().message),
        403 => (
            "FORBIDDEN.ERROR",
            "We could not authorize your credentials. Please check your permissions and try again.".to_owned(),
        ),
        404 => (
            "NOT.FOUND.ERROR",
            "The resource you requested is no longer available. Please modify your request and try again.".to_owned(),
        ),
        429 => ("TOO.MANY.REQUESTS.ERROR", FedexError::rate_limited().message),
        503 => (
            "SERVICE.UNAVAILABLE.ERROR",
            format!("The service is currently unavailable and we are working to resolve the issue. {SORRY}"),
        ),
        _ => (
            "INTERNAL.SERVER.ERROR",
            format!("We encountered an unexpected error and are working to resolve the issue. {SORRY}"),
        ),
    };
    json!({ "transactionId": transaction_id(), "errors": [{ "code": code, "message": message }] })
}
