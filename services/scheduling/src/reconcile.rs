//! The appointment job: makes Zoom, Canvas and the patient's messages match the appointment's row,
//! whatever happened before. It runs whenever the row changes (booked, moved, cancelled) and after
//! any crash, and reads the progress columns to know what is already done:
//!
//! - booked or pending: a Zoom meeting at the row's time (created once: a create whose answer was
//!   lost is looked up by our reference before another is made), a Canvas Appointment with the
//!   meeting's link (canvas's own idempotency key settles a lost answer), then the row is `booked`,
//!   the patient confirmed for that time and the reminder planned for it (an older one withdrawn);
//! - cancelled: the reminder withdrawn, the meeting deleted, the Canvas Appointment cancelled, and
//!   the patient told, if they had been told of the booking.
//!
//! Canvas refusing a new appointment for good deletes the meeting and ends the booking `failed`;
//! refusing a move puts the appointment back at the time Canvas has. An outage is retried on the
//! runner's schedule while the slot stays held.

use chrono::{DateTime, Duration, Utc};
use era_kit::jobs::{BoxFuture, FailAt, Halted, Handler, Job, LeaseLost, Outcome};
use era_proto::{canvas::v1 as canvas, common::v1::Actor, notifications::v1 as notify};
use tonic::Code;
use uuid::Uuid;

use crate::{
    app::{Shared, SERVICE},
    error::Error,
    store::{Appointment, Progress},
    zones,
    zoom::{NewMeeting, ZoomError},
};

/// The job's handler.
pub(crate) struct Reconciler(pub Shared);

impl Handler for Reconciler {
    fn run<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            match drive(&self.0, job).await {
                Ok(()) => Outcome::Done,
                Err(Stop::Halted) => Outcome::Abandoned,
                Err(Stop::Retry(why)) => Outcome::Retry(why),
                Err(Stop::Dead(why)) => Outcome::Dead(why),
            }
        })
    }
}

enum Stop {
    /// A failpoint fired or the lease was lost: leave the job as a crash would.
    Halted,
    Retry(String),
    Dead(String),
}

impl From<Halted> for Stop {
    fn from(_: Halted) -> Self {
        Stop::Halted
    }
}

impl From<Error> for Stop {
    fn from(e: Error) -> Self {
        match &e {
            Error::Internal(inner) if inner.downcast_ref::<LeaseLost>().is_some() => Stop::Halted,
            _ => Stop::Retry(e.to_string()),
        }
    }
}

fn zoom_retry(e: ZoomError) -> Stop {
    Stop::Retry(e.to_string())
}

fn peer_retry(peer: &str) -> impl Fn(tonic::Status) -> Stop + '_ {
    move |s| Stop::Retry(format!("{peer} answered {:?}", s.code()))
}

/// Reminder policy: 24 hours before the visit; for a visit booked closer than that, one hour
/// before, when that is still more than a quarter of an hour away; otherwise none (the confirmation,
/// just sent, carries the time and the link).
pub(crate) fn reminder_time(start: DateTime<Utc>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let day_before = start - Duration::hours(24);
    if day_before > now {
        return Some(day_before);
    }
    let hour_before = start - Duration::hours(1);
    (hour_before > now + Duration::minutes(15)).then_some(hour_before)
}

/// The reminder of the appointment's current time: keyed by the move count, so moving back to an
/// earlier time plans a fresh one.
fn reminder_key(a: &Appointment) -> String {
    format!("appointment:{}:reminder:{}", a.id, a.schedule_version)
}

async fn drive(app: &Shared, job: &Job) -> Result<(), Stop> {
    let id = job
        .key
        .strip_prefix("appointment:")
        .and_then(|id| Uuid::parse_str(id).ok())
        .ok_or_else(|| Stop::Dead(format!("not an appointment job: {}", job.key)))?;
    let Some(a) = app.store.get(id).await? else {
        return Err(Stop::Dead("the appointment does not exist".into()));
    };
    let run = Run { app, job };
    match a.status.as_str() {
        "pending" | "booked" => run.booked(a).await,
        "cancelled" => run.cancelled(a).await,
        // failed, completed, no-show: nothing more to make.
        _ => Ok(()),
    }
}

struct Run<'a> {
    app: &'a Shared,
    job: &'a Job,
}

impl Run<'_> {
    async fn record(&self, id: Uuid, step: Progress<'_>) -> Result<(), Stop> {
        Ok(self.app.store.record(&self.job.lease, id, step).await?)
    }

    fn check(&self, step: &str, at: FailAt) -> Result<(), Halted> {
        self.app.failpoints.check(step, at)
    }

    async fn reload(&self, id: Uuid) -> Result<Appointment, Stop> {
        self.app
            .store
            .get(id)
            .await?
            .ok_or_else(|| Stop::Dead("the appointment disappeared".into()))
    }

    fn actor() -> Actor {
        Actor {
            subject: SERVICE.into(),
            role: "service".into(),
        }
    }

    /// Still a booking (a cancel committed meanwhile ends this run; the run the cancel asked for
    /// undoes what was made).
    async fn still_booking(&self, id: Uuid) -> Result<Option<Appointment>, Stop> {
        let a = self.reload(id).await?;
        Ok(matches!(a.status.as_str(), "pending" | "booked").then_some(a))
    }

    async fn booked(&self, a: Appointment) -> Result<(), Stop> {
        // A booking still not made when its visit begins is given up, and what was made undone.
        if a.status == "pending" && a.start_time <= Utc::now() {
            self.undo(&a).await?;
            return self.fail(&a, "expired").await;
        }
        let Some(a) = self.meeting(a).await? else { return Ok(()) };
        let Some(a) = self.canvas_appointment(a).await? else {
            return Ok(());
        };
        if a.status == "pending" {
            self.record(a.id, Progress::Booked).await?;
        }
        self.tell(&a).await
    }

    /// The Zoom meeting, at the row's time.
    async fn meeting(&self, mut a: Appointment) -> Result<Option<Appointment>, Stop> {
        let app = self.app;
        let reference = a.id.to_string();
        if a.zoom_meeting_id.is_none() {
            let found = match a.zoom_create_sent_at {
                Some(_) => app
                    .zoom
                    .find_meeting(&a.zoom_user, &reference)
                    .await
                    .map_err(zoom_retry)?,
                None => None,
            };
            let looked_up = found.is_some();
            let meeting = match found {
                Some(m) => m,
                None => {
                    self.check("zoom_create", FailAt::BeforeCall)?;
                    self.record(a.id, Progress::ZoomCreateSent).await?;
                    let created = app
                        .zoom
                        .create_meeting(&NewMeeting {
                            host: &a.zoom_user,
                            topic: a.zoom_topic.clone(),
                            start: a.start_time,
                            duration_minutes: a.duration_minutes(),
                            reference: &reference,
                        })
                        .await;
                    match created {
                        Ok(m) => m,
                        // Zoom will not make it (an unknown host, say): nothing exists anywhere yet.
                        Err(ZoomError::Refused { status, code, .. }) => {
                            tracing::warn!(appointment = %a.id, status, code, "zoom refused the meeting; the booking failed");
                            self.record(a.id, Progress::ZoomGone).await?;
                            self.fail(&a, "zoom_refused").await?;
                            return Ok(None);
                        }
                        Err(e) => return Err(zoom_retry(e)),
                    }
                }
            };
            self.check("zoom_create", FailAt::AfterCall)?;
            // A meeting found by lookup has the start its create was sent with, which a move may
            // have changed since: leave it unknown, so the meeting is moved to the row's time.
            let start = (!looked_up).then_some(a.start_time);
            self.record(
                a.id,
                Progress::ZoomMeeting {
                    id: meeting.id,
                    join_url: &meeting.join_url,
                    password: &meeting.password,
                    start,
                },
            )
            .await?;
            self.check("zoom_create", FailAt::AfterCommit)?;
            let Some(now) = self.still_booking(a.id).await? else {
                return Ok(None);
            };
            a = now;
        }
        if let (Some(meeting), false) = (a.zoom_meeting_id, a.zoom_start == Some(a.start_time)) {
            if !app
                .zoom
                .move_meeting(meeting, a.start_time, a.duration_minutes())
                .await
                .map_err(zoom_retry)?
            {
                return Err(Stop::Dead(format!(
                    "zoom meeting {meeting} is gone; an operator must rebook"
                )));
            }
            self.record(a.id, Progress::ZoomMoved(a.start_time)).await?;
        }
        Ok(Some(a))
    }

    /// The Canvas Appointment, with the meeting's link, at the row's time.
    async fn canvas_appointment(&self, mut a: Appointment) -> Result<Option<Appointment>, Stop> {
        let app = self.app;
        if a.canvas_appointment_id.is_none() {
            self.check("canvas_create", FailAt::BeforeCall)?;
            // A retry sends the first request's times (canvas compares a repeat with the first);
            // a move since is made by the update below.
            let (start, end) = match (a.canvas_sent_start, a.canvas_sent_end) {
                (Some(s), Some(e)) => (s, e),
                _ => {
                    let (start, end) = (a.start_time, a.end_time);
                    self.record(a.id, Progress::CanvasCreateSent { start, end }).await?;
                    (start, end)
                }
            };
            match self.create_in_canvas(&a, start, end).await {
                Ok(made) => {
                    self.check("canvas_create", FailAt::AfterCall)?;
                    self.record(a.id, Progress::CanvasAppointment { id: &made, start, end })
                        .await?;
                    self.check("canvas_create", FailAt::AfterCommit)?;
                }
                Err(s) if outcome_unknown(&s) => {
                    // Canvas searched for what the earlier create may have made and found nothing:
                    // the next attempt creates under a fresh key.
                    self.record(a.id, Progress::CanvasNewKey).await?;
                    return Err(Stop::Retry("canvas found no appointment from an earlier create".into()));
                }
                Err(s) if refused(&s) => {
                    tracing::warn!(appointment = %a.id, code = ?s.code(), "canvas refused the appointment; deleting its meeting");
                    if let Some(m) = a.zoom_meeting_id {
                        app.zoom.delete_meeting(m).await.map_err(zoom_retry)?;
                    }
                    self.record(a.id, Progress::ZoomGone).await?;
                    self.fail(&a, "canvas_refused").await?;
                    return Ok(None);
                }
                Err(s) => return Err(peer_retry("canvas")(s)),
            }
            let Some(now) = self.still_booking(a.id).await? else {
                return Ok(None);
            };
            a = now;
        }
        if a.canvas_start != Some(a.start_time) {
            let (Some(canvas_id), Some(was_start), Some(was_end)) =
                (&a.canvas_appointment_id, a.canvas_start, a.canvas_end)
            else {
                return Err(Stop::Dead("the Canvas appointment's times were never recorded".into()));
            };
            let moved = app
                .canvas
                .clone()
                .update_appointment(app.request(canvas::UpdateAppointmentRequest {
                    id: canvas_id.clone(),
                    start_time: Some(era_kit::time::timestamp(a.start_time)),
                    end_time: Some(era_kit::time::timestamp(a.end_time)),
                    actor: Some(Self::actor()),
                    ..Default::default()
                }))
                .await;
            match moved {
                Ok(_) => {
                    self.record(
                        a.id,
                        Progress::CanvasMoved {
                            start: a.start_time,
                            end: a.end_time,
                        },
                    )
                    .await?
                }
                Err(s) if refused(&s) => {
                    // Back to the time Canvas has; the next run moves the meeting back too.
                    tracing::warn!(appointment = %a.id, "canvas refused the move; the appointment keeps its time");
                    self.record(
                        a.id,
                        Progress::MoveRefused {
                            start: was_start,
                            end: was_end,
                            refused: a.start_time,
                        },
                    )
                    .await?;
                    let mut conn = app.store.pool().acquire().await.map_err(Error::from)?;
                    app.queue
                        .request(&mut conn, "appointment", &a.job_key(), None)
                        .await
                        .map_err(Error::from)?;
                    return Ok(None);
                }
                Err(s) => return Err(peer_retry("canvas")(s)),
            }
        }
        Ok(Some(a))
    }

    /// What the patient is told: a confirmation of the time and a reminder before it. Each is
    /// recorded before it is sent (a cancellation after that point withdraws and announces) and
    /// sent again on every run, which its dedupe key makes a no-op once it is recorded there.
    async fn tell(&self, a: &Appointment) -> Result<(), Stop> {
        self.check("notify", FailAt::BeforeCall)?;
        if a.confirmed_start != Some(a.start_time) {
            self.record(a.id, Progress::Confirmed(a.start_time)).await?;
        }
        let confirmed = format!("appointment:{}:confirmed:{}", a.id, a.schedule_version);
        self.notify(a, notify::NotificationType::AppointmentConfirmed, &confirmed, None)
            .await?;
        self.check("notify", FailAt::AfterCall)?;
        let wanted = reminder_key(a);
        let at = if a.reminder_key.as_deref() == Some(wanted.as_str()) {
            a.reminder_at
        } else {
            if let Some(old) = &a.reminder_key {
                self.withdraw(old).await?;
            }
            let at = reminder_time(a.start_time, Utc::now());
            let key = at.map(|_| wanted.as_str());
            if key.is_some() || a.reminder_key.is_some() {
                self.record(a.id, Progress::Reminder { key, at }).await?;
            }
            at
        };
        if let Some(at) = at {
            self.notify(a, notify::NotificationType::AppointmentReminder, &wanted, Some(at))
                .await?;
        }
        self.check("notify", FailAt::AfterCommit)?;
        Ok(())
    }

    async fn create_in_canvas(
        &self,
        a: &Appointment,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<String, tonic::Status> {
        let made = self
            .app
            .canvas
            .clone()
            .create_appointment(self.app.request(canvas::CreateAppointmentRequest {
                canvas_patient_id: a.canvas_patient_id.clone(),
                practitioner_id: a.practitioner_id.clone(),
                location_id: a.location_id.clone(),
                start_time: Some(era_kit::time::timestamp(start)),
                end_time: Some(era_kit::time::timestamp(end)),
                meeting_url: a.zoom_join_url.clone().unwrap_or_default(),
                description: "Telehealth visit".into(),
                // One Canvas appointment per booking: canvas answers a repeat with the first.
                idempotency_key: canvas_key(a),
                actor: Some(Self::actor()),
                ..Default::default()
            }))
            .await?
            .into_inner();
        Ok(made.appointment.map(|c| c.id).unwrap_or_default())
    }

    async fn fail(&self, a: &Appointment, reason: &str) -> Result<(), Stop> {
        self.record(a.id, Progress::Failed(reason)).await
    }

    async fn notify(
        &self,
        a: &Appointment,
        kind: notify::NotificationType,
        dedupe_key: &str,
        send_at: Option<DateTime<Utc>>,
    ) -> Result<(), Stop> {
        let zone = zones::parse(&a.time_zone).unwrap_or(chrono_tz::UTC);
        let mut variables =
            std::collections::HashMap::from([("appointment_time".to_owned(), zones::display(a.start_time, zone))]);
        if let Some(url) = &a.zoom_join_url {
            variables.insert("join_url".into(), url.clone());
        }
        self.app
            .notifications
            .clone()
            .send_notification(self.app.request(notify::SendNotificationRequest {
                notification_type: kind as i32,
                canvas_patient_id: a.canvas_patient_id.clone(),
                variables,
                reference: a.id.to_string(),
                dedupe_key: dedupe_key.to_owned(),
                send_at: send_at.map(era_kit::time::timestamp),
                actor: Some(Self::actor()),
                ..Default::default()
            }))
            .await
            .map_err(peer_retry("notifications"))?;
        Ok(())
    }

    async fn withdraw(&self, dedupe_key: &str) -> Result<(), Stop> {
        let withdrawn = self
            .app
            .notifications
            .clone()
            .cancel_notification(self.app.request(notify::CancelNotificationRequest {
                dedupe_key: dedupe_key.to_owned(),
                actor: Some(Self::actor()),
                ..Default::default()
            }))
            .await;
        match withdrawn {
            Ok(_) => Ok(()),
            // Never recorded (its send was lost before it reached notifications): nothing to withdraw.
            Err(s) if s.code() == Code::NotFound => Ok(()),
            Err(s) => Err(peer_retry("notifications")(s)),
        }
    }

    async fn cancelled(&self, a: Appointment) -> Result<(), Stop> {
        // The recorded reminder, and the current time's (it may have been sent before the run
        // that sent it could record it).
        let current = reminder_key(&a);
        self.withdraw(&current).await?;
        if let Some(old) = a.reminder_key.as_deref().filter(|k| *k != current) {
            self.withdraw(old).await?;
        }
        if a.reminder_key.is_some() {
            self.record(a.id, Progress::Reminder { key: None, at: None }).await?;
        }
        self.undo(&a).await?;
        if a.confirmed_start.is_some() && !a.cancellation_notified {
            let key = format!("appointment:{}:cancelled", a.id);
            self.notify(&a, notify::NotificationType::AppointmentCancelled, &key, None)
                .await?;
            self.record(a.id, Progress::CancellationNotified).await?;
        }
        Ok(())
    }

    /// Deletes the meeting and cancels the Canvas Appointment, including ones whose create was
    /// never answered.
    async fn undo(&self, a: &Appointment) -> Result<(), Stop> {
        let app = self.app;
        if !a.zoom_deleted {
            let meeting = match (a.zoom_meeting_id, a.zoom_create_sent_at) {
                (Some(m), _) => Some(m),
                // A create whose answer never came back may have made one.
                (None, Some(_)) => app
                    .zoom
                    .find_meeting(&a.zoom_user, &a.id.to_string())
                    .await
                    .map_err(zoom_retry)?
                    .map(|m| m.id),
                (None, None) => None,
            };
            if let Some(m) = meeting {
                app.zoom.delete_meeting(m).await.map_err(zoom_retry)?;
            }
            if meeting.is_some() || a.zoom_create_sent_at.is_some() {
                self.record(a.id, Progress::ZoomGone).await?;
            }
        }
        if !a.canvas_cancelled && (a.canvas_appointment_id.is_some() || a.canvas_create_sent) {
            let canvas_id = match (&a.canvas_appointment_id, a.canvas_sent_start, a.canvas_sent_end) {
                (Some(c), _, _) => Some(c.clone()),
                // A create whose answer never came back: its key answers the appointment it made
                // (or makes it, to be cancelled at once); a refusal, or canvas finding nothing it
                // made, means there is none.
                (None, Some(start), Some(end)) => match self.create_in_canvas(a, start, end).await {
                    Ok(c) => Some(c),
                    Err(s) if refused(&s) || outcome_unknown(&s) => None,
                    Err(s) => return Err(peer_retry("canvas")(s)),
                },
                (None, _, _) => None,
            };
            if let Some(c) = canvas_id {
                app.canvas
                    .clone()
                    .cancel_appointment(app.request(canvas::CancelAppointmentRequest {
                        id: c,
                        reason: "Cancelled through YourEra".into(),
                        actor: Some(Self::actor()),
                    }))
                    .await
                    .map_err(peer_retry("canvas"))?;
            }
            self.record(a.id, Progress::CanvasCancelled).await?;
        }
        Ok(())
    }
}

/// Canvas refused for good (the time taken, a field it will not accept), as opposed to an outage.
fn refused(s: &tonic::Status) -> bool {
    let retry_reason = matches!(
        era_kit::error::reason_of(s).as_deref(),
        Some("WRITE_OUTCOME_UNKNOWN" | "IDEMPOTENCY_KEY_REUSED")
    );
    matches!(
        s.code(),
        Code::FailedPrecondition | Code::InvalidArgument | Code::NotFound
    ) && !retry_reason
}

/// Canvas does not know whether an earlier create under the key made an appointment, and its search
/// for one (patient, practitioner, start) found none.
fn outcome_unknown(s: &tonic::Status) -> bool {
    era_kit::error::reason_of(s).as_deref() == Some("WRITE_OUTCOME_UNKNOWN")
}

/// The key canvas dedupes the appointment's create by; a new version after a create found nothing.
fn canvas_key(a: &Appointment) -> String {
    match a.canvas_key_version {
        0 => format!("appointment-{}", a.id),
        v => format!("appointment-{}-{v}", a.id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reminder_comes_a_day_before_or_an_hour_before_a_late_booking() {
        let now: DateTime<Utc> = "2027-01-04T12:00:00Z".parse().unwrap();
        let h = |n| now + Duration::hours(n);
        assert_eq!(reminder_time(h(72), now), Some(h(48)));
        assert_eq!(reminder_time(h(10), now), Some(h(9)));
        assert_eq!(reminder_time(now + Duration::minutes(70), now), None);
    }
}
