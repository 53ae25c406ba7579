//! Zoom as the sandbox simulates it: a token that expires mid-run is fetched again once, and a rate
//! limit is retried without a second meeting.

use std::time::Duration;

use era_proto::scheduling::v1 as pb;
use serde_json::json;

use crate::{
    day_at,
    fakes::{PATIENT_GA, PATIENT_GA_2},
    status_of, Harness,
};

const TOKEN: &str = "/zoom/oauth/token";
const CREATE: &str = "/zoom/v2/users/";

#[tokio::test]
async fn a_token_expired_mid_run_is_fetched_again_and_the_call_repeated() {
    let h = Harness::start().await;
    let first = h.book(PATIENT_GA, day_at(2, 15, 0)).await.unwrap();
    assert_eq!(status_of(&first), pb::AppointmentStatus::Booked);
    assert_eq!(h.sandbox.calls("POST", TOKEN).await, [Some(200)]);

    h.sandbox.expire_tokens().await;
    let second = h.book(PATIENT_GA_2, day_at(2, 16, 0)).await.unwrap();
    assert_eq!(status_of(&second), pb::AppointmentStatus::Booked, "{second:?}");

    // The cached token was refused (401), a second one fetched, and the create sent again.
    assert_eq!(h.sandbox.calls("POST", TOKEN).await, [Some(200), Some(200)]);
    assert_eq!(h.sandbox.calls("POST", CREATE).await, [Some(201), Some(401), Some(201)]);
    // (The sandbox lists by creation second, then id: the two may come in either order.)
    let mut ids: Vec<String> = h
        .sandbox
        .meetings()
        .await
        .iter()
        .map(|m| m["id"].as_i64().unwrap().to_string())
        .collect();
    ids.sort();
    let mut expected = [first.zoom_meeting_id, second.zoom_meeting_id];
    expected.sort();
    assert_eq!(ids, expected);
}

#[tokio::test]
async fn a_zoom_rate_limit_is_retried_and_makes_one_meeting() {
    let h = Harness::start().await;
    h.sandbox
        .fault(json!({
            "method": "POST",
            "path": CREATE,
            "times": 1,
            "action": { "kind": "status", "status": 429, "body": { "code": 429, "message": "Too many requests." } },
        }))
        .await;
    let mut client = h.client.clone();
    let req = h.admin(Harness::booking(PATIENT_GA, day_at(2, 15, 0)));
    let booking = tokio::spawn(async move { client.book_appointment(req).await });

    let id = h.recorded_appointment(PATIENT_GA).await;
    let waiting = h.retry_now(&id, 1, Duration::from_secs(5)).await;
    assert!(
        waiting
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("rate limited"),
        "{waiting:?}"
    );
    let answered = booking.await.unwrap().unwrap().into_inner().appointment.unwrap();
    assert_eq!(status_of(&answered), pb::AppointmentStatus::Booked, "{answered:?}");

    assert_eq!(h.sandbox.calls("POST", CREATE).await, [Some(429), Some(201)]);
    let meetings = h.sandbox.meetings().await;
    assert_eq!(meetings.len(), 1, "{meetings:?}");
    assert_eq!(
        meetings[0]["id"].as_i64().unwrap().to_string(),
        answered.zoom_meeting_id
    );
    assert_eq!(h.canvas.state().creates.len(), 1);
}

#[tokio::test]
async fn zoom_down_is_retried_and_a_create_it_may_have_made_is_looked_up_first() {
    let h = Harness::start().await;
    // Zoom answers 503 to the create: the meeting may exist, so the next attempt asks Zoom first.
    h.sandbox
        .fault(json!({
            "method": "POST",
            "path": CREATE,
            "times": 1,
            "action": { "kind": "status", "status": 503, "body": { "code": 503, "message": "Service unavailable." } },
        }))
        .await;
    let mut client = h.client.clone();
    let req = h.admin(Harness::booking(PATIENT_GA, day_at(2, 15, 0)));
    let booking = tokio::spawn(async move { client.book_appointment(req).await });

    let id = h.recorded_appointment(PATIENT_GA).await;
    let waiting = h.retry_now(&id, 1, Duration::from_secs(5)).await;
    assert!(
        waiting
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("outcome unknown"),
        "{waiting:?}"
    );
    // While Zoom is down the time stays held.
    let second = h.book(PATIENT_GA, day_at(2, 15, 0)).await;
    crate::assert_refused(second, "SLOT_UNAVAILABLE");
    let answered = booking.await.unwrap().unwrap().into_inner().appointment.unwrap();
    assert_eq!(status_of(&answered), pb::AppointmentStatus::Booked, "{answered:?}");
    // The retry listed the host's meetings before creating: one lookup, then one create.
    assert_eq!(h.sandbox.calls("POST", CREATE).await, [Some(503), Some(201)]);
    assert_eq!(h.sandbox.calls("GET", CREATE).await.len(), 1);
    assert_eq!(h.sandbox.meetings().await.len(), 1);
}
