//! Shipments tracked with FedEx: a read is served from the tracking cache (two reads within the
//! window make no second call to FedEx; after it, one more), the clock moves a shipment to out for
//! delivery and delivered with one notice each, FedEx down leaves the last known status with its
//! time, and a patient reads only their own shipments.

use std::time::Duration;

use era_proto::pharmacy_routing::v1 as pb;
use era_tests::{error_code, TestMesh};
use serde_json::{json, Value};

use crate::{
    approval::{approvable, approve, outbox_for, pharmacy_orders, run_until_finished},
    payments::save_card,
    rx_queue::json_ok,
};

const TRACK: &str = "POST /fedex/track/v1/trackingnumbers";

async fn fedex_calls(mesh: &TestMesh, mark: u64) -> u64 {
    mesh.ledger_counts("fedex", mark).await.get(TRACK).copied().unwrap_or(0)
}

/// Makes every cached tracking answer older than the 30-minute window.
async fn expire_tracking(mesh: &TestMesh) {
    let pool = sqlx::PgPool::connect(&mesh.database_url("pharmacy_routing"))
        .await
        .unwrap();
    sqlx::query("update tracking_cache set fetched_at = now() - interval '31 minutes'")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}

async fn shipment(mesh: &TestMesh, patient: &str) -> Value {
    let page = json_ok(
        mesh.get(&format!("/api/admin/shipments/{patient}"), Some(&mesh.admin_secret()))
            .await,
    )
    .await;
    page["items"][0].clone()
}

/// The patient's shipment once `ready` holds for it.
async fn shipment_once(mesh: &TestMesh, patient: &str, ready: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..200 {
        let s = shipment(mesh, patient).await;
        if ready(&s) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the shipment never got there: {}", shipment(mesh, patient).await);
}

/// A patient's approved order, shipped by the pharmacy (its callback records the shipment).
async fn shipped(mesh: &TestMesh) -> (crate::approval::Approvable, pb::OrchestrationRun) {
    let t = approvable(mesh, "gmp").await.remove(0);
    save_card(mesh, &t.patient, "pm_card_visa").await.unwrap();
    let body = approve(mesh, &t).await;
    let run = run_until_finished(mesh, body["run"]["id"].as_str().unwrap()).await;
    assert_eq!(run.status, pb::RunStatus::Succeeded as i32, "{run:?}");
    let order = pharmacy_orders(mesh, "pioneerrx", &run.pharmacy_order_id)
        .await
        .remove(0);
    let external = order["orderId"].as_str().unwrap().to_owned();
    let resp = mesh
        .sandbox
        .post(mesh.sandbox_url(&format!("/_sandbox/pharmacy/pioneerrx/orders/{external}/advance")))
        .json(&json!({ "status": "shipped" }))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{:?}", resp.text().await);
    (t, run)
}

async fn advance_at_fedex(mesh: &TestMesh, number: &str, to: &str) {
    let resp = mesh
        .sandbox
        .post(mesh.sandbox_url(&format!("/_sandbox/fedex/shipments/{number}/advance")))
        .json(&json!({ "to": to }))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{:?}", resp.text().await);
}

#[tokio::test]
async fn fedex_tracking_is_cached_moves_the_shipment_once_per_status_and_survives_fedex_down() {
    let mesh = TestMesh::start_with(|o| o.pipeline.poll_ms = 100).await;
    let (t, run) = shipped(&mesh).await;

    // Shipped by the pharmacy's callback, then tracked at FedEx (by the clock or the first read).
    let s = shipment_once(&mesh, &t.patient, |s| s["tracking"]["found"] == true).await;
    let number = s["trackingNumber"].as_str().unwrap().to_owned();
    assert_eq!(s["carrier"], "fedex", "{s}");
    assert_eq!(s["status"], "shipped");
    assert_eq!(
        s["tracking"]["url"],
        format!("https://www.fedex.com/fedextrack/?trknbr={number}")
    );
    assert_eq!(s["tracking"]["statusCode"], "PU", "{s}");
    assert!(!s["tracking"]["scans"].as_array().unwrap().is_empty());

    // Within the window two reads ask FedEx nothing; after it, one read asks once.
    let mark = mesh.ledger_mark().await;
    shipment(&mesh, &t.patient).await;
    shipment(&mesh, &t.patient).await;
    assert_eq!(fedex_calls(&mesh, mark).await, 0);
    expire_tracking(&mesh).await;
    shipment(&mesh, &t.patient).await;
    shipment(&mesh, &t.patient).await;
    assert_eq!(
        fedex_calls(&mesh, mark).await,
        1,
        "one call after the window, shared by every reader"
    );

    // Out for delivery, then delivered: the clock moves the shipment, one notice per status.
    advance_at_fedex(&mesh, &number, "out_for_delivery").await;
    expire_tracking(&mesh).await;
    let s = shipment_once(&mesh, &t.patient, |s| s["status"] == "out_for_delivery").await;
    assert_eq!(s["tracking"]["statusCode"], "OD", "{s}");
    assert!(s["tracking"]["estimatedDeliveryEnds"].is_string(), "{s}");
    advance_at_fedex(&mesh, &number, "delivered").await;
    expire_tracking(&mesh).await;
    let s = shipment_once(&mesh, &t.patient, |s| s["status"] == "delivered").await;
    assert!(s["deliveredAt"].is_string(), "{s}");
    let ours = json_ok(
        mesh.get(
            &format!("/api/admin/pharmacy-orders/{}", run.pharmacy_order_id),
            Some(&mesh.admin_secret()),
        )
        .await,
    )
    .await;
    assert_eq!(ours["order"]["status"], "delivered", "{ours}");
    expire_tracking(&mesh).await;
    shipment(&mesh, &t.patient).await;
    assert_eq!(
        outbox_for(&mesh, &t.patient, "shipment_updated").await,
        2,
        "out for delivery, delivered"
    );
    // The texts carry FedEx's link and no medication.
    let phone = mesh
        .canvas()
        .get_patient(mesh.admin_request(era_proto::canvas::v1::GetPatientRequest {
            canvas_patient_id: t.patient.clone(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .patient
        .unwrap()
        .phone;
    let link = format!("https://www.fedex.com/fedextrack/?trknbr={number}");
    let mut texts: Vec<String> = Vec::new();
    for _ in 0..100 {
        let inbox: Value = mesh
            .sandbox
            .get(mesh.sandbox_url("/_sandbox/inbox.json"))
            .query(&[("to", phone.as_str()), ("channel", "sms")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        texts = inbox["messages"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter_map(|m| m["text"].as_str().map(str::to_owned))
            .filter(|text| text.contains(&link))
            .collect();
        if texts.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(texts.len(), 3, "shipped, out for delivery, delivered: {texts:?}");
    assert!(
        texts.iter().all(|text| !text.to_lowercase().contains(&t.medication)),
        "{texts:?}"
    );

    // FedEx down: the last known tracking, with its time, and no error.
    mesh.fault(json!({ "path": "/fedex/track", "times": 100, "action": { "kind": "status", "status": 503 } }))
        .await;
    expire_tracking(&mesh).await;
    let down = json_ok(
        mesh.get(
            &format!("/api/admin/shipments/{}", t.patient),
            Some(&mesh.admin_secret()),
        )
        .await,
    )
    .await;
    let s = &down["items"][0];
    assert_eq!(s["tracking"]["statusCode"], "DL", "{down}");
    assert!(s["tracking"]["trackedAt"].is_string());
    mesh.clear_faults().await;

    // The patient reads their own shipments, and only theirs.
    let own = mesh.patient_tokens().issue(&t.patient).token;
    let mine = json_ok(
        mesh.get(&format!("/api/patient-shipments/{}", t.patient), Some(&own))
            .await,
    )
    .await;
    assert_eq!(mine["items"][0]["trackingNumber"], number.as_str());
    let theirs = mesh.get("/api/patient-shipments/someoneelse0001", Some(&own)).await;
    assert_eq!(error_code(theirs, 403).await, "forbidden");
}

#[tokio::test]
async fn fedex_throttling_holds_every_reader_until_its_wait_has_passed() {
    let mesh = TestMesh::start_with(|o| o.pipeline.poll_ms = 100).await;
    let (t, _) = shipped(&mesh).await;
    shipment_once(&mesh, &t.patient, |s| s["tracking"]["found"] == true).await;

    // One call a window at FedEx: the next is answered 429, and then nobody asks again.
    let resp = mesh
        .sandbox
        .put(mesh.sandbox_url("/_sandbox/fedex/limits"))
        .json(&json!({ "requests_per_window": 1, "window_secs": 600 }))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{:?}", resp.text().await);
    let throttled = || async {
        let pool = sqlx::PgPool::connect(&mesh.database_url("pharmacy_routing"))
            .await
            .unwrap();
        let held: Option<bool> =
            sqlx::query_scalar("select until > now() from carrier_throttles where carrier = 'fedex'")
                .fetch_optional(&pool)
                .await
                .unwrap();
        pool.close().await;
        held == Some(true)
    };
    for _ in 0..4 {
        if throttled().await {
            break;
        }
        expire_tracking(&mesh).await;
        let s = shipment(&mesh, &t.patient).await;
        assert_eq!(
            s["tracking"]["statusCode"], "PU",
            "the last known status is still shown: {s}"
        );
    }
    assert!(throttled().await, "FedEx's 429 is recorded for every replica");
    let mark = mesh.ledger_mark().await;
    for _ in 0..3 {
        expire_tracking(&mesh).await;
        let s = shipment(&mesh, &t.patient).await;
        assert_eq!(s["tracking"]["statusCode"], "PU", "{s}");
        assert!(s["tracking"]["trackedAt"].is_string());
    }
    assert_eq!(
        fedex_calls(&mesh, mark).await,
        0,
        "nobody asks FedEx while its wait lasts"
    );
}
