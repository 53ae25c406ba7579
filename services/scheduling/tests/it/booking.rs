//! Booking: the row first, then the job that makes the Zoom meeting, the Canvas Appointment, the
//! confirmation and the reminder; Canvas down (retried, the slot held) and Canvas refusing (the
//! meeting deleted, the booking failed).

use std::time::Duration;

use chrono::{DateTime, Utc};
use era_proto::{notifications::v1::NotificationType, scheduling::v1 as pb};

use crate::{
    assert_refused, day_at,
    fakes::{Failure, NOLAN, NOLAN_EMAIL, NOLAN_NAME, PATIENT_GA, PATIENT_GA_2},
    status_of, time, Harness,
};

/// "Tuesday, March 23 at 10:00 AM EDT": the time as a Georgia patient reads it.
fn in_georgia(t: DateTime<Utc>) -> String {
    t.with_timezone(&chrono_tz::America::New_York)
        .format("%A, %B %-d at %-I:%M %p %Z")
        .to_string()
}

#[tokio::test]
async fn a_booking_makes_one_meeting_one_canvas_appointment_a_confirmation_and_a_reminder() {
    let h = Harness::start().await;
    let start = day_at(2, 15, 0);
    let a = h.book(PATIENT_GA, start).await.unwrap();

    assert_eq!(status_of(&a), pb::AppointmentStatus::Booked, "{a:?}");
    assert_eq!(a.canvas_patient_id, PATIENT_GA);
    assert_eq!(a.practitioner_id, NOLAN);
    assert_eq!(a.practitioner_name, NOLAN_NAME);
    assert_eq!((time(&a.start_time), a.duration_minutes), (start, 20));
    assert_eq!(a.time_zone, "America/New_York");
    assert_eq!(a.practitioner_time_zone, "America/New_York");
    assert_eq!(time(&a.reminder_scheduled_at), start - chrono::Duration::hours(24));
    assert_eq!(a.failure_reason, "");
    let actor = a.created_by.clone().unwrap();
    assert_eq!(actor.role, "admin");

    // One Zoom meeting, hosted by Dr. Nolan, as the seed describes it.
    let meetings = h.sandbox.meetings().await;
    assert_eq!(meetings.len(), 1, "{meetings:?}");
    let m = &meetings[0];
    assert_eq!(m["topic"], "YourEra Telehealth - Dr. Nolan");
    assert_eq!(m["type"], 2);
    assert_eq!(m["duration"], 20);
    assert_eq!(m["settings"]["join_before_host"], true);
    assert_eq!(m["settings"]["waiting_room"], true);
    assert_eq!(m["host_email"], NOLAN_EMAIL);
    assert_eq!(m["start_time"], start.format("%Y-%m-%dT%H:%M:%SZ").to_string());
    assert_eq!(m["id"].as_i64().unwrap().to_string(), a.zoom_meeting_id);
    assert_eq!(m["join_url"], a.zoom_join_url.as_str());
    assert_eq!(m["password"], a.zoom_password.as_str());
    assert!(m["agenda"].as_str().unwrap().contains(&a.id), "{m}");

    // One Canvas Appointment carrying the join link, under the booking's key.
    let creates = h.canvas.state().creates.clone();
    assert_eq!(creates.len(), 1, "{creates:?}");
    let c = &creates[0];
    assert_eq!(c.meeting_url, a.zoom_join_url);
    assert_eq!(c.idempotency_key, format!("appointment-{}", a.id));
    assert_eq!(
        (c.canvas_patient_id.as_str(), c.practitioner_id.as_str()),
        (PATIENT_GA, NOLAN)
    );
    assert_eq!(c.location_id, "1");
    assert_eq!(
        (time(&c.start_time), time(&c.end_time)),
        (start, start + chrono::Duration::minutes(20))
    );
    assert_eq!(c.actor.clone().unwrap().role, "service");
    let canvas_id = h.canvas.state().appointments.keys().next().cloned().unwrap();
    assert_eq!(a.canvas_appointment_id, canvas_id);

    // The confirmation at once, and the reminder a day before.
    let sent = h.notifications.sent();
    let kinds: Vec<_> = sent.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        kinds,
        [
            NotificationType::AppointmentConfirmed,
            NotificationType::AppointmentReminder
        ]
    );
    let (_, confirmed) = &sent[0];
    assert_eq!(confirmed.canvas_patient_id, PATIENT_GA);
    assert_eq!(confirmed.reference, a.id);
    assert_eq!(confirmed.send_at, None);
    assert_eq!(confirmed.variables["appointment_time"], in_georgia(start));
    assert_eq!(confirmed.variables["join_url"], a.zoom_join_url);
    let (_, reminder) = &sent[1];
    assert_eq!(time(&reminder.send_at), start - chrono::Duration::hours(24));
    assert_eq!(reminder.variables["join_url"], a.zoom_join_url);
    assert_eq!(reminder.canvas_patient_id, PATIENT_GA);
    assert_ne!(reminder.dedupe_key, confirmed.dedupe_key);
    assert!(h.notifications.state().cancelled.is_empty());

    // The time is taken at once, whatever the availability cache holds; its neighbours are not.
    let free = h.free_starts(day_at(2, 0, 0), day_at(3, 0, 0)).await;
    assert!(!free.contains(&start), "{free:?}");
    assert!(free.contains(&(start + chrono::Duration::minutes(20))));
    assert!(free.contains(&(start - chrono::Duration::minutes(20))));

    // The row as the job left it, and its job done.
    assert_eq!(h.job(&a.id).await.status, "done");
    assert_eq!(h.get(&a.id).await, a);
    let listed = h
        .client
        .clone()
        .list_appointments(h.admin(pb::ListAppointmentsRequest {
            canvas_patient_id: PATIENT_GA.into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .appointments;
    assert_eq!(listed, [a]);
}

#[tokio::test]
async fn a_repeated_idempotency_key_answers_the_first_booking() {
    let h = Harness::start().await;
    let start = day_at(2, 16, 0);
    let mut req = Harness::booking(PATIENT_GA, start);
    req.idempotency_key = "book-once".into();
    let book = |req: pb::BookAppointmentRequest| {
        let mut client = h.client.clone();
        let req = h.admin(req);
        async move { client.book_appointment(req).await.map(|r| r.into_inner()) }
    };
    let first = book(req.clone()).await.unwrap();
    assert!(!first.existing);
    let again = book(req.clone()).await.unwrap();
    assert!(again.existing);
    assert_eq!(
        again.appointment.as_ref().unwrap().id,
        first.appointment.as_ref().unwrap().id
    );
    assert_eq!(
        status_of(again.appointment.as_ref().unwrap()),
        pb::AppointmentStatus::Booked
    );

    let mut other = req.clone();
    other.start_time = Some(crate::ts(start + chrono::Duration::minutes(20)));
    assert_refused(book(other).await, "IDEMPOTENCY_KEY_REUSED");
    // Another booking of the held time, without the key.
    assert_refused(h.book(PATIENT_GA_2, start).await, "SLOT_UNAVAILABLE");

    assert_eq!(h.sandbox.meetings().await.len(), 1);
    assert_eq!(h.canvas.state().creates.len(), 1);
    assert_eq!(h.notifications.sent().len(), 2);
}

#[tokio::test]
async fn a_canvas_outage_is_retried_while_the_slot_stays_held() {
    let h = Harness::start().await;
    h.canvas.fail_creates(Failure::Unavailable, 2);
    let start = day_at(2, 17, 0);
    let mut client = h.client.clone();
    let req = h.admin(Harness::booking(PATIENT_GA, start));
    let booking = tokio::spawn(async move { client.book_appointment(req).await });

    let id = h.recorded_appointment(PATIENT_GA).await;
    let waiting = h.retry_now(&id, 1, Duration::from_secs(5)).await;
    assert!(
        waiting.last_error.as_deref().unwrap_or_default().contains("canvas"),
        "{waiting:?}"
    );
    // The booking waits with its meeting made and its time held.
    let pending = h.get(&id).await;
    assert_eq!(status_of(&pending), pb::AppointmentStatus::Pending);
    assert!(!pending.zoom_meeting_id.is_empty());
    assert_eq!(pending.canvas_appointment_id, "");
    assert_refused(h.book(PATIENT_GA_2, start).await, "SLOT_UNAVAILABLE");
    let free = h.free_starts(day_at(2, 0, 0), day_at(3, 0, 0)).await;
    assert!(!free.contains(&start), "{free:?}");
    assert!(
        h.notifications.sent().is_empty(),
        "nothing is said before Canvas has it"
    );

    h.retry_now(&id, 2, Duration::from_secs(30)).await;
    let answered = booking
        .await
        .unwrap()
        .expect("the booking is answered")
        .into_inner()
        .appointment
        .unwrap();
    assert_eq!(answered.id, id);
    assert_eq!(status_of(&answered), pb::AppointmentStatus::Booked, "{answered:?}");
    assert_eq!(h.job(&id).await.status, "done");

    // Three tries under one key made one Canvas Appointment, with the one meeting's link.
    let creates = h.canvas.state().creates.clone();
    assert_eq!(creates.len(), 3);
    for c in &creates {
        assert_eq!(c.idempotency_key, format!("appointment-{id}"));
        assert_eq!(c.meeting_url, answered.zoom_join_url);
    }
    assert_eq!(h.canvas.state().appointments.len(), 1);
    assert_eq!(h.sandbox.meetings().await.len(), 1);
    let kinds: Vec<_> = h.notifications.sent().iter().map(|(k, _)| *k).collect();
    assert_eq!(
        kinds,
        [
            NotificationType::AppointmentConfirmed,
            NotificationType::AppointmentReminder
        ]
    );
}

#[tokio::test]
async fn canvas_refusing_the_appointment_deletes_the_meeting_and_fails_the_booking() {
    let h = Harness::start().await;
    h.canvas.fail_creates(Failure::SlotUnavailable, 1);
    let start = day_at(2, 18, 0);
    let a = h.book(PATIENT_GA, start).await.unwrap();

    assert_eq!(status_of(&a), pb::AppointmentStatus::Failed, "{a:?}");
    assert_eq!(a.failure_reason, "canvas_refused");
    assert_eq!(a.canvas_appointment_id, "");
    assert_eq!(h.job(&a.id).await.status, "done", "a refusal is final, not an outage");
    assert!(h.sandbox.meetings().await.is_empty(), "the meeting is deleted");
    let effects: Vec<String> = h
        .sandbox
        .ledger()
        .await
        .iter()
        .filter(|e| e["method"] == "EFFECT")
        .map(|e| e["path"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(effects, ["meeting.created", "meeting.deleted"]);
    assert_eq!(h.canvas.state().creates.len(), 1);
    assert!(h.canvas.state().appointments.is_empty());
    assert!(h.notifications.sent().is_empty(), "the patient is told nothing");

    // The time is free again, and books.
    let free = h.free_starts(day_at(2, 0, 0), day_at(3, 0, 0)).await;
    assert!(free.contains(&start), "{free:?}");
    let again = h.book(PATIENT_GA_2, start).await.unwrap();
    assert_eq!(status_of(&again), pb::AppointmentStatus::Booked);
    assert_eq!(h.sandbox.meetings().await.len(), 1);
}

#[tokio::test]
async fn a_canvas_create_of_unknown_outcome_that_made_nothing_is_made_under_a_new_key() {
    let h = Harness::start().await;
    h.canvas.fail_creates(Failure::OutcomeUnknown, 1);
    let start = day_at(2, 16, 0);
    let mut client = h.client.clone();
    let req = h.admin(Harness::booking(PATIENT_GA, start));
    let booking = tokio::spawn(async move { client.book_appointment(req).await });
    let id = h.recorded_appointment(PATIENT_GA).await;
    h.retry_now(&id, 1, Duration::from_secs(5)).await;
    let answered = booking.await.unwrap().unwrap().into_inner().appointment.unwrap();
    assert_eq!(status_of(&answered), pb::AppointmentStatus::Booked, "{answered:?}");
    // Not compensated as a refusal: the meeting stands, and the second create took a new key.
    assert_eq!(h.sandbox.meetings().await.len(), 1);
    let keys: Vec<String> = h
        .canvas
        .state()
        .creates
        .iter()
        .map(|c| c.idempotency_key.clone())
        .collect();
    assert_eq!(keys, [format!("appointment-{id}"), format!("appointment-{id}-1")]);
}

#[tokio::test]
async fn overlapping_holds_of_one_practitioner_are_refused_by_the_database() {
    let h = Harness::start().await;
    let a = h.book(PATIENT_GA, day_at(2, 15, 0)).await.unwrap();
    // Another hold that overlaps the booked 20 minutes (a longer visit starting ten minutes in),
    // written as a racing booking would: the exclusion constraint refuses it.
    let racing = sqlx::query(
        "insert into appointments (id, canvas_patient_id, practitioner_id, practitioner_name, location_id,
             zoom_user, zoom_topic, start_time, end_time, time_zone, practitioner_time_zone, status,
             created_by_role, created_by_subject)
         select gen_random_uuid(), $2, practitioner_id, practitioner_name, location_id, zoom_user, zoom_topic,
             start_time + interval '10 minutes', start_time + interval '40 minutes', time_zone,
             practitioner_time_zone, 'pending', 'admin', 'test'
         from appointments where id = $1::uuid",
    )
    .bind(&a.id)
    .bind(PATIENT_GA_2)
    .execute(&h.db.pool)
    .await
    .unwrap_err();
    let constraint = racing
        .as_database_error()
        .and_then(|d| d.constraint().map(str::to_owned));
    assert_eq!(constraint.as_deref(), Some("appointments_held_slot"), "{racing}");
    // Once cancelled, the time may be held again.
    h.client
        .clone()
        .cancel_appointment(h.admin(pb::CancelAppointmentRequest {
            id: a.id.clone(),
            ..Default::default()
        }))
        .await
        .unwrap();
    assert!(h.book(PATIENT_GA_2, day_at(2, 15, 0)).await.is_ok());
}

#[tokio::test]
async fn moving_back_to_an_earlier_time_confirms_and_reminds_again() {
    let h = Harness::start().await;
    let (first, second) = (day_at(3, 15, 0), day_at(3, 16, 0));
    let a = h.book(PATIENT_GA, first).await.unwrap();
    for to in [second, first] {
        let moved = h
            .client
            .clone()
            .reschedule_appointment(h.admin(pb::RescheduleAppointmentRequest {
                id: a.id.clone(),
                start_time: Some(era_kit::time::timestamp(to)),
                actor: None,
            }))
            .await
            .unwrap()
            .into_inner()
            .appointment
            .unwrap();
        assert_eq!(time(&moved.start_time), to);
    }
    let sent = h.notifications.sent();
    let keys = |kind| -> Vec<String> {
        sent.iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, r)| r.dedupe_key.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect()
    };
    assert_eq!(
        keys(NotificationType::AppointmentConfirmed).len(),
        3,
        "three times, three confirmations"
    );
    let reminders = keys(NotificationType::AppointmentReminder);
    assert_eq!(reminders.len(), 3);
    // The two earlier reminders were withdrawn; the last, for the first time again, stands.
    let withdrawn: Vec<String> = h
        .notifications
        .state()
        .cancelled
        .iter()
        .map(|c| c.dedupe_key.clone())
        .collect();
    let last = format!("appointment:{}:reminder:2", a.id);
    assert!(reminders.contains(&last), "{reminders:?}");
    assert!(!withdrawn.contains(&last), "{withdrawn:?}");
    assert_eq!(withdrawn.len(), 2, "{withdrawn:?}");
}

#[tokio::test]
async fn a_booking_not_made_by_its_start_is_given_up_and_its_meeting_deleted() {
    let h = Harness::start().await;
    h.canvas.fail_creates(Failure::Unavailable, 1);
    let mut client = h.client.clone();
    let req = h.admin(Harness::booking(PATIENT_GA, day_at(2, 15, 0)));
    let booking = tokio::spawn(async move { client.book_appointment(req).await });
    let id = h.recorded_appointment(PATIENT_GA).await;
    // The first attempt made the meeting and met Canvas down; then the visit's start passes (the
    // row's times move into the past) before the retry.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let job = h.job(&id).await;
        if job.status == "pending" && job.attempts == 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the first attempt never failed: {job:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(h.sandbox.meetings().await.len(), 1);
    sqlx::query(
        "update appointments set start_time = now() - interval '1 minute', end_time = now() + interval '19 minutes'
         where id = $1::uuid",
    )
    .bind(&id)
    .execute(&h.db.pool)
    .await
    .unwrap();
    h.retry_now(&id, 1, Duration::from_secs(5)).await;
    let _ = booking.await.unwrap();
    let failed = h
        .eventually(&id, "given up", |a| status_of(a) == pb::AppointmentStatus::Failed)
        .await;
    assert_eq!(failed.failure_reason, "expired");
    assert!(
        h.sandbox.meetings().await.is_empty(),
        "the meeting made before Canvas failed is deleted"
    );
    assert!(h.notifications.sent().is_empty(), "the patient was never told of it");
}

#[tokio::test]
async fn idempotency_keys_belong_to_their_caller() {
    let h = Harness::start().await;
    let mut client = h.client.clone();
    let with_key = |patient: &str, start| {
        let mut req = Harness::booking(patient, start);
        req.idempotency_key = "same-key".into();
        h.as_patient(req, patient)
    };
    let a = client
        .book_appointment(with_key(PATIENT_GA, day_at(2, 15, 0)))
        .await
        .unwrap()
        .into_inner();
    let b = client
        .book_appointment(with_key(PATIENT_GA_2, day_at(2, 16, 0)))
        .await
        .unwrap()
        .into_inner();
    assert!(!a.existing && !b.existing, "another caller's key is another booking");
    assert_ne!(a.appointment.unwrap().id, b.appointment.unwrap().id);
    let again = client
        .book_appointment(with_key(PATIENT_GA, day_at(2, 15, 0)))
        .await
        .unwrap()
        .into_inner();
    assert!(again.existing);
}
