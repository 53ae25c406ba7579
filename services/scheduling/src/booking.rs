//! Booking, cancelling and moving appointments. Each records the change on the appointment's row
//! and asks for the appointment's job in the same transaction, before any vendor hears of it; the
//! job (see [`crate::reconcile`]) then makes Zoom, Canvas and the patient's messages match the row.
//! The caller waits a bounded time for it and gets the appointment as it then stands.

use chrono::{DateTime, Duration, Utc};
use era_kit::{
    auth::{Caller, Role},
    error::FieldViolation,
};
use era_proto::scheduling::v1 as pb;
use uuid::Uuid;

use crate::{
    app::App,
    availability,
    error::{Error, Result},
    store::{self, Appointment, NewAppointment},
    zones,
};

const JOB_KIND: &str = "appointment";

fn parse_id(id: &str) -> Result<Uuid> {
    Uuid::parse_str(id.trim()).map_err(|_| Error::field("id", "must be an appointment id"))
}

/// The appointment, if this caller may see it: a patient sees only their own.
pub(crate) async fn visible(app: &App, caller: &Caller, id: &str) -> Result<Appointment> {
    let a = app
        .store
        .get(parse_id(id)?)
        .await?
        .ok_or(Error::NotFound("appointment"))?;
    if caller.require_patient_access(&a.canvas_patient_id).is_err() {
        return Err(Error::Hidden);
    }
    Ok(a)
}

/// Waits (bounded) until `done` holds for the appointment, and answers it as it then stands.
async fn settle(app: &App, id: Uuid, done: impl Fn(&Appointment, bool) -> bool) -> Result<Appointment> {
    let deadline = tokio::time::Instant::now() + app.sync_wait;
    let key = store::job_key(id);
    loop {
        let a = app.store.get(id).await?.ok_or(Error::NotFound("appointment"))?;
        let job_idle = app
            .queue
            .get(&key)
            .await?
            .is_none_or(|j| matches!(j.status.as_str(), "done" | "dead"));
        if done(&a, job_idle) || tokio::time::Instant::now() >= deadline {
            return Ok(a);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Records the row change `change` made in `tx`, asks for the job, and wakes the runner.
async fn commit_with_job(app: &App, mut tx: sqlx::Transaction<'_, sqlx::Postgres>, id: Uuid) -> Result<()> {
    app.queue.request(&mut tx, JOB_KIND, &store::job_key(id), None).await?;
    tx.commit().await?;
    app.queue.wake();
    Ok(())
}

/// The free slot of `practitioner` that starts at `start`, for a patient in `state`.
async fn slot_at(
    app: &App,
    state: &str,
    practitioner: &str,
    start: DateTime<Utc>,
    duration: i64,
) -> Result<(availability::Candidate, DateTime<Utc>, DateTime<Utc>)> {
    let candidates = availability::candidates(app, state, Some(practitioner)).await?;
    let free = availability::free_slots(app, &candidates, start, start + Duration::seconds(1), duration).await?;
    free.into_iter()
        .find(|(_, s, _)| *s == start)
        .ok_or_else(Error::slot_unavailable)
}

pub(crate) async fn book(app: &App, caller: &Caller, req: &pb::BookAppointmentRequest) -> Result<(Appointment, bool)> {
    let mut bad = Vec::new();
    for (field, value) in [
        ("canvas_patient_id", &req.canvas_patient_id),
        ("practitioner_id", &req.practitioner_id),
    ] {
        if value.trim().is_empty() {
            bad.push(FieldViolation::new(field, "is required"));
        } else if value.len() > 128 {
            bad.push(FieldViolation::new(field, "must be at most 128 characters"));
        }
    }
    let start = req.start_time.as_ref().and_then(era_kit::time::from_timestamp);
    match start {
        None => bad.push(FieldViolation::new(
            "start_time",
            "is required: a start from the availability",
        )),
        Some(s) if s <= Utc::now() => bad.push(FieldViolation::new("start_time", "must be in the future")),
        Some(_) => {}
    }
    let duration = match req.duration_minutes {
        0 => app.visit_minutes,
        5..=240 => i64::from(req.duration_minutes),
        _ => {
            bad.push(FieldViolation::new("duration_minutes", "must be between 5 and 240"));
            0
        }
    };
    if !req.time_zone.is_empty() && zones::parse(&req.time_zone).is_none() {
        bad.push(FieldViolation::new(
            "time_zone",
            "must be an IANA time zone, e.g. America/Chicago",
        ));
    }
    if req.idempotency_key.len() > 200 {
        bad.push(FieldViolation::new("idempotency_key", "must be at most 200 characters"));
    }
    let Some(start) = start.filter(|_| bad.is_empty()) else {
        return Err(Error::InvalidArgument(bad));
    };
    // Keys are the caller's own: another caller's key is another booking, and tells nothing.
    let key = (!req.idempotency_key.is_empty())
        .then(|| format!("{}:{}:{}", caller.subject.len(), caller.subject, req.idempotency_key));
    if let Some(existing) = replay(app, key.as_deref(), req, start).await? {
        return Ok((existing, true));
    }
    let state = availability::patient_state(app, &req.canvas_patient_id).await?;
    let (c, start, end) = slot_at(app, &state, &req.practitioner_id, start, duration).await?;
    let zone = zones::parse(&req.time_zone)
        .or_else(|| zones::of_state(&state))
        .map_or_else(|| "UTC".to_owned(), |z| z.name().to_owned());
    let new = NewAppointment {
        id: Uuid::new_v4(),
        canvas_patient_id: req.canvas_patient_id.clone(),
        practitioner_id: c.id.clone(),
        practitioner_name: c.name.clone(),
        location_id: c.location_id.clone(),
        zoom_user: c.email.clone(),
        zoom_topic: format!("YourEra Telehealth - Dr. {}", c.family_name),
        start_time: start,
        end_time: end,
        time_zone: zone,
        practitioner_time_zone: app.clinic_zone.name().to_owned(),
        idempotency_key: key.clone(),
        created_by_role: role_name(caller.role).to_owned(),
        created_by_subject: caller.subject.clone(),
    };
    let mut tx = app.store.pool().begin().await?;
    match app.store.insert(&mut tx, &new).await {
        Ok(()) => {}
        Err(e) if store::slot_taken(&e) => return Err(Error::slot_unavailable()),
        // Two requests with one key at once: the other recorded it first.
        Err(e) if store::key_taken(&e) => {
            drop(tx);
            return match replay(app, key.as_deref(), req, start).await? {
                Some(existing) => Ok((existing, true)),
                None => Err(e.into()),
            };
        }
        Err(e) => return Err(e.into()),
    }
    commit_with_job(app, tx, new.id).await?;
    tracing::info!(appointment = %new.id, practitioner = %new.practitioner_id, "appointment recorded");
    let a = settle(app, new.id, |a, idle| a.status != "pending" && idle).await?;
    Ok((a, false))
}

/// The appointment an idempotency key already booked, when the request is the same one.
async fn replay(
    app: &App,
    key: Option<&str>,
    req: &pb::BookAppointmentRequest,
    start: DateTime<Utc>,
) -> Result<Option<Appointment>> {
    let Some(key) = key else { return Ok(None) };
    let Some(a) = app.store.by_key(key).await? else {
        return Ok(None);
    };
    // Compared with the appointment as it stands: after a move, a replay of the first booking is
    // another request.
    let same = a.canvas_patient_id == req.canvas_patient_id
        && a.practitioner_id == req.practitioner_id
        && a.start_time == start;
    if !same {
        return Err(Error::Precondition(
            "IDEMPOTENCY_KEY_REUSED",
            "this Idempotency-Key booked another appointment".into(),
        ));
    }
    Ok(Some(settle(app, a.id, |a, idle| a.status != "pending" && idle).await?))
}

pub(crate) async fn cancel(app: &App, caller: &Caller, req: &pb::CancelAppointmentRequest) -> Result<Appointment> {
    if req.reason.len() > 500 {
        return Err(Error::field("reason", "must be at most 500 characters"));
    }
    let a = visible(app, caller, &req.id).await?;
    match a.status.as_str() {
        "cancelled" => return Ok(a),
        "completed" | "no_show" => return Err(finished()),
        "failed" => {
            return Err(Error::Precondition(
                "APPOINTMENT_FAILED",
                "the booking failed: there is nothing to cancel".into(),
            ))
        }
        _ => {}
    }
    if a.start_time <= Utc::now() {
        return Err(finished());
    }
    let mut tx = app.store.pool().begin().await?;
    let changed = sqlx::query(
        "update appointments set status = 'cancelled', cancelled_at = now(), cancellation_reason = $2,
             updated_at = now()
         where id = $1 and status in ('pending', 'booked') and start_time > now()",
    )
    .bind(a.id)
    .bind((!req.reason.is_empty()).then_some(&req.reason))
    .execute(&mut *tx)
    .await?;
    if changed.rows_affected() == 0 {
        // Changed meanwhile (cancelled by another request, or the visit began): answer it as it is.
        drop(tx);
        return visible(app, caller, &req.id).await;
    }
    commit_with_job(app, tx, a.id).await?;
    tracing::info!(appointment = %a.id, "appointment cancelled");
    settle(app, a.id, |_, idle| idle).await
}

pub(crate) fn role_name(role: Role) -> &'static str {
    match role {
        Role::Admin => "admin",
        Role::Patient => "patient",
        Role::Service => "service",
    }
}

fn finished() -> Error {
    Error::Precondition(
        "APPOINTMENT_FINISHED",
        "the appointment has already begun or taken place".into(),
    )
}

pub(crate) async fn reschedule(
    app: &App,
    caller: &Caller,
    req: &pb::RescheduleAppointmentRequest,
) -> Result<Appointment> {
    let a = visible(app, caller, &req.id).await?;
    let start = match req.start_time.as_ref().and_then(era_kit::time::from_timestamp) {
        None => return Err(Error::field("start_time", "is required: a start from the availability")),
        Some(s) if s <= Utc::now() => return Err(Error::field("start_time", "must be in the future")),
        Some(s) => s,
    };
    match a.status.as_str() {
        "cancelled" => {
            return Err(Error::Precondition(
                "APPOINTMENT_CANCELLED",
                "the appointment is cancelled: book a new one".into(),
            ))
        }
        "completed" | "no_show" | "failed" => return Err(finished()),
        _ => {}
    }
    if a.start_time <= Utc::now() {
        return Err(finished());
    }
    if start == a.start_time {
        return Ok(a);
    }
    let state = availability::patient_state(app, &a.canvas_patient_id).await?;
    let (_, start, end) = slot_at(app, &state, &a.practitioner_id, start, a.duration_minutes()).await?;
    let mut tx = app.store.pool().begin().await?;
    let moved = sqlx::query(
        "update appointments set start_time = $2, end_time = $3, failure_reason = null, updated_at = now(),
             schedule_version = schedule_version + 1
         where id = $1 and status in ('pending', 'booked') and start_time > now()",
    )
    .bind(a.id)
    .bind(start)
    .bind(end)
    .execute(&mut *tx)
    .await;
    match moved {
        Ok(r) if r.rows_affected() == 1 => {}
        Ok(_) => {
            drop(tx);
            return Err(Error::Precondition(
                "APPOINTMENT_CHANGED",
                "the appointment changed meanwhile; read it again".into(),
            ));
        }
        Err(e) if store::slot_taken(&e) => return Err(Error::slot_unavailable()),
        Err(e) => return Err(e.into()),
    }
    commit_with_job(app, tx, a.id).await?;
    tracing::info!(appointment = %a.id, "appointment moved");
    settle(app, a.id, |_, idle| idle).await
}
