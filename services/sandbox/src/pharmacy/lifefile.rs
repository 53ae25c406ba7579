//! LifeFile's order API, as Boothwyn (`/boothwyn/lfapi/v1`) and Strive (`/strive/lfapi/v1`) each
//! run it, following external-apis.md §6 (community-observed: LifeFile publishes no docs). A
//! client's base URL is `http://<sandbox>/<pharmacy>/lfapi/v1`, as it would be
//! `https://host{N}.lifefile.net/lfapi/v1`.
//!
//! Every request carries HTTP Basic credentials and the instance's `X-Vendor-ID`, `X-Location-ID`
//! and `X-API-Network-ID`; each pharmacy has its own ([`crate::state::LifeFileAccount`]). Anything
//! missing or wrong is `401 {"type": "error", "message": ...}`.
//!
//! - `POST /order` with `{message{id, sentTime}, order{general{memo?, referenceId},
//!   prescriber{npi, licenseState, licenseNumber, dea?, firstName, lastName, phone?, email?},
//!   practice{id}, patient{firstName, lastName, gender m|f|u, dateOfBirth, address1, address2?,
//!   city, state, zip, country?, phoneMobile?, email?}, shipping{recipientType, recipientFirstName,
//!   recipientLastName, recipientPhone?, recipientEmail?, addressLine1, addressLine2?, city, state,
//!   zipCode, country?, service?}, billing{payorType pat|doc}, rxs[{rxType "new", drugName,
//!   drugStrength, drugForm, lfProductID?, foreignRxNumber?, quantity (a string), quantityUnits,
//!   directions, refills, dateWritten, daysSupply, scheduleCode?, clinicalDifferenceStatement?}]}}`
//!   → `200 {type: "success", message, data: {orderId}}`, `orderId` a JSON number. Not
//!   idempotent: the same body twice is two orders.
//! - `GET /order/{id}/status` → `{type: "success", message, data: {orderId, referenceId, status,
//!   updatedAt}}`.
//! - `PUT /order/{id}/status {"status": "cancelled"}` cancels an order that has not shipped
//!   (`409` once it has).
//! - `GET /order/{id}/shipping` → `{type: "success", message, data: {orderId, status,
//!   shippingStatus (pending|shipped|delivered|cancelled|rejected), deliveryService, trackingNumber,
//!   trackingUrl, shippedAt, deliveredAt}}`, the shipment fields `null` until shipped.
//! - `GET /orders?referenceId=<ref>` → `{type: "success", message, data: {orders: [{orderId (a
//!   number), referenceId, status}, ...]}}`, this pharmacy's orders placed with that
//!   `order.general.referenceId`, oldest first (an empty list when there are none); `400` when
//!   `referenceId` is missing or empty. A client asks this before submitting again after an answer
//!   it never got, since a repeated submission is a second order. **This lookup is an assumption
//!   about LifeFile**: nothing observed of its API shows a search by reference, so it is the
//!   sandbox's own shape until a LifeFile instance confirms one.
//!
//! Failures are `{type: "error", message}`: 400 for a malformed body (the message names the
//! field), 404 for an unknown order, 422 for a refusal (an invalid prescriber NPI, a shipping
//! state the pharmacy does not serve, or a `reject-next` reason).

use axum::{
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Extension, Json, Router,
};
use base64::Engine;
use serde_json::{json, Value};

use super::{
    fields::{self, Checked, Scope},
    orders::{self, time, MoveError, Order, Status},
    Pharmacy,
};
use crate::{state::LifeFileAccount, Sandbox};

/// `/{pharmacy}` for a LifeFile pharmacy: the caller adds the not-simulated fallback.
pub(crate) fn router(pharmacy: Pharmacy) -> Router<Sandbox> {
    Router::new()
        .route("/lfapi/v1/order", post(create))
        .route("/lfapi/v1/orders", get(lookup))
        .route("/lfapi/v1/order/{id}/status", get(status).put(set_status))
        .route("/lfapi/v1/order/{id}/shipping", get(shipping))
        // The handlers are shared; each instance's routes know whose they are.
        .layer(Extension(pharmacy))
}

/// The instance's credentials (the router is only mounted for Boothwyn and Strive).
fn account(sandbox: &Sandbox, pharmacy: Pharmacy) -> &LifeFileAccount {
    match pharmacy {
        Pharmacy::Strive => &sandbox.config().strive,
        Pharmacy::Boothwyn | Pharmacy::PioneerRx => &sandbox.config().boothwyn,
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let mut response = (status, Json(json!({ "type": "error", "message": message.into() }))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"LifeFile\""),
        );
    }
    response
}

fn success(message: &str, data: Value) -> Response {
    Json(json!({ "type": "success", "message": message, "data": data })).into_response()
}

/// Basic credentials and the three id headers of this pharmacy's instance; why not, for the 401.
fn authenticate(account: &LifeFileAccount, headers: &HeaderMap) -> Result<(), String> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .and_then(|(_, b64)| base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or("Authentication required")?;
    if !crate::secret::matches(&presented, &format!("{}:{}", account.username, account.password)) {
        return Err("Invalid username or password".into());
    }
    for (name, expected) in [
        ("x-vendor-id", &account.vendor_id),
        ("x-location-id", &account.location_id),
        ("x-api-network-id", &account.network_id),
    ] {
        match headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim) {
            None | Some("") => return Err(format!("Missing header {}", canonical(name))),
            Some(given) if given != expected => return Err(format!("Invalid {}", canonical(name))),
            Some(_) => {}
        }
    }
    Ok(())
}

fn canonical(name: &str) -> &'static str {
    match name {
        "x-vendor-id" => "X-Vendor-ID",
        "x-location-id" => "X-Location-ID",
        _ => "X-API-Network-ID",
    }
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
    let message = root.object("message")?;
    message.id("id")?;
    message.text("sentTime")?;
    let order = root.object("order")?;
    let general = order.object("general")?;
    general.opt_text("memo")?;
    let reference_id = general.text("referenceId")?.to_owned();
    let prescriber = order.object("prescriber")?;
    let npi = prescriber.text("npi")?.to_owned();
    prescriber.state("licenseState")?;
    prescriber.text("licenseNumber")?;
    prescriber.opt_text("dea")?;
    prescriber.text("firstName")?;
    prescriber.text("lastName")?;
    prescriber.opt_text("phone")?;
    prescriber.opt_text("email")?;
    order.object("practice")?.id("id")?;
    let patient = order.object("patient")?;
    patient.text("firstName")?;
    patient.text("lastName")?;
    patient.one_of("gender", &["m", "f", "u"])?;
    patient.birth_date("dateOfBirth")?;
    patient.text("address1")?;
    patient.opt_text("address2")?;
    patient.text("city")?;
    patient.state("state")?;
    patient.zip("zip")?;
    patient.opt_text("country")?;
    patient.opt_text("phoneMobile")?;
    patient.opt_text("email")?;
    let shipping = order.object("shipping")?;
    shipping.text("recipientType")?;
    shipping.text("recipientFirstName")?;
    shipping.text("recipientLastName")?;
    shipping.opt_text("recipientPhone")?;
    shipping.opt_text("recipientEmail")?;
    shipping.text("addressLine1")?;
    shipping.opt_text("addressLine2")?;
    shipping.text("city")?;
    let ship_state = shipping.state("state")?;
    shipping.zip("zipCode")?;
    shipping.opt_text("country")?;
    shipping.opt_id("service")?;
    order.object("billing")?.one_of("payorType", &["pat", "doc"])?;
    for rx in order.list("rxs")? {
        rx.one_of("rxType", &["new"])?;
        rx.text("drugName")?;
        rx.text("drugStrength")?;
        rx.text("drugForm")?;
        rx.opt_id("lfProductID")?;
        rx.opt_text("foreignRxNumber")?;
        rx.quantity("quantity", true)?;
        rx.text("quantityUnits")?;
        rx.text("directions")?;
        rx.count("refills", 0..=99, true)?;
        rx.date("dateWritten")?;
        rx.count("daysSupply", 1..=365, true)?;
        rx.opt_text("scheduleCode")?;
        rx.opt_text("clinicalDifferenceStatement")?;
    }
    Ok(Intake {
        reference_id,
        npi,
        ship_state,
    })
}

/// LifeFile order ids are numbers; ours are stored as their decimal text.
fn order_id(order: &Order) -> Value {
    order.id.parse::<u64>().map_or_else(|_| json!(order.id), |n| json!(n))
}

/// `POST /order`.
async fn create(
    State(sandbox): State<Sandbox>,
    Extension(pharmacy): Extension<Pharmacy>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let sandbox = &sandbox;
    if let Err(why) = authenticate(account(sandbox, pharmacy), &headers) {
        return error(StatusCode::UNAUTHORIZED, why);
    }
    let (value, intake) = match fields::parse(&body).and_then(|v| read_order(&v).map(|i| (v, i))) {
        Ok(ok) => ok,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.message),
    };
    match orders::place(
        sandbox,
        pharmacy,
        &intake.reference_id,
        &intake.npi,
        &intake.ship_state,
        value,
    ) {
        Ok(order) => success("Order received", json!({ "orderId": order_id(&order) })),
        Err(refusal) => error(StatusCode::UNPROCESSABLE_ENTITY, refusal.message(pharmacy)),
    }
}

/// `GET /orders?referenceId=...`.
async fn lookup(
    State(sandbox): State<Sandbox>,
    Extension(pharmacy): Extension<Pharmacy>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let sandbox = &sandbox;
    if let Err(why) = authenticate(account(sandbox, pharmacy), &headers) {
        return error(StatusCode::UNAUTHORIZED, why);
    }
    let Some(reference) = orders::lookup_reference(query.as_deref()) else {
        return error(StatusCode::BAD_REQUEST, "referenceId is required");
    };
    let found: Vec<Value> = orders::by_reference(sandbox, pharmacy, &reference)
        .iter()
        .map(|o| json!({ "orderId": order_id(o), "referenceId": o.reference_id, "status": o.status }))
        .collect();
    success("Orders", json!({ "orders": found }))
}

fn find(sandbox: &Sandbox, pharmacy: Pharmacy, id: &str) -> Option<Order> {
    let st = sandbox.pharmacy().state();
    st.orders.iter().find(|o| o.pharmacy == pharmacy && o.id == id).cloned()
}

fn not_found(id: &str) -> Response {
    error(StatusCode::NOT_FOUND, format!("Order {id} not found"))
}

fn status_data(order: &Order) -> Value {
    json!({
        "orderId": order_id(order),
        "referenceId": order.reference_id,
        "status": order.status,
        "updatedAt": time(order.updated_at),
    })
}

/// `GET /order/{id}/status`.
async fn status(
    State(sandbox): State<Sandbox>,
    Extension(pharmacy): Extension<Pharmacy>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (sandbox, id) = (&sandbox, id.as_str());
    if let Err(why) = authenticate(account(sandbox, pharmacy), &headers) {
        return error(StatusCode::UNAUTHORIZED, why);
    }
    match find(sandbox, pharmacy, id) {
        Some(order) => success("Order status", status_data(&order)),
        None => not_found(id),
    }
}

/// `PUT /order/{id}/status {"status": "cancelled"}`: the one status a practice may set.
async fn set_status(
    State(sandbox): State<Sandbox>,
    Extension(pharmacy): Extension<Pharmacy>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (sandbox, id) = (&sandbox, id.as_str());
    if let Err(why) = authenticate(account(sandbox, pharmacy), &headers) {
        return error(StatusCode::UNAUTHORIZED, why);
    }
    let wanted = fields::parse(&body).and_then(|v| Scope::root(&v).text("status").map(str::to_owned));
    match wanted.map(|s| Status::parse(&s)) {
        Ok(Some(Status::Cancelled)) => {}
        Ok(_) => return error(StatusCode::BAD_REQUEST, "status may only be set to \"cancelled\""),
        Err(e) => return error(StatusCode::BAD_REQUEST, e.message),
    }
    match orders::cancel(sandbox, pharmacy, id, None) {
        Ok(order) => success("Order cancelled", status_data(&order)),
        Err(MoveError::NotFound) => not_found(id),
        Err(MoveError::Conflict(s)) => error(
            StatusCode::CONFLICT,
            format!("Order {id} is {} and can no longer be cancelled", s.as_str()),
        ),
    }
}

/// `GET /order/{id}/shipping`.
async fn shipping(
    State(sandbox): State<Sandbox>,
    Extension(pharmacy): Extension<Pharmacy>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (sandbox, id) = (&sandbox, id.as_str());
    if let Err(why) = authenticate(account(sandbox, pharmacy), &headers) {
        return error(StatusCode::UNAUTHORIZED, why);
    }
    let Some(order) = find(sandbox, pharmacy, id) else {
        return not_found(id);
    };
    let shipping_status = match order.status {
        Status::Received | Status::Processing => "pending",
        other => other.as_str(),
    };
    let s = order.shipment.as_ref();
    success(
        "Order shipping",
        json!({
            "orderId": order_id(&order),
            "status": order.status,
            "shippingStatus": shipping_status,
            "deliveryService": s.map(|s| s.carrier),
            "trackingNumber": s.map(|s| &s.tracking_number),
            "trackingUrl": s.map(|s| &s.tracking_url),
            "shippedAt": s.map(|s| time(s.shipped_at)),
            "deliveredAt": s.and_then(|s| s.delivered_at).map(time),
        }),
    )
}
