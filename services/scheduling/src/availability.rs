//! Free slots: Canvas's schedules and slots for the practitioners licensed in the patient's state
//! (pharmacy-routing's prescriber licences, matched to Canvas practitioners by NPI), less the times
//! held here. One Canvas slot search per practitioner covers the whole range, whatever its length;
//! Canvas's answers are reused for seconds at most, and the times held here are read afresh on every
//! request, so a booking counts at once.

use std::{collections::HashMap, sync::Arc};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use era_kit::{error::FieldViolation, time::timestamp};
use era_proto::{canvas::v1 as canvas, pharmacy_routing::v1 as routing, scheduling::v1 as pb};

use crate::{
    app::App,
    error::{Error, Result},
    zones,
};

/// The longest range one request may cover.
pub(crate) const MAX_RANGE_DAYS: i64 = 31;

/// A practitioner who may be booked, with their Canvas schedule.
#[derive(Clone, Debug)]
pub(crate) struct Candidate {
    pub id: String,
    pub name: String,
    pub family_name: String,
    /// Their Zoom user: the meeting's host.
    pub email: String,
    pub schedule_id: String,
    pub location_id: String,
    npi: String,
}

/// Who practises where: Canvas's schedulable practitioners with a schedule, and each NPI's
/// licences as `(state, last valid day)`.
#[derive(Debug, Default)]
pub(crate) struct Directory {
    practitioners: Vec<Candidate>,
    licences: HashMap<String, Vec<(String, Option<NaiveDate>)>>,
}

impl Directory {
    fn licensed_in(&self, state: &str, today: NaiveDate) -> Vec<Candidate> {
        self.practitioners
            .iter()
            .filter(|p| {
                self.licences.get(&p.npi).is_some_and(|ls| {
                    ls.iter()
                        .any(|(s, until)| s.eq_ignore_ascii_case(state) && until.is_none_or(|d| d >= today))
                })
            })
            .cloned()
            .collect()
    }
}

fn unavailable(peer: &'static str, reason: &'static str) -> impl Fn(tonic::Status) -> Error {
    move |s| Error::from_peer(peer, reason, &s)
}

async fn directory(app: &App) -> Result<Arc<Directory>> {
    let now = Utc::now().timestamp();
    if let Some(d) = app.directory.get("directory", now) {
        return Ok(d);
    }
    let canvas_down = unavailable("canvas", "CANVAS_UNAVAILABLE");
    let mut canvas = app.canvas.clone();
    let mut practitioners = Vec::new();
    let mut page = String::new();
    loop {
        let resp = canvas
            .list_practitioners(app.request(canvas::ListPractitionersRequest {
                page: Some(era_proto::common::v1::PageRequest {
                    page_size: 100,
                    page_token: page.clone(),
                }),
                ..Default::default()
            }))
            .await
            .map_err(&canvas_down)?
            .into_inner();
        practitioners.extend(resp.practitioners);
        page = resp.page.map(|p| p.next_page_token).unwrap_or_default();
        if page.is_empty() {
            break;
        }
    }
    let schedules = canvas
        .list_schedules(app.request(canvas::ListSchedulesRequest::default()))
        .await
        .map_err(&canvas_down)?
        .into_inner()
        .schedules;
    let prescribers = app
        .routing
        .clone()
        .list_prescribers(app.request(routing::ListPrescribersRequest {}))
        .await
        .map_err(unavailable("pharmacy-routing", "ROUTING_UNAVAILABLE"))?
        .into_inner()
        .prescribers;
    let licences = prescribers
        .into_iter()
        .filter(|p| p.active && !p.npi.is_empty())
        .map(|p| {
            let ls = p
                .licences
                .into_iter()
                .map(|l| (l.state, NaiveDate::parse_from_str(&l.expires_on, "%Y-%m-%d").ok()))
                .collect();
            (p.npi, ls)
        })
        .collect();
    let practitioners = practitioners
        .into_iter()
        .filter(|p| p.active && p.schedulable && !p.npi.is_empty())
        .filter_map(|p| {
            let s = schedules.iter().find(|s| s.practitioner_id == p.id)?;
            Some(Candidate {
                schedule_id: s.id.clone(),
                location_id: s.location_id.clone(),
                id: p.id,
                name: p.name,
                family_name: p.family_name,
                email: p.email,
                npi: p.npi,
            })
        })
        .collect();
    let d = Arc::new(Directory {
        practitioners,
        licences,
    });
    if app.cache_secs > 0 {
        app.directory.insert("directory", d.clone(), now + app.cache_secs);
    }
    Ok(d)
}

/// The patient's state, from their Canvas chart.
pub(crate) async fn patient_state(app: &App, patient: &str) -> Result<String> {
    let found = app
        .canvas
        .clone()
        .get_patient(app.request(canvas::GetPatientRequest {
            canvas_patient_id: patient.to_owned(),
            view: canvas::PatientView::Basic as i32,
        }))
        .await
        .map_err(|s| match s.code() {
            tonic::Code::NotFound | tonic::Code::InvalidArgument => Error::NotFound("the patient"),
            _ => Error::from_peer("canvas", "CANVAS_UNAVAILABLE", &s),
        })?
        .into_inner();
    let state = found
        .patient
        .and_then(|p| p.address)
        .map(|a| a.state)
        .unwrap_or_default();
    if state.trim().is_empty() {
        return Err(Error::Precondition(
            "PATIENT_STATE_UNKNOWN",
            "the patient has no state on file, so no practitioner can be matched".into(),
        ));
    }
    Ok(state.trim().to_ascii_uppercase())
}

/// The practitioners who may see a patient in `state`: all of them, or the one asked for.
pub(crate) async fn candidates(app: &App, state: &str, practitioner: Option<&str>) -> Result<Vec<Candidate>> {
    let licensed = directory(app).await?.licensed_in(state, Utc::now().date_naive());
    match practitioner {
        None => Ok(licensed),
        Some(id) => match licensed.into_iter().find(|c| c.id == id) {
            Some(c) => Ok(vec![c]),
            None => Err(Error::Precondition(
                "PRACTITIONER_NOT_LICENSED",
                "this practitioner does not see patients in the patient's state, or takes no appointments".into(),
            )),
        },
    }
}

/// Canvas's free slots of `c` between two UTC times, `duration` minutes long.
async fn canvas_slots(
    app: &App,
    c: &Candidate,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    duration: i64,
) -> Result<Arc<Vec<crate::app::Span>>> {
    // Canvas searches by calendar day in the location's zone: a day either side covers any offset.
    let start_date = (from - Duration::days(1)).date_naive();
    let end_date = (to + Duration::days(1)).date_naive();
    let key = format!("{}|{start_date}|{end_date}|{duration}", c.schedule_id);
    let now = Utc::now().timestamp();
    if let Some(s) = app.slots.get(&key, now) {
        return Ok(s);
    }
    let found = app
        .canvas
        .clone()
        .list_slots(app.request(canvas::ListSlotsRequest {
            schedule_id: c.schedule_id.clone(),
            start_date: start_date.to_string(),
            end_date: end_date.to_string(),
            duration_minutes: duration as i32,
            appointment_type: String::new(),
        }))
        .await
        .map_err(unavailable("canvas", "CANVAS_UNAVAILABLE"))?
        .into_inner()
        .slots;
    let slots: Arc<Vec<_>> = Arc::new(
        found
            .iter()
            .filter_map(|s| {
                let start = era_kit::time::from_timestamp(s.start_time.as_ref()?)?;
                let end = era_kit::time::from_timestamp(s.end_time.as_ref()?)?;
                Some((start, end))
            })
            .collect(),
    );
    if app.cache_secs > 0 {
        app.slots.insert(key, slots.clone(), now + app.cache_secs);
    }
    Ok(slots)
}

/// The free slots of each candidate starting in `[from, to)` and in the future, less the times
/// held here; ordered by start.
pub(crate) async fn free_slots(
    app: &App,
    candidates: &[Candidate],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    duration: i64,
) -> Result<Vec<(Candidate, DateTime<Utc>, DateTime<Utc>)>> {
    let searches = candidates.iter().map(|c| canvas_slots(app, c, from, to, duration));
    let found = futures::future::try_join_all(searches).await?;
    let ids: Vec<String> = candidates.iter().map(|c| c.id.clone()).collect();
    let held = app.store.held(&ids, from, to + Duration::minutes(duration)).await?;
    let now = Utc::now();
    let mut free = Vec::new();
    for (c, slots) in candidates.iter().zip(found) {
        for &(start, end) in slots.iter() {
            let overlaps = held.iter().any(|(p, hs, he)| *p == c.id && start < *he && *hs < end);
            if start >= from && start < to && start > now && !overlaps {
                free.push((c.clone(), start, end));
            }
        }
    }
    free.sort_by(|a, b| (a.1, &a.0.id).cmp(&(b.1, &b.0.id)));
    Ok(free)
}

/// Checks a range and a length, naming each bad field.
pub(crate) fn check_range(
    from: Option<&prost_types::Timestamp>,
    to: Option<&prost_types::Timestamp>,
    duration: i32,
    visit_minutes: i64,
) -> Result<(DateTime<Utc>, DateTime<Utc>, i64)> {
    let mut bad = Vec::new();
    let now = Utc::now();
    let from = match from {
        None => now,
        Some(t) => era_kit::time::from_timestamp(t).unwrap_or_else(|| {
            bad.push(FieldViolation::new("start_time", "is not a valid time"));
            now
        }),
    };
    let to = match to {
        None => Some(from + Duration::days(7)),
        Some(t) => {
            let parsed = era_kit::time::from_timestamp(t);
            if parsed.is_none() {
                bad.push(FieldViolation::new("end_time", "is not a valid time"));
            }
            parsed
        }
    };
    let Some(to) = to else {
        return Err(Error::InvalidArgument(bad));
    };
    if to <= from {
        bad.push(FieldViolation::new("end_time", "must be after start_time"));
    } else if to - from > Duration::days(MAX_RANGE_DAYS) {
        bad.push(FieldViolation::new(
            "end_time",
            format!("the range may span at most {MAX_RANGE_DAYS} days"),
        ));
    }
    let duration = match duration {
        0 => visit_minutes,
        5..=240 => i64::from(duration),
        _ => {
            bad.push(FieldViolation::new("duration_minutes", "must be between 5 and 240"));
            visit_minutes
        }
    };
    if bad.is_empty() {
        Ok((from, to, duration))
    } else {
        Err(Error::InvalidArgument(bad))
    }
}

pub(crate) async fn get(app: &App, req: &pb::GetAvailabilityRequest) -> Result<pb::GetAvailabilityResponse> {
    if req.canvas_patient_id.trim().is_empty() {
        return Err(Error::field(
            "canvas_patient_id",
            "is required: the patient's state decides who may see them",
        ));
    }
    let (from, to, duration) = check_range(
        req.start_time.as_ref(),
        req.end_time.as_ref(),
        req.duration_minutes,
        app.visit_minutes,
    )?;
    let state = patient_state(app, &req.canvas_patient_id).await?;
    let wanted = (!req.practitioner_id.is_empty()).then_some(req.practitioner_id.as_str());
    let candidates = candidates(app, &state, wanted).await?;
    let free = free_slots(app, &candidates, from, to, duration).await?;
    Ok(pb::GetAvailabilityResponse {
        slots: free
            .into_iter()
            .map(|(c, start, end)| pb::AvailableSlot {
                practitioner_id: c.id,
                practitioner_name: c.name,
                schedule_id: c.schedule_id,
                location_id: c.location_id,
                start_time: Some(timestamp(start)),
                end_time: Some(timestamp(end)),
            })
            .collect(),
        patient_time_zone: zones::of_state(&state)
            .map(|z| z.name().to_owned())
            .unwrap_or_else(|| "UTC".into()),
        practitioner_time_zone: app.clinic_zone.name().to_owned(),
    })
}
