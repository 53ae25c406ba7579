//! Signed webhooks: Stripe's events (`POST /api/webhooks/stripe`), handed to payments, and the
//! pharmacies' status and tracking callbacks (`POST /api/webhooks/pharmacy/{pharmacy}`), handed to
//! pharmacy-routing. Both sign the same way (Stripe's scheme), verified here by one function; each
//! service stores what it receives and processes each event once. Bodies are never logged (PHI).

use axum::{
    body::Bytes,
    extract::{
        rejection::{BytesRejection, PathRejection},
        Path, State,
    },
    http::{HeaderMap, StatusCode},
    routing::post,
    Router,
};
use chrono::Utc;
use era_kit::auth::{constant_time_eq, Caller};
use era_proto::{payments::v1 as pb, pharmacy_routing::v1 as rx};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use utoipa::ToSchema;

use crate::{
    error::{ApiError, ErrorBody},
    routes::{grpc, ApiJson},
    AppState,
};

/// Stripe's default, which the pharmacies' callbacks share: an event signed more than five minutes
/// ago (or ahead) is refused.
pub const WEBHOOK_TOLERANCE_SECS: i64 = 300;

/// The header Stripe signs with.
pub const STRIPE_SIGNATURE_HEADER: &str = "stripe-signature";
/// The header the pharmacies sign with, in Stripe's format.
pub const PHARMACY_SIGNATURE_HEADER: &str = "x-pharmacy-signature";

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/webhooks/stripe", post(stripe_webhook))
        .route("/api/webhooks/pharmacy/{pharmacy}", post(pharmacy_webhook))
}

/// Why a webhook signature (`Stripe-Signature`, `X-Pharmacy-Signature`) does not verify.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum WebhookSignatureError {
    #[error("the signature header is missing or has no timestamp or no v1 signature")]
    Malformed,
    #[error("the event was signed outside the 300 s tolerance")]
    OutsideTolerance,
    #[error("no v1 signature matches")]
    NoMatch,
}

/// Checks a Stripe-style signature header, `t=<unix>,v1=<hex>[,v1=<hex>…]`, over `"<t>.<raw body>"`
/// with each of the endpoint `secrets` (several during a rotation); any match within the tolerance
/// is enough. Stripe's `Stripe-Signature` and the pharmacies' `X-Pharmacy-Signature` both use it.
pub fn verify_webhook_signature(
    secrets: &[&str],
    header: &str,
    body: &[u8],
    now: i64,
) -> Result<(), WebhookSignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", sig)) => signatures.push(sig.to_ascii_lowercase()),
            _ => {}
        }
    }
    let t = timestamp.ok_or(WebhookSignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(WebhookSignatureError::Malformed);
    }
    if now.abs_diff(t) > WEBHOOK_TOLERANCE_SECS.unsigned_abs() {
        return Err(WebhookSignatureError::OutsideTolerance);
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
    Err(WebhookSignatureError::NoMatch)
}

/// Verifies a signed webhook request against the configured secret(s) of `var` (comma-separated
/// during a rotation): 503 `webhook_not_configured` when none is set, 400 `invalid_signature` when
/// the signature in `header` does not verify.
fn verify_signed(
    configured: Option<&SecretString>,
    var: &str,
    headers: &HeaderMap,
    header: &str,
    body: &[u8],
) -> Result<(), ApiError> {
    let secrets: Vec<&str> = configured
        .map(|s| {
            s.expose_secret()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if secrets.is_empty() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "webhook_not_configured",
            format!("{var} is not set on the edge"),
        ));
    }
    let signature = headers.get(header).and_then(|v| v.to_str().ok()).unwrap_or_default();
    verify_webhook_signature(&secrets, signature, body, Utc::now().timestamp()).map_err(|e| {
        tracing::warn!(reason = %e, header, "webhook refused");
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_signature", e.to_string())
    })
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
    params(("Stripe-Signature" = String, Header, description = "`t=<unix>,v1=<hex HMAC-SHA256(secret, \"<t>.<body>\")>`, as Stripe signs")),
    request_body(content = Object, description = "a Stripe event, as Stripe sends it"),
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
    verify_signed(
        state.config.secrets.stripe_webhook_secret.as_ref(),
        "STRIPE_WEBHOOK_SECRET",
        &headers,
        STRIPE_SIGNATURE_HEADER,
        &body,
    )?;
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

/// The pharmacy a callback path names: `pioneerrx` (GMP's system) or `gmp`, `boothwyn`, `strive`.
pub fn pharmacy_of_slug(slug: &str) -> Option<&'static str> {
    match slug {
        "pioneerrx" | "gmp" => Some("gmp"),
        "boothwyn" => Some("boothwyn"),
        "strive" => Some("strive"),
        _ => None,
    }
}

/// The one field of a callback the edge reads; the service parses the rest.
#[derive(Debug, Deserialize)]
struct CallbackHead {
    #[serde(rename = "eventId", default)]
    event_id: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PharmacyWebhookAck {
    pub received: bool,
    /// False when this `eventId` had been processed before (a re-delivery).
    pub processed: bool,
}

/// A pharmacy's status or tracking callback, signed `X-Pharmacy-Signature: t=<unix>,v1=<hex>` (HMAC-SHA256
/// over `"<t>.<raw body>"`, as Stripe signs; any of several `v1` values, 300 s tolerance). The body is
/// JSON with the pharmacy's `eventId`; pharmacy-routing stores it and processes each event once.
#[utoipa::path(
    post, path = "/api/webhooks/pharmacy/{pharmacy}", tag = "webhooks",
    params(
        ("pharmacy" = String, Path, description = "`pioneerrx` (or `gmp`), `boothwyn` or `strive`"),
        ("X-Pharmacy-Signature" = String, Header, description = "`t=<unix>,v1=<hex HMAC-SHA256(secret, \"<t>.<body>\")>`"),
    ),
    request_body(content = Object, description = "the pharmacy's event, with a non-empty string `eventId`"),
    responses(
        (status = 200, body = PharmacyWebhookAck),
        (status = 400, description = "`invalid_signature`, `invalid_event` (not JSON), or `eventId` missing", body = ErrorBody),
        (status = 404, description = "not a pharmacy we work with", body = ErrorBody),
        (status = 503, description = "`webhook_not_configured`: the pharmacy's secret (`PIONEERRX_WEBHOOK_SECRET`, `BOOTHWYN_WEBHOOK_SECRET`, `STRIVE_WEBHOOK_SECRET`) is unset", body = ErrorBody),
    )
)]
pub async fn pharmacy_webhook(
    State(state): State<AppState>,
    slug: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<ApiJson<PharmacyWebhookAck>, ApiError> {
    let Path(slug) = slug?;
    let pharmacy =
        pharmacy_of_slug(&slug).ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such pharmacy"))?;
    let body = body?;
    let (var, secret) = state
        .config
        .secrets
        .pharmacy_webhooks
        .of(pharmacy)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such pharmacy"))?;
    verify_signed(secret, var, &headers, PHARMACY_SIGNATURE_HEADER, &body)?;
    let head: CallbackHead = serde_json::from_slice(&body).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_event",
            "the body is not a JSON object",
        )
    })?;
    let callback_id = match head.event_id {
        Some(serde_json::Value::String(id)) if !id.trim().is_empty() => id,
        _ => return Err(ApiError::field("eventId", "must be a non-empty string")),
    };
    let req = rx::HandlePharmacyCallbackRequest {
        pharmacy_id: pharmacy.to_owned(),
        callback_id,
        body: body.to_vec(),
    };
    let caller = Caller::service("era-edge/pharmacy-webhook");
    let resp = state
        .clients
        .routing
        .clone()
        .handle_pharmacy_callback(grpc(&state, &caller, req))
        .await?
        .into_inner();
    tracing::info!(pharmacy, processed = resp.processed, "pharmacy callback received");
    Ok(ApiJson(PharmacyWebhookAck {
        received: true,
        processed: resp.processed,
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
            verify_webhook_signature(&["whsec_old", "whsec_new"], &header, body, t + 300),
            Ok(())
        );
        assert_eq!(
            verify_webhook_signature(&["whsec_new"], &header, body, t + 301),
            Err(WebhookSignatureError::OutsideTolerance)
        );
        assert_eq!(
            verify_webhook_signature(&["whsec_new"], &header, body, t - 301),
            Err(WebhookSignatureError::OutsideTolerance)
        );
        assert_eq!(
            verify_webhook_signature(&["whsec_old"], &header, body, t),
            Err(WebhookSignatureError::NoMatch)
        );
        let tampered = br#"{"id":"evt_1","type":"payment_intent.canceled"}"#;
        assert_eq!(
            verify_webhook_signature(&["whsec_new"], &header, tampered, t),
            Err(WebhookSignatureError::NoMatch)
        );
        assert_eq!(
            verify_webhook_signature(&["whsec_new"], "v1=abc", body, t),
            Err(WebhookSignatureError::Malformed)
        );
    }

    /// The pharmacies' `X-Pharmacy-Signature`, as the sandbox sends it, through the same verifier.
    #[test]
    fn pharmacy_signatures_verify_with_the_same_scheme() {
        let secret = "era-sandbox-pharmacy-webhook-secret";
        let body = br#"{"eventId":"evt-7","pharmacy":"boothwyn","orderId":"LF-1","status":"shipped"}"#;
        let t = 1_700_000_000;
        let header = format!("t={t},v1={}", sign(secret, t, body));
        assert_eq!(verify_webhook_signature(&[secret], &header, body, t), Ok(()));
        // Upper-case hex and a second (stale, rotated-out) v1 are fine.
        let header_rotated = format!(
            "t={t}, v1={}, v1={}",
            sign("old", t, body),
            sign(secret, t, body).to_uppercase()
        );
        assert_eq!(
            verify_webhook_signature(&["old-gone", secret], &header_rotated, body, t - 299),
            Ok(())
        );
        assert_eq!(
            verify_webhook_signature(&["another-secret-of-another-clinic"], &header, body, t),
            Err(WebhookSignatureError::NoMatch)
        );
        assert_eq!(
            verify_webhook_signature(&[secret], &header, body, t + 301),
            Err(WebhookSignatureError::OutsideTolerance)
        );
        // Signed with another timestamp than the one it claims.
        let moved = format!("t={},v1={}", t + 1, sign(secret, t, body));
        assert_eq!(
            verify_webhook_signature(&[secret], &moved, body, t),
            Err(WebhookSignatureError::NoMatch)
        );
        for malformed in [
            "",
            "garbage",
            &format!("v1={}", sign(secret, t, body)),
            &format!("t=yesterday,v1={}", sign(secret, t, body)),
            &format!("t={t}"),
            &format!("t={t},v0={}", sign(secret, t, body)),
        ] {
            assert_eq!(
                verify_webhook_signature(&[secret], malformed, body, t),
                Err(WebhookSignatureError::Malformed),
                "{malformed:?}"
            );
        }
        // A timestamp at the ends of i64 is refused, not an overflow.
        for extreme in [i64::MIN, i64::MAX] {
            let header = format!("t={extreme},v1={}", sign(secret, extreme, body));
            assert_eq!(
                verify_webhook_signature(&[secret], &header, body, t),
                Err(WebhookSignatureError::OutsideTolerance)
            );
        }
    }

    #[test]
    fn pharmacy_slugs() {
        assert_eq!(pharmacy_of_slug("pioneerrx"), Some("gmp"));
        assert_eq!(pharmacy_of_slug("gmp"), Some("gmp"));
        assert_eq!(pharmacy_of_slug("boothwyn"), Some("boothwyn"));
        assert_eq!(pharmacy_of_slug("strive"), Some("strive"));
        for unknown in ["", "GMP", "lifefile", "stripe", "boothwyn "] {
            assert_eq!(pharmacy_of_slug(unknown), None, "{unknown:?}");
        }
    }
}
