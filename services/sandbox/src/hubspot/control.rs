//! `/_sandbox/hubspot`: `POST /threads/{threadId}/incoming {"text", "subject"?, "richText"?}`
//! makes the thread's contact write on its channel, as a patient replying would; a CLOSED thread
//! reopens, as HubSpot's inbox reopens conversations when the contact writes back.

use axum::{
    extract::{Path, State as AxumState},
    http::StatusCode,
    Json,
};
use serde_json::Value;

use super::{errors::HubError, Stamp};
use crate::Sandbox;

pub(crate) async fn incoming(
    AxumState(sandbox): AxumState<Sandbox>,
    Path(raw_id): Path<String>,
    Json(body): Json<Value>,
) -> Result<(StatusCode, Json<Value>), HubError> {
    let id: u64 = raw_id.parse().map_err(|_| HubError::not_found("Thread", &raw_id))?;
    let text = body
        .get("text")
        .and_then(Value::as_str)
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| HubError::invalid_field("text", "text must be a non-empty string"))?;
    let subject = body.get("subject").and_then(Value::as_str).map(str::to_owned);
    let rich_text = body.get("richText").and_then(Value::as_str).map(str::to_owned);
    let mut state = sandbox.hubspot();
    if state.thread(id).is_none_or(|t| t.archived) {
        return Err(HubError::not_found("Thread", &raw_id));
    }
    let message = state
        .receive(id, text, subject, rich_text, Stamp::now())
        .ok_or_else(|| HubError::not_found("Thread", &raw_id))?;
    Ok((StatusCode::CREATED, Json(message)))
}
