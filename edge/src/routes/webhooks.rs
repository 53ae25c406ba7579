//! `POST /api/webhooks/stripe`: Stripe's signed events, verified here and handed to payments, which
//! stores each raw event and processes it once.

use axum::{
    body::Bytes,
    extract::{rejection::BytesRejection, State},
    http::{HeaderMap, StatusCode},
    routing::post,
    Router,
};
use chrono::Utc;
use era_kit::auth::{constant_time_eq, Caller};
use era_proto::payments::v1 as pb;
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use utoipa::ToSchema;

use crate::{
    error::{ApiError, ErrorBody},
    routes::{grpc, ApiJson},
    AppState,
};

/// Stripe's default: an event signed more than five minutes ago (or ahead) is refused.
pub const STRIPE_TOLERANCE_SECS: i64 = 300;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/api/webhooks/stripe", post(stripe_webhook))
}

/// Why a `Stripe-Signature` does not verify.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum StripeSignatureError {
    #[error("the Stripe-Signature header is missing or has no timestamp")]
    Malformed,
    #[error("the event was signed outside the 300 s tolerance")]
    OutsideTolerance,
    #[error("no v1 signature matches")]
    NoMatch,
}

/// Checks `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]` over `"<t>.<raw body>"` with each of the
/// endpoint `secrets` (several during a rotation); any match within the tolerance is enough.
pub fn verify_stripe_signature(
    secrets: &[&str],
    header: &str,
    body: &[u8],
    now: i64,
) -> Result<(), StripeSignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", sig)) => signatures.push(sig.to_ascii_lowercase()),
            _ => {}
        }
    }
    let t = timestamp.ok_or(StripeSignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(StripeSignatureError::Malformed);
    }
    if (now - t).abs() > STRIPE_TOLERANCE_SECS {
        return Err(StripeSignatureError::OutsideTolerance);
    }
    for secret in secrets {
        // HMAC takes keys of any length.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        let expected = hex::encode(mac.finalize().into_bytes());
        if signatures
            .iter()
            .any(|s| constant_time_eq(s.as_bytes(), expected.as_bytes()))
        {
            return Ok(());
        }
    }
    Err(StripeSignatureError::NoMatch)
}

#[derive(Debug, Deserialize)]
struct EventHead {
    id: String,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAck {
    pub received: bool,
    /// False when this event id had been processed before (a re-delivery).
    pub processed: bool,
    pub event_type: String,
}

/// A Stripe event: the signature is checked (300 s tolerance, any of several `v1` values), then
/// payments stores the raw event and processes each event id once.
#[utoipa::path(
    post, path = "/api/webhooks/stripe", tag = "webhooks",
    responses(
        (status = 200, body = WebhookAck),
        (status = 400, description = "`invalid_signature` or not a Stripe event", body = ErrorBody),
        (status = 503, description = "`webhook_not_configured`: STRIPE_WEBHOOK_SECRET is unset", body = ErrorBody),
    )
)]
pub async fn stripe_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<ApiJson<WebhookAck>, ApiError> {
    let body = body?;
    let Some(configured) = state.config.secrets.stripe_webhook_secret.as_ref() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "webhook_not_configured",
            "STRIPE_WEBHOOK_SECRET is not set on the edge",
        ));
    };
    let secrets: Vec<&str> = configured
        .expose_secret()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let header = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    verify_stripe_signature(&secrets, header, &body, Utc::now().timestamp()).map_err(|e| {
        tracing::warn!(reason = %e, "Stripe webhook refused");
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_signature", e.to_string())
    })?;
    let head: EventHead = serde_json::from_slice(&body).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_event",
            "the body is not a Stripe event",
        )
    })?;
    let req = pb::IngestStripeEventRequest {
        event_id: head.id,
        payload: body.to_vec(),
    };
    let caller = Caller::service("era-edge/stripe-webhook");
    let resp = state
        .clients
        .payments
        .clone()
        .ingest_stripe_event(grpc(&state, &caller, req))
        .await?
        .into_inner();
    tracing::info!(
        event_type = head.kind,
        processed = resp.processed,
        "Stripe event received"
    );
    Ok(ApiJson(WebhookAck {
        received: true,
        processed: resp.processed,
        event_type: resp.event_type,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &str, t: i64, body: &[u8]) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    #[test]
    fn any_v1_with_any_secret_within_300_seconds() {
        let body = br#"{"id":"evt_1","type":"payment_intent.succeeded"}"#;
        let t = 1_700_000_000;
        let good = sign("whsec_new", t, body);
        let header = format!("t={t},v1={},v1={good},v0=ignored", sign("whsec_other", t, body));
        assert_eq!(
            verify_stripe_signature(&["whsec_old", "whsec_new"], &header, body, t + 300),
            Ok(())
        );
        assert_eq!(
            verify_stripe_signature(&["whsec_new"], &header, body, t + 301),
            Err(StripeSignatureError::OutsideTolerance)
        );
        assert_eq!(
            verify_stripe_signature(&["whsec_new"], &header, body, t - 301),
            Err(StripeSignatureError::OutsideTolerance)
        );
        assert_eq!(
            verify_stripe_signature(&["whsec_old"], &header, body, t),
            Err(StripeSignatureError::NoMatch)
        );
        let tampered = br#"{"id":"evt_1","type":"payment_intent.canceled"}"#;
        assert_eq!(
            verify_stripe_signature(&["whsec_new"], &header, tampered, t),
            Err(StripeSignatureError::NoMatch)
        );
        assert_eq!(
            verify_stripe_signature(&["whsec_new"], "v1=abc", body, t),
            Err(StripeSignatureError::Malformed)
        );
    }
}
