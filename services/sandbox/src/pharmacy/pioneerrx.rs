//! PioneerRx (GMP's pharmacy system) order intake under `/pioneerrx`.
//!
//! **This is an assumed API shape, defined here and nowhere else.** PioneerRx publishes no order
//! intake REST API (external-apis.md §6: new prescriptions reach a PioneerRx pharmacy by
//! Surescripts NewRx or the pharmacy's portal), so the routes and bodies below are the sandbox's
//! own, and the mesh's PioneerRx adapter mirrors them. When GMP hands over its real interface,
//! this module and the adapter change together. What *is* PioneerRx's documented behaviour is the
//! authentication, from its Enterprise API:
//!
//! - `prx-api-key`: the API key issued to us;
//! - `prx-timestamp`: now, ISO 8601 UTC with six fractional digits, `yyyy-MM-ddTHH:mm:ss.ffffffZ`;
//! - `prx-signature`: `base64(SHA-512(UTF-16LE(timestamp + shared_secret)))`. A plain hash, not an
//!   HMAC, and it does not cover the body (see [`signature`]).
//!
//! A wrong key or signature, or a timestamp more than 5 minutes from the pharmacy's clock, is
//! refused `401 {"error": {"code": "unauthorized", "message": ...}}`.
//!
//! Routes (JSON in and out):
//! - `POST /pioneerrx/api/v1/orders` with
//!   `{referenceId, prescriber{npi, firstName, lastName, licenseState},
//!   patient{firstName, lastName, dateOfBirth YYYY-MM-DD, gender M|F|U, phone, email?},
//!   shipTo{name, addressLine1, addressLine2?, city, state, zip},
//!   items[{drugName, strength, form?, quantity (number), quantityUnits, daysSupply, refills,
//!   directions}]}` → `201 {orderId (a GUID), status: "received", referenceId}`. Not idempotent:
//!   the same body twice is two orders.
//! - `GET /pioneerrx/api/v1/orders/{orderId}` → `200 {orderId, referenceId, status, createdAt,
//!   updatedAt, carrier, trackingNumber, trackingUrl, shippedAt, deliveredAt, reason, items}`
//!   (shipment fields `null` until shipped).
//! - `POST /pioneerrx/api/v1/orders/{orderId}/cancel` (body optional, `{reason?}`) → `200` with the
//!   order as GET shows it while it has not shipped (again on a cancelled order), `409
//!   order_not_cancellable` once shipped, delivered or rejected.
//! - `GET /pioneerrx/api/v1/orders?referenceId=<ref>` → `200 {orders: [{orderId, referenceId,
//!   status, createdAt}, ...]}`, this pharmacy's orders placed with that `referenceId`, oldest
//!   first (an empty list when there are none); `400 invalid_request` (`field: "referenceId"`)
//!   when it is missing or empty. A client asks this before submitting again after an answer it
//!   never got, since a repeated submission is a second order. **Assumed too**, like the rest of
//!   the order API: nothing says PioneerRx can be searched by our reference.
//!
//! Errors are `{"error": {"code", "message", "field"?}}`: `400 invalid_request` naming the first
//! bad `field`; `404 order_not_found`; `422` refusals `invalid_npi` (not 10 digits, or failing the
//! NPI check digit), `state_not_served` (`shipTo.state` outside GMP's states) and `rejected` (the
//! pharmacy refused it, with its reason as the message).

use axum::{
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use base64::Engine;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{json, Value};
use sha2::{Digest, Sha512};

use super::{
    fields::{self, Checked, Scope},
    orders::{self, time, MoveError},
    Pharmacy,
};
use crate::{Sandbox, SandboxConfig};

/// `prx-timestamp`'s format (chrono's spelling of `yyyy-MM-ddTHH:mm:ss.ffffffZ`).
pub const TIMESTAMP_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6fZ";
/// How far `prx-timestamp` may be from the pharmacy's clock, either way.
pub const MAX_SKEW_SECS: i64 = 300;

/// `prx-timestamp` for `at`.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.format(TIMESTAMP_FORMAT).to_string()
}

/// `prx-signature`: base64 of the SHA-512 of the UTF-16LE bytes of `timestamp + shared_secret`.
pub fn signature(timestamp: &str, shared_secret: &str) -> String {
    let mut hash = Sha512::new();
    for unit in timestamp.encode_utf16().chain(shared_secret.encode_utf16()) {
        hash.update(unit.to_le_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(hash.finalize())
}

/// `/pioneerrx`: the caller adds the not-simulated fallback for other paths.
pub(crate) fn router() -> Router<Sandbox> {
    Router::new()
        .route("/api/v1/orders", post(create).get(lookup))
        .route("/api/v1/orders/{order_id}", get(fetch))
        .route("/api/v1/orders/{order_id}/cancel", post(cancel))
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({ "error": { "code": code, "message": message.into() } })),
    )
        .into_response()
}

fn invalid(e: fields::Invalid) -> Response {
    let body = json!({ "error": { "code": "invalid_request", "message": e.message, "field": e.field } });
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

/// Checks the three `prx-` headers; why they do not hold, for the 401.
fn authenticate(config: &SandboxConfig, headers: &HeaderMap, now: DateTime<Utc>) -> Result<(), &'static str> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let key = header("prx-api-key").ok_or("the prx-api-key header is required")?;
    if !crate::secret::matches(key, &config.pioneerrx_api_key) {
        return Err("the API key is not recognised");
    }
    let ts = header("prx-timestamp").ok_or("the prx-timestamp header is required")?;
    // Exactly six fractional digits, as the documented format has.
    let at = NaiveDateTime::parse_from_str(ts, TIMESTAMP_FORMAT)
        .ok()
        .filter(|_| ts.len() == "yyyy-MM-ddTHH:mm:ss.ffffffZ".len())
        .ok_or("prx-timestamp must be UTC as yyyy-MM-ddTHH:mm:ss.ffffffZ")?
        .and_utc();
    if (now - at).num_seconds().abs() > MAX_SKEW_SECS {
        return Err("prx-timestamp is more than 5 minutes from the server's clock");
    }
    let given = header("prx-signature").ok_or("the prx-signature header is required")?;
    if !crate::secret::matches(given, &signature(ts, &config.pioneerrx_shared_secret)) {
        return Err("prx-signature does not match");
    }
    Ok(())
}

fn unauthorized(message: &str) -> Response {
    error(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

/// What placing an order needs from a valid body.
struct Intake {
    reference_id: String,
    npi: String,
    ship_state: String,
}

/// Checks the order body field by field; the first fault is the answer.
fn read_order(body: &Value) -> Checked<Intake> {
    let root = Scope::root(body);
    let reference_id = root.text("referenceId")?.to_owned();
    let prescriber = root.object("prescriber")?;
    let npi = prescriber.text("npi")?.to_owned();
    prescriber.text("firstName")?;
    prescriber.text("lastName")?;
    prescriber.state("licenseState")?;
    let patient = root.object("patient")?;
    patient.text("firstName")?;
    patient.text("lastName")?;
    patient.birth_date("dateOfBirth")?;
    patient.one_of("gender", &["M", "F", "U"])?;
    patient.text("phone")?;
    patient.opt_text("email")?;
    let ship_to = root.object("shipTo")?;
    ship_to.text("name")?;
    ship_to.text("addressLine1")?;
    ship_to.opt_text("addressLine2")?;
    ship_to.text("city")?;
    let ship_state = ship_to.state("state")?;
    ship_to.zip("zip")?;
    for item in root.list("items")? {
        item.text("drugName")?;
        item.text("strength")?;
        item.opt_text("form")?;
        item.quantity("quantity", false)?;
        item.text("quantityUnits")?;
        item.count("daysSupply", 1..=365, false)?;
        item.count("refills", 0..=99, false)?;
        item.text("directions")?;
    }
    Ok(Intake {
        reference_id,
        npi,
        ship_state,
    })
}

/// `POST /api/v1/orders`.
async fn create(State(sandbox): State<Sandbox>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(why) = authenticate(sandbox.config(), &headers, Utc::now()) {
        return unauthorized(why);
    }
    let (value, intake) = match fields::parse(&body).and_then(|v| read_order(&v).map(|i| (v, i))) {
        Ok(ok) => ok,
        Err(e) => return invalid(e),
    };
    let pharmacy = Pharmacy::PioneerRx;
    match orders::place(
        &sandbox,
        pharmacy,
        &intake.reference_id,
        &intake.npi,
        &intake.ship_state,
        value,
    ) {
        Ok(order) => {
            let body = json!({ "orderId": order.id, "status": order.status, "referenceId": order.reference_id });
            (StatusCode::CREATED, Json(body)).into_response()
        }
        Err(refusal) => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            refusal.code(),
            refusal.message(pharmacy),
        ),
    }
}

/// `GET /api/v1/orders?referenceId=...`.
async fn lookup(State(sandbox): State<Sandbox>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    if let Err(why) = authenticate(sandbox.config(), &headers, Utc::now()) {
        return unauthorized(why);
    }
    let Some(reference) = orders::lookup_reference(query.as_deref()) else {
        return invalid(fields::Invalid {
            field: "referenceId".into(),
            message: "referenceId is required".into(),
        });
    };
    let found: Vec<Value> = orders::by_reference(&sandbox, Pharmacy::PioneerRx, &reference)
        .iter()
        .map(|o| {
            json!({
                "orderId": o.id,
                "referenceId": o.reference_id,
                "status": o.status,
                "createdAt": time(o.created_at),
            })
        })
        .collect();
    Json(json!({ "orders": found })).into_response()
}

/// The order as GET shows it: status and shipment, and the items as ordered.
fn order_json(order: &orders::Order) -> Value {
    let mut v = order.status_fields();
    v["items"] = order.request.get("items").cloned().unwrap_or(Value::Null);
    v
}

fn not_found(id: &str) -> Response {
    error(StatusCode::NOT_FOUND, "order_not_found", format!("no order {id}"))
}

/// `GET /api/v1/orders/{orderId}`.
async fn fetch(State(sandbox): State<Sandbox>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    if let Err(why) = authenticate(sandbox.config(), &headers, Utc::now()) {
        return unauthorized(why);
    }
    let found = sandbox
        .pharmacy()
        .state()
        .orders
        .iter()
        .find(|o| o.pharmacy == Pharmacy::PioneerRx && o.id == id)
        .map(order_json);
    match found {
        Some(order) => Json(order).into_response(),
        None => not_found(&id),
    }
}

/// `POST /api/v1/orders/{orderId}/cancel`.
async fn cancel(State(sandbox): State<Sandbox>, Path(id): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(why) = authenticate(sandbox.config(), &headers, Utc::now()) {
        return unauthorized(why);
    }
    let reason = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        match fields::parse(&body).and_then(|v| Scope::root(&v).opt_text("reason").map(|r| r.map(str::to_owned))) {
            Ok(reason) => reason,
            Err(e) => return invalid(e),
        }
    };
    match orders::cancel(&sandbox, Pharmacy::PioneerRx, &id, reason) {
        Ok(order) => Json(order_json(&order)).into_response(),
        Err(MoveError::NotFound) => not_found(&id),
        Err(MoveError::Conflict(status)) => error(
            StatusCode::CONFLICT,
            "order_not_cancellable",
            format!("order {id} is {} and can no longer be cancelled", status.as_str()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_hashes_utf16le_timestamp_then_secret() {
        // Python: base64.b64encode(hashlib.sha512(("2024-01-02T03:04:05.123456Z" +
        // "prx-secret").encode("utf-16-le")).digest())
        assert_eq!(
            signature("2024-01-02T03:04:05.123456Z", "prx-secret"),
            "FkXUTWgyeYjNWRslc2uuSJV4gLgJwWoJAJCjAtilc7dTfbUKigVLm6ZTegWb9UWJG8pWRWBWhA5MwCvlrWP3YQ=="
        );
    }

    #[test]
    fn timestamps_have_six_fractional_digits() {
        let at = DateTime::parse_from_rfc3339("2024-01-02T03:04:05.123456789Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(timestamp(at), "2024-01-02T03:04:05.123456Z");
    }

    #[test]
    fn only_the_documented_timestamp_format_passes() {
        let config = SandboxConfig::default();
        let now = Utc::now();
        let signed = |ts: &str| {
            let mut h = HeaderMap::new();
            h.insert("prx-api-key", config.pioneerrx_api_key.parse().unwrap());
            h.insert("prx-timestamp", ts.parse().unwrap());
            h.insert(
                "prx-signature",
                signature(ts, &config.pioneerrx_shared_secret).parse().unwrap(),
            );
            h
        };
        assert!(authenticate(&config, &signed(&timestamp(now)), now).is_ok());
        let millis = now.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
        assert!(authenticate(&config, &signed(&millis), now).is_err());
        let offset = now.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string();
        assert!(authenticate(&config, &signed(&offset), now).is_err());
    }
}
