//! A patient acts only for themselves: another patient's availability, bookings and appointments
//! are PERMISSION_DENIED, and nothing is read from Canvas or changed for them.

use era_proto::scheduling::v1 as pb;
use tonic::Code;

use crate::{
    day_at,
    fakes::{PATIENT_GA, PATIENT_GA_2},
    range, status_of, ts, Harness,
};

/// The Zoom meetings, by id and start (a meeting's host link is fresh on every read).
async fn meeting_ids(h: &Harness) -> Vec<(i64, String)> {
    h.sandbox
        .meetings()
        .await
        .iter()
        .map(|m| (m["id"].as_i64().unwrap(), m["start_time"].as_str().unwrap().to_owned()))
        .collect()
}

fn denied<T>(what: &str, answer: Result<tonic::Response<T>, tonic::Status>) {
    let status = answer.map(|_| ()).expect_err(what);
    assert_eq!(status.code(), Code::PermissionDenied, "{what}: {status:?}");
}

#[tokio::test]
async fn a_patient_caller_is_refused_another_patients_data() {
    let h = Harness::start().await;
    let theirs = h.book(PATIENT_GA, day_at(2, 15, 0)).await.unwrap();
    let canvas_calls = h.canvas.state().calls.len();
    let before = (canvas_calls, meeting_ids(&h).await, h.notifications.sent().len());

    let mut c = h.client.clone();
    let me = PATIENT_GA_2;
    let availability = range(PATIENT_GA, day_at(1, 0, 0), day_at(3, 0, 0));
    denied(
        "GetAvailability",
        c.get_availability(h.as_patient(availability.clone(), me)).await,
    );
    denied(
        "BookAppointment",
        c.book_appointment(h.as_patient(Harness::booking(PATIENT_GA, day_at(2, 16, 0)), me))
            .await,
    );
    denied(
        "GetAppointment",
        c.get_appointment(h.as_patient(pb::GetAppointmentRequest { id: theirs.id.clone() }, me))
            .await,
    );
    denied(
        "ListAppointments",
        c.list_appointments(h.as_patient(
            pb::ListAppointmentsRequest {
                canvas_patient_id: PATIENT_GA.into(),
                ..Default::default()
            },
            me,
        ))
        .await,
    );
    denied(
        "CancelAppointment",
        c.cancel_appointment(h.as_patient(
            pb::CancelAppointmentRequest {
                id: theirs.id.clone(),
                ..Default::default()
            },
            me,
        ))
        .await,
    );
    denied(
        "RescheduleAppointment",
        c.reschedule_appointment(h.as_patient(
            pb::RescheduleAppointmentRequest {
                id: theirs.id.clone(),
                start_time: Some(ts(day_at(2, 17, 0))),
                ..Default::default()
            },
            me,
        ))
        .await,
    );
    // Listing everyone's, by leaving the patient out, is not a way round.
    let all = c
        .list_appointments(h.as_patient(pb::ListAppointmentsRequest::default(), me))
        .await
        .unwrap_err();
    assert_eq!(all.code(), Code::InvalidArgument, "{all:?}");

    // Nothing was read or changed for them.
    let canvas_calls = h.canvas.state().calls.len();
    let after = (canvas_calls, meeting_ids(&h).await, h.notifications.sent().len());
    assert_eq!(after, before);
    let rows: Vec<(String, String)> = sqlx::query_as("select canvas_patient_id, status from appointments")
        .fetch_all(&h.db.pool)
        .await
        .unwrap();
    assert_eq!(rows, [(PATIENT_GA.to_owned(), "booked".to_owned())]);
    assert_eq!(h.get(&theirs.id).await, theirs);

    // Their own data they may see.
    let own = c
        .get_appointment(h.as_patient(pb::GetAppointmentRequest { id: theirs.id.clone() }, PATIENT_GA))
        .await
        .unwrap()
        .into_inner()
        .appointment
        .unwrap();
    assert_eq!(own.id, theirs.id);
    assert_eq!(status_of(&own), pb::AppointmentStatus::Booked);
    let listed = c
        .list_appointments(h.as_patient(
            pb::ListAppointmentsRequest {
                canvas_patient_id: PATIENT_GA.into(),
                ..Default::default()
            },
            PATIENT_GA,
        ))
        .await
        .unwrap()
        .into_inner()
        .appointments;
    assert_eq!(listed.len(), 1);
    let mine = c
        .get_availability(h.as_patient(range(me, day_at(1, 0, 0), day_at(3, 0, 0)), me))
        .await
        .unwrap()
        .into_inner();
    assert!(!mine.slots.is_empty());
}
