//! The approval pipeline end to end: an admin approves a seeded Rx Review task through the edge and
//! the mesh orders it from the pharmacy, authorises then captures the card, tells the patient, writes
//! the H&P note and completes the task, each exactly once; denials, declines, rejections,
//! concurrent approvals, pharmacy callbacks and crashes at every step.

use std::time::Duration;

use era_pharmacy_routing::config::{FailAt, Failpoint, PipelineConfig};
use era_proto::{canvas::v1 as canvas, payments::v1 as payments, pharmacy_routing::v1 as pb};
use era_tests::TestMesh;
use serde_json::{json, Value};

use crate::{payments::save_card, rx_queue::json_ok};

/// A seeded open task the pipeline can fulfil: its patient's state is routed to `pharmacy`.
#[derive(Clone, Debug)]
pub(crate) struct Approvable {
    pub(crate) task: String,
    pub(crate) patient: String,
    pub(crate) medication: String,
    pub(crate) dose: String,
}

/// Open Rx Review tasks whose patients' states route (for their medication) to `pharmacy`.
pub(crate) async fn approvable(mesh: &TestMesh, pharmacy: &str) -> Vec<Approvable> {
    let mut canvas = mesh.canvas();
    let tasks = canvas
        .list_rx_review_tasks(mesh.admin_request(canvas::ListRxReviewTasksRequest {
            page: Some(era_proto::common::v1::PageRequest {
                page_size: 100,
                page_token: String::new(),
            }),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .tasks;
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for t in tasks {
        // One task per patient, so tests that use several tasks do not share a card.
        if !seen.insert(t.canvas_patient_id.clone()) {
            continue;
        }
        let detail = canvas
            .get_rx_review_task(mesh.admin_request(canvas::GetRxReviewTaskRequest { task_id: t.id.clone() }))
            .await
            .unwrap()
            .into_inner();
        let state = detail
            .patient
            .and_then(|p| p.address)
            .map(|a| a.state)
            .unwrap_or_default();
        let Some(dose) = detail.dosage_options.first() else {
            continue;
        };
        let decided = mesh
            .pharmacy_routing()
            .decide_route(mesh.admin_request(pb::DecideRouteRequest {
                state,
                medication: dose.medication.clone(),
            }))
            .await;
        if decided.is_ok_and(|d| d.into_inner().pharmacy.is_some_and(|p| p.id == pharmacy)) {
            out.push(Approvable {
                task: t.id,
                patient: t.canvas_patient_id,
                medication: dose.medication.clone(),
                dose: dose.label.clone(),
            });
        }
    }
    assert!(!out.is_empty(), "the seed has a task routed to {pharmacy}");
    out
}

async fn post(mesh: &TestMesh, path: &str, body: Value) -> reqwest::Response {
    mesh.http
        .post(mesh.url(path))
        .bearer_auth(mesh.admin_jwt("reviewer@hisera.com"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Approves `t` with its first dose through the edge; the answer's JSON (200 or 202).
pub(crate) async fn approve(mesh: &TestMesh, t: &Approvable) -> Value {
    json_ok(
        post(
            mesh,
            &format!("/api/rx-queue/tasks/{}/approve", t.task),
            json!({ "doseLabel": t.dose }),
        )
        .await,
    )
    .await
}

/// The sandbox pharmacy's orders for our order id (the reference the pipeline sends).
pub(crate) async fn pharmacy_orders(mesh: &TestMesh, slug: &str, reference: &str) -> Vec<Value> {
    let all: Value = mesh
        .sandbox
        .get(mesh.sandbox_url(&format!("/_sandbox/pharmacy/{slug}/orders")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    all["orders"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["referenceId"] == reference)
        .cloned()
        .collect()
}

pub(crate) async fn run_until_finished(mesh: &TestMesh, id: &str) -> pb::OrchestrationRun {
    let mut routing = mesh.pharmacy_routing();
    for _ in 0..600 {
        let run = routing
            .get_orchestration_run(mesh.admin_request(pb::GetOrchestrationRunRequest { id: id.into() }))
            .await
            .unwrap()
            .into_inner()
            .run
            .unwrap();
        if !matches!(
            pb::RunStatus::try_from(run.status),
            Ok(pb::RunStatus::Pending | pb::RunStatus::Running)
        ) {
            return run;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("run {id} did not finish");
}

async fn task_status(mesh: &TestMesh, task: &str) -> i32 {
    mesh.canvas()
        .get_rx_review_task(mesh.admin_request(canvas::GetRxReviewTaskRequest { task_id: task.into() }))
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap()
        .status
}

pub(crate) async fn charges(mesh: &TestMesh, patient: &str) -> Vec<payments::Charge> {
    mesh.payments()
        .list_patient_payments(mesh.admin_request(payments::ListPatientPaymentsRequest {
            canvas_patient_id: patient.into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .charges
}

pub(crate) async fn outbox_for(mesh: &TestMesh, patient: &str, kind: &str) -> usize {
    let pool = sqlx::PgPool::connect(&mesh.database_url("notifications"))
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar(
        "select count(*) from notifications where canvas_patient_id = $1 and notification_type = $2",
    )
    .bind(patient)
    .bind(kind)
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    n as usize
}

/// A run the pharmacy refused: the hold released (never captured), the card not blamed, the task
/// left open for an admin.
async fn assert_rejected_without_charge(mesh: &TestMesh, t: &Approvable) {
    let charges = charges(mesh, &t.patient).await;
    assert_eq!(charges.len(), 1, "{charges:?}");
    assert_eq!(
        charges[0].status,
        payments::ChargeStatus::Canceled as i32,
        "released, never captured"
    );
    assert_eq!(outbox_for(mesh, &t.patient, "payment_failed").await, 0);
    assert_eq!(task_status(mesh, &t.task).await, canvas::TaskStatus::Requested as i32);
}

/// Every effect of a succeeded approval, exactly once.
async fn assert_fulfilled_once(mesh: &TestMesh, t: &Approvable, run: &pb::OrchestrationRun, mark: u64) {
    assert_eq!(run.status, pb::RunStatus::Succeeded as i32, "{run:?}");
    let orders = pharmacy_orders(mesh, "pioneerrx", &run.pharmacy_order_id).await;
    assert_eq!(orders.len(), 1, "one pharmacy order: {orders:?}");
    let charges = charges(mesh, &t.patient).await;
    assert_eq!(charges.len(), 1, "{charges:?}");
    assert_eq!(charges[0].status, payments::ChargeStatus::Succeeded as i32);
    assert_eq!(charges[0].id, run.payment_id);
    let stripe = mesh.ledger_counts("stripe", mark).await;
    assert_eq!(stripe.get("POST /stripe/v1/payment_intents"), Some(&1), "{stripe:?}");
    assert_eq!(outbox_for(mesh, &t.patient, "prescription_approved").await, 1);
    let fhir = mesh.ledger_counts("canvas-fhir", mark).await;
    assert_eq!(fhir.get("POST /canvas-fhir/DocumentReference"), Some(&1), "{fhir:?}");
    assert_eq!(task_status(mesh, &t.task).await, canvas::TaskStatus::Completed as i32);
}

#[tokio::test]
async fn approving_a_task_orders_charges_notifies_and_completes_it_once() {
    let mesh = TestMesh::start().await;
    let t = approvable(&mesh, "gmp").await.remove(0);
    save_card(&mesh, &t.patient, "pm_card_visa").await.unwrap();
    let mark = mesh.ledger_mark().await;

    let resp = post(
        &mesh,
        &format!("/api/rx-queue/tasks/{}/approve", t.task),
        json!({ "doseLabel": t.dose, "note": "Reviewed intake; BMI qualifies." }),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let run = &body["run"];
    assert_eq!(run["status"], "succeeded", "{body}");
    assert_eq!(body["existing"], false);
    let steps: Vec<&str> = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps[..4],
        [
            "medication_config",
            "patient_lookup",
            "prescriber_routing",
            "pharmacy_routing"
        ]
    );
    assert!(
        run["steps"].as_array().unwrap().iter().all(|s| s["status"] == "done"),
        "{run}"
    );
    let id = run["id"].as_str().unwrap().to_owned();
    let run_pb = run_until_finished(&mesh, &id).await;
    assert_fulfilled_once(&mesh, &t, &run_pb, mark).await;

    // Approving again (another portal, a retry) answers the same run and does nothing more.
    let again = json_ok(
        post(
            &mesh,
            "/api/task-action",
            json!({ "taskId": t.task, "action": "approve", "doseLabel": t.dose }),
        )
        .await,
    )
    .await;
    assert_eq!(again["run"]["id"], id.as_str());
    assert_eq!(again["existing"], true);
    assert_fulfilled_once(&mesh, &t, &run_pb, mark).await;

    // The run, the order, the sync log and the refill schedule are there for admins.
    let jwt = mesh.admin_jwt("reviewer@hisera.com");
    let fetched = json_ok(mesh.get(&format!("/api/rx-queue/runs/{id}"), Some(&jwt)).await).await;
    assert_eq!(fetched["run"]["pharmacyOrderId"], run["pharmacyOrderId"]);
    let logs = json_ok(
        mesh.get(&format!("/api/admin/sync-logs?patientId={}", t.patient), Some(&jwt))
            .await,
    )
    .await;
    let items = logs["items"].as_array().unwrap().clone();
    assert!(
        items
            .iter()
            .any(|l| l["operation"] == "submit" && l["status"] == "success"),
        "{logs}"
    );
    // The sync log's filters and paging.
    let sync = |q: String| {
        let jwt = jwt.clone();
        let mesh = &mesh;
        async move { json_ok(mesh.get(&format!("/api/admin/sync-logs?{q}"), Some(&jwt)).await).await }
    };
    let ok = sync("pharmacy=gmp&status=success".into()).await;
    let ok_items = ok["items"].as_array().unwrap();
    assert!(!ok_items.is_empty(), "{ok}");
    assert!(
        ok_items
            .iter()
            .all(|l| l["pharmacyId"] == "gmp" && l["status"] == "success"),
        "{ok}"
    );
    assert!(sync("pharmacy=strive".into()).await["items"]
        .as_array()
        .unwrap()
        .is_empty());
    assert!(sync("status=failure".into()).await["items"]
        .as_array()
        .unwrap()
        .is_empty());
    let later = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert!(sync(format!("from={later}")).await["items"]
        .as_array()
        .unwrap()
        .is_empty());
    let first = sync("pageSize=1".into()).await;
    let token = first["nextPageToken"].as_str().unwrap().to_owned();
    assert!(!token.is_empty(), "{first}");
    let second = sync(format!("pageSize=1&pageToken={token}")).await;
    assert_ne!(first["items"][0]["id"], second["items"][0]["id"]);
    let resp = mesh.get("/api/admin/sync-logs?from=yesterday", Some(&jwt)).await;
    assert_eq!(resp.status(), 400);
    // The admin orders view joins the charge with the order its run placed.
    let orders = json_ok(
        mesh.get(&format!("/api/admin/orders?canvasPatientId={}", t.patient), Some(&jwt))
            .await,
    )
    .await;
    let row = &orders["items"][0];
    assert_eq!(
        (row["status"].as_str(), row["pharmacyOrder"]["status"].as_str()),
        (Some("succeeded"), Some("accepted")),
        "{orders}"
    );
    assert_eq!(row["pharmacyOrder"]["id"], run["pharmacyOrderId"]);
    let refills = json_ok(mesh.get(&format!("/api/admin/refills/{}", t.patient), Some(&jwt)).await).await;
    assert!(refills.to_string().contains("scheduled"), "{refills}");

    // A different dose for a decided task is refused and names the run.
    let resp = post(
        &mesh,
        &format!("/api/rx-queue/tasks/{}/deny", t.task),
        json!({ "reason": "changed my mind" }),
    )
    .await;
    assert_eq!(era_tests::error_code(resp, 422).await, "task_already_decided");
}

#[tokio::test]
async fn a_denial_closes_the_task_tells_the_patient_and_charges_nothing() {
    let mesh = TestMesh::start().await;
    let t = approvable(&mesh, "gmp").await.remove(0);
    save_card(&mesh, &t.patient, "pm_card_visa").await.unwrap();
    let mark = mesh.ledger_mark().await;
    let body = json_ok(
        post(
            &mesh,
            "/api/task-action",
            json!({ "taskId": t.task, "action": "deny", "reason": "Contraindicated: history of pancreatitis" }),
        )
        .await,
    )
    .await;
    assert_eq!(body["run"]["status"], "denied", "{body}");
    assert_eq!(task_status(&mesh, &t.task).await, canvas::TaskStatus::Cancelled as i32);
    assert_eq!(outbox_for(&mesh, &t.patient, "prescription_denied").await, 1);
    assert!(charges(&mesh, &t.patient).await.is_empty());
    assert!(!mesh
        .ledger_counts("stripe", mark)
        .await
        .contains_key("POST /stripe/v1/payment_intents"));

    // Bad input is refused before anything happens, naming the field.
    let other = approvable(&mesh, "gmp").await.remove(0);
    let resp = post(
        &mesh,
        &format!("/api/rx-queue/tasks/{}/approve", other.task),
        json!({ "doseLabel": "9 mg hourly" }),
    )
    .await;
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["fields"][0]["field"], "doseLabel", "{err}");
    assert_eq!(
        task_status(&mesh, &other.task).await,
        canvas::TaskStatus::Requested as i32
    );
}

#[tokio::test]
async fn fifty_concurrent_approvals_of_one_task_make_one_run() {
    let mesh = TestMesh::start().await;
    let t = approvable(&mesh, "gmp").await.remove(0);
    save_card(&mesh, &t.patient, "pm_card_visa").await.unwrap();
    let mark = mesh.ledger_mark().await;
    let calls = (0..50).map(|i| {
        let mut routing = mesh.pharmacy_routing();
        let req = mesh.admin_request(pb::ApproveTaskRequest {
            task_id: t.task.clone(),
            dose_label: t.dose.clone(),
            idempotency_key: format!("portal-{i}"),
            ..Default::default()
        });
        async move { routing.approve_task(req).await.map(|r| r.into_inner()) }
    });
    let answers: Vec<_> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let id = answers[0].run.as_ref().unwrap().id.clone();
    assert!(answers.iter().all(|a| a.run.as_ref().unwrap().id == id));
    assert_eq!(answers.iter().filter(|a| !a.existing).count(), 1);
    let run = run_until_finished(&mesh, &id).await;
    assert_fulfilled_once(&mesh, &t, &run, mark).await;
    let runs = mesh
        .pharmacy_routing()
        .list_orchestration_runs(mesh.admin_request(pb::ListOrchestrationRunsRequest {
            task_id: t.task.clone(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .runs;
    assert_eq!(runs.len(), 1);
}

#[tokio::test]
async fn a_declined_card_orders_nothing_and_asks_for_a_new_card() {
    let mesh = TestMesh::start().await;
    let t = approvable(&mesh, "gmp").await.remove(0);
    save_card(&mesh, &t.patient, "pm_card_chargeCustomerFail")
        .await
        .unwrap();
    let keyed = || {
        mesh.http
            .post(mesh.url(&format!("/api/rx-queue/tasks/{}/approve", t.task)))
            .bearer_auth(mesh.admin_jwt("reviewer@hisera.com"))
            .header("Idempotency-Key", "approve-once")
            .json(&json!({ "doseLabel": t.dose }))
            .send()
    };
    let body = json_ok(keyed().await.unwrap()).await;
    let run = &body["run"];
    assert_eq!(
        (run["status"].as_str(), run["failureReason"].as_str()),
        (Some("failed"), Some("payment_declined")),
        "{body}"
    );
    assert_eq!(run["pharmacyOrderId"], "", "nothing was ordered: {body}");
    assert_eq!(outbox_for(&mesh, &t.patient, "payment_failed").await, 1);
    assert_eq!(
        task_status(&mesh, &t.task).await,
        canvas::TaskStatus::Requested as i32,
        "left for an admin"
    );

    // Once the patient saved a new card, the admin approves again: a new run succeeds. A retry
    // of the first request (its key) still answers the first run and starts nothing.
    save_card(&mesh, &t.patient, "pm_card_visa").await.unwrap();
    let retried = json_ok(keyed().await.unwrap()).await;
    assert_eq!(
        (&retried["run"]["id"], &retried["existing"]),
        (&run["id"], &json!(true)),
        "{retried}"
    );
    let again = approve(&mesh, &t).await;
    assert_eq!(again["run"]["status"], "succeeded", "{again}");
    assert_ne!(again["run"]["id"], run["id"]);
}

#[tokio::test]
async fn a_pharmacy_rejection_releases_the_authorisation() {
    let mesh = TestMesh::start().await;
    let t = approvable(&mesh, "gmp").await.remove(0);
    save_card(&mesh, &t.patient, "pm_card_visa").await.unwrap();
    let resp = mesh
        .sandbox
        .post(mesh.sandbox_url("/_sandbox/pharmacy/pioneerrx/reject-next"))
        .json(&json!({ "reason": "formulary change" }))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let body = approve(&mesh, &t).await;
    let run = &body["run"];
    assert_eq!(run["failureReason"], "pharmacy_rejected", "{body}");
    assert_rejected_without_charge(&mesh, &t).await;
}

#[tokio::test]
async fn a_capture_refused_after_the_pharmacy_accepted_cancels_the_order() {
    let mesh = TestMesh::start_with(|o| {
        o.pipeline.lease_secs = 2;
        o.pipeline.poll_ms = 100;
        o.pipeline.lookup_delay_secs = Some(1);
    })
    .await;
    let t = approvable(&mesh, "gmp").await.remove(0);
    save_card(&mesh, &t.patient, "pm_card_visa").await.unwrap();
    // A replica that stops before the capture: the order is placed and the card only authorised.
    let (replica, run) = approve_on_stopping_replica(&mesh, &t, "payment", FailAt::BeforeCall).await;
    assert_eq!(run.status, pb::RunStatus::Running as i32, "{run:?}");
    // Meanwhile the authorisation lapses (Stripe cancels it), so the capture is refused.
    let charge = mesh
        .payments()
        .get_charge(mesh.admin_request(payments::GetChargeRequest {
            reference: format!("run:{}", run.id),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .charge
        .unwrap();
    let resp = mesh
        .sandbox
        .post(mesh.sandbox_url(&format!(
            "/_sandbox/stripe/payment_intents/{}/expire-authorization",
            charge.stripe_payment_intent_id
        )))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{:?}", resp.text().await);

    let run = run_until_finished(&mesh, &run.id).await;
    drop(replica);
    assert_eq!(run.failure_reason, "payment_declined", "{run:?}");
    let orders = pharmacy_orders(&mesh, "pioneerrx", &run.pharmacy_order_id).await;
    assert_eq!(orders.len(), 1);
    assert_eq!(
        orders[0]["status"], "cancelled",
        "the pharmacy order was cancelled: {orders:?}"
    );
    assert_eq!(outbox_for(&mesh, &t.patient, "payment_failed").await, 1);
    assert_eq!(task_status(&mesh, &t.task).await, canvas::TaskStatus::Requested as i32);
    let charges = charges(&mesh, &t.patient).await;
    assert_eq!(charges.len(), 1, "nothing was charged: {charges:?}");
    assert_ne!(charges[0].status, payments::ChargeStatus::Succeeded as i32);
}

#[tokio::test]
async fn an_order_the_pharmacy_rejects_before_the_capture_is_not_paid_for() {
    let mesh = TestMesh::start_with(|o| {
        o.pipeline.lease_secs = 2;
        o.pipeline.poll_ms = 100;
        o.pipeline.lookup_delay_secs = Some(1);
    })
    .await;
    let t = approvable(&mesh, "gmp").await.remove(0);
    save_card(&mesh, &t.patient, "pm_card_visa").await.unwrap();
    let (replica, run) = approve_on_stopping_replica(&mesh, &t, "payment", FailAt::BeforeCall).await;
    // Accepted and authorised; then the pharmacy's callback says it rejected the order after all.
    let order = pharmacy_orders(&mesh, "pioneerrx", &run.pharmacy_order_id)
        .await
        .remove(0);
    let external = order["orderId"].as_str().unwrap().to_owned();
    let resp = mesh
        .sandbox
        .post(mesh.sandbox_url(&format!("/_sandbox/pharmacy/pioneerrx/orders/{external}/advance")))
        .json(&json!({ "status": "rejected", "reason": "compounding failed QA" }))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{:?}", resp.text().await);
    let run = run_until_finished(&mesh, &run.id).await;
    drop(replica);
    assert_eq!(run.failure_reason, "pharmacy_rejected", "{run:?}");
    assert_rejected_without_charge(&mesh, &t).await;
}

#[tokio::test]
async fn pharmacy_callbacks_record_shipments_once_and_tell_the_patient() {
    let mesh = TestMesh::start().await;
    let t = approvable(&mesh, "gmp").await.remove(0);
    save_card(&mesh, &t.patient, "pm_card_visa").await.unwrap();
    let body = approve(&mesh, &t).await;
    let reference = body["run"]["pharmacyOrderId"].as_str().unwrap().to_owned();
    let order = pharmacy_orders(&mesh, "pioneerrx", &reference).await.remove(0);
    let external = order["orderId"].as_str().unwrap().to_owned();
    let resp = mesh
        .sandbox
        .post(mesh.sandbox_url(&format!("/_sandbox/pharmacy/pioneerrx/orders/{external}/advance")))
        .json(&json!({ "status": "shipped" }))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{:?}", resp.text().await);
    let jwt = mesh.admin_jwt("reviewer@hisera.com");
    let mut shipments = Value::Null;
    for _ in 0..100 {
        shipments = json_ok(
            mesh.get(&format!("/api/admin/shipments/{}", t.patient), Some(&jwt))
                .await,
        )
        .await;
        if shipments.to_string().contains("shipped") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(shipments.to_string().contains("shipped"), "{shipments}");
    let orders = json_ok(
        mesh.get(&format!("/api/admin/orders?canvasPatientId={}", t.patient), Some(&jwt))
            .await,
    )
    .await;
    let shipment = &orders["items"][0]["pharmacyOrder"]["shipment"];
    assert_eq!(shipment["status"], "shipped", "{orders}");
    assert!(!shipment["trackingNumber"].as_str().unwrap().is_empty(), "{orders}");
    assert_eq!(outbox_for(&mesh, &t.patient, "shipment_created").await, 1);

    // Every callback delivered again changes nothing.
    let events: Value = mesh
        .sandbox
        .get(mesh.sandbox_url("/_sandbox/pharmacy/events"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for e in events["events"].as_array().unwrap() {
        let id = e["id"].as_str().or(e["eventId"].as_str()).unwrap();
        let resp = mesh
            .sandbox
            .post(mesh.sandbox_url(&format!("/_sandbox/pharmacy/events/{id}/deliver")))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success());
    }
    assert_eq!(outbox_for(&mesh, &t.patient, "shipment_created").await, 1);

    // A callback naming another pharmacy than the one whose path (and secret) it came through is
    // refused, and one naming no order of ours is not consumed (the pharmacy redelivers).
    let forged = json!({
        "eventId": "evt_replayed", "pharmacy": "pioneerrx", "orderId": external,
        "referenceId": reference, "status": "cancelled", "occurredAt": chrono::Utc::now().to_rfc3339(),
    })
    .to_string();
    let resp = signed_callback(&mesh, "strive", &forged).await;
    assert_eq!(resp.status(), 400, "{:?}", resp.text().await);
    let unknown = json!({
        "eventId": "evt_unknown", "pharmacy": "pioneerrx", "orderId": "no-such-order",
        "status": "shipped", "occurredAt": chrono::Utc::now().to_rfc3339(),
    })
    .to_string();
    assert_eq!(signed_callback(&mesh, "pioneerrx", &unknown).await.status(), 404);
    assert_eq!(
        signed_callback(&mesh, "pioneerrx", &unknown).await.status(),
        404,
        "not consumed"
    );
    let order = json_ok(
        mesh.get(&format!("/api/admin/pharmacy-orders/{reference}"), Some(&jwt))
            .await,
    )
    .await;
    assert!(order.to_string().contains("shipped"), "{order}");
}

/// POSTs `body` to the edge's pharmacy webhook for `slug`, signed as the sandbox's pharmacies sign.
async fn signed_callback(mesh: &TestMesh, slug: &str, body: &str) -> reqwest::Response {
    use hmac::{Hmac, Mac};
    use secrecy::ExposeSecret;
    let t = era_tests::unix_now();
    let s = &mesh.mesh.secrets;
    let secret = match slug {
        "boothwyn" => &s.boothwyn_webhook_secret,
        "strive" => &s.strive_webhook_secret,
        _ => &s.pioneerrx_webhook_secret,
    }
    .expose_secret()
    .to_owned();
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    let signature = hex::encode(mac.finalize().into_bytes());
    mesh.http
        .post(mesh.url(&format!("/api/webhooks/pharmacy/{slug}")))
        .header("X-Pharmacy-Signature", format!("t={t},v1={signature}"))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

/// Stops a replica's pipeline at `step`/`at`; another replica (the mesh's own) resumes after the
/// lease, and every effect exists exactly once.
async fn crash_and_resume(mesh: &TestMesh, t: &Approvable, step: &str, at: FailAt) {
    let mark = mesh.ledger_mark().await;
    let (replica, stopped) = approve_on_stopping_replica(mesh, t, step, at).await;
    if !(step == "task_completion" && at == FailAt::AfterCommit) {
        // The replica stopped there: the run waits for its lease to run out.
        assert_eq!(
            stopped.status,
            pb::RunStatus::Running as i32,
            "{step} {at:?}: {stopped:?}"
        );
    }
    let run = run_until_finished(mesh, &stopped.id).await;
    drop(replica);
    assert_fulfilled_once(mesh, t, &run, mark).await;
}

/// A new pharmacy-routing replica (no worker, a 2 s lease) whose pipeline stops at `step`/`at` as a
/// kill would; the mesh's own replica resumes what it leaves once the lease runs out.
pub(crate) async fn stopping_replica(mesh: &TestMesh, step: &str, at: FailAt) -> era_tests::Replica {
    mesh.start_routing_replica(PipelineConfig {
        worker: false,
        lease_secs: 2,
        poll_ms: 100,
        sync_wait_ms: 500,
        lookup_delay_secs: Some(1),
        failpoint: Some(Failpoint { step: step.into(), at }),
        ..Default::default()
    })
    .await
}

/// Approves `t` on a new replica whose pipeline stops at `step`/`at` as a kill would; answers the
/// replica (keep it until the run is resumed elsewhere) and the run as its short wait left it.
async fn approve_on_stopping_replica(
    mesh: &TestMesh,
    t: &Approvable,
    step: &str,
    at: FailAt,
) -> (era_tests::Replica, pb::OrchestrationRun) {
    let replica = stopping_replica(mesh, step, at).await;
    let run = mesh
        .routing_client(&replica.url)
        .approve_task(mesh.admin_request(pb::ApproveTaskRequest {
            task_id: t.task.clone(),
            dose_label: t.dose.clone(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .run
        .unwrap();
    (replica, run)
}

/// One test per step: before the call, after it but before its commit, and after the commit.
macro_rules! crash_matrix {
    ($($name:ident: $step:literal),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            let mesh = TestMesh::start_with(|o| {
                o.pipeline.lease_secs = 2;
                o.pipeline.poll_ms = 100;
                o.pipeline.lookup_delay_secs = Some(1);
            })
            .await;
            let tasks = approvable(&mesh, "gmp").await;
            assert!(tasks.len() >= 3, "three tasks routed to GMP: {tasks:?}");
            for (t, at) in tasks.iter().zip([FailAt::BeforeCall, FailAt::AfterCall, FailAt::AfterCommit]) {
                save_card(&mesh, &t.patient, "pm_card_visa").await.unwrap();
                crash_and_resume(&mesh, t, $step, at).await;
            }
        }
    )*};
}

crash_matrix! {
    crash_at_medication_config: "medication_config",
    crash_at_patient_lookup: "patient_lookup",
    crash_at_prescriber_routing: "prescriber_routing",
    crash_at_pharmacy_routing: "pharmacy_routing",
    crash_at_payment_authorization: "payment_authorization",
    crash_at_pharmacy_sync: "pharmacy_sync",
    crash_at_payment: "payment",
    crash_at_notification: "notification",
    crash_at_hp_note: "hp_note",
    crash_at_task_completion: "task_completion",
}
