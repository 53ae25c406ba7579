//! Prescriptions written in Canvas, end to end: the sandbox's Canvas writes a MedicationRequest as a
//! physician would and its plugin POSTs the signed event to the edge; pharmacy-routing reads the
//! prescription from Canvas and fulfils it once (however often, and in whatever order, the event
//! arrives), never twice when an approval already fulfils it, and undoes it when Canvas stops it.

use era_pharmacy_routing::config::FailAt;
use era_proto::{payments::v1 as payments, pharmacy_routing::v1 as pb};
use era_tests::{error_code, unix_now, TestMesh};
use serde_json::{json, Value};

use crate::{
    approval::{
        approvable, approve, charges, outbox_for, pharmacy_orders, run_until_finished, stopping_replica, Approvable,
    },
    payments::save_card,
    plugin::forgeries_are_refused,
    refills::{process_on_stopping_replica, refills},
    rx_queue::json_ok,
};

const ROUTE: &str = "/api/webhooks/canvas/prescription";

/// Points the sandbox's Canvas plugin at the edge, paused: events wait until a test delivers them.
async fn plugin_paused(mesh: &TestMesh) {
    let resp = mesh
        .sandbox
        .put(mesh.sandbox_url("/_sandbox/canvas/webhook"))
        .json(&json!({ "url": mesh.url("/api/webhooks/canvas"), "paused": true }))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{:?}", resp.text().await);
}

/// The plugin pointed at the edge (paused), and a patient routed to GMP with a saved card.
async fn patient_with_card(mesh: &TestMesh) -> Approvable {
    plugin_paused(mesh).await;
    let t = approvable(mesh, "gmp").await.remove(0);
    save_card(mesh, &t.patient, "pm_card_visa").await.unwrap();
    t
}

/// A physician writes the prescription in Canvas: answers its MedicationRequest id and the event id.
async fn prescribe(mesh: &TestMesh, t: &Approvable) -> (String, String) {
    let resp = mesh
        .sandbox
        .post(mesh.sandbox_url("/_sandbox/canvas/prescriptions"))
        .json(&json!({ "patientId": t.patient, "medication": t.medication, "doseLabel": t.dose }))
        .send()
        .await
        .unwrap();
    let body = json_ok(resp).await;
    (
        body["medicationRequestId"].as_str().unwrap().to_owned(),
        body["eventId"].as_str().unwrap().to_owned(),
    )
}

/// The physician stops it in Canvas: answers the PRESCRIPTION_UPDATED event id.
async fn stop_in_canvas(mesh: &TestMesh, prescription: &str) -> String {
    let resp = mesh
        .sandbox
        .post(mesh.sandbox_url(&format!("/_sandbox/canvas/prescriptions/{prescription}/stop")))
        .json(&json!({ "status": "stopped" }))
        .send()
        .await
        .unwrap();
    json_ok(resp).await["eventId"].as_str().unwrap().to_owned()
}

/// Delivers exactly these plugin events, in this order; every delivery is answered 200.
async fn deliver(mesh: &TestMesh, events: &[&str]) {
    let resp = mesh
        .sandbox
        .post(mesh.sandbox_url("/_sandbox/canvas/deliver"))
        .json(&json!({ "events": events }))
        .send()
        .await
        .unwrap();
    let body = json_ok(resp).await;
    for a in body["attempts"].as_array().unwrap() {
        assert_eq!(a["attempt"]["status"], 200, "{body}");
    }
}

/// The runs of one Canvas prescription, through the edge.
async fn runs_of(mesh: &TestMesh, prescription: &str) -> Vec<Value> {
    let page = json_ok(
        mesh.get(
            &format!("/api/admin/orchestration-runs?medicationRequestId={prescription}"),
            Some(&mesh.admin_secret()),
        )
        .await,
    )
    .await;
    page["items"].as_array().unwrap().clone()
}

async fn routing_count(mesh: &TestMesh, sql: &str) -> i64 {
    let pool = sqlx::PgPool::connect(&mesh.database_url("pharmacy_routing"))
        .await
        .unwrap();
    let n = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
    pool.close().await;
    n
}

async fn edge_outcomes(mesh: &TestMesh, event: &str) -> Vec<String> {
    let pool = sqlx::PgPool::connect(&mesh.database_url("edge")).await.unwrap();
    let rows = sqlx::query_scalar("select outcome from plugin_deliveries where event_id = $1 order by id")
        .bind(event)
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    rows
}

/// The one run of the prescription, once it ended.
async fn finished_run(mesh: &TestMesh, prescription: &str, kind: &str) -> pb::OrchestrationRun {
    let runs: Vec<Value> = runs_of(mesh, prescription)
        .await
        .into_iter()
        .filter(|r| r["kind"] == kind)
        .collect();
    assert_eq!(runs.len(), 1, "one {kind} run: {runs:?}");
    run_until_finished(mesh, runs[0]["id"].as_str().unwrap()).await
}

#[tokio::test]
async fn a_prescription_written_in_canvas_is_fulfilled_once_however_often_it_is_announced() {
    let mesh = TestMesh::start().await;
    let t = patient_with_card(&mesh).await;
    let mark = mesh.ledger_mark().await;
    let (prescription, event) = prescribe(&mesh, &t).await;

    // Three deliveries in a row, then three at once: the first processes it.
    deliver(&mesh, &[&event, &event, &event]).await;
    let again = mesh.sandbox_url(&format!("/_sandbox/canvas/events/{event}/deliver"));
    let together = futures::future::join_all((0..3).map(|_| mesh.sandbox.post(&again).send())).await;
    for r in together {
        assert_eq!(r.unwrap().status(), 200);
    }
    assert_eq!(
        edge_outcomes(&mesh, &event).await,
        ["processed", "repeat", "repeat", "repeat", "repeat", "repeat"]
    );

    let run = finished_run(&mesh, &prescription, "prescription").await;
    assert_eq!(run.status, pb::RunStatus::Succeeded as i32, "{run:?}");
    assert_eq!(run.kind, pb::RunKind::Prescription as i32);
    assert_eq!(run.task_id, "", "no Rx Review task behind it");
    let steps: Vec<&str> = run.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        steps,
        [
            "medication_config",
            "patient_lookup",
            "prescriber_routing",
            "pharmacy_routing",
            "payment_authorization",
            "pharmacy_sync",
            "payment",
            "notification"
        ]
    );
    assert_eq!(
        (run.medication.as_str(), run.dose_label.as_str()),
        (t.medication.as_str(), t.dose.as_str())
    );

    // One order, one charge, one notice, the refills scheduled.
    assert_eq!(
        pharmacy_orders(&mesh, "pioneerrx", &run.pharmacy_order_id).await.len(),
        1
    );
    let charges = charges(&mesh, &t.patient).await;
    assert_eq!(charges.len(), 1, "{charges:?}");
    assert_eq!(charges[0].status, payments::ChargeStatus::Succeeded as i32);
    let stripe = mesh.ledger_counts("stripe", mark).await;
    assert_eq!(stripe.get("POST /stripe/v1/payment_intents"), Some(&1), "{stripe:?}");
    assert_eq!(outbox_for(&mesh, &t.patient, "prescription_approved").await, 1);
    let refills = refills(&mesh, &t.patient).await;
    assert_eq!(refills.len(), 2, "{refills:?}");
    assert!(refills.iter().all(|r| r.status == "scheduled"));
    assert_eq!(
        routing_count(&mesh, "select count(*) from prescription_events").await,
        1,
        "routing was asked once per event id that reached it"
    );
}

#[tokio::test]
async fn forged_prescription_events_are_refused_and_start_nothing() {
    let mesh = TestMesh::start().await;
    let t = patient_with_card(&mesh).await;
    let (prescription, _) = prescribe(&mesh, &t).await;
    let body = json!({
        "id": "evt-rx-forged",
        "type": "PRESCRIPTION_CREATED",
        "medicationRequestId": prescription,
        "patientId": t.patient,
        "occurredAt": "2026-12-07T10:00:00Z",
    })
    .to_string();

    forgeries_are_refused(&mesh, ROUTE, &body, &body.replace("evt-rx-forged", "evt-rx-other")).await;

    // Nothing reached routing: no event answered, no run, no hold on the card.
    assert_eq!(
        routing_count(&mesh, "select count(*) from prescription_events").await,
        0
    );
    assert_eq!(routing_count(&mesh, "select count(*) from orchestration_runs").await, 0);
    assert!(charges(&mesh, &t.patient).await.is_empty());

    // The genuine delivery is processed; a replay of its exact signature is refused.
    let ts = unix_now().to_string();
    let good = mesh.post_signed(ROUTE, &ts, &body).await;
    let ack = json_ok(good).await;
    assert_eq!(ack["outcome"], "started", "{ack}");
    let replay = mesh.post_signed(ROUTE, &ts, &body).await;
    assert_eq!(error_code(replay, 401).await, "replayed_request");

    // Signed but wrong: another patient, an unknown prescription, a missing id.
    let mismatched = json!({
        "id": "evt-rx-mismatch", "type": "PRESCRIPTION_CREATED",
        "medicationRequestId": prescription, "patientId": "someone-else",
    })
    .to_string();
    let resp = mesh.post_signed(ROUTE, &unix_now().to_string(), &mismatched).await;
    assert_eq!(error_code(resp, 400).await, "invalid_argument");
    let unknown = json!({
        "id": "evt-rx-unknown", "type": "PRESCRIPTION_CREATED",
        "medicationRequestId": "no-such-prescription", "patientId": t.patient,
    })
    .to_string();
    let resp = mesh.post_signed(ROUTE, &unix_now().to_string(), &unknown).await;
    assert_eq!(error_code(resp, 404).await, "not_found");
    let missing = json!({ "id": "evt-rx-missing", "type": "PRESCRIPTION_CREATED", "patientId": t.patient }).to_string();
    let resp = mesh.post_signed(ROUTE, &unix_now().to_string(), &missing).await;
    assert_eq!(error_code(resp, 400).await, "invalid_argument");
    assert_eq!(
        routing_count(&mesh, "select count(*) from orchestration_runs").await,
        1,
        "only the genuine event started a run"
    );
    let run = finished_run(&mesh, &prescription, "prescription").await;
    assert_eq!(run.status, pb::RunStatus::Succeeded as i32, "{run:?}");
}

#[tokio::test]
async fn a_prescription_an_approval_already_fulfils_orders_nothing_more() {
    let mesh = TestMesh::start().await;
    let t = patient_with_card(&mesh).await;
    let approved = approve(&mesh, &t).await;
    let approval = run_until_finished(&mesh, approved["run"]["id"].as_str().unwrap()).await;
    assert_eq!(approval.status, pb::RunStatus::Succeeded as i32, "{approval:?}");

    // The prescriber then writes the approved prescription in Canvas; the plugin announces it.
    let (prescription, event) = prescribe(&mesh, &t).await;
    deliver(&mesh, &[&event]).await;
    let runs = runs_of(&mesh, &prescription).await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["id"], approval.id.as_str(), "linked to the approval's run");
    assert_eq!(runs[0]["kind"], "approval");
    assert_eq!(
        routing_count(
            &mesh,
            "select count(*) from prescription_events where outcome = 'fulfilled_by_approval'"
        )
        .await,
        1
    );
    assert_eq!(
        pharmacy_orders(&mesh, "pioneerrx", &approval.pharmacy_order_id)
            .await
            .len(),
        1
    );
    assert_eq!(charges(&mesh, &t.patient).await.len(), 1, "one charge");
    assert_eq!(routing_count(&mesh, "select count(*) from pharmacy_orders").await, 1);
}

#[tokio::test]
async fn an_approval_of_a_medication_canvas_already_fulfils_is_refused() {
    let mesh = TestMesh::start().await;
    let t = patient_with_card(&mesh).await;
    let (prescription, event) = prescribe(&mesh, &t).await;
    deliver(&mesh, &[&event]).await;
    finished_run(&mesh, &prescription, "prescription").await;

    let resp = mesh
        .http
        .post(mesh.url(&format!("/api/rx-queue/tasks/{}/approve", t.task)))
        .bearer_auth(mesh.admin_jwt("reviewer@hisera.com"))
        .json(&json!({ "doseLabel": t.dose }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "already_fulfilled", "{body}");
    assert_eq!(charges(&mesh, &t.patient).await.len(), 1, "one charge");
}

#[tokio::test]
async fn a_prescription_stopped_before_it_ships_is_cancelled_and_its_charge_listed_for_refund() {
    let mesh = TestMesh::start().await;
    let t = patient_with_card(&mesh).await;
    let (prescription, created) = prescribe(&mesh, &t).await;
    deliver(&mesh, &[&created]).await;
    let run = finished_run(&mesh, &prescription, "prescription").await;
    assert_eq!(run.status, pb::RunStatus::Succeeded as i32, "{run:?}");

    let stopped = stop_in_canvas(&mesh, &prescription).await;
    deliver(&mesh, &[&stopped, &stopped]).await;
    let stop = finished_run(&mesh, &prescription, "prescription_stop").await;
    assert_eq!(stop.status, pb::RunStatus::Succeeded as i32, "{stop:?}");
    assert_eq!(stop.target_run_id, run.id);

    let orders = pharmacy_orders(&mesh, "pioneerrx", &run.pharmacy_order_id).await;
    assert_eq!(orders[0]["status"], "cancelled", "{orders:?}");
    let ours = json_ok(
        mesh.get(
            &format!("/api/admin/pharmacy-orders/{}", run.pharmacy_order_id),
            Some(&mesh.admin_secret()),
        )
        .await,
    )
    .await;
    assert_eq!(ours["order"]["status"], "cancelled", "{ours}");
    let left = refills(&mesh, &t.patient).await;
    assert_eq!(left.len(), 2, "the fill's refills: {left:?}");
    assert!(left.iter().all(|r| r.status == "cancelled"), "{left:?}");

    // The captured charge is not refunded by a machine: it is listed for an admin.
    let charges = charges(&mesh, &t.patient).await;
    assert_eq!(charges[0].status, payments::ChargeStatus::Succeeded as i32);
    let reviews = json_ok(
        mesh.get(
            &format!("/api/admin/refund-reviews?patientId={}", t.patient),
            Some(&mesh.admin_secret()),
        )
        .await,
    )
    .await;
    let items = reviews["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{reviews}");
    assert_eq!(items[0]["chargeId"], run.payment_id.as_str());
    assert_eq!(items[0]["amountCents"], charges[0].amount_cents);
    assert_eq!(items[0]["orderOutcome"], "cancelled");
}

#[tokio::test]
async fn a_prescription_stopped_while_it_is_being_fulfilled_releases_the_hold() {
    let mesh = TestMesh::start_with(|o| {
        o.pipeline.lease_secs = 2;
        o.pipeline.poll_ms = 100;
        o.pipeline.lookup_delay_secs = Some(1);
    })
    .await;
    let t = patient_with_card(&mesh).await;
    let (prescription, _) = prescribe(&mesh, &t).await;

    // A replica takes the prescription and stops, as if killed, right before the pharmacy order:
    // the card is authorised, nothing is ordered.
    let (replica, run) =
        fulfil_on_stopping_replica(&mesh, &t, &prescription, "pharmacy_sync", FailAt::BeforeCall).await;
    let hold = charges_once(&mesh, &t.patient, payments::ChargeStatus::Authorized).await;
    assert_eq!(hold.len(), 1, "{hold:?}");

    let stopped = stop_in_canvas(&mesh, &prescription).await;
    deliver(&mesh, &[&stopped]).await;
    let stop = finished_run(&mesh, &prescription, "prescription_stop").await;
    drop(replica);
    assert_eq!(stop.status, pb::RunStatus::Succeeded as i32, "{stop:?}");
    let run = run_until_finished(&mesh, &run.id).await;
    assert_eq!(run.status, pb::RunStatus::Failed as i32);
    assert_eq!(run.failure_reason, "prescription_stopped");

    let charges = charges(&mesh, &t.patient).await;
    assert_eq!(charges.len(), 1);
    assert_eq!(
        charges[0].status,
        payments::ChargeStatus::Canceled as i32,
        "the hold was released"
    );
    assert!(
        pharmacy_orders(&mesh, "pioneerrx", &run.pharmacy_order_id)
            .await
            .is_empty(),
        "nothing reached the pharmacy"
    );
    assert_eq!(routing_count(&mesh, "select count(*) from refund_reviews").await, 0);
    assert_eq!(
        routing_count(
            &mesh,
            "select count(*) from pharmacy_orders where status <> 'cancelled'"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn a_stop_reaches_a_refill_under_way_and_the_refills_to_come() {
    let mesh = TestMesh::start_with(|o| {
        o.pipeline.lease_secs = 2;
        o.pipeline.poll_ms = 100;
        o.pipeline.lookup_delay_secs = Some(1);
    })
    .await;
    let t = patient_with_card(&mesh).await;
    let (prescription, created) = prescribe(&mesh, &t).await;
    deliver(&mesh, &[&created]).await;
    finished_run(&mesh, &prescription, "prescription").await;
    let [first, second]: [pb::Refill; 2] = refills(&mesh, &t.patient).await.try_into().unwrap();

    // The first refill is under way on a replica that stops right before ordering (card held).
    let (replica, refill_run) =
        process_on_stopping_replica(&mesh, &first.id, "pharmacy_sync", FailAt::BeforeCall).await;
    charges_once(&mesh, &t.patient, payments::ChargeStatus::Authorized).await;

    let stopped = stop_in_canvas(&mesh, &prescription).await;
    deliver(&mesh, &[&stopped]).await;
    let stop = finished_run(&mesh, &prescription, "prescription_stop").await;
    assert_eq!(stop.status, pb::RunStatus::Succeeded as i32, "{stop:?}");
    let refill_run = run_until_finished(&mesh, &refill_run.id).await;
    drop(replica);
    assert_eq!(refill_run.failure_reason, "prescription_stopped", "{refill_run:?}");
    let now: Vec<pb::Refill> = refills(&mesh, &t.patient).await;
    for r in [&first, &second] {
        let r = now.iter().find(|n| n.id == r.id).unwrap();
        assert_eq!(r.status, "cancelled", "{r:?}");
    }
    let held: Vec<_> = charges(&mesh, &t.patient)
        .await
        .into_iter()
        .filter(|c| c.id == refill_run.payment_id)
        .collect();
    assert_eq!(held.len(), 1);
    assert_eq!(
        held[0].status,
        payments::ChargeStatus::Canceled as i32,
        "the refill's hold was released"
    );
}

/// What routing answered to one plugin event.
async fn outcome_of(mesh: &TestMesh, event: &str) -> String {
    let pool = sqlx::PgPool::connect(&mesh.database_url("pharmacy_routing"))
        .await
        .unwrap();
    let outcome = sqlx::query_scalar("select outcome from prescription_events where event_id = $1")
        .bind(event)
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    outcome
}

#[tokio::test]
async fn canvas_changes_that_call_for_no_order_order_nothing() {
    let mesh = TestMesh::start().await;
    plugin_paused(&mesh).await;
    let patients = approvable(&mesh, "gmp").await;
    let (t, u) = (&patients[0], &patients[1]);
    save_card(&mesh, &t.patient, "pm_card_visa").await.unwrap();

    // A dose changed in Canvas after the fill: the fill stands, the refills take the new dose.
    let (prescription, created) = prescribe(&mesh, t).await;
    deliver(&mesh, &[&created]).await;
    let run = finished_run(&mesh, &prescription, "prescription").await;
    assert_eq!(run.status, pb::RunStatus::Succeeded as i32, "{run:?}");
    let other_dose = if t.medication == "semaglutide" {
        "0.5 mg weekly"
    } else {
        "5 mg weekly"
    };
    let adjusted = json_ok(
        mesh.sandbox
            .post(mesh.sandbox_url(&format!("/_sandbox/canvas/prescriptions/{prescription}/adjust")))
            .json(&json!({ "doseLabel": other_dose }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let adjusted = adjusted["eventId"].as_str().unwrap().to_owned();
    deliver(&mesh, &[&adjusted]).await;
    assert_eq!(outcome_of(&mesh, &adjusted).await, "dose_changed");
    let refills = refills(&mesh, &t.patient).await;
    assert!(!refills.is_empty());
    assert!(refills.iter().all(|r| r.dose_label == other_dose), "{refills:?}");
    assert_eq!(runs_of(&mesh, &prescription).await.len(), 1, "nothing reordered");

    // A dose the catalogue does not have: nothing starts, for a person to fulfil by hand.
    let resp = mesh
        .sandbox
        .post(mesh.sandbox_url("/_sandbox/canvas/prescriptions"))
        .json(&json!({ "patientId": u.patient, "medication": u.medication, "doseLabel": "7 mg weekly" }))
        .send()
        .await
        .unwrap();
    let unknown = json_ok(resp).await;
    let unknown_event = unknown["eventId"].as_str().unwrap().to_owned();
    deliver(&mesh, &[&unknown_event]).await;
    assert_eq!(outcome_of(&mesh, &unknown_event).await, "not_in_catalogue");

    // Out of order: the stop arrives before the prescription it stops; Canvas says it is stopped,
    // so neither starts anything.
    let (late, late_created) = prescribe(&mesh, u).await;
    let late_stopped = stop_in_canvas(&mesh, &late).await;
    deliver(&mesh, &[&late_stopped, &late_created]).await;
    assert_eq!(outcome_of(&mesh, &late_stopped).await, "nothing_to_stop");
    assert_eq!(outcome_of(&mesh, &late_created).await, "not_active");
    assert!(runs_of(&mesh, &late).await.is_empty());
    assert!(charges(&mesh, &u.patient).await.is_empty(), "nothing held on the card");
}

/// Hands the prescription to a new replica whose pipeline stops at `step`/`at` as a kill would;
/// answers the replica (keep it until the run is resumed elsewhere) and the run it started.
async fn fulfil_on_stopping_replica(
    mesh: &TestMesh,
    t: &Approvable,
    prescription: &str,
    step: &str,
    at: FailAt,
) -> (era_tests::Replica, pb::OrchestrationRun) {
    let replica = stopping_replica(mesh, step, at).await;
    let answer = mesh
        .routing_client(&replica.url)
        .handle_prescription_event(mesh.admin_request(pb::HandlePrescriptionEventRequest {
            event_id: format!("evt-{step}-{at:?}"),
            event_type: pb::PrescriptionEventType::Created as i32,
            medication_request_id: prescription.into(),
            canvas_patient_id: t.patient.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.outcome, pb::PrescriptionOutcome::Started as i32);
    (replica, answer.run.unwrap())
}

/// The patient's charges once one is in `status` (a run on another task gets there in its time).
async fn charges_once(mesh: &TestMesh, patient: &str, status: payments::ChargeStatus) -> Vec<payments::Charge> {
    for _ in 0..200 {
        let found = charges(mesh, patient).await;
        if found.iter().any(|c| c.status == status as i32) {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no charge of {patient} became {status:?}");
}

/// One test per step of a prescription run: a replica stops before the call, after it, and after
/// its commit; the mesh's own replica resumes after the lease, and every effect exists once.
macro_rules! prescription_crash_matrix {
    ($($name:ident: $step:literal),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            let mesh = TestMesh::start_with(|o| {
                o.pipeline.lease_secs = 2;
                o.pipeline.poll_ms = 100;
                o.pipeline.lookup_delay_secs = Some(1);
            })
            .await;
            plugin_paused(&mesh).await;
            let patients = approvable(&mesh, "gmp").await;
            assert!(patients.len() >= 3, "three patients routed to GMP: {patients:?}");
            for (t, at) in patients.iter().zip([FailAt::BeforeCall, FailAt::AfterCall, FailAt::AfterCommit]) {
                save_card(&mesh, &t.patient, "pm_card_visa").await.unwrap();
                let mark = mesh.ledger_mark().await;
                let (prescription, _) = prescribe(&mesh, t).await;
                let (replica, started) = fulfil_on_stopping_replica(&mesh, t, &prescription, $step, at).await;
                let run = run_until_finished(&mesh, &started.id).await;
                drop(replica);
                assert_eq!(run.status, pb::RunStatus::Succeeded as i32, "{} {at:?}: {run:?}", $step);
                assert_eq!(pharmacy_orders(&mesh, "pioneerrx", &run.pharmacy_order_id).await.len(), 1);
                let charges = charges(&mesh, &t.patient).await;
                assert_eq!(charges.len(), 1, "{charges:?}");
                assert_eq!(charges[0].status, payments::ChargeStatus::Succeeded as i32);
                let stripe = mesh.ledger_counts("stripe", mark).await;
                assert_eq!(stripe.get("POST /stripe/v1/payment_intents"), Some(&1), "{stripe:?}");
                assert_eq!(outbox_for(&mesh, &t.patient, "prescription_approved").await, 1);
            }
        }
    )*};
}

prescription_crash_matrix! {
    prescription_crash_at_medication_config: "medication_config",
    prescription_crash_at_patient_lookup: "patient_lookup",
    prescription_crash_at_prescriber_routing: "prescriber_routing",
    prescription_crash_at_pharmacy_routing: "pharmacy_routing",
    prescription_crash_at_payment_authorization: "payment_authorization",
    prescription_crash_at_pharmacy_sync: "pharmacy_sync",
    prescription_crash_at_payment: "payment",
    prescription_crash_at_notification: "notification",
}
