//! The pharmacy adapters against the pharmacy sandbox over real HTTP: orders placed, refused, read
//! and cancelled; PioneerRx's signature checked by the sandbox's own implementation; what each
//! failure tells the pipeline (nothing done, possibly placed, refused); and the lookup by our
//! reference id that settles a possibly placed order before anything is submitted again.

use std::time::Duration;

use era_pharmacy_routing::pharmacies::{
    Address, Found, Item, LifeFile, LifeFileAccount, OrderRequest, Patient, PharmacyAdapter, PharmacyError, PioneerRx,
    PioneerRxAccount, Prescriber,
};
use era_sandbox::{state, Sandbox};
use secrecy::SecretString;
use serde_json::{json, Value};

struct Pharmacies {
    url: String,
    http: reqwest::Client,
    gmp: PioneerRx,
    boothwyn: LifeFile,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start() -> Pharmacies {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(era_sandbox::run(Sandbox::new(), listener, async {
        let _ = stopped.await;
    }));
    let timeout = Duration::from_secs(5);
    let gmp = PioneerRx::new(
        "gmp",
        PioneerRxAccount {
            base_url: format!("{url}/pioneerrx"),
            api_key: SecretString::from(state::DEFAULT_PIONEERRX_API_KEY),
            shared_secret: SecretString::from(state::DEFAULT_PIONEERRX_SHARED_SECRET),
            timeout,
        },
    );
    let boothwyn = LifeFile::new(
        "boothwyn",
        LifeFileAccount {
            base_url: format!("{url}/boothwyn/lfapi/v1"),
            username: state::DEFAULT_BOOTHWYN_USERNAME.into(),
            password: SecretString::from(state::DEFAULT_BOOTHWYN_PASSWORD),
            vendor_id: state::DEFAULT_BOOTHWYN_VENDOR_ID.into(),
            location_id: state::DEFAULT_BOOTHWYN_LOCATION_ID.into(),
            network_id: state::DEFAULT_BOOTHWYN_NETWORK_ID.into(),
            practice_id: "era-clinic".into(),
            timeout,
        },
    );
    Pharmacies {
        url,
        http: reqwest::Client::new(),
        gmp,
        boothwyn,
        _stop: stop,
    }
}

impl Pharmacies {
    async fn orders(&self, pharmacy: &str) -> usize {
        let v: Value = self
            .http
            .get(format!("{}/_sandbox/pharmacy/{pharmacy}/orders", self.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v.as_array().or_else(|| v["orders"].as_array()).map_or(0, Vec::len)
    }

    async fn control(&self, path: &str, body: Value) -> reqwest::StatusCode {
        self.http
            .post(format!("{}/_sandbox/{path}", self.url))
            .json(&body)
            .send()
            .await
            .unwrap()
            .status()
    }
}

fn order(state: &str, npi: &str) -> OrderRequest {
    OrderRequest {
        reference_id: "run-1:pharmacy_sync".into(),
        prescriber: Prescriber {
            npi: npi.into(),
            first_name: "Ali".into(),
            last_name: "Nolan".into(),
            license_state: state.into(),
            license_number: "FNP-12345".into(),
        },
        patient: Patient {
            first_name: "Dana".into(),
            last_name: "Example".into(),
            date_of_birth: "1980-04-04".into(),
            gender: 'F',
            phone: "+15555550150".into(),
            email: "dana.example@example.test".into(),
        },
        ship_to: Address {
            line1: "1 Pharmacy Way".into(),
            line2: String::new(),
            city: "Atlanta".into(),
            state: state.into(),
            zip: "30301".into(),
        },
        items: vec![Item {
            drug_name: "Semaglutide".into(),
            strength: "2.5mg/0.5mL".into(),
            form: "injection".into(),
            quantity: 2.0,
            quantity_units: "mL".into(),
            days_supply: 28,
            refills: 2,
            directions: "Inject 0.25 mL under the skin once weekly.".into(),
        }],
    }
}

const ALI_NOLAN_NPI: &str = "1982609764";

#[tokio::test]
async fn pioneerrx_places_reads_and_cancels_signed_orders() {
    let p = start().await;
    // The adapter's signature is the one PioneerRx (here, the sandbox) checks.
    let placed = p.gmp.submit(&order("GA", ALI_NOLAN_NPI)).await.unwrap();
    assert_eq!(placed.http_status, 201);
    assert_eq!(p.orders("pioneerrx").await, 1);
    let state = p.gmp.status(&placed.external_id).await.unwrap();
    assert_eq!(state.status, "received");
    p.gmp.cancel(&placed.external_id).await.unwrap();
    assert_eq!(p.gmp.status(&placed.external_id).await.unwrap().status, "cancelled");
    p.gmp.cancel(&placed.external_id).await.unwrap();

    // Refusals keep PioneerRx's code.
    let bad_npi = p.gmp.submit(&order("GA", "1234567890")).await.unwrap_err();
    assert_eq!(
        bad_npi,
        PharmacyError::Refused {
            code: "invalid_npi".into(),
            http_status: 422
        }
    );
    let unserved = p.gmp.submit(&order("WA", ALI_NOLAN_NPI)).await.unwrap_err();
    assert!(
        matches!(unserved, PharmacyError::Refused { ref code, .. } if code == "state_not_served"),
        "{unserved:?}"
    );

    // Shipped orders cannot be cancelled; unknown ones are not found.
    let shipped = p.gmp.submit(&order("OH", ALI_NOLAN_NPI)).await.unwrap();
    let advanced = p
        .control(
            &format!("pharmacy/pioneerrx/orders/{}/advance", shipped.external_id),
            json!({ "status": "shipped" }),
        )
        .await;
    assert!(advanced.is_success());
    let st = p.gmp.status(&shipped.external_id).await.unwrap();
    assert_eq!(st.status, "shipped");
    assert!(st.tracking_number.is_some());
    assert_eq!(
        p.gmp.cancel(&shipped.external_id).await.unwrap_err(),
        PharmacyError::TooLate
    );
    assert_eq!(
        p.gmp.status("00000000-0000-0000-0000-000000000000").await.unwrap_err(),
        PharmacyError::NotFound
    );

    // A wrong shared secret is our configuration's fault, not the order's.
    let wrong = PioneerRx::new(
        "gmp",
        PioneerRxAccount {
            base_url: format!("{}/pioneerrx", p.url),
            api_key: SecretString::from(state::DEFAULT_PIONEERRX_API_KEY),
            shared_secret: SecretString::from("not-the-secret"),
            timeout: Duration::from_secs(5),
        },
    );
    assert!(matches!(
        wrong.submit(&order("GA", ALI_NOLAN_NPI)).await.unwrap_err(),
        PharmacyError::Misconfigured(_)
    ));
}

#[tokio::test]
async fn lifefile_orders_and_what_each_failure_means() {
    let p = start().await;
    let placed = p.boothwyn.submit(&order("WA", ALI_NOLAN_NPI)).await.unwrap();
    assert!(!placed.external_id.is_empty());
    assert_eq!(p.boothwyn.status(&placed.external_id).await.unwrap().status, "received");
    p.boothwyn.cancel(&placed.external_id).await.unwrap();
    // An excluded state, and the pharmacy's own rejection.
    let refused = p.boothwyn.submit(&order("TX", ALI_NOLAN_NPI)).await.unwrap_err();
    assert!(
        matches!(refused, PharmacyError::Refused { http_status: 422, .. }),
        "{refused:?}"
    );
    assert!(p
        .control("pharmacy/boothwyn/reject-next", json!({ "reason": "out of stock" }))
        .await
        .is_success());
    let rejected = p.boothwyn.submit(&order("WA", ALI_NOLAN_NPI)).await.unwrap_err();
    assert!(matches!(rejected, PharmacyError::Refused { .. }), "{rejected:?}");

    // The pharmacy places the order but the answer is lost: possibly placed, never "nothing done".
    let before = p.orders("boothwyn").await;
    assert!(p
        .control("faults", json!({ "method": "POST", "path": "/boothwyn/lfapi/v1/order", "times": 1, "action": { "kind": "drop_after" } }))
        .await
        .is_success());
    let lost = p.boothwyn.submit(&order("WA", ALI_NOLAN_NPI)).await.unwrap_err();
    assert!(matches!(lost, PharmacyError::Uncertain(_)), "{lost:?}");
    assert_eq!(
        p.orders("boothwyn").await,
        before + 1,
        "the order exists although the answer was lost"
    );
    // A 503 before anything was done to a read is safe to retry; to a submission it is not.
    assert!(p
        .control("faults", json!({ "method": "POST", "path": "/boothwyn/lfapi/v1/order", "times": 1, "action": { "kind": "status", "status": 503 } }))
        .await
        .is_success());
    assert!(matches!(
        p.boothwyn.submit(&order("WA", ALI_NOLAN_NPI)).await.unwrap_err(),
        PharmacyError::Uncertain(_)
    ));
    assert!(p
        .control("faults", json!({ "method": "GET", "path": format!("/boothwyn/lfapi/v1/order/{}/shipping", placed.external_id), "times": 1, "action": { "kind": "status", "status": 503 } }))
        .await
        .is_success());
    assert!(matches!(
        p.boothwyn.status(&placed.external_id).await.unwrap_err(),
        PharmacyError::Unavailable(_)
    ));
}

/// The external ids `find` returns, in its order.
async fn found_ids(adapter: &dyn PharmacyAdapter, reference_id: &str) -> Vec<String> {
    adapter
        .find(reference_id)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.external_id)
        .collect()
}

/// Injects one fault on the next matching sandbox call.
fn fault(method: &str, path: &str, action: Value) -> Value {
    json!({ "method": method, "path": path, "times": 1, "action": action })
}

#[tokio::test]
async fn pioneerrx_finds_the_orders_placed_with_our_reference() {
    let p = start().await;
    let o = order("GA", ALI_NOLAN_NPI);
    assert_eq!(
        p.gmp.find(&o.reference_id).await.unwrap(),
        vec![],
        "nothing before submitting"
    );

    let placed = p.gmp.submit(&o).await.unwrap();
    // Another reference at GMP, and the same reference at another pharmacy, are not found.
    let mut other = order("GA", ALI_NOLAN_NPI);
    other.reference_id = "run-2:pharmacy_sync".into();
    p.gmp.submit(&other).await.unwrap();
    p.boothwyn.submit(&order("WA", ALI_NOLAN_NPI)).await.unwrap();
    assert_eq!(
        p.gmp.find(&o.reference_id).await.unwrap(),
        vec![Found {
            external_id: placed.external_id.clone(),
            status: "received".into()
        }]
    );

    // A repeated submission is a second order: both are found, oldest first.
    let again = p.gmp.submit(&o).await.unwrap();
    assert_ne!(again.external_id, placed.external_id);
    assert_eq!(
        found_ids(&p.gmp, &o.reference_id).await,
        [placed.external_id.clone(), again.external_id]
    );

    // A read: a 5xx or a lost answer is "nothing done", never "possibly placed" nor "none".
    let lookup = "/pioneerrx/api/v1/orders";
    for action in [
        json!({ "kind": "status", "status": 503 }),
        json!({ "kind": "drop_after" }),
    ] {
        assert!(p
            .control("faults", fault("GET", lookup, action.clone()))
            .await
            .is_success());
        let e = p.gmp.find(&o.reference_id).await.unwrap_err();
        assert!(matches!(e, PharmacyError::Unavailable(_)), "{action}: {e:?}");
    }
    // A 404 to a lookup is not "no such order": only a listing can say "none".
    assert!(p
        .control(
            "faults",
            fault("GET", lookup, json!({ "kind": "status", "status": 404 }))
        )
        .await
        .is_success());
    let e = p.gmp.find(&o.reference_id).await.unwrap_err();
    assert!(matches!(e, PharmacyError::Misconfigured(_)), "{e:?}");

    // The lookup is signed like every call; a wrong secret is our configuration's fault.
    let wrong = PioneerRx::new(
        "gmp",
        PioneerRxAccount {
            base_url: format!("{}/pioneerrx", p.url),
            api_key: SecretString::from(state::DEFAULT_PIONEERRX_API_KEY),
            shared_secret: SecretString::from("not-the-secret"),
            timeout: Duration::from_secs(5),
        },
    );
    let e = wrong.find(&o.reference_id).await.unwrap_err();
    assert!(matches!(e, PharmacyError::Misconfigured(_)), "{e:?}");
    // No error carries the patient.
    assert!(!format!("{e:?} {e}").contains("Dana"));
}

#[tokio::test]
async fn lifefile_settles_a_lost_answer_by_finding_the_order() {
    let p = start().await;
    let o = order("WA", ALI_NOLAN_NPI);
    assert_eq!(
        p.boothwyn.find(&o.reference_id).await.unwrap(),
        vec![],
        "nothing before submitting"
    );

    let placed = p.boothwyn.submit(&o).await.unwrap();
    p.gmp.submit(&order("GA", ALI_NOLAN_NPI)).await.unwrap();
    assert_eq!(
        p.boothwyn.find(&o.reference_id).await.unwrap(),
        vec![Found {
            external_id: placed.external_id.clone(),
            status: "received".into()
        }]
    );

    // A repeated submission is a second order: both are found, in the pharmacy's order.
    let again = p.boothwyn.submit(&o).await.unwrap();
    assert_eq!(
        found_ids(&p.boothwyn, &o.reference_id).await,
        [placed.external_id.clone(), again.external_id.clone()]
    );

    // The answer to a submission is lost; the lookup, not a resubmission, shows it was placed.
    let mut lost = order("WA", ALI_NOLAN_NPI);
    lost.reference_id = "run-3:pharmacy_sync".into();
    assert!(p
        .control(
            "faults",
            fault("POST", "/boothwyn/lfapi/v1/order", json!({ "kind": "drop_after" }))
        )
        .await
        .is_success());
    let e = p.boothwyn.submit(&lost).await.unwrap_err();
    assert!(matches!(e, PharmacyError::Uncertain(_)), "{e:?}");
    let found = p.boothwyn.find(&lost.reference_id).await.unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].status, "received");

    // A read: a 5xx or a lost answer is "nothing done"; a 404 is not "none".
    let lookup = "/boothwyn/lfapi/v1/orders";
    for action in [
        json!({ "kind": "status", "status": 502 }),
        json!({ "kind": "drop_after" }),
    ] {
        assert!(p
            .control("faults", fault("GET", lookup, action.clone()))
            .await
            .is_success());
        let e = p.boothwyn.find(&o.reference_id).await.unwrap_err();
        assert!(matches!(e, PharmacyError::Unavailable(_)), "{action}: {e:?}");
    }
    assert!(p
        .control(
            "faults",
            fault("GET", lookup, json!({ "kind": "status", "status": 404 }))
        )
        .await
        .is_success());
    let e = p.boothwyn.find(&o.reference_id).await.unwrap_err();
    assert!(matches!(e, PharmacyError::Misconfigured(_)), "{e:?}");
    // A success status with an error envelope is not an empty list.
    assert!(p
        .control(
            "faults",
            fault(
                "GET",
                lookup,
                json!({ "kind": "status", "status": 200, "body": { "type": "error", "message": "Dana Example" } })
            )
        )
        .await
        .is_success());
    let e = p.boothwyn.find(&o.reference_id).await.unwrap_err();
    assert!(matches!(e, PharmacyError::Unavailable(_)), "{e:?}");
    assert!(!format!("{e:?} {e}").contains("Dana"), "no PHI in errors");
}

#[test]
fn the_adapters_never_show_credentials() {
    let debug = format!(
        "{:?}",
        PioneerRx::new(
            "gmp",
            PioneerRxAccount {
                base_url: "https://gmp.example".into(),
                api_key: SecretString::from("the-api-key"),
                shared_secret: SecretString::from("the-shared-secret"),
                timeout: Duration::from_secs(1),
            },
        )
    );
    assert!(
        !debug.contains("the-api-key") && !debug.contains("the-shared-secret"),
        "{debug}"
    );
}
