//! Availability: Canvas's slots of the practitioners licensed in the patient's state, one slot search
//! per practitioner for the whole range, reused for the cache window.

use chrono::Duration;
use era_proto::scheduling::v1 as pb;
use tonic::Code;

use crate::{
    assert_refused, bad_fields, day_at,
    fakes::{schedule_of, CLOSE_HOUR, DESK, LAPSED, NOLAN, NOLAN_NAME, OPEN_HOUR, PATIENT_GA, PATIENT_NO_STATE, SINGH},
    range, time, ts, Harness,
};

/// The fake's 20-minute slots in one day.
const SLOTS_PER_DAY: usize = ((CLOSE_HOUR - OPEN_HOUR) * 3) as usize;

#[tokio::test]
async fn only_practitioners_licensed_in_the_patients_state_are_offered() {
    let h = Harness::start().await;
    let (from, to) = (day_at(1, 0, 0), day_at(3, 0, 0));
    let found = h.availability(range(PATIENT_GA, from, to)).await.unwrap();

    // Dr. Singh (licensed elsewhere), the lapsed licence and the practitioner who takes no
    // appointments are left out: every slot is Dr. Nolan's.
    assert_eq!(found.slots.len(), 2 * SLOTS_PER_DAY);
    for s in &found.slots {
        assert_eq!(s.practitioner_id, NOLAN, "{s:?}");
        assert_eq!(s.practitioner_name, NOLAN_NAME);
        assert_eq!(s.schedule_id, schedule_of(NOLAN));
        assert_eq!(s.location_id, "1");
        assert_eq!(time(&s.end_time) - time(&s.start_time), Duration::minutes(20));
    }
    let starts: Vec<_> = found.slots.iter().map(|s| time(&s.start_time)).collect();
    assert!(starts.windows(2).all(|w| w[0] < w[1]), "ordered by start");
    assert_eq!(starts[0], day_at(1, OPEN_HOUR, 0));
    assert_eq!(*starts.last().unwrap(), day_at(2, CLOSE_HOUR - 1, 40));
    assert_eq!(found.patient_time_zone, "America/New_York");
    assert_eq!(found.practitioner_time_zone, "America/New_York");

    // Canvas was searched once, for Dr. Nolan's schedule, a day either side of the range.
    let searches = h.canvas.state().list_slots.clone();
    assert_eq!(searches.len(), 1, "{searches:?}");
    assert_eq!(searches[0].schedule_id, schedule_of(NOLAN));
    assert_eq!(searches[0].start_date, day_at(0, 0, 0).date_naive().to_string());
    assert_eq!(searches[0].end_date, day_at(4, 0, 0).date_naive().to_string());
    assert_eq!(searches[0].duration_minutes, 20);
    // Both pages of practitioners were read.
    assert_eq!(h.canvas.count("ListPractitioners"), 2);

    // Asking for a practitioner who may not see a Georgia patient is refused.
    for other in [SINGH, LAPSED, DESK] {
        let mut req = range(PATIENT_GA, from, to);
        req.practitioner_id = other.into();
        assert_refused(h.availability(req).await, "PRACTITIONER_NOT_LICENSED");
    }
    // Dr. Nolan by name, with a visit length of 40 minutes.
    let mut req = range(PATIENT_GA, from, to);
    req.practitioner_id = NOLAN.into();
    req.duration_minutes = 40;
    let found = h.availability(req).await.unwrap();
    assert_eq!(found.slots.len(), SLOTS_PER_DAY);
    assert!(found
        .slots
        .iter()
        .all(|s| time(&s.end_time) - time(&s.start_time) == Duration::minutes(40)));
    assert_eq!(
        h.canvas.state().list_slots.len(),
        2,
        "a 40-minute search is another search"
    );
}

#[tokio::test]
async fn a_patient_without_a_state_or_a_chart_cannot_be_matched() {
    let h = Harness::start().await;
    let (from, to) = (day_at(1, 0, 0), day_at(3, 0, 0));
    assert_refused(
        h.availability(range(PATIENT_NO_STATE, from, to)).await,
        "PATIENT_STATE_UNKNOWN",
    );
    let unknown = h.availability(range("patient-nobody", from, to)).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");
    assert_eq!(
        h.canvas.state().list_slots.len(),
        0,
        "no practitioner is searched without a state"
    );
    assert_eq!(h.canvas.count("GetPatient"), 2);
}

#[tokio::test]
async fn bad_ranges_and_a_missing_patient_are_invalid_arguments() {
    let h = Harness::start().await;
    let from = day_at(1, 0, 0);
    assert_eq!(
        bad_fields(h.availability(range(PATIENT_GA, from, from + Duration::days(32))).await),
        ["end_time"],
        "more than 31 days"
    );
    assert_eq!(
        bad_fields(h.availability(range(PATIENT_GA, from, from - Duration::hours(1))).await),
        ["end_time"],
        "ends before it starts"
    );
    assert_eq!(
        bad_fields(h.availability(range(PATIENT_GA, from, from)).await),
        ["end_time"],
        "an empty range"
    );
    for missing in ["", "   "] {
        assert_eq!(
            bad_fields(h.availability(range(missing, from, from + Duration::days(1))).await),
            ["canvas_patient_id"]
        );
    }
    let mut req = range(PATIENT_GA, from, from + Duration::days(1));
    req.duration_minutes = 241;
    assert_eq!(bad_fields(h.availability(req).await), ["duration_minutes"]);
    let bad_time = pb::GetAvailabilityRequest {
        canvas_patient_id: PATIENT_GA.into(),
        start_time: Some(ts(from)),
        end_time: Some(prost_types::Timestamp { seconds: 0, nanos: -1 }),
        ..Default::default()
    };
    // (Named twice today: "is not a valid time", then "must be after start_time".)
    let fields = bad_fields(h.availability(bad_time).await);
    assert!(
        !fields.is_empty() && fields.iter().all(|f| f == "end_time"),
        "{fields:?}"
    );
    let calls = h.canvas.state().calls.clone();
    assert!(calls.is_empty(), "bad input reaches no peer: {calls:?}");

    // Exactly 31 days is allowed, and still one slot search.
    let found = h
        .availability(range(PATIENT_GA, from, from + Duration::days(31)))
        .await
        .unwrap();
    assert_eq!(found.slots.len(), 31 * SLOTS_PER_DAY);
    assert_eq!(h.canvas.state().list_slots.len(), 1);
}

#[tokio::test]
async fn one_slot_search_covers_fourteen_days_and_is_reused_within_the_cache_window() {
    let h = Harness::start().await;
    let (from, to) = (day_at(1, 0, 0), day_at(15, 0, 0));
    let first = h.availability(range(PATIENT_GA, from, to)).await.unwrap();
    assert_eq!(first.slots.len(), 14 * SLOTS_PER_DAY);
    assert_eq!(h.canvas.state().list_slots.len(), 1, "one search for fourteen days");
    let directory = (
        h.canvas.count("ListPractitioners"),
        h.canvas.count("ListSchedules"),
        h.routing.list_prescribers_calls(),
    );
    assert_eq!(directory, (2, 1, 1));

    let second = h.availability(range(PATIENT_GA, from, to)).await.unwrap();
    assert_eq!(second.slots, first.slots);
    assert_eq!(
        h.canvas.state().list_slots.len(),
        1,
        "the second request within the window reuses the slots"
    );
    assert_eq!(
        (
            h.canvas.count("ListPractitioners"),
            h.canvas.count("ListSchedules"),
            h.routing.list_prescribers_calls(),
        ),
        directory,
        "and the practitioners, schedules and licences"
    );
    // The patient's chart is read afresh on every request.
    assert_eq!(h.canvas.count("GetPatient"), 2);
}
