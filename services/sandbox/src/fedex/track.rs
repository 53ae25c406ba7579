//! The Track API's "Track by Tracking Number" (external-apis.md §5):
//! `POST /fedex/track/v1/trackingnumbers` with `Authorization: Bearer <token>` and
//! `{"includeDetailedScans": true, "trackingInfo": [{"trackingNumberInfo": {"trackingNumber"}}]}`,
//! up to 30 numbers a request. The answer is 200 with one `completeTrackResults` entry per
//! requested number, in order (a number asked twice is answered twice); a number FedEx does not
//! know is still 200, with `trackResults[0].error` `TRACKING.TRACKINGNUMBER.NOTFOUND`.
//! `x-customer-transaction-id` is echoed as `customerTransactionId`, on errors too.
//!
//! Checks run in the order a gateway would: the token (401), the throttle (429), then the body
//! (400). Sandbox assumptions: `carrierCode`, `trackingNumberUniqueId`, `shipDateBegin` and
//! `shipDateEnd` are accepted and ignored; a missing `includeDetailedScans` means false; the
//! `X-locale` header is ignored (answers are en_US); and the content type is not checked.

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::Response,
};
use chrono::Utc;
use serde_json::{json, Value};

use super::{
    auth::authorize,
    errors::{json_response, transaction_id, FedexError, FedexResult},
};
use crate::Sandbox;

/// FedEx's documented ceiling on numbers per request.
pub(crate) const MAX_NUMBERS: usize = 30;

/// The header a caller's own transaction id comes in.
const CUSTOMER_TRANSACTION_ID: &str = "x-customer-transaction-id";

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
struct TrackRequest {
    numbers: Vec<String>,
    detailed: bool,
}

fn parse(body: &[u8]) -> FedexResult<TrackRequest> {
    let body: Value = serde_json::from_slice(body).map_err(|_| FedexError::invalid_body("not JSON"))?;
    let Some(object) = body.as_object() else {
        return Err(FedexError::invalid_body("not an object"));
    };
    let detailed = match object.get("includeDetailedScans") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(FedexError::invalid_body("includeDetailedScans must be true or false")),
    };
    let infos = match object.get("trackingInfo") {
        None | Some(Value::Null) => return Err(FedexError::empty_tracking_number()),
        Some(Value::Array(infos)) => infos,
        Some(_) => return Err(FedexError::invalid_body("trackingInfo must be an array")),
    };
    if infos.is_empty() {
        return Err(FedexError::empty_tracking_number());
    }
    if infos.len() > MAX_NUMBERS {
        return Err(FedexError::too_many_numbers(MAX_NUMBERS));
    }
    let numbers = infos
        .iter()
        .map(|info| {
            info.pointer("/trackingNumberInfo/trackingNumber")
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_owned)
                .ok_or_else(FedexError::empty_tracking_number)
        })
        .collect::<FedexResult<Vec<_>>>()?;
    Ok(TrackRequest { numbers, detailed })
}

/// One `completeTrackResults` entry.
fn complete_result(sandbox: &Sandbox, number: &str, detailed: bool) -> (Value, bool) {
    let st = sandbox.fedex().state();
    let (result, found) = match st.shipments.get(number) {
        Some(shipment) => (shipment.track_result(detailed), true),
        None => (
            json!({
                "trackingNumberInfo": { "trackingNumber": number, "trackingNumberUniqueId": "", "carrierCode": "" },
                "error": {
                    "code": "TRACKING.TRACKINGNUMBER.NOTFOUND",
                    "message": "Tracking number cannot be found. Please correct the tracking number and try again.",
                },
            }),
            false,
        ),
    };
    (json!({ "trackingNumber": number, "trackResults": [result] }), found)
}

/// `POST /fedex/track/v1/trackingnumbers`.
pub(crate) async fn track(State(sandbox): State<Sandbox>, headers: HeaderMap, body: Bytes) -> Response {
    let customer = headers
        .get(CUSTOMER_TRANSACTION_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(str::to_owned);
    let request = authorize(&sandbox, &headers)
        .and_then(|()| {
            if sandbox.fedex().state().limits.take(Utc::now()) {
                Ok(())
            } else {
                Err(FedexError::rate_limited())
            }
        })
        .and_then(|()| parse(&body));
    let request = match request {
        Ok(r) => r,
        Err(e) => return e.respond(customer.as_deref()),
    };

    let mut found = 0;
    let results: Vec<Value> = request
        .numbers
        .iter()
        .map(|n| {
            let (result, known) = complete_result(&sandbox, n, request.detailed);
            found += usize::from(known);
            result
        })
        .collect();
    let detail = format!("{} numbers, {found} found", request.numbers.len());
    sandbox.record_effect("fedex", "track.request", None, Some(&detail));

    let mut body = json!({
        "transactionId": transaction_id(),
        "output": { "completeTrackResults": results },
    });
    if let Some(id) = customer {
        body["customerTransactionId"] = json!(id);
    }
    json_response(StatusCode::OK, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbers(n: usize) -> Value {
        let infos: Vec<Value> = (0..n)
            .map(|i| json!({ "trackingNumberInfo": { "trackingNumber": format!("7946{i:08}") } }))
            .collect();
        json!({ "includeDetailedScans": true, "trackingInfo": infos })
    }

    #[test]
    fn a_request_takes_one_to_thirty_numbers() {
        let ok = parse(numbers(30).to_string().as_bytes()).unwrap();
        assert_eq!(ok.numbers.len(), 30);
        assert!(ok.detailed);
        assert_eq!(
            parse(numbers(31).to_string().as_bytes()),
            Err(FedexError::too_many_numbers(30))
        );
        assert_eq!(
            parse(numbers(0).to_string().as_bytes()),
            Err(FedexError::empty_tracking_number())
        );
    }

    #[test]
    fn blank_numbers_and_bad_bodies_are_refused() {
        let blank = json!({ "trackingInfo": [{ "trackingNumberInfo": { "trackingNumber": " " } }] });
        assert_eq!(
            parse(blank.to_string().as_bytes()),
            Err(FedexError::empty_tracking_number())
        );
        assert_eq!(parse(b"nope").unwrap_err().code, "BAD.REQUEST.ERROR");
        assert_eq!(parse(b"[]").unwrap_err().code, "BAD.REQUEST.ERROR");
        let summary = json!({ "trackingInfo": [{ "trackingNumberInfo": { "trackingNumber": "794600000001" } }] });
        assert!(!parse(summary.to_string().as_bytes()).unwrap().detailed);
    }
}
