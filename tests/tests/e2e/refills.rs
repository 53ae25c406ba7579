//! Refills end to end: a fill schedules them; the clock reminds the patient, then on the due date a
//! refill run charges the saved card under the refill's reference, re-decides the pharmacy, orders
//! and tells the patient, each once (also across crashes); a declined card is retried, then the
//! refill is overdue, and a new card makes the next attempt succeed; admins skip, pause, resume,
//! cancel, process now and change the dose, each audited.

use std::time::Duration;

use era_pharmacy_routing::config::FailAt;
use era_proto::{payments::v1 as payments, pharmacy_routing::v1 as pb};
use era_tests::{error_code, TestMesh};
use serde_json::{json, Value};

use crate::{
    approval::{
        approvable, approve, charges, outbox_for, pharmacy_orders, run_until_finished, stopping_replica, Approvable,
    },
    payments::save_card,
    rx_queue::json_ok,
};

/// A mesh whose refill clock and worker turn fast, retrying a declined refill after a second, twice.
async fn mesh() -> TestMesh {
    TestMesh::start_with(|o| {
        o.pipeline.poll_ms = 100;
        o.pipeline.lease_secs = 2;
        o.pipeline.lookup_delay_secs = Some(1);
        o.pipeline.refill_retry_secs = vec![1, 1];
    })
    .await
}

/// Approves `t` and answers its refills once the fill succeeded.
async fn filled(mesh: &TestMesh, t: &Approvable) -> Vec<pb::Refill> {
    let approved = approve(mesh, t).await;
    let run = run_until_finished(mesh, approved["run"]["id"].as_str().unwrap()).await;
    assert_eq!(run.status, pb::RunStatus::Succeeded as i32, "{run:?}");
    let refills = refills(mesh, &t.patient).await;
    assert_eq!(refills.len(), 2, "the catalogue allows two refills: {refills:?}");
    refills
}

/// A patient's refills, soonest first.
pub(crate) async fn refills(mesh: &TestMesh, patient: &str) -> Vec<pb::Refill> {
    mesh.pharmacy_routing()
        .list_refills(mesh.admin_request(pb::ListRefillsRequest {
            canvas_patient_id: patient.into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .refills
}

async fn refill(mesh: &TestMesh, patient: &str, id: &str) -> pb::Refill {
    refills(mesh, patient).await.into_iter().find(|r| r.id == id).unwrap()
}

/// Moves a refill's due date, as the passing of time would.
async fn due_in(mesh: &TestMesh, refill: &str, secs: i64) {
    let pool = sqlx::PgPool::connect(&mesh.database_url("pharmacy_routing"))
        .await
        .unwrap();
    sqlx::query("update refills set due_at = now() + make_interval(secs => $2) where id = $1::uuid")
        .bind(refill)
        .bind(secs as f64)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}

/// The refill once its status is one of `statuses` (the clock and the worker get there in their time).
async fn refill_once(mesh: &TestMesh, patient: &str, id: &str, statuses: &[&str]) -> pb::Refill {
    for _ in 0..300 {
        let r = refill(mesh, patient, id).await;
        if statuses.contains(&r.status.as_str()) {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "refill {id} never became {statuses:?}: {:?}",
        refill(mesh, patient, id).await
    );
}

async fn charge_by_reference(mesh: &TestMesh, reference: &str) -> payments::Charge {
    mesh.payments()
        .get_charge(mesh.admin_request(payments::GetChargeRequest {
            reference: reference.into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .charge
        .unwrap()
}

async fn runs_of_refill(mesh: &TestMesh, refill: &str) -> i64 {
    let pool = sqlx::PgPool::connect(&mesh.database_url("pharmacy_routing"))
        .await
        .unwrap();
    let n = sqlx::query_scalar("select count(*) from orchestration_runs where refill_id = $1::uuid")
        .bind(refill)
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n
}

async fn act(mesh: &TestMesh, refill: &str, action: &str, key: Option<&str>, body: Option<Value>) -> reqwest::Response {
    let mut req = mesh
        .http
        .post(mesh.url(&format!("/api/admin/refills/{refill}/{action}")))
        .bearer_auth(mesh.admin_jwt("reviewer@hisera.com"));
    if let Some(key) = key {
        req = req.header("idempotency-key", key);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn a_due_refill_is_reminded_charged_ordered_and_announced_once() {
    let mesh = mesh().await;
    let t = approvable(&mesh, "gmp").await.remove(0);
    save_card(&mesh, &t.patient, "pm_card_visa").await.unwrap();
    let first = filled(&mesh, &t).await.remove(0);
    assert_eq!(first.status, "scheduled");

    // Two days out: inside the three-day reminder window.
    due_in(&mesh, &first.id, 2 * 86_400).await;
    for _ in 0..100 {
        if refill(&mesh, &t.patient, &first.id).await.reminded_at.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refill(&mesh, &t.patient, &first.id).await.reminded_at.is_some());
    assert_eq!(outbox_for(&mesh, &t.patient, "refill_due").await, 1);

    // The due date: charged under the refill's reference, ordered, announced.
    let mark = mesh.ledger_mark().await;
    due_in(&mesh, &first.id, 0).await;
    let done = refill_once(&mesh, &t.patient, &first.id, &["ordered", "failed", "overdue"]).await;
    assert_eq!(done.status, "ordered", "{done:?}");
    assert_eq!(done.attempts, 1);
    let run = run_until_finished(&mesh, &done.run_id).await;
    assert_eq!(run.kind, pb::RunKind::Refill as i32);
    assert_eq!(run.status, pb::RunStatus::Succeeded as i32, "{run:?}");
    let charge = charge_by_reference(&mesh, &format!("refill:{}", first.id)).await;
    assert_eq!(charge.status, payments::ChargeStatus::Succeeded as i32);
    assert_eq!(charge.id, run.payment_id);
    assert_eq!(
        pharmacy_orders(&mesh, "pioneerrx", &run.pharmacy_order_id).await.len(),
        1
    );
    let stripe = mesh.ledger_counts("stripe", mark).await;
    assert_eq!(stripe.get("POST /stripe/v1/payment_intents"), Some(&1), "{stripe:?}");
    assert_eq!(outbox_for(&mesh, &t.patient, "refill_ordered").await, 1);
    assert_eq!(outbox_for(&mesh, &t.patient, "refill_due").await, 1, "one reminder");

    // The clock keeps turning: the ordered refill is never started again.
    let second = refills(&mesh, &t.patient).await.remove(1);
    due_in(&mesh, &second.id, 0).await;
    refill_once(&mesh, &t.patient, &second.id, &["ordered"]).await;
    assert_eq!(runs_of_refill(&mesh, &first.id).await, 1);
    assert_eq!(charges(&mesh, &t.patient).await.len(), 3, "the fill and two refills");
}

#[tokio::test]
async fn a_declined_refill_is_retried_then_overdue_and_a_new_card_fixes_the_next_attempt() {
    let mesh = mesh().await;
    let t = approvable(&mesh, "gmp").await.remove(0);
    save_card(&mesh, &t.patient, "pm_card_visa").await.unwrap();
    let [first, second]: [pb::Refill; 2] = filled(&mesh, &t).await.try_into().unwrap();
    save_card(&mesh, &t.patient, "pm_card_chargeCustomerFail")
        .await
        .unwrap();

    // Declined on the due date and on both retries: overdue, the patient told each time.
    due_in(&mesh, &first.id, 0).await;
    let overdue = refill_once(&mesh, &t.patient, &first.id, &["overdue", "ordered", "failed"]).await;
    assert_eq!(overdue.status, "overdue", "{overdue:?}");
    assert_eq!(overdue.attempts, 3, "the due date and two retries");
    let runs: Vec<_> = overdue.history.iter().filter(|h| h.kind == "run").collect();
    assert_eq!(runs.len(), 3);
    assert!(runs.iter().all(|h| h.failure_reason == "payment_declined"), "{runs:?}");
    assert_eq!(outbox_for(&mesh, &t.patient, "payment_failed").await, 3);
    for _ in 0..100 {
        if outbox_for(&mesh, &t.patient, "refill_overdue").await == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(outbox_for(&mesh, &t.patient, "refill_overdue").await, 1);
    for attempt in 2..=3 {
        let retry = charge_by_reference(&mesh, &format!("refill:{}:{attempt}", first.id)).await;
        assert_ne!(retry.status, payments::ChargeStatus::Succeeded as i32);
    }

    // The next refill: declined once, then the patient saves a new card through their own routes,
    // and the retry goes through.
    due_in(&mesh, &second.id, 0).await;
    let failed = refill_once(&mesh, &t.patient, &second.id, &["payment_failed", "ordered", "overdue"]).await;
    assert_eq!(failed.status, "payment_failed", "{failed:?}");
    let token = mesh.patient_tokens().issue(&t.patient).token;
    let setup = json_ok(
        mesh.http
            .post(mesh.url("/api/intake/setup-intent"))
            .bearer_auth(&token)
            .header("idempotency-key", "new-card-after-decline")
            .json(&json!({ "email": format!("{}@example.test", t.patient) }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    json_ok(
        mesh.http
            .post(mesh.url("/api/intake/payment-method"))
            .bearer_auth(&token)
            .json(&json!({ "setupIntentId": setup["setupIntentId"], "paymentMethodId": "pm_card_visa" }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let ordered = refill_once(&mesh, &t.patient, &second.id, &["ordered", "overdue"]).await;
    assert_eq!(ordered.status, "ordered", "{ordered:?}");
    assert_eq!(ordered.attempts, 2);
    let charge = charge_by_reference(&mesh, &format!("refill:{}:2", second.id)).await;
    assert_eq!(charge.status, payments::ChargeStatus::Succeeded as i32);
}

#[tokio::test]
async fn admins_skip_pause_resume_cancel_change_the_dose_and_process_now_once() {
    let mesh = mesh().await;
    let patients = approvable(&mesh, "gmp").await;
    let (t, witness) = (&patients[0], &patients[1]);
    for p in [t, witness] {
        save_card(&mesh, &p.patient, "pm_card_visa").await.unwrap();
    }
    let [first, second]: [pb::Refill; 2] = filled(&mesh, t).await.try_into().unwrap();
    let witness_refill = filled(&mesh, witness).await.remove(0);

    // Pause reaches the later refill; a paused refill is not processed when due (the witness,
    // due at the same time, is: the clock went past it).
    let paused = json_ok(act(&mesh, &first.id, "pause", Some("pause-1"), None).await).await;
    assert_eq!(paused["changedRefillIds"].as_array().unwrap().len(), 2, "{paused}");
    due_in(&mesh, &first.id, 0).await;
    due_in(&mesh, &witness_refill.id, 0).await;
    refill_once(&mesh, &witness.patient, &witness_refill.id, &["ordered"]).await;
    assert_eq!(refill(&mesh, &t.patient, &first.id).await.status, "paused");
    assert_eq!(runs_of_refill(&mesh, &first.id).await, 0);
    // The same key is the same pause.
    let again = json_ok(act(&mesh, &first.id, "pause", Some("pause-1"), None).await).await;
    assert_eq!(again["existing"], true, "{again}");

    // Another catalogue dose for this and the later refills; a dose not in the catalogue is refused.
    let other_dose = if t.medication == "semaglutide" {
        "0.5 mg weekly"
    } else {
        "5 mg weekly"
    };
    let resp = act(
        &mesh,
        &first.id,
        "dose",
        None,
        Some(json!({ "doseLabel": "9 mg daily" })),
    )
    .await;
    assert_eq!(error_code(resp, 400).await, "invalid_argument");
    json_ok(act(&mesh, &first.id, "dose", None, Some(json!({ "doseLabel": other_dose }))).await).await;
    assert!(refills(&mesh, &t.patient)
        .await
        .iter()
        .all(|r| r.dose_label == other_dose));

    // Skip the first (it is paused: skipping needs no resume), resume the second.
    json_ok(act(&mesh, &first.id, "skip", None, None).await).await;
    let resumed = json_ok(act(&mesh, &second.id, "resume", None, None).await).await;
    assert_eq!(resumed["refill"]["status"], "scheduled", "{resumed}");
    assert_eq!(refill(&mesh, &t.patient, &first.id).await.status, "skipped");

    // Process the second now, twice with a key and twice more without: one run, one charge.
    let mark = mesh.ledger_mark().await;
    let now = json_ok(act(&mesh, &second.id, "process-now", Some("early-1"), None).await).await;
    let run_id = now["run"]["id"].as_str().unwrap().to_owned();
    assert_eq!(now["existing"], false);
    for key in [Some("early-1"), None, None] {
        let again = json_ok(act(&mesh, &second.id, "process-now", key, None).await).await;
        assert_eq!(again["run"]["id"], run_id.as_str(), "{again}");
        assert_eq!(again["existing"], true);
    }
    let run = run_until_finished(&mesh, &run_id).await;
    assert_eq!(run.status, pb::RunStatus::Succeeded as i32, "{run:?}");
    assert_eq!(run.dose_label, other_dose);
    assert_eq!(runs_of_refill(&mesh, &second.id).await, 1);
    let stripe = mesh.ledger_counts("stripe", mark).await;
    assert_eq!(stripe.get("POST /stripe/v1/payment_intents"), Some(&1), "{stripe:?}");

    // Nothing more can be done to an ordered refill; an unknown one is 404.
    let resp = act(&mesh, &second.id, "cancel", None, None).await;
    assert_eq!(error_code(resp, 422).await, "refill_not_actionable");
    let resp = act(&mesh, &uuid::Uuid::new_v4().to_string(), "skip", None, None).await;
    assert_eq!(resp.status(), 404);
    let resp = act(&mesh, &second.id, "explode", None, None).await;
    assert_eq!(error_code(resp, 400).await, "invalid_argument");

    // The admin sees every action with who did it; the patient sees what happened, not who.
    let page = json_ok(
        mesh.get(
            &format!("/api/admin/refills/{}", t.patient),
            Some(&mesh.admin_jwt("reviewer@hisera.com")),
        )
        .await,
    )
    .await;
    let first_view = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == first.id.as_str())
        .unwrap();
    let kinds: Vec<&str> = first_view["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["pause", "dose", "skip"], "{first_view}");
    assert!(first_view["history"]
        .as_array()
        .unwrap()
        .iter()
        .all(|h| h["actor"] == "reviewer@hisera.com"));
    let own = mesh.patient_tokens().issue(&t.patient).token;
    let mine = json_ok(
        mesh.get(&format!("/api/patient-refills/{}", t.patient), Some(&own))
            .await,
    )
    .await;
    assert!(mine["items"].as_array().unwrap().iter().all(|r| r["history"]
        .as_array()
        .unwrap()
        .iter()
        .all(|h| h["actor"] == "")));
    let theirs = mesh
        .get(&format!("/api/patient-refills/{}", witness.patient), Some(&own))
        .await;
    assert_eq!(theirs.status(), 403);

    // Cancel reaches the later refills of the same prescription (the witness's second here).
    let witness_second = refills(&mesh, &witness.patient).await.remove(1);
    let cancelled = json_ok(act(&mesh, &witness_second.id, "cancel", None, None).await).await;
    assert_eq!(cancelled["refill"]["status"], "cancelled", "{cancelled}");
}

#[tokio::test]
async fn a_refill_goes_to_the_pharmacy_the_routing_names_on_its_due_date() {
    let mesh = mesh().await;
    let t = approvable(&mesh, "gmp").await.remove(0);
    save_card(&mesh, &t.patient, "pm_card_visa").await.unwrap();
    let first = filled(&mesh, &t).await.remove(0);

    // The patient's state moves from GMP to Strive between the fill and the refill.
    let state = mesh
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
        .address
        .unwrap()
        .state;
    let prescribers = mesh
        .pharmacy_routing()
        .get_state_routing(mesh.admin_request(pb::GetStateRoutingRequest { state: state.clone() }))
        .await
        .unwrap()
        .into_inner()
        .routing
        .unwrap();
    let prescriber = prescribers.routes[0].prescriber_id.clone();
    mesh.pharmacy_routing()
        .update_state_routing(mesh.admin_request(pb::UpdateStateRoutingRequest {
            state: state.clone(),
            excluded: false,
            routes: vec![pb::Route {
                pharmacy_id: "strive".into(),
                prescriber_id: prescriber,
                priority: 1,
                active: true,
            }],
            note: "GMP lost its licence here".into(),
            ..Default::default()
        }))
        .await
        .unwrap();

    let done = json_ok(act(&mesh, &first.id, "process-now", Some("moved"), None).await).await;
    let run = run_until_finished(&mesh, done["run"]["id"].as_str().unwrap()).await;
    assert_eq!(run.status, pb::RunStatus::Succeeded as i32, "{run:?}");
    let orders = pharmacy_orders(&mesh, "strive", &run.pharmacy_order_id).await;
    assert_eq!(orders.len(), 1, "the refill went to Strive");
    assert!(pharmacy_orders(&mesh, "pioneerrx", &run.pharmacy_order_id)
        .await
        .is_empty());
}

/// Processes `refill` now on a new replica whose pipeline stops at `step`/`at` as a kill would.
pub(crate) async fn process_on_stopping_replica(
    mesh: &TestMesh,
    refill: &str,
    step: &str,
    at: FailAt,
) -> (era_tests::Replica, pb::OrchestrationRun) {
    let replica = stopping_replica(mesh, step, at).await;
    let answer = mesh
        .routing_client(&replica.url)
        .refill_action(mesh.admin_request(pb::RefillActionRequest {
            refill_id: refill.into(),
            action: pb::RefillActionKind::ProcessNow as i32,
            idempotency_key: format!("crash-{step}-{at:?}"),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    (replica, answer.run.unwrap())
}

/// One test per step of a refill run: a replica stops before the call, after it, and after its
/// commit; the mesh's own replica resumes after the lease, and the refill is charged, ordered and
/// announced once.
macro_rules! refill_crash_matrix {
    ($($name:ident: $step:literal),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            let mesh = mesh().await;
            let patients = approvable(&mesh, "gmp").await;
            assert!(patients.len() >= 3, "three patients routed to GMP: {patients:?}");
            for (t, at) in patients.iter().zip([FailAt::BeforeCall, FailAt::AfterCall, FailAt::AfterCommit]) {
                save_card(&mesh, &t.patient, "pm_card_visa").await.unwrap();
                let first = filled(&mesh, t).await.remove(0);
                let mark = mesh.ledger_mark().await;
                let (replica, started) = process_on_stopping_replica(&mesh, &first.id, $step, at).await;
                let run = run_until_finished(&mesh, &started.id).await;
                drop(replica);
                assert_eq!(run.status, pb::RunStatus::Succeeded as i32, "{} {at:?}: {run:?}", $step);
                assert_eq!(refill(&mesh, &t.patient, &first.id).await.status, "ordered");
                assert_eq!(pharmacy_orders(&mesh, "pioneerrx", &run.pharmacy_order_id).await.len(), 1);
                let charge = charge_by_reference(&mesh, &format!("refill:{}", first.id)).await;
                assert_eq!(charge.status, payments::ChargeStatus::Succeeded as i32);
                let stripe = mesh.ledger_counts("stripe", mark).await;
                assert_eq!(stripe.get("POST /stripe/v1/payment_intents"), Some(&1), "{stripe:?}");
                assert_eq!(outbox_for(&mesh, &t.patient, "refill_ordered").await, 1);
                assert_eq!(runs_of_refill(&mesh, &first.id).await, 1);
            }
        }
    )*};
}

refill_crash_matrix! {
    refill_crash_at_medication_config: "medication_config",
    refill_crash_at_patient_lookup: "patient_lookup",
    refill_crash_at_prescriber_routing: "prescriber_routing",
    refill_crash_at_pharmacy_routing: "pharmacy_routing",
    refill_crash_at_payment_authorization: "payment_authorization",
    refill_crash_at_pharmacy_sync: "pharmacy_sync",
    refill_crash_at_payment: "payment",
    refill_crash_at_notification: "notification",
}
