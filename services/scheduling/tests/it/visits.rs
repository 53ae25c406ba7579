//! After the visit: booked appointments that have begun are read back from Canvas, fulfilled
//! becoming COMPLETED and no-show NO_SHOW.

use era_proto::{canvas::v1::AppointmentStatus as CanvasStatus, scheduling::v1 as pb};

use crate::{
    day_at, engine,
    fakes::{PATIENT_GA, PATIENT_GA_2},
    status_of, Harness,
};

/// Moves an appointment's visit into the past, `hours_ago` hours ago, 20 minutes long.
async fn into_the_past(h: &Harness, id: &str, hours_ago: i32) {
    let moved = sqlx::query(
        "update appointments set start_time = now() - make_interval(hours => $2),
             end_time = now() - make_interval(hours => $2) + interval '20 minutes'
         where id = $1::uuid",
    )
    .bind(id)
    .bind(hours_ago)
    .execute(&h.db.pool)
    .await
    .unwrap();
    assert_eq!(moved.rows_affected(), 1);
}

#[tokio::test]
async fn visit_outcomes_are_read_back_from_canvas() {
    let h = Harness::with_engine(every_second()).await;
    let fulfilled = h.book(PATIENT_GA, day_at(2, 15, 0)).await.unwrap();
    let missed = h.book(PATIENT_GA_2, day_at(2, 16, 0)).await.unwrap();
    let undecided = h.book(PATIENT_GA, day_at(2, 17, 0)).await.unwrap();
    let upcoming = h.book(PATIENT_GA_2, day_at(2, 18, 0)).await.unwrap();
    for a in [&fulfilled, &missed, &undecided, &upcoming] {
        assert_eq!(status_of(a), pb::AppointmentStatus::Booked, "{a:?}");
    }

    // The practitioner marks two visits in Canvas; the third stays booked there.
    h.canvas
        .set_status(&fulfilled.canvas_appointment_id, CanvasStatus::Fulfilled);
    h.canvas.set_status(&missed.canvas_appointment_id, CanvasStatus::Noshow);
    into_the_past(&h, &fulfilled.id, 1).await;
    into_the_past(&h, &missed.id, 2).await;
    into_the_past(&h, &undecided.id, 3).await;

    let done = h
        .eventually(&fulfilled.id, "completed", |a| {
            status_of(a) == pb::AppointmentStatus::Completed
        })
        .await;
    assert_eq!(done.canvas_appointment_id, fulfilled.canvas_appointment_id);
    h.eventually(&missed.id, "a no-show", |a| {
        status_of(a) == pb::AppointmentStatus::NoShow
    })
    .await;

    // Once Canvas has been asked about the undecided visit in a later round too, it is still
    // booked; a visit yet to come is read too (staff may cancel it in Canvas) and stays booked.
    let asked = |id: &str| h.canvas.state().get_appointment.iter().filter(|a| *a == id).count();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while asked(&undecided.canvas_appointment_id) < 2 {
        assert!(tokio::time::Instant::now() < deadline, "canvas was not asked again");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(status_of(&h.get(&undecided.id).await), pb::AppointmentStatus::Booked);
    assert!(asked(&upcoming.canvas_appointment_id) >= 1);
    assert_eq!(status_of(&h.get(&upcoming.id).await), pb::AppointmentStatus::Booked);
    // Settled visits are not read again.
    let settled_reads = asked(&fulfilled.canvas_appointment_id) + asked(&missed.canvas_appointment_id);
    while asked(&undecided.canvas_appointment_id) < 3 {
        assert!(tokio::time::Instant::now() < deadline, "canvas was not asked again");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        asked(&fulfilled.canvas_appointment_id) + asked(&missed.canvas_appointment_id),
        settled_reads
    );

    let completed = h
        .client
        .clone()
        .list_appointments(h.admin(pb::ListAppointmentsRequest {
            status: pb::AppointmentStatus::Completed as i32,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .appointments;
    assert_eq!(completed.len(), 1);
    assert_eq!(completed[0].id, fulfilled.id);
}

/// The visit-status worker every second.
fn every_second() -> era_scheduling::config::EngineConfig {
    era_scheduling::config::EngineConfig {
        status_every_secs: 1,
        ..engine()
    }
}

#[tokio::test]
async fn an_upcoming_visit_cancelled_in_canvas_is_cancelled_here_and_its_meeting_deleted() {
    let h = Harness::with_engine(every_second()).await;
    let a = h.book(PATIENT_GA, day_at(2, 15, 0)).await.unwrap();
    let meeting: i64 = a.zoom_meeting_id.parse().unwrap();
    assert!(h.sandbox.meetings().await.iter().any(|m| m["id"] == meeting));
    h.canvas.set_status(&a.canvas_appointment_id, CanvasStatus::Cancelled);

    let cancelled = h
        .eventually(&a.id, "cancelled", |a| {
            status_of(a) == pb::AppointmentStatus::Cancelled && a.zoom_join_url.is_empty()
        })
        .await;
    assert_eq!(cancelled.cancellation_reason, "cancelled in Canvas");
    // The job tidies up after it: the meeting is gone and the patient is told once.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let gone = !h.sandbox.meetings().await.iter().any(|m| m["id"] == meeting);
        let told = h
            .notifications
            .sent()
            .iter()
            .filter(|(k, _)| *k == era_proto::notifications::v1::NotificationType::AppointmentCancelled)
            .count();
        if gone && told == 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "meeting gone {gone}, notices {told}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn visits_canvas_never_settles_do_not_crowd_out_newer_ones() {
    let h = Harness::with_engine(every_second()).await;
    let a = h.book(PATIENT_GA, day_at(2, 15, 0)).await.unwrap();
    // Sixty older visits Canvas does not know how to settle: more than one round reads.
    let ghosts = sqlx::query(
        "insert into appointments (id, canvas_patient_id, practitioner_id, practitioner_name, location_id,
             zoom_user, zoom_topic, start_time, end_time, time_zone, practitioner_time_zone, status,
             created_by_role, created_by_subject, canvas_appointment_id)
         select gen_random_uuid(), 'ghost-patient', 'ghost-' || n, 'Ghost', '1', 'ghost@example.test',
             'topic', now() - interval '5 hours', now() - interval '5 hours' + interval '20 minutes',
             'UTC', 'UTC', 'booked', 'admin', 'test', 'never-settled-' || n
         from generate_series(1, 60) n",
    )
    .execute(&h.db.pool)
    .await
    .unwrap();
    assert_eq!(ghosts.rows_affected(), 60);
    h.canvas.set_status(&a.canvas_appointment_id, CanvasStatus::Fulfilled);
    into_the_past(&h, &a.id, 1).await;
    h.eventually(&a.id, "completed behind sixty unsettled visits", |a| {
        status_of(a) == pb::AppointmentStatus::Completed
    })
    .await;
}
