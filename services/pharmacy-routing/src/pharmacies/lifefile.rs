//! LifeFile-style order APIs (Boothwyn, Strive), as integrations observe them (LifeFile publishes
//! no docs; external-apis.md §6): HTTP Basic plus `X-Vendor-ID`, `X-Location-ID` and
//! `X-API-Network-ID`; `POST {base}/order` → `{type: "success", data: {orderId}}` or `{type:
//! "error", message}`; `GET {base}/order/{id}/status`, `GET {base}/order/{id}/shipping`, and
//! `PUT {base}/order/{id}/status {"status": "cancelled"}`. Errors carry no code, only a message,
//! which is not kept (it can quote the order).
//!
//! `GET {base}/orders?referenceId=<ref>` → `{type: "success", data: {orders: [{orderId, referenceId,
//! status}]}}` is an assumption, not observed: the lookup by our reference is the sandbox's own
//! shape (`services/sandbox/src/pharmacy/lifefile.rs`) until a LifeFile instance confirms one.

use std::time::Duration;

use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use super::{
    found, http, lookup_failure, order_id, transport, unreadable, Found, OrderRequest, OrderState, PharmacyAdapter,
    PharmacyError, Placed,
};

/// One pharmacy's LifeFile instance and our credentials on it.
#[derive(Clone)]
pub struct LifeFileAccount {
    /// e.g. `https://host42.lifefile.net/lfapi/v1`.
    pub base_url: String,
    pub username: String,
    pub password: SecretString,
    pub vendor_id: String,
    pub location_id: String,
    pub network_id: String,
    /// The practice id the pharmacy knows the clinic by.
    pub practice_id: String,
    pub timeout: Duration,
}

#[derive(Clone)]
pub struct LifeFile {
    id: String,
    account: LifeFileAccount,
    http: reqwest::Client,
}

impl std::fmt::Debug for LifeFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LifeFile")
            .field("id", &self.id)
            .field("base_url", &self.account.base_url)
            .finish_non_exhaustive()
    }
}

impl LifeFile {
    pub fn new(pharmacy_id: &str, account: LifeFileAccount) -> Self {
        Self {
            id: pharmacy_id.to_owned(),
            http: http(account.timeout),
            account,
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let a = &self.account;
        self.http
            .request(method, format!("{}{path}", a.base_url.trim_end_matches('/')))
            .basic_auth(&a.username, Some(a.password.expose_secret()))
            .header("X-Vendor-ID", &a.vendor_id)
            .header("X-Location-ID", &a.location_id)
            .header("X-API-Network-ID", &a.network_id)
    }
}

async fn failure(resp: reqwest::Response, submission: bool) -> PharmacyError {
    let status = resp.status().as_u16();
    match status {
        // LifeFile names no code; the refusal is the pharmacy's, the reason in its message.
        422 => PharmacyError::Refused {
            code: "refused".into(),
            http_status: status,
        },
        404 => PharmacyError::NotFound,
        409 => PharmacyError::TooLate,
        429 => PharmacyError::Unavailable("rate limited".into()),
        s if s >= 500 && submission => PharmacyError::Uncertain(format!("server error {s}")),
        s if s >= 500 => PharmacyError::Unavailable(format!("server error {s}")),
        s => PharmacyError::Misconfigured(format!("{s}")),
    }
}

fn order_body(o: &OrderRequest, practice_id: &str) -> Value {
    let gender = o.patient.gender.to_ascii_lowercase().to_string();
    json!({
        "message": { "id": o.reference_id, "sentTime": Utc::now().to_rfc3339() },
        "order": {
            "general": { "referenceId": o.reference_id },
            "prescriber": {
                "npi": o.prescriber.npi,
                "licenseState": o.prescriber.license_state,
                "licenseNumber": o.prescriber.license_number,
                "firstName": o.prescriber.first_name,
                "lastName": o.prescriber.last_name,
            },
            "practice": { "id": practice_id },
            "patient": {
                "firstName": o.patient.first_name,
                "lastName": o.patient.last_name,
                "gender": gender,
                "dateOfBirth": o.patient.date_of_birth,
                "address1": o.ship_to.line1,
                "address2": o.ship_to.line2,
                "city": o.ship_to.city,
                "state": o.ship_to.state,
                "zip": o.ship_to.zip,
                "country": "US",
                "phoneMobile": o.patient.phone,
                "email": o.patient.email,
            },
            "shipping": {
                "recipientType": "patient",
                "recipientFirstName": o.patient.first_name,
                "recipientLastName": o.patient.last_name,
                "recipientPhone": o.patient.phone,
                "recipientEmail": o.patient.email,
                "addressLine1": o.ship_to.line1,
                "addressLine2": o.ship_to.line2,
                "city": o.ship_to.city,
                "state": o.ship_to.state,
                "zipCode": o.ship_to.zip,
                "country": "US",
            },
            "billing": { "payorType": "doc" },
            "rxs": o.items.iter().map(|i| json!({
                "rxType": "new",
                "drugName": i.drug_name,
                "drugStrength": i.strength,
                "drugForm": i.form,
                "foreignRxNumber": o.reference_id,
                "quantity": i.quantity.to_string(),
                "quantityUnits": i.quantity_units,
                "directions": i.directions,
                "refills": i.refills,
                "dateWritten": Utc::now().format("%Y-%m-%d").to_string(),
                "daysSupply": i.days_supply,
            })).collect::<Vec<_>>(),
        }
    })
}

#[tonic::async_trait]
impl PharmacyAdapter for LifeFile {
    fn pharmacy_id(&self) -> &str {
        &self.id
    }

    async fn submit(&self, order: &OrderRequest) -> Result<Placed, PharmacyError> {
        let sent = self
            .request(reqwest::Method::POST, "/order")
            .json(&order_body(order, &self.account.practice_id))
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
        if body["type"].as_str() != Some("success") {
            // A 200 carrying an error: LifeFile's way of refusing without a status.
            return Err(PharmacyError::Refused {
                code: "refused".into(),
                http_status: status,
            });
        }
        order_id(&body["data"]["orderId"])
            .map(|external_id| Placed {
                external_id,
                http_status: status,
            })
            .ok_or_else(|| PharmacyError::Uncertain("an acceptance without an order id".into()))
    }

    async fn status(&self, external_id: &str) -> Result<OrderState, PharmacyError> {
        let resp = self
            .request(reqwest::Method::GET, &format!("/order/{external_id}/shipping"))
            .send()
            .await
            .map_err(|e| transport(&e, false))?;
        if !resp.status().is_success() {
            return Err(failure(resp, false).await);
        }
        let body: Value = resp.json().await.map_err(|_| unreadable())?;
        let data = &body["data"];
        Ok(OrderState {
            status: data["status"].as_str().unwrap_or_default().to_owned(),
            carrier: data["deliveryService"].as_str().map(str::to_owned),
            tracking_number: data["trackingNumber"].as_str().map(str::to_owned),
        })
    }

    async fn cancel(&self, external_id: &str) -> Result<(), PharmacyError> {
        let resp = self
            .request(reqwest::Method::PUT, &format!("/order/{external_id}/status"))
            .json(&json!({ "status": "cancelled" }))
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
            .request(reqwest::Method::GET, "/orders")
            .query(&[("referenceId", reference_id)])
            .send()
            .await
            .map_err(|e| transport(&e, false))?;
        if !resp.status().is_success() {
            return Err(lookup_failure(failure(resp, false).await));
        }
        let body: Value = resp.json().await.map_err(|_| unreadable())?;
        if body["type"].as_str() != Some("success") {
            return Err(unreadable());
        }
        found(&body["data"]["orders"], reference_id)
    }
}
