//! PioneerRx, GMP's pharmacy system. The authentication is PioneerRx's documented Enterprise API
//! scheme; the order routes and bodies are an assumption, because PioneerRx publishes no order
//! intake API: they mirror the sandbox's `services/sandbox/src/pharmacy/pioneerrx.rs`, the one
//! place the assumed shape is written down. When GMP hands over its real interface, both change.
//!
//! - Headers: `prx-api-key`; `prx-timestamp`, now as `yyyy-MM-ddTHH:mm:ss.ffffffZ`; `prx-signature`
//!   = base64(SHA-512(UTF-16LE(timestamp + shared secret))). The signature does not cover the body.
//! - `POST {base}/api/v1/orders` → `201 {orderId, status, referenceId}`; `GET
//!   {base}/api/v1/orders/{id}`; `POST {base}/api/v1/orders/{id}/cancel` (409 once shipped).
//! - `GET {base}/api/v1/orders?referenceId=<ref>` → `200 {orders: [{orderId, referenceId, status,
//!   createdAt}]}`, the orders placed with our reference (assumed like the rest).
//! - Errors `{"error": {code, message, field?}}`: 422 refusals (`invalid_npi`, `state_not_served`,
//!   `rejected`), 400 `invalid_request`, 401 `unauthorized`, 404 `order_not_found`.

use std::time::Duration;

use base64::Engine as _;
use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use sha2::{Digest, Sha512};

use super::{
    found, http, lookup_failure, transport, unreadable, Found, OrderRequest, OrderState, PharmacyAdapter,
    PharmacyError, Placed,
};

/// What we are issued by the pharmacy.
#[derive(Clone)]
pub struct PioneerRxAccount {
    /// e.g. `https://gmp.example/pioneerrx` (no trailing `/api/v1`).
    pub base_url: String,
    pub api_key: SecretString,
    pub shared_secret: SecretString,
    pub timeout: Duration,
}

#[derive(Clone)]
pub struct PioneerRx {
    id: String,
    account: PioneerRxAccount,
    http: reqwest::Client,
}

impl std::fmt::Debug for PioneerRx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PioneerRx")
            .field("id", &self.id)
            .field("base_url", &self.account.base_url)
            .finish_non_exhaustive()
    }
}

/// `prx-signature` for a timestamp.
fn signature(timestamp: &str, shared_secret: &str) -> String {
    let mut hash = Sha512::new();
    for unit in timestamp.encode_utf16().chain(shared_secret.encode_utf16()) {
        hash.update(unit.to_le_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(hash.finalize())
}

impl PioneerRx {
    pub fn new(pharmacy_id: &str, account: PioneerRxAccount) -> Self {
        Self {
            id: pharmacy_id.to_owned(),
            http: http(account.timeout),
            account,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.account.base_url.trim_end_matches('/'))
    }

    fn signed(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let timestamp = Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
        let signature = signature(&timestamp, self.account.shared_secret.expose_secret());
        req.header("prx-api-key", self.account.api_key.expose_secret())
            .header("prx-timestamp", timestamp)
            .header("prx-signature", signature)
    }
}

/// The error a non-success answer means. `submission`: a 5xx to a submission may come after the
/// order was placed.
async fn failure(resp: reqwest::Response, submission: bool) -> PharmacyError {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or_default();
    let code = body["error"]["code"].as_str().unwrap_or("unknown").to_owned();
    match status {
        422 => PharmacyError::Refused {
            code,
            http_status: status,
        },
        404 => PharmacyError::NotFound,
        409 => PharmacyError::TooLate,
        429 => PharmacyError::Unavailable("rate limited".into()),
        s if s >= 500 && submission => PharmacyError::Uncertain(format!("server error {s}")),
        s if s >= 500 => PharmacyError::Unavailable(format!("server error {s}")),
        // The field name only: the message can quote the value.
        s => PharmacyError::Misconfigured(format!(
            "{s} {code}{}",
            body["error"]["field"]
                .as_str()
                .map(|f| format!(" ({f})"))
                .unwrap_or_default()
        )),
    }
}

fn order_body(o: &OrderRequest) -> Value {
    json!({
        "referenceId": o.reference_id,
        "prescriber": {
            "npi": o.prescriber.npi,
            "firstName": o.prescriber.first_name,
            "lastName": o.prescriber.last_name,
            "licenseState": o.prescriber.license_state,
        },
        "patient": {
            "firstName": o.patient.first_name,
            "lastName": o.patient.last_name,
            "dateOfBirth": o.patient.date_of_birth,
            "gender": o.patient.gender.to_string(),
            "phone": o.patient.phone,
            "email": o.patient.email,
        },
        "shipTo": {
            "name": format!("{} {}", o.patient.first_name, o.patient.last_name),
            "addressLine1": o.ship_to.line1,
            "addressLine2": o.ship_to.line2,
            "city": o.ship_to.city,
            "state": o.ship_to.state,
            "zip": o.ship_to.zip,
        },
        "items": o.items.iter().map(|i| json!({
            "drugName": i.drug_name,
            "strength": i.strength,
            "form": i.form,
            "quantity": i.quantity,
            "quantityUnits": i.quantity_units,
            "daysSupply": i.days_supply,
            "refills": i.refills,
            "directions": i.directions,
        })).collect::<Vec<_>>(),
    })
}

#[tonic::async_trait]
impl PharmacyAdapter for PioneerRx {
    fn pharmacy_id(&self) -> &str {
        &self.id
    }

    async fn submit(&self, order: &OrderRequest) -> Result<Placed, PharmacyError> {
        let sent = self
            .signed(self.http.post(self.url("/orders")))
            .json(&order_body(order))
            .send()
            .await
            .map_err(|e| transport(&e, true))?;
        let status = sent.status().as_u16();
        if !sent.status().is_success() {
            return Err(failure(sent, true).await);
        }
        let body: Value = sent
            .json()
            .await
            .map_err(|_| PharmacyError::Uncertain("an acceptance without a body".into()))?;
        match body["orderId"].as_str() {
            Some(id) if !id.is_empty() => Ok(Placed {
                external_id: id.to_owned(),
                http_status: status,
            }),
            _ => Err(PharmacyError::Uncertain("an acceptance without an order id".into())),
        }
    }

    async fn status(&self, external_id: &str) -> Result<OrderState, PharmacyError> {
        let resp = self
            .signed(self.http.get(self.url(&format!("/orders/{external_id}"))))
            .send()
            .await
            .map_err(|e| transport(&e, false))?;
        if !resp.status().is_success() {
            return Err(failure(resp, false).await);
        }
        let body: Value = resp.json().await.map_err(|_| unreadable())?;
        Ok(OrderState {
            status: body["status"].as_str().unwrap_or_default().to_owned(),
            carrier: body["carrier"].as_str().map(str::to_owned),
            tracking_number: body["trackingNumber"].as_str().map(str::to_owned),
        })
    }

    async fn cancel(&self, external_id: &str) -> Result<(), PharmacyError> {
        let resp = self
            .signed(self.http.post(self.url(&format!("/orders/{external_id}/cancel"))))
            .json(&json!({ "reason": "cancelled by the clinic" }))
            .send()
            .await
            .map_err(|e| transport(&e, false))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(failure(resp, false).await)
        }
    }

    async fn find(&self, reference_id: &str) -> Result<Vec<Found>, PharmacyError> {
        let resp = self
            .signed(
                self.http
                    .get(self.url("/orders"))
                    .query(&[("referenceId", reference_id)]),
            )
            .send()
            .await
            .map_err(|e| transport(&e, false))?;
        if !resp.status().is_success() {
            return Err(lookup_failure(failure(resp, false).await));
        }
        let body: Value = resp.json().await.map_err(|_| unreadable())?;
        found(&body["orders"], reference_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_hashes_utf16le_of_timestamp_and_secret() {
        // SHA-512 over UTF-16LE, not UTF-8: the same input hashed as UTF-8 differs.
        let sig = signature("2026-01-02T03:04:05.000006Z", "s3cret");
        let utf8 = base64::engine::general_purpose::STANDARD
            .encode(Sha512::digest("2026-01-02T03:04:05.000006Zs3cret".as_bytes()));
        assert_ne!(sig, utf8);
        assert_eq!(
            base64::engine::general_purpose::STANDARD.decode(&sig).unwrap().len(),
            64
        );
    }
}
