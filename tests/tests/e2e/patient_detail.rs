//! The admin's whole view of a patient: every tab from its owner, and a partial answer naming the
//! owner that is down.

use std::time::Duration;

use era_proto::pharmacy_routing::v1 as pb;
use era_tests::{error_code, TestMesh};
use serde_json::{json, Value};

use crate::{
    approval::run_until_finished,
    payments::save_card,
    rx_queue::{intake_body, json_ok},
};

#[tokio::test]
async fn the_patient_detail_shows_every_tab_and_names_an_owner_that_is_down() {
    let mesh = TestMesh::start().await;
    let secret = mesh.admin_secret();

    // A patient through the whole journey: intake, card, approval, order shipped, refills.
    let submitted = json_ok(
        mesh.http
            .post(mesh.url("/api/intake/submit"))
            .json(&intake_body(
                &uuid::Uuid::new_v4().to_string(),
                "detail.tabs@example.test",
                "OH",
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let patient = submitted["canvasPatientId"].as_str().unwrap().to_owned();
    let task = submitted["taskId"].as_str().unwrap().to_owned();
    save_card(&mesh, &patient, "pm_card_visa").await.unwrap();
    let detail = json_ok(mesh.get(&format!("/api/rx-queue/tasks/{task}"), Some(&secret)).await).await;
    let dose = detail["dosageOptions"][0]["label"].as_str().unwrap().to_owned();
    let approved = json_ok(
        mesh.http
            .post(mesh.url(&format!("/api/rx-queue/tasks/{task}/approve")))
            .bearer_auth(&secret)
            .json(&json!({ "doseLabel": dose }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let run = run_until_finished(&mesh, approved["run"]["id"].as_str().unwrap()).await;
    assert_eq!(run.status, pb::RunStatus::Succeeded as i32, "{run:?}");
    let order = json_ok(
        mesh.get(
            &format!("/api/admin/pharmacy-orders/{}", run.pharmacy_order_id),
            Some(&secret),
        )
        .await,
    )
    .await;
    let external = order["order"]["externalOrderId"].as_str().unwrap().to_owned();
    let resp = mesh
        .sandbox
        .post(mesh.sandbox_url(&format!("/_sandbox/pharmacy/pioneerrx/orders/{external}/advance")))
        .json(&json!({ "status": "shipped" }))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{:?}", resp.text().await);

    let path = format!("/api/admin/patients/{patient}");
    let mut all = Value::Null;
    for _ in 0..100 {
        all = json_ok(mesh.get(&path, Some(&secret)).await).await;
        if all["shipments"].as_array().is_some_and(|s| !s.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(all["patient"]["id"], patient.as_str(), "{all}");
    assert_eq!(all["intakeRecords"].as_array().unwrap().len(), 1, "{all}");
    let charges = all["charges"].as_array().unwrap();
    assert_eq!(charges.len(), 1, "{all}");
    assert_eq!(charges[0]["id"], run.payment_id.as_str());
    assert_eq!(all["card"]["cardLast4"], "4242", "{all}");
    assert_eq!(all["fulfilmentRuns"][0]["id"], run.id.as_str());
    assert_eq!(all["pharmacyOrders"][0]["id"], run.pharmacy_order_id.as_str());
    assert_eq!(all["shipments"][0]["status"], "shipped", "{all}");
    assert_eq!(all["refills"].as_array().unwrap().len(), 2, "{all}");
    assert!(!all["notifications"].as_array().unwrap().is_empty(), "{all}");
    assert!(all["appointments"].as_array().unwrap().is_empty());
    assert_eq!(all["unavailable"], json!([]));

    // An unknown patient is 404 whatever the other owners say.
    let resp = mesh.get("/api/admin/patients/nosuchpatient0001", Some(&secret)).await;
    assert_eq!(error_code(resp, 404).await, "not_found");

    // Payments down: its tab is empty and named; the rest still answer.
    mesh.mesh.shutdown_service("era-payments").await;
    let partial = json_ok(mesh.get(&path, Some(&secret)).await).await;
    assert_eq!(partial["unavailable"], json!(["payments"]), "{partial}");
    assert!(partial["charges"].as_array().unwrap().is_empty());
    assert!(partial["card"].is_null());
    assert_eq!(partial["patient"]["id"], patient.as_str());
    assert_eq!(partial["refills"].as_array().unwrap().len(), 2);
    assert_eq!(partial["shipments"][0]["status"], "shipped");
}
