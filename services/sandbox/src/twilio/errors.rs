//! Twilio's classic error body (external-apis.md §3), which the 2010 Messages API answers with:
//! `{"code", "message", "more_info": "https://www.twilio.com/docs/errors/{code}", "status"}`.

use axum::{
    response::{IntoResponse, Response},
    Json,
};
use http::{header, HeaderValue, StatusCode};
use serde_json::json;

pub(crate) type TwilioResult<T> = Result<T, TwilioError>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TwilioError {
    pub(crate) status: StatusCode,
    pub(crate) code: u32,
    pub(crate) message: String,
    /// Only the 401 carries one.
    detail: Option<&'static str>,
}

impl TwilioError {
    /// A 400 with a Twilio error code.
    pub(crate) fn invalid(code: u32, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code,
            message: message.into(),
            detail: None,
        }
    }

    pub(crate) fn authenticate() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            code: 20003,
            message: "Authenticate".into(),
            detail: Some("Your AccountSid or AuthToken was incorrect."),
        }
    }

    /// 20404 about the path as the caller wrote it after the base (`/2010-04-01/...`).
    pub(crate) fn not_found(path: &str) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: 20404,
            message: format!("The requested resource {path} was not found"),
            detail: None,
        }
    }
}

impl IntoResponse for TwilioError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "code": self.code,
            "message": self.message,
            "more_info": format!("https://www.twilio.com/docs/errors/{}", self.code),
            "status": self.status.as_u16(),
        });
        if let Some(detail) = self.detail {
            body["detail"] = detail.into();
        }
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"Twilio API\""),
            );
        }
        response
    }
}
