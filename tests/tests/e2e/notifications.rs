//! The notifications outbox against the SendGrid and Twilio sandboxes over real HTTP: each message
//! once, retries on the schedule, 429s, dead letters and replays, channels independent, a crash
//! before or during a send, and the patient portal's notifications.

use era_proto::{
    canvas::v1 as canvas,
    common::v1::Address,
    notifications::v1::{self as pb},
};
use era_tests::TestMesh;
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use tonic::Code;

/// A Canvas patient with an email and a phone, created through canvas.
async fn new_patient(mesh: &TestMesh, tag: &str) -> (String, String) {
    let email = format!("notify.{tag}@example.test");
    let created = mesh
        .canvas()
        .create_patient(mesh.admin_request(canvas::CreatePatientRequest {
            given_name: format!("Notify{tag}"),
            family_name: "Patientson".into(),
            preferred_name: String::new(),
            birth_date: "1980-01-02".into(),
            gender: canvas::Gender::Female as i32,
            birth_sex: canvas::BirthSex::Female as i32,
            email: email.clone(),
            phone: "+15555550142".into(),
            address: Some(Address {
                lines: vec!["1 Outbox Way".into()],
                city: "Columbus".into(),
                state: "OH".into(),
                postal_code: "43004".into(),
                country: "US".into(),
            }),
            idempotency_key: format!("notify-{tag}"),
            actor: None,
        }))
        .await
        .unwrap()
        .into_inner();
    (created.patient.unwrap().id, email)
}

fn approved(patient: &str, reference: &str) -> pb::SendNotificationRequest {
    pb::SendNotificationRequest {
        notification_type: pb::NotificationType::PrescriptionApproved as i32,
        canvas_patient_id: patient.into(),
        variables: [("medication".to_owned(), "semaglutide".to_owned())].into(),
        reference: reference.into(),
        ..Default::default()
    }
}

/// The sandbox's mailbox for an address, newest first.
async fn inbox(mesh: &TestMesh, to: &str) -> Vec<Value> {
    let resp: Value = mesh
        .sandbox
        .get(mesh.sandbox_url("/_sandbox/inbox.json"))
        .query(&[("to", to)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    resp.as_array()
        .or_else(|| resp["messages"].as_array())
        .cloned()
        .unwrap_or_default()
}

async fn message(mesh: &TestMesh, id: &str) -> pb::GetOutboxMessageResponse {
    mesh.notifications()
        .get_outbox_message(mesh.admin_request(pb::GetOutboxMessageRequest { id: id.into() }))
        .await
        .unwrap()
        .into_inner()
}

/// Polls until every message of the answer reaches `status`, or panics after 15 s.
async fn until_status(mesh: &TestMesh, ids: &[String], status: pb::MessageStatus) -> Vec<pb::GetOutboxMessageResponse> {
    for _ in 0..150 {
        let mut all = Vec::new();
        for id in ids {
            all.push(message(mesh, id).await);
        }
        if all.iter().all(|m| m.message.as_ref().unwrap().status == status as i32) {
            return all;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let now: Vec<_> = futures::future::join_all(ids.iter().map(|id| message(mesh, id))).await;
    panic!("messages did not all reach {status:?}: {now:?}");
}

fn ids(resp: &pb::SendNotificationResponse) -> Vec<String> {
    resp.messages.iter().map(|m| m.id.clone()).collect()
}

fn fast() -> era_notifications::config::OutboxConfig {
    era_notifications::config::OutboxConfig {
        retry_schedule: "0,0.3,0.3".into(),
        poll_ms: 50,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_notification_goes_out_once_on_each_of_its_channels() {
    let mesh = TestMesh::start_with(|o| o.notifications_outbox = fast()).await;
    let (patient, email) = new_patient(&mesh, "once").await;
    let mark = mesh.ledger_mark().await;
    let calls = (0..5).map(|_| {
        let mut client = mesh.notifications();
        let req = mesh.admin_request(approved(&patient, "run-1"));
        async move { client.send_notification(req).await.unwrap().into_inner() }
    });
    let answers = futures::future::join_all(calls).await;
    assert_eq!(
        answers.iter().filter(|a| !a.existing).count(),
        1,
        "one call recorded it"
    );
    let first = &answers[0];
    assert!(answers.iter().all(|a| a.notification_id == first.notification_id));
    let channels: Vec<i32> = first.messages.iter().map(|m| m.channel).collect();
    assert_eq!(channels.len(), 3, "email, sms and portal by default: {channels:?}");
    let sent = until_status(&mesh, &ids(first), pb::MessageStatus::Sent).await;
    for m in &sent {
        let msg = m.message.as_ref().unwrap();
        assert_eq!(m.attempts.len(), 1, "{m:?}");
        assert!(
            !msg.masked_to.contains("notify.once"),
            "addresses are masked: {}",
            msg.masked_to
        );
    }
    let counts = mesh.ledger_counts("sendgrid", mark).await;
    assert_eq!(counts.get("POST /sendgrid/v3/mail/send"), Some(&1), "{counts:?}");
    let counts = mesh.ledger_counts("twilio", mark).await;
    assert_eq!(
        counts
            .iter()
            .filter(|(k, _)| k.starts_with("POST "))
            .map(|(_, n)| n)
            .sum::<u64>(),
        1,
        "{counts:?}"
    );
    let mail = inbox(&mesh, &email).await;
    assert_eq!(mail.len(), 1, "{mail:?}");
    let text = mail[0]["text"].as_str().unwrap_or_default();
    assert!(text.contains("semaglutide") && text.contains("Hi Notifyonce"), "{text}");
    assert!(!mail[0]["subject"].as_str().unwrap_or_default().contains("semaglutide"));

    // The portal lists it for the patient, unread, then read.
    let mut notifications = mesh.notifications();
    let list = notifications
        .list_patient_notifications(mesh.request_as(
            pb::ListPatientNotificationsRequest {
                canvas_patient_id: patient.clone(),
                unread_only: false,
                page: None,
            },
            &era_kit::auth::Caller::patient(&patient),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((list.notifications.len(), list.unread_count), (1, 1));
    let n = &list.notifications[0];
    assert_eq!(n.title, "Prescription approved");
    assert!(n.body.contains("semaglutide") && n.link == "/prescriptions");
    let read = notifications
        .mark_notification_read(mesh.request_as(
            pb::MarkNotificationReadRequest {
                canvas_patient_id: patient.clone(),
                notification_id: n.id.clone(),
            },
            &era_kit::auth::Caller::patient(&patient),
        ))
        .await
        .unwrap()
        .into_inner()
        .notification
        .unwrap();
    assert!(read.read && read.read_at.is_some());
    // The same through the edge, with the patient's own token.
    let token = mesh.patient_tokens().issue(&patient).token;
    let page: Value = mesh
        .get(&format!("/api/patient-notifications/{patient}"), Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["unreadCount"], 0);
    assert_eq!(page["items"][0]["type"], "prescription_approved");
    assert_eq!(page["items"][0]["read"], true);
    let theirs = mesh.get("/api/patient-notifications/someone-else", Some(&token)).await;
    assert_eq!(theirs.status(), 403);
    // Another patient cannot read or mark them.
    let err = notifications
        .list_patient_notifications(mesh.request_as(
            pb::ListPatientNotificationsRequest {
                canvas_patient_id: patient.clone(),
                unread_only: false,
                page: None,
            },
            &era_kit::auth::Caller::patient("someone-else"),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // Bad input is named and records nothing.
    let err = notifications
        .send_notification(mesh.admin_request(pb::SendNotificationRequest {
            notification_type: pb::NotificationType::ShipmentUpdated as i32,
            recipient: Some(pb::Recipient {
                email: "not-an-email".into(),
                ..Default::default()
            }),
            variables: [("tracking_number".to_owned(), "1Z".to_owned())].into(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let fields: Vec<_> = era_kit::error::violations_of(&err)
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(
        fields,
        [
            "recipient.email",
            "variables.status",
            "variables.tracking_url",
            "recipient.phone",
            "canvas_patient_id",
            "reference"
        ],
        "{err:?}"
    );
    // Sign-in codes and links come from the login flow only.
    let err = notifications
        .send_notification(mesh.admin_request(pb::SendNotificationRequest {
            notification_type: pb::NotificationType::MagicLink as i32,
            recipient: Some(pb::Recipient {
                email: "someone@example.test".into(),
                ..Default::default()
            }),
            variables: [("link".to_owned(), "https://phish.example".to_owned())].into(),
            dedupe_key: "phish".into(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(era_kit::error::violations_of(&err)[0].field, "notification_type");
}

#[tokio::test]
async fn vendor_failures_are_retried_then_dead_lettered_and_an_admin_replays_them() {
    let mesh = TestMesh::start_with(|o| o.notifications_outbox = fast()).await;
    let (patient, _) = new_patient(&mesh, "retry").await;
    let email_only = |reference: &str| pb::SendNotificationRequest {
        channels: vec![pb::Channel::Email as i32],
        ..approved(&patient, reference)
    };
    // SendGrid fails twice (500, then 503), then accepts: delivered on the third attempt.
    mesh.fault(json!({ "method": "POST", "path": "/sendgrid/v3/mail/send", "times": 1, "action": { "kind": "status", "status": 500 } }))
        .await;
    mesh.fault(json!({ "method": "POST", "path": "/sendgrid/v3/mail/send", "times": 1, "action": { "kind": "status", "status": 503 } }))
        .await;
    let sent = mesh
        .notifications()
        .send_notification(mesh.admin_request(email_only("run-retry")))
        .await
        .unwrap()
        .into_inner();
    let done = until_status(&mesh, &ids(&sent), pb::MessageStatus::Sent).await;
    let outcomes: Vec<(&str, i32)> = done[0]
        .attempts
        .iter()
        .map(|a| (a.outcome.as_str(), a.http_status))
        .collect();
    assert_eq!(
        outcomes,
        [("retryable_error", 500), ("retryable_error", 503), ("sent", 202)]
    );

    // Rate limited: SendGrid's 429 says when to come back, and the next attempt waits for that
    // rather than the schedule's 0.3 s.
    let limited = mesh
        .sandbox
        .put(mesh.sandbox_url("/_sandbox/sendgrid/rate-limit"))
        .json(&json!({ "remaining": 0, "reset_in": 2 }))
        .send()
        .await
        .unwrap();
    assert!(limited.status().is_success());
    let sent = mesh
        .notifications()
        .send_notification(mesh.admin_request(email_only("run-429")))
        .await
        .unwrap()
        .into_inner();
    let done = until_status(&mesh, &ids(&sent), pb::MessageStatus::Sent).await;
    let attempts = &done[0].attempts;
    assert_eq!(
        attempts
            .iter()
            .map(|a| (a.outcome.as_str(), a.http_status))
            .collect::<Vec<_>>(),
        [("retryable_error", 429), ("sent", 202)]
    );
    let at = |i: usize| era_kit::time::from_timestamp(attempts[i].attempted_at.as_ref().unwrap()).unwrap();
    assert!(at(1) - at(0) >= chrono::Duration::milliseconds(900), "waited as told");

    // Three failures exhaust a three-attempt schedule: dead-lettered, then replayed by an admin.
    mesh.fault(json!({ "method": "POST", "path": "/sendgrid/v3/mail/send", "times": 3, "action": { "kind": "status", "status": 503 } }))
        .await;
    let doomed = mesh
        .notifications()
        .send_notification(mesh.admin_request(email_only("run-dead")))
        .await
        .unwrap()
        .into_inner();
    let dead = until_status(&mesh, &ids(&doomed), pb::MessageStatus::DeadLettered).await;
    assert_eq!(dead[0].attempts.len(), 3);
    // An admin finds it in the outbox and replays it, through the edge.
    let admin = mesh.admin_jwt("ops@example.test");
    let listed: Value = mesh
        .get("/api/admin/outbox?status=dead_lettered", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{listed}");
    assert_eq!(items[0]["id"], doomed.messages[0].id.as_str());
    assert_eq!(items[0]["lastError"], "sendgrid: server error 503");
    let bad = mesh.get("/api/admin/outbox?status=lost", Some(&admin)).await;
    assert_eq!(era_tests::error_code(bad, 400).await, "invalid_argument");
    let replayed: Value = mesh
        .http
        .post(mesh.url(&format!("/api/admin/outbox/{}/replay", doomed.messages[0].id)))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Back in the outbox (the worker, woken at once, may already be on it).
    let status = replayed["status"].as_str().unwrap_or_default();
    assert!(["pending", "sending", "sent"].contains(&status), "{replayed}");
    let done = until_status(&mesh, &ids(&doomed), pb::MessageStatus::Sent).await;
    assert_eq!(done[0].attempts.len(), 4, "the history is kept across the replay");
    let err = mesh
        .notifications()
        .replay_dead_letter(mesh.admin_request(pb::ReplayDeadLetterRequest {
            id: doomed.messages[0].id.clone(),
            actor: None,
        }))
        .await
        .unwrap_err();
    assert_eq!(era_kit::error::reason_of(&err).as_deref(), Some("NOT_DEAD_LETTERED"));
}

#[tokio::test]
async fn one_channel_failing_does_not_hold_back_another_and_bad_numbers_are_not_retried() {
    let mesh = TestMesh::start_with(|o| o.notifications_outbox = fast()).await;
    let (patient, _) = new_patient(&mesh, "split").await;
    mesh.fault(json!({ "path": "/twilio/", "times": 50, "action": { "kind": "status", "status": 500 } }))
        .await;
    let sent = mesh
        .notifications()
        .send_notification(mesh.admin_request(pb::SendNotificationRequest {
            channels: vec![pb::Channel::Email as i32, pb::Channel::Sms as i32],
            ..approved(&patient, "run-split")
        }))
        .await
        .unwrap()
        .into_inner();
    let email = sent
        .messages
        .iter()
        .find(|m| m.channel == pb::Channel::Email as i32)
        .unwrap();
    let sms = sent
        .messages
        .iter()
        .find(|m| m.channel == pb::Channel::Sms as i32)
        .unwrap();
    until_status(&mesh, std::slice::from_ref(&email.id), pb::MessageStatus::Sent).await;
    until_status(&mesh, std::slice::from_ref(&sms.id), pb::MessageStatus::DeadLettered).await;

    // An unsubscribed number (Twilio 21610) is a permanent refusal: one attempt, dead-lettered.
    let mut to_blocked = pb::SendNotificationRequest {
        notification_type: pb::NotificationType::ShipmentCreated as i32,
        recipient: Some(pb::Recipient {
            phone: "+15005550004".into(),
            ..Default::default()
        }),
        variables: [
            ("tracking_number".to_owned(), "1Z999".to_owned()),
            (
                "tracking_url".to_owned(),
                "https://www.fedex.com/fedextrack/?trknbr=1Z999".to_owned(),
            ),
        ]
        .into(),
        channels: vec![pb::Channel::Sms as i32],
        dedupe_key: "ship-blocked".into(),
        ..Default::default()
    };
    mesh.clear_faults().await;
    let blocked = mesh
        .notifications()
        .send_notification(mesh.admin_request(to_blocked.clone()))
        .await
        .unwrap()
        .into_inner();
    let dead = until_status(&mesh, &ids(&blocked), pb::MessageStatus::DeadLettered).await;
    assert_eq!(dead[0].attempts.len(), 1);
    assert!(dead[0].attempts[0].error.contains("21610"), "{:?}", dead[0].attempts);
    assert!(!dead[0].attempts[0].error.contains("5005550004"), "no number in errors");
    // The same dedupe key again sends nothing more.
    to_blocked.recipient.as_mut().unwrap().phone = "+15005550006".into();
    let again = mesh
        .notifications()
        .send_notification(mesh.admin_request(to_blocked))
        .await
        .unwrap()
        .into_inner();
    assert!(again.existing);
    assert_eq!(again.notification_id, blocked.notification_id);
}

#[tokio::test]
async fn a_crash_before_or_during_a_send_still_sends_once() {
    // This replica records but never sends: it "crashes" between recording and sending.
    let mesh = TestMesh::start_with(|o| {
        o.notifications_outbox = era_notifications::config::OutboxConfig {
            worker: false,
            ..fast()
        }
    })
    .await;
    let (patient, email) = new_patient(&mesh, "crash").await;
    let recorded = mesh
        .notifications()
        .send_notification(mesh.admin_request(pb::SendNotificationRequest {
            channels: vec![pb::Channel::Email as i32],
            ..approved(&patient, "run-crash")
        }))
        .await
        .unwrap()
        .into_inner();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(inbox(&mesh, &email).await.is_empty(), "nothing sent without a worker");

    // A second message was being sent when its worker died: the vendor accepted it, the answer
    // was never recorded, and its lease has run out.
    let (other, other_email) = new_patient(&mesh, "midsend").await;
    let midsend = mesh
        .notifications()
        .send_notification(mesh.admin_request(pb::SendNotificationRequest {
            channels: vec![pb::Channel::Email as i32],
            ..approved(&other, "run-midsend")
        }))
        .await
        .unwrap()
        .into_inner();
    let midsend_id = midsend.messages[0].id.clone();
    let delivered = mesh
        .sandbox
        .post(mesh.sandbox_url("/sendgrid/v3/mail/send"))
        .bearer_auth(mesh.mesh.secrets.sendgrid_api_key.expose_secret())
        .json(&json!({
            "personalizations": [{ "to": [{ "email": other_email }] }],
            "from": { "email": "care@hisera.com" },
            "subject": "Your prescription was approved",
            "content": [{ "type": "text/plain", "value": "sent before the crash" }],
            "custom_args": { "era_message_id": midsend_id },
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(delivered.status(), 202);
    mesh.notifications_sql(&format!(
        "update outbox_messages set status = 'sending', uncertain_since = now() - interval '1 minute', \
         lease_until = now() - interval '1 second', lease_owner = 'dead-worker' where id = '{midsend_id}'"
    ))
    .await;

    // A replica with a worker starts: the first message goes out once; the second is found sent.
    let replica = mesh.start_notifications_replica(fast()).await;
    until_status(&mesh, &ids(&recorded), pb::MessageStatus::Sent).await;
    let found = until_status(&mesh, std::slice::from_ref(&midsend_id), pb::MessageStatus::Sent).await;
    assert_eq!(found[0].attempts.last().unwrap().outcome, "found_sent");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(inbox(&mesh, &email).await.len(), 1);
    assert_eq!(inbox(&mesh, &other_email).await.len(), 1, "not sent a second time");
    drop(replica);
}

#[tokio::test]
async fn two_workers_send_each_message_once_and_scheduled_sends_wait_or_are_withdrawn() {
    let mesh = TestMesh::start_with(|o| o.notifications_outbox = fast()).await;
    // A second replica, so two workers race for every message.
    let _replica = mesh.start_notifications_replica(fast()).await;
    let (patient, email) = new_patient(&mesh, "replicas").await;
    let mark = mesh.ledger_mark().await;
    let sends = (0..20).map(|i| {
        let mut client = mesh.notifications();
        let req = mesh.admin_request(pb::SendNotificationRequest {
            channels: vec![pb::Channel::Email as i32],
            ..approved(&patient, &format!("run-{i}"))
        });
        async move { client.send_notification(req).await.unwrap().into_inner() }
    });
    let recorded = futures::future::join_all(sends).await;
    let all: Vec<String> = recorded.iter().flat_map(ids).collect();
    until_status(&mesh, &all, pb::MessageStatus::Sent).await;
    let counts = mesh.ledger_counts("sendgrid", mark).await;
    assert_eq!(counts.get("POST /sendgrid/v3/mail/send"), Some(&20), "{counts:?}");
    assert_eq!(inbox(&mesh, &email).await.len(), 20);

    // A reminder scheduled two seconds ahead waits, then goes.
    let at = chrono::Utc::now() + chrono::Duration::seconds(2);
    let reminder = |reference: &str, at: chrono::DateTime<chrono::Utc>| pb::SendNotificationRequest {
        notification_type: pb::NotificationType::AppointmentReminder as i32,
        canvas_patient_id: patient.clone(),
        variables: [
            ("appointment_time".to_owned(), "Tuesday 3:00 PM ET".to_owned()),
            ("join_url".to_owned(), "https://zoom.example/j/1".to_owned()),
        ]
        .into(),
        reference: reference.into(),
        channels: vec![pb::Channel::Email as i32],
        send_at: Some(era_kit::time::timestamp(at)),
        ..Default::default()
    };
    let soon = mesh
        .notifications()
        .send_notification(mesh.admin_request(reminder("visit-1", at)))
        .await
        .unwrap()
        .into_inner();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        message(&mesh, &soon.messages[0].id).await.message.unwrap().status,
        pb::MessageStatus::Pending as i32
    );
    let sent = until_status(&mesh, &ids(&soon), pb::MessageStatus::Sent).await;
    let sent_at = era_kit::time::from_timestamp(sent[0].message.as_ref().unwrap().sent_at.as_ref().unwrap()).unwrap();
    assert!(sent_at >= at, "not before its time");

    // One scheduled for later is withdrawn (the appointment was cancelled) and never goes.
    let later = mesh
        .notifications()
        .send_notification(mesh.admin_request(reminder("visit-2", chrono::Utc::now() + chrono::Duration::hours(1))))
        .await
        .unwrap()
        .into_inner();
    let cancelled = mesh
        .notifications()
        .cancel_notification(mesh.admin_request(pb::CancelNotificationRequest {
            notification_id: later.notification_id.clone(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cancelled.messages[0].status, pb::MessageStatus::Cancelled as i32);
    assert_eq!(inbox(&mesh, &email).await.len(), 21);
}
