//! Telehealth appointments over the whole mesh: availability from the sandbox's Canvas schedules,
//! booking (one Zoom meeting, one Canvas Appointment, one confirmation, a reminder 24 h before),
//! cancellation and rescheduling, each exactly once, also under concurrency and crashes.

use std::time::Duration;

use chrono::{DateTime, Utc};
use era_kit::{
    auth::Caller,
    jobs::{FailAt, Failpoint},
    time::{from_timestamp, timestamp},
};
use era_proto::{
    canvas::v1 as canvas,
    notifications::v1 as notify,
    scheduling::v1::{self as pb, AppointmentStatus},
};
use era_sandbox::canvas::seed;
use era_tests::TestMesh;
use tonic::Code;

/// A seeded patient in a state whose prescriber (Ali Nolan) takes appointments.
fn patient() -> seed::DemoPatient {
    seed::patients()
        .into_iter()
        .find(|p| p.state == "GA")
        .expect("a Georgia patient in the seed")
}

fn pt(t: DateTime<Utc>) -> Option<prost_types::Timestamp> {
    Some(timestamp(t))
}

/// Free slots over the next two weeks for the patient with their state's prescriber.
async fn slots(mesh: &TestMesh, patient: &str) -> Vec<pb::AvailableSlot> {
    let now = Utc::now();
    mesh.scheduling()
        .get_availability(mesh.admin_request(pb::GetAvailabilityRequest {
            canvas_patient_id: patient.into(),
            practitioner_id: seed::ALI_NOLAN_ID.into(),
            start_time: pt(now + chrono::Duration::days(2)),
            end_time: pt(now + chrono::Duration::days(16)),
            duration_minutes: 0,
        }))
        .await
        .expect("availability")
        .into_inner()
        .slots
}

fn start_of(s: &pb::AvailableSlot) -> DateTime<Utc> {
    from_timestamp(s.start_time.as_ref().unwrap()).unwrap()
}

async fn book(
    mesh: &TestMesh,
    patient: &str,
    start: DateTime<Utc>,
    key: &str,
) -> Result<pb::BookAppointmentResponse, tonic::Status> {
    mesh.scheduling()
        .book_appointment(mesh.admin_request(pb::BookAppointmentRequest {
            canvas_patient_id: patient.into(),
            practitioner_id: seed::ALI_NOLAN_ID.into(),
            start_time: pt(start),
            idempotency_key: key.into(),
            ..Default::default()
        }))
        .await
        .map(tonic::Response::into_inner)
}

/// The patient's outbox messages of one type, as notifications lists them.
async fn outbox(mesh: &TestMesh, patient: &str, kind: notify::NotificationType) -> Vec<notify::OutboxMessage> {
    mesh.notifications()
        .list_outbox_messages(mesh.admin_request(notify::ListOutboxMessagesRequest {
            canvas_patient_id: patient.into(),
            notification_type: kind as i32,
            page: Some(era_proto::common::v1::PageRequest {
                page_size: 100,
                page_token: String::new(),
            }),
            ..Default::default()
        }))
        .await
        .expect("outbox list")
        .into_inner()
        .messages
}

async fn canvas_status(mesh: &TestMesh, id: &str) -> canvas::AppointmentStatus {
    let a = mesh
        .canvas()
        .get_appointment(mesh.admin_request(canvas::GetAppointmentRequest { id: id.into() }))
        .await
        .expect("the canvas appointment reads")
        .into_inner()
        .appointment
        .unwrap();
    canvas::AppointmentStatus::try_from(a.status).unwrap()
}

async fn get(mesh: &TestMesh, id: &str) -> pb::Appointment {
    mesh.scheduling()
        .get_appointment(mesh.admin_request(pb::GetAppointmentRequest { id: id.into() }))
        .await
        .expect("the appointment reads")
        .into_inner()
        .appointment
        .unwrap()
}

/// Waits until the appointment's job has nothing left to do (the answer may come before).
async fn settled(mesh: &TestMesh, id: &str, until: impl Fn(&pb::Appointment) -> bool) -> pb::Appointment {
    for _ in 0..400 {
        let a = get(mesh, id).await;
        if until(&a) {
            return a;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("appointment {id} never settled: {:?}", get(mesh, id).await);
}

#[tokio::test]
async fn book_then_cancel_makes_and_unmakes_each_thing_once() {
    let mesh = TestMesh::start().await;
    let p = patient();
    let free = slots(&mesh, &p.id).await;
    assert!(
        free.len() > 20,
        "two weeks of office hours have many slots: {}",
        free.len()
    );
    assert!(
        free.windows(2).all(|w| start_of(&w[0]) <= start_of(&w[1])),
        "ordered by start"
    );
    let slot = &free[3];
    let start = start_of(slot);
    let mark = mesh.ledger_mark().await;

    let booked = book(&mesh, &p.id, start, "book-once").await.expect("booked");
    let a = booked.appointment.unwrap();
    assert_eq!(AppointmentStatus::try_from(a.status), Ok(AppointmentStatus::Booked));
    assert!(!booked.existing);
    assert!(a.zoom_join_url.starts_with("https://"), "a join link");
    assert_eq!(
        from_timestamp(a.reminder_scheduled_at.as_ref().unwrap()),
        Some(start - chrono::Duration::hours(24)),
        "the reminder goes 24 hours before"
    );
    let zoom = mesh.ledger_counts("zoom", mark).await;
    assert_eq!(zoom.get("EFFECT meeting.created"), Some(&1), "{zoom:?}");
    let fhir = mesh.ledger_counts("canvas-fhir", mark).await;
    assert_eq!(fhir.get("POST /canvas-fhir/Appointment"), Some(&1), "{fhir:?}");
    assert_eq!(
        canvas_status(&mesh, &a.canvas_appointment_id).await,
        canvas::AppointmentStatus::Booked
    );
    let confirmations = outbox(&mesh, &p.id, notify::NotificationType::AppointmentConfirmed).await;
    assert_eq!(confirmations.len(), 3, "email, SMS and portal: {confirmations:?}");
    let reminders = outbox(&mesh, &p.id, notify::NotificationType::AppointmentReminder).await;
    assert!(!reminders.is_empty());
    for r in &reminders {
        assert_eq!(
            from_timestamp(r.send_at.as_ref().unwrap()),
            Some(start - chrono::Duration::hours(24))
        );
    }
    // The slot is no longer offered, and the same key answers the same appointment.
    assert!(!slots(&mesh, &p.id).await.iter().any(|s| start_of(s) == start));
    let again = book(&mesh, &p.id, start, "book-once").await.expect("the same key");
    assert!(again.existing);
    assert_eq!(again.appointment.unwrap().id, a.id);
    let other = book(&mesh, &p.id, start_of(&free[5]), "book-once").await.unwrap_err();
    assert_eq!(
        other.code(),
        Code::FailedPrecondition,
        "a reused key with other parameters"
    );

    let mark = mesh.ledger_mark().await;
    let cancelled = mesh
        .scheduling()
        .cancel_appointment(mesh.admin_request(pb::CancelAppointmentRequest {
            id: a.id.clone(),
            reason: "patient asked".into(),
            actor: None,
        }))
        .await
        .expect("cancelled")
        .into_inner()
        .appointment
        .unwrap();
    assert_eq!(
        AppointmentStatus::try_from(cancelled.status),
        Ok(AppointmentStatus::Cancelled)
    );
    let zoom = mesh.ledger_counts("zoom", mark).await;
    assert_eq!(zoom.get("EFFECT meeting.deleted"), Some(&1), "{zoom:?}");
    assert_eq!(
        canvas_status(&mesh, &a.canvas_appointment_id).await,
        canvas::AppointmentStatus::Cancelled
    );
    for r in outbox(&mesh, &p.id, notify::NotificationType::AppointmentReminder).await {
        assert_eq!(
            notify::MessageStatus::try_from(r.status),
            Ok(notify::MessageStatus::Cancelled),
            "reminder withdrawn"
        );
    }
    let notices = outbox(&mesh, &p.id, notify::NotificationType::AppointmentCancelled).await;
    assert_eq!(
        notices.len(),
        2,
        "one cancellation notice, email and portal: {notices:?}"
    );
    // Cancelling again changes nothing; the time is free again.
    let mark = mesh.ledger_mark().await;
    mesh.scheduling()
        .cancel_appointment(mesh.admin_request(pb::CancelAppointmentRequest {
            id: a.id.clone(),
            ..Default::default()
        }))
        .await
        .expect("cancelling twice answers the appointment");
    assert_eq!(
        mesh.ledger_counts("zoom", mark).await.get("EFFECT meeting.deleted"),
        None
    );
    assert!(slots(&mesh, &p.id).await.iter().any(|s| start_of(s) == start));
}

#[tokio::test]
async fn rescheduling_moves_the_meeting_the_canvas_appointment_and_the_reminder() {
    let mesh = TestMesh::start().await;
    let p = patient();
    let free = slots(&mesh, &p.id).await;
    let (first, second) = (start_of(&free[0]), start_of(&free[10]));
    let a = book(&mesh, &p.id, first, "").await.unwrap().appointment.unwrap();
    let mark = mesh.ledger_mark().await;
    let moved = mesh
        .scheduling()
        .reschedule_appointment(mesh.admin_request(pb::RescheduleAppointmentRequest {
            id: a.id.clone(),
            start_time: pt(second),
            actor: None,
        }))
        .await
        .expect("moved")
        .into_inner()
        .appointment
        .unwrap();
    assert_eq!(from_timestamp(moved.start_time.as_ref().unwrap()), Some(second));
    assert_eq!(moved.zoom_meeting_id, a.zoom_meeting_id, "the same meeting, moved");
    let zoom = mesh.ledger_counts("zoom", mark).await;
    assert_eq!(zoom.get("EFFECT meeting.updated"), Some(&1), "{zoom:?}");
    assert_eq!(zoom.get("EFFECT meeting.created"), None);
    let c = mesh
        .canvas()
        .get_appointment(mesh.admin_request(canvas::GetAppointmentRequest {
            id: a.canvas_appointment_id.clone(),
        }))
        .await
        .unwrap()
        .into_inner()
        .appointment
        .unwrap();
    assert_eq!(c.start_time.as_ref().and_then(from_timestamp), Some(second));
    let reminders = outbox(&mesh, &p.id, notify::NotificationType::AppointmentReminder).await;
    let pending: Vec<_> = reminders
        .iter()
        .filter(|r| r.status != notify::MessageStatus::Cancelled as i32)
        .collect();
    assert!(!pending.is_empty());
    for r in pending {
        assert_eq!(
            from_timestamp(r.send_at.as_ref().unwrap()),
            Some(second - chrono::Duration::hours(24))
        );
    }
    assert!(
        reminders
            .iter()
            .any(|r| r.status == notify::MessageStatus::Cancelled as i32),
        "the old reminder withdrawn"
    );
    // The old time is free, the new one held.
    let now_free = slots(&mesh, &p.id).await;
    assert!(now_free.iter().any(|s| start_of(s) == first));
    assert!(!now_free.iter().any(|s| start_of(s) == second));
}

#[tokio::test]
async fn twenty_concurrent_bookings_of_one_slot_make_one_appointment_and_one_meeting() {
    let mesh = TestMesh::start().await;
    let p = patient();
    let start = start_of(&slots(&mesh, &p.id).await[2]);
    let mark = mesh.ledger_mark().await;
    let tries = (0..20).map(|i| {
        let mesh = &mesh;
        let id = p.id.clone();
        async move { book(mesh, &id, start, &format!("race-{i}")).await }
    });
    let results = futures::future::join_all(tries).await;
    let booked: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(booked.len(), 1, "{results:?}");
    for r in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(r.code(), Code::FailedPrecondition);
        assert_eq!(era_kit::error::reason_of(r).as_deref(), Some("SLOT_UNAVAILABLE"));
    }
    let zoom = mesh.ledger_counts("zoom", mark).await;
    assert_eq!(zoom.get("EFFECT meeting.created"), Some(&1), "{zoom:?}");
    let fhir = mesh.ledger_counts("canvas-fhir", mark).await;
    assert_eq!(fhir.get("POST /canvas-fhir/Appointment"), Some(&1), "{fhir:?}");
}

#[tokio::test]
async fn a_patient_books_for_themselves_only() {
    let mesh = TestMesh::start().await;
    let p = patient();
    let other = seed::patients().into_iter().find(|o| o.id != p.id).unwrap();
    let start = start_of(&slots(&mesh, &p.id).await[1]);
    let as_other = Caller::patient(other.id.clone());
    let refused = mesh
        .scheduling()
        .book_appointment(mesh.request_as(
            pb::BookAppointmentRequest {
                canvas_patient_id: p.id.clone(),
                practitioner_id: seed::ALI_NOLAN_ID.into(),
                start_time: pt(start),
                ..Default::default()
            },
            &as_other,
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let a = book(&mesh, &p.id, start, "").await.unwrap().appointment.unwrap();
    let read = mesh
        .scheduling()
        .get_appointment(mesh.request_as(pb::GetAppointmentRequest { id: a.id.clone() }, &as_other))
        .await
        .unwrap_err();
    assert_eq!(read.code(), Code::PermissionDenied);
    let listed = mesh
        .scheduling()
        .list_appointments(mesh.request_as(
            pb::ListAppointmentsRequest {
                canvas_patient_id: p.id.clone(),
                ..Default::default()
            },
            &as_other,
        ))
        .await
        .unwrap_err();
    assert_eq!(listed.code(), Code::PermissionDenied);
    // Nothing changed: the appointment stands.
    assert_eq!(get(&mesh, &a.id).await.status, AppointmentStatus::Booked as i32);
}

/// The booking job's vendor calls, each stopped before the call, after it (before its result is
/// recorded) and after the commit: another replica resumes and every effect exists once.
#[tokio::test]
async fn crash_matrix_for_booking() {
    // The mesh's own replica looks for due jobs only now and then, so the crashing replica (woken
    // by its own booking) takes each booking first.
    let mesh = TestMesh::start_with(|o| {
        o.scheduling.poll_ms = 1500;
    })
    .await;
    let p = patient();
    let free = slots(&mesh, &p.id).await;
    let mut n = 0;
    for step in ["zoom_create", "canvas_create", "notify"] {
        for at in [FailAt::BeforeCall, FailAt::AfterCall, FailAt::AfterCommit] {
            let start = start_of(&free[n * 2]);
            n += 1;
            let mark = mesh.ledger_mark().await;
            // A replica that stops at the failpoint takes the booking; the mesh's own replica resumes
            // it once the lease runs out.
            let crashing = mesh
                .start_scheduling_replica(era_scheduling::config::EngineConfig {
                    lease_secs: 2,
                    poll_ms: 20,
                    sync_wait_ms: 0,
                    failpoint: Some(Failpoint { step: step.into(), at }),
                    ..Default::default()
                })
                .await;
            let mut client = era_proto::scheduling::v1::scheduling_service_client::SchedulingServiceClient::new(
                mesh.mesh.channel(&crashing.url).unwrap(),
            );
            let a = client
                .book_appointment(mesh.admin_request(pb::BookAppointmentRequest {
                    canvas_patient_id: p.id.clone(),
                    practitioner_id: seed::ALI_NOLAN_ID.into(),
                    start_time: pt(start),
                    ..Default::default()
                }))
                .await
                .unwrap_or_else(|e| panic!("{step} {at:?}: {e:?}"))
                .into_inner()
                .appointment
                .unwrap();
            let done = settled(&mesh, &a.id, |a| {
                a.status == AppointmentStatus::Booked as i32 && a.reminder_scheduled_at.is_some()
            })
            .await;
            drop(crashing);
            let zoom = mesh.ledger_counts("zoom", mark).await;
            assert_eq!(zoom.get("EFFECT meeting.created"), Some(&1), "{step} {at:?}: {zoom:?}");
            let fhir = mesh.ledger_counts("canvas-fhir", mark).await;
            assert_eq!(
                fhir.get("POST /canvas-fhir/Appointment"),
                Some(&1),
                "{step} {at:?}: {fhir:?}"
            );
            assert_eq!(
                canvas_status(&mesh, &done.canvas_appointment_id).await,
                canvas::AppointmentStatus::Booked
            );
            let confirmations: Vec<_> = outbox(&mesh, &p.id, notify::NotificationType::AppointmentConfirmed)
                .await
                .into_iter()
                .filter(|m| m.dedupe_key.contains(&done.id))
                .collect();
            assert_eq!(
                confirmations.len(),
                3,
                "{step} {at:?}: one confirmation on three channels"
            );
        }
    }
}

#[tokio::test]
async fn a_lost_zoom_answer_makes_one_meeting_and_canvas_refusing_deletes_it() {
    let mesh = TestMesh::start().await;
    let p = patient();
    let free = slots(&mesh, &p.id).await;
    // Zoom makes the meeting and the answer is lost: the next attempt finds it.
    let mark = mesh.ledger_mark().await;
    mesh.fault(serde_json::json!({ "method": "POST", "path": "/zoom/v2/users/", "action": { "kind": "drop_after" } }))
        .await;
    let a = book(&mesh, &p.id, start_of(&free[0]), "")
        .await
        .unwrap()
        .appointment
        .unwrap();
    let a = settled(&mesh, &a.id, |a| a.status == AppointmentStatus::Booked as i32).await;
    let zoom = mesh.ledger_counts("zoom", mark).await;
    assert_eq!(zoom.get("EFFECT meeting.created"), Some(&1), "{zoom:?}");
    assert!(!a.zoom_join_url.is_empty());

    // Canvas refuses the appointment for good: the meeting is deleted and the booking fails.
    let mark = mesh.ledger_mark().await;
    mesh.fault(serde_json::json!({
        "method": "POST", "path": "/canvas-fhir/Appointment",
        "action": { "kind": "status", "status": 422, "body": {
            "resourceType": "OperationOutcome",
            "issue": [{ "severity": "error", "code": "business-rule", "details": { "text": "This appointment time is no longer available." } }]
        } }
    }))
    .await;
    let failed = book(&mesh, &p.id, start_of(&free[4]), "")
        .await
        .unwrap()
        .appointment
        .unwrap();
    let failed = settled(&mesh, &failed.id, |a| a.status != AppointmentStatus::Pending as i32).await;
    assert_eq!(failed.status, AppointmentStatus::Failed as i32);
    assert_eq!(failed.failure_reason, "canvas_refused");
    let zoom = mesh.ledger_counts("zoom", mark).await;
    assert_eq!(zoom.get("EFFECT meeting.created"), Some(&1), "{zoom:?}");
    assert_eq!(zoom.get("EFFECT meeting.deleted"), Some(&1), "{zoom:?}");
    // Nothing half-made: the time is offered again.
    assert!(slots(&mesh, &p.id)
        .await
        .iter()
        .any(|s| start_of(s) == start_of(&free[4])));
}

/// A JSON POST through the edge with a bearer token (and an Idempotency-Key when given).
async fn post(
    mesh: &TestMesh,
    path: &str,
    bearer: &str,
    key: Option<&str>,
    body: serde_json::Value,
) -> reqwest::Response {
    let mut req = mesh.http.post(mesh.url(path)).bearer_auth(bearer).json(&body);
    if let Some(k) = key {
        req = req.header("idempotency-key", k);
    }
    req.send().await.expect("the edge answers")
}

#[tokio::test]
async fn through_the_edge_admins_and_patients_book_list_move_and_cancel() {
    let mesh = TestMesh::start().await;
    let admin = mesh.admin_jwt("scheduler@era-demo.test");
    let p = patient();
    let other = seed::patients().into_iter().find(|o| o.id != p.id).unwrap();
    let own = mesh.patient_tokens().issue(&p.id).token;
    let stranger = mesh.patient_tokens().issue(&other.id).token;

    // The admin's availability for the patient: slots with the display zones.
    let from = (Utc::now() + chrono::Duration::days(2)).to_rfc3339();
    let to = (Utc::now() + chrono::Duration::days(9)).to_rfc3339();
    let query = format!(
        "/api/admin/availability?canvasPatientId={}&practitionerId={}&from={}&to={}",
        p.id,
        seed::ALI_NOLAN_ID,
        urlencode(&from),
        urlencode(&to)
    );
    let avail: serde_json::Value = mesh.get(&query, Some(&admin)).await.json().await.unwrap();
    assert_eq!(avail["patientTimeZone"], "America/New_York", "Georgia's zone: {avail}");
    assert_eq!(avail["practitionerTimeZone"], "America/New_York");
    let items = avail["items"].as_array().expect("slots");
    assert!(items.len() > 5, "{avail}");
    let start = items[0]["startTime"].as_str().unwrap().to_owned();
    let later = items[6]["startTime"].as_str().unwrap().to_owned();

    // Bad input is named and books nothing.
    let bad = post(
        &mesh,
        "/api/admin/appointments",
        &admin,
        None,
        serde_json::json!({
            "canvasPatientId": p.id, "practitionerId": seed::ALI_NOLAN_ID, "startTime": "tomorrow at ten"
        }),
    )
    .await;
    assert_eq!(bad.status(), 400);
    let body: serde_json::Value = bad.json().await.unwrap();
    assert_eq!(body["error"]["fields"][0]["field"], "startTime", "{body}");

    // The admin books with an Idempotency-Key: 201 (one meeting, one Canvas appointment, one
    // confirmation, the reminder 24 hours before), then 200 with the same appointment, nothing more.
    let mark = mesh.ledger_mark().await;
    let booking =
        serde_json::json!({ "canvasPatientId": p.id, "practitionerId": seed::ALI_NOLAN_ID, "startTime": start });
    let first = post(
        &mesh,
        "/api/admin/appointments",
        &admin,
        Some("edge-book-1"),
        booking.clone(),
    )
    .await;
    assert_eq!(first.status(), 201);
    let first: serde_json::Value = first.json().await.unwrap();
    let a = &first["appointment"];
    assert_eq!(a["status"], "booked", "{first}");
    assert_eq!(a["startTime"], start.as_str());
    assert!(a["joinUrl"].as_str().unwrap().starts_with("https://"));
    let start_at: DateTime<Utc> = start.parse().unwrap();
    assert_eq!(
        a["reminderScheduledAt"]
            .as_str()
            .map(|t| t.parse::<DateTime<Utc>>().unwrap()),
        Some(start_at - chrono::Duration::hours(24))
    );
    let id = a["id"].as_str().unwrap().to_owned();
    let again = post(&mesh, "/api/admin/appointments", &admin, Some("edge-book-1"), booking).await;
    assert_eq!(again.status(), 200);
    let again: serde_json::Value = again.json().await.unwrap();
    assert_eq!(
        (again["existing"].as_bool(), again["appointment"]["id"].as_str()),
        (Some(true), Some(id.as_str()))
    );
    assert_eq!(
        mesh.ledger_counts("zoom", mark).await.get("EFFECT meeting.created"),
        Some(&1)
    );
    let fhir = mesh.ledger_counts("canvas-fhir", mark).await;
    assert_eq!(fhir.get("POST /canvas-fhir/Appointment"), Some(&1), "{fhir:?}");
    let confirmations = outbox(&mesh, &p.id, notify::NotificationType::AppointmentConfirmed).await;
    assert_eq!(confirmations.len(), 3, "one confirmation by email, SMS and portal");

    // Listed for admins (filtered), in the patient's detail, and for the patient themselves.
    let listed: serde_json::Value = mesh
        .get(
            &format!("/api/admin/appointments?patientId={}&status=booked", p.id),
            Some(&admin),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1), "{listed}");
    let none: serde_json::Value = mesh
        .get(
            &format!("/api/admin/appointments?patientId={}&status=cancelled", p.id),
            Some(&admin),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(none["items"].as_array().map(Vec::len), Some(0));
    let detail: serde_json::Value = mesh
        .get(&format!("/api/admin/patients/{}", p.id), Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(detail["appointments"][0]["id"], id.as_str(), "the appointments tab");
    let mine = mesh
        .get(&format!("/api/patient-appointments/{}", p.id), Some(&own))
        .await;
    assert_eq!(mine.status(), 200);
    let mine: serde_json::Value = mine.json().await.unwrap();
    assert_eq!(mine["items"][0]["id"], id.as_str());

    // Another patient sees nothing and changes nothing.
    let theirs = mesh
        .get(&format!("/api/patient-appointments/{}", p.id), Some(&stranger))
        .await;
    assert_eq!(era_tests::error_code(theirs, 403).await, "forbidden");
    let cancel = post(
        &mesh,
        &format!("/api/patient/appointments/{id}/cancel"),
        &stranger,
        None,
        serde_json::json!({}),
    )
    .await;
    assert_eq!(cancel.status(), 403);
    let moved = post(
        &mesh,
        &format!("/api/patient/appointments/{id}/reschedule"),
        &stranger,
        None,
        serde_json::json!({ "startTime": later }),
    )
    .await;
    assert_eq!(moved.status(), 403);
    let for_other = post(
        &mesh,
        "/api/patient/appointments",
        &stranger,
        None,
        serde_json::json!({ "canvasPatientId": p.id, "practitionerId": seed::ALI_NOLAN_ID, "startTime": later }),
    )
    .await;
    assert_eq!(for_other.status(), 403);
    let avail_other = mesh
        .get(
            &format!("/api/patient/availability?canvasPatientId={}", p.id),
            Some(&stranger),
        )
        .await;
    assert_eq!(avail_other.status(), 403);
    let still: serde_json::Value = mesh
        .get(&format!("/api/admin/appointments/{id}"), Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (still["status"].as_str(), still["startTime"].as_str()),
        (Some("booked"), Some(start.as_str()))
    );

    // The patient moves their own visit, then cancels it.
    let moved = post(
        &mesh,
        &format!("/api/patient/appointments/{id}/reschedule"),
        &own,
        None,
        serde_json::json!({ "startTime": later }),
    )
    .await;
    assert_eq!(moved.status(), 200);
    let moved: serde_json::Value = moved.json().await.unwrap();
    assert_eq!(moved["startTime"], later.as_str(), "{moved}");
    let cancelled = post(
        &mesh,
        &format!("/api/patient/appointments/{id}/cancel"),
        &own,
        None,
        serde_json::json!({ "reason": "cannot make it" }),
    )
    .await;
    assert_eq!(cancelled.status(), 200);
    let cancelled: serde_json::Value = cancelled.json().await.unwrap();
    assert_eq!(cancelled["status"], "cancelled");
    let zoom = mesh.ledger_counts("zoom", mark).await;
    assert_eq!(
        (zoom.get("EFFECT meeting.updated"), zoom.get("EFFECT meeting.deleted")),
        (Some(&1), Some(&1)),
        "moved once, deleted once: {zoom:?}"
    );

    // The patient's own availability and booking, without naming themselves.
    let avail: serde_json::Value = mesh
        .get("/api/patient/availability", Some(&own))
        .await
        .json()
        .await
        .unwrap();
    let slot = &avail["items"][0];
    let booked = post(
        &mesh,
        "/api/patient/appointments",
        &own,
        None,
        serde_json::json!({
            "practitionerId": slot["practitionerId"], "startTime": slot["startTime"]
        }),
    )
    .await;
    assert_eq!(booked.status(), 201);
    let booked: serde_json::Value = booked.json().await.unwrap();
    assert_eq!(booked["appointment"]["canvasPatientId"], p.id.as_str());
    // The same slot again is taken.
    let taken = post(
        &mesh,
        "/api/patient/appointments",
        &own,
        None,
        serde_json::json!({
            "practitionerId": slot["practitionerId"], "startTime": slot["startTime"]
        }),
    )
    .await;
    assert_eq!(era_tests::error_code(taken, 422).await, "slot_unavailable");
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

/// The next day New York's offset changes (daylight saving starts or ends), at least three days away.
fn next_dst_change() -> chrono::NaiveDate {
    use chrono::{Offset, TimeZone};
    let ny = chrono_tz::America::New_York;
    let offset = |d: chrono::NaiveDate| {
        ny.from_local_datetime(&d.and_hms_opt(12, 0, 0).unwrap())
            .earliest()
            .map(|t| t.offset().fix())
    };
    let mut day = (Utc::now() + chrono::Duration::days(3)).date_naive();
    for _ in 0..400 {
        if offset(day) != offset(day.pred_opt().unwrap()) {
            return day;
        }
        day = day.succ_opt().unwrap();
    }
    panic!("New York changes its clocks at least once a year");
}

#[tokio::test]
async fn slots_and_visit_times_follow_daylight_saving() {
    use chrono::{Datelike, Timelike};
    let mesh = TestMesh::start().await;
    let p = patient();
    let ny = chrono_tz::America::New_York;
    let change = next_dst_change();
    let from = (change - chrono::Duration::days(4))
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    let to = (change + chrono::Duration::days(4))
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    let slots = mesh
        .scheduling()
        .get_availability(mesh.admin_request(pb::GetAvailabilityRequest {
            canvas_patient_id: p.id.clone(),
            practitioner_id: seed::ALI_NOLAN_ID.into(),
            start_time: pt(from),
            end_time: pt(to),
            duration_minutes: 0,
        }))
        .await
        .expect("availability across the change")
        .into_inner()
        .slots;
    // Office hours stay 09:00-17:00 on the clinic's clock on both sides, so in UTC they move by
    // an hour.
    let local = |s: &pb::AvailableSlot| start_of(s).with_timezone(&ny);
    assert!(
        slots.iter().all(|s| (9..17).contains(&local(s).hour())),
        "every slot in office hours"
    );
    let first_of = |before: bool| {
        slots
            .iter()
            .find(|s| {
                (local(s).date_naive() < change) == before && local(s).date_naive().weekday().number_from_monday() <= 5
            })
            .map(start_of)
            .expect("a weekday slot on that side of the change")
    };
    let (before, after) = (first_of(true), first_of(false));
    assert_eq!(
        (before.with_timezone(&ny).hour(), after.with_timezone(&ny).hour()),
        (9, 9)
    );
    assert_ne!(
        before.hour(),
        after.hour(),
        "09:00 local is another UTC hour after the change"
    );

    // A visit after the change: the reminder is exactly 24 hours before, and the confirmation names
    // the patient's local time with the zone in force that day.
    let a = book(&mesh, &p.id, after, "").await.unwrap().appointment.unwrap();
    assert_eq!(
        a.reminder_scheduled_at.as_ref().and_then(from_timestamp),
        Some(after - chrono::Duration::hours(24))
    );
    let zone = after.with_timezone(&ny).format("%Z").to_string();
    let wanted = format!("at 9:00 AM {zone}");
    for _ in 0..200 {
        let inbox: serde_json::Value = mesh
            .sandbox
            .get(mesh.sandbox_url("/_sandbox/inbox.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let texts: Vec<&str> = inbox["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["text"].as_str())
            .collect();
        if texts.iter().any(|t| t.contains("confirmed") && t.contains(&wanted)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no confirmation says {wanted}");
}
