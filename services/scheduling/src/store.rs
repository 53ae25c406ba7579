//! The appointments table: the booking's intent and, beside it, what the vendors have been told.

use chrono::{DateTime, Utc};
use era_kit::{
    jobs::{FenceError, Lease},
    time::Keyset,
};
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::error::{Error, Result};

#[derive(Clone, sqlx::FromRow)]
pub(crate) struct Appointment {
    pub id: Uuid,
    pub canvas_patient_id: String,
    pub practitioner_id: String,
    pub practitioner_name: String,
    pub location_id: String,
    pub zoom_user: String,
    pub zoom_topic: String,
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    pub time_zone: String,
    pub practitioner_time_zone: String,
    pub status: String,
    pub failure_reason: Option<String>,
    pub cancellation_reason: Option<String>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub created_by_role: String,
    pub created_by_subject: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub zoom_meeting_id: Option<i64>,
    pub zoom_join_url: Option<String>,
    pub zoom_password: Option<String>,
    pub zoom_start: Option<DateTime<Utc>>,
    pub zoom_create_sent_at: Option<DateTime<Utc>>,
    pub zoom_deleted: bool,
    pub canvas_appointment_id: Option<String>,
    pub canvas_start: Option<DateTime<Utc>>,
    pub canvas_end: Option<DateTime<Utc>>,
    pub canvas_create_sent: bool,
    pub canvas_key_version: i32,
    pub canvas_sent_start: Option<DateTime<Utc>>,
    pub canvas_sent_end: Option<DateTime<Utc>>,
    pub schedule_version: i32,
    pub canvas_cancelled: bool,
    pub confirmed_start: Option<DateTime<Utc>>,
    pub reminder_key: Option<String>,
    pub reminder_at: Option<DateTime<Utc>>,
    pub cancellation_notified: bool,
}

// The join link and passcode let anyone into the visit: never in Debug (and so never in a log).
impl std::fmt::Debug for Appointment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Appointment")
            .field("id", &self.id)
            .field("status", &self.status)
            .field("start_time", &self.start_time)
            .field("zoom_meeting_id", &self.zoom_meeting_id)
            .field("canvas_appointment_id", &self.canvas_appointment_id)
            .finish_non_exhaustive()
    }
}

impl Appointment {
    pub(crate) fn duration_minutes(&self) -> i64 {
        (self.end_time - self.start_time).num_minutes()
    }

    /// The job that makes the vendors match this row.
    pub(crate) fn job_key(&self) -> String {
        job_key(self.id)
    }
}

pub(crate) fn job_key(id: Uuid) -> String {
    format!("appointment:{id}")
}

/// What a booking records before any vendor hears of it.
#[derive(Clone, Debug)]
pub(crate) struct NewAppointment {
    pub id: Uuid,
    pub canvas_patient_id: String,
    pub practitioner_id: String,
    pub practitioner_name: String,
    pub location_id: String,
    pub zoom_user: String,
    pub zoom_topic: String,
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    pub time_zone: String,
    pub practitioner_time_zone: String,
    pub idempotency_key: Option<String>,
    pub created_by_role: String,
    pub created_by_subject: String,
}

/// The list's filters.
#[derive(Clone, Debug, Default)]
pub(crate) struct Filter {
    pub canvas_patient_id: Option<String>,
    pub practitioner_id: Option<String>,
    pub status: Option<&'static str>,
    pub start_from: Option<DateTime<Utc>>,
    pub start_to: Option<DateTime<Utc>>,
}

/// A unique violation on the held-slot index: the practitioner's time is taken.
pub(crate) fn slot_taken(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.constraint() == Some("appointments_held_slot"))
}

pub(crate) fn key_taken(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.constraint() == Some("appointments_idempotency_key_key"))
}

#[derive(Clone, Debug)]
pub(crate) struct Store {
    pool: PgPool,
}

impl Store {
    pub(crate) fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub(crate) async fn get(&self, id: Uuid) -> Result<Option<Appointment>> {
        Ok(sqlx::query_as("select * from appointments where id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub(crate) async fn by_key(&self, key: &str) -> Result<Option<Appointment>> {
        Ok(sqlx::query_as("select * from appointments where idempotency_key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Inserts a pending appointment in `conn`'s transaction.
    pub(crate) async fn insert(&self, conn: &mut PgConnection, a: &NewAppointment) -> sqlx::Result<()> {
        sqlx::query(
            "insert into appointments (id, canvas_patient_id, practitioner_id, practitioner_name, location_id,
                 zoom_user, zoom_topic, start_time, end_time, time_zone, practitioner_time_zone, status,
                 idempotency_key, created_by_role, created_by_subject)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'pending', $12, $13, $14)",
        )
        .bind(a.id)
        .bind(&a.canvas_patient_id)
        .bind(&a.practitioner_id)
        .bind(&a.practitioner_name)
        .bind(&a.location_id)
        .bind(&a.zoom_user)
        .bind(&a.zoom_topic)
        .bind(a.start_time)
        .bind(a.end_time)
        .bind(&a.time_zone)
        .bind(&a.practitioner_time_zone)
        .bind(&a.idempotency_key)
        .bind(&a.created_by_role)
        .bind(&a.created_by_subject)
        .execute(conn)
        .await?;
        Ok(())
    }

    /// Held times of these practitioners overlapping `[from, to)`: what availability subtracts.
    pub(crate) async fn held(
        &self,
        practitioners: &[String],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(String, DateTime<Utc>, DateTime<Utc>)>> {
        Ok(sqlx::query_as(
            "select practitioner_id, start_time, end_time from appointments
             where practitioner_id = any($1) and status in ('pending', 'booked')
               and start_time < $3 and end_time > $2",
        )
        .bind(practitioners)
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?)
    }

    /// A page of appointments, latest start first.
    pub(crate) async fn list(&self, f: &Filter, after: Option<Keyset>, limit: i64) -> Result<Vec<Appointment>> {
        let mut q: QueryBuilder<'_, Postgres> = QueryBuilder::new("select * from appointments where true");
        if let Some(p) = &f.canvas_patient_id {
            q.push(" and canvas_patient_id = ").push_bind(p.clone());
        }
        if let Some(p) = &f.practitioner_id {
            q.push(" and practitioner_id = ").push_bind(p.clone());
        }
        if let Some(s) = f.status {
            q.push(" and status = ").push_bind(s);
        }
        if let Some(t) = f.start_from {
            q.push(" and start_time >= ").push_bind(t);
        }
        if let Some(t) = f.start_to {
            q.push(" and start_time < ").push_bind(t);
        }
        if let Some((at, id)) = after {
            q.push(" and (start_time, id) < (")
                .push_bind(at)
                .push(", ")
                .push_bind(id)
                .push(")");
        }
        q.push(" order by start_time desc, id desc limit ").push_bind(limit);
        Ok(q.build_query_as().fetch_all(&self.pool).await?)
    }

    /// Booked visits to read back from Canvas, those read longest ago first, and marks them read:
    /// the visit-status worker's work. Upcoming visits are read too (staff may cancel them in
    /// Canvas); visits Canvas never settles go to the back of the queue, and after `give_up` past
    /// their start they are no longer read.
    pub(crate) async fn to_check(&self, limit: i64, give_up: chrono::Duration) -> Result<Vec<Appointment>> {
        Ok(sqlx::query_as(
            "with due as (
                 select id from appointments
                 where status = 'booked' and start_time > now() - $2 and canvas_appointment_id is not null
                 order by status_checked_at nulls first, start_time
                 limit $1
                 for update skip locked)
             update appointments set status_checked_at = now()
             from due where appointments.id = due.id
             returning appointments.*",
        )
        .bind(limit)
        .bind(give_up)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Sets a visit's outcome read from Canvas, unless the row moved on meanwhile. A cancellation
    /// asks for the appointment's job in the same transaction, so the meeting and the reminder go.
    pub(crate) async fn settle(&self, queue: &era_kit::jobs::Queue, id: Uuid, status: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "update appointments set status = $2, updated_at = now(),
                 cancelled_at = case when $2 = 'cancelled' then now() else cancelled_at end,
                 cancellation_reason = case when $2 = 'cancelled' then 'cancelled in Canvas' else cancellation_reason end
             where id = $1 and status = 'booked'",
        )
        .bind(id)
        .bind(status)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 1 && status == "cancelled" {
            queue.request(&mut tx, "appointment", &job_key(id), None).await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records one step of the booking job's progress, in a transaction that commits only while
    /// `lease` holds: a holder whose lease ran out records nothing.
    pub(crate) async fn record(&self, lease: &Lease, id: Uuid, step: Progress<'_>) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        lease.fence(&mut tx).await.map_err(|e| match e {
            FenceError::Lost(lost) => Error::Internal(lost.into()),
            FenceError::Db(e) => Error::Db(e),
        })?;
        let by_id = |sql| sqlx::query(sql).bind(id);
        let q = match step {
            Progress::ZoomCreateSent => by_id("update appointments set zoom_create_sent_at = now() where id = $1"),
            Progress::ZoomMeeting {
                id: meeting,
                join_url,
                password,
                start,
            } => by_id(
                "update appointments set zoom_meeting_id = $2, zoom_join_url = $3, zoom_password = $4,
                     zoom_start = $5, zoom_create_sent_at = null where id = $1",
            )
            .bind(meeting)
            .bind(join_url)
            .bind(password)
            .bind(start),
            Progress::ZoomMoved(start) => by_id("update appointments set zoom_start = $2 where id = $1").bind(start),
            Progress::ZoomGone => {
                by_id("update appointments set zoom_deleted = true, zoom_create_sent_at = null where id = $1")
            }
            Progress::CanvasCreateSent { start, end } => by_id(
                "update appointments set canvas_create_sent = true, canvas_sent_start = $2, canvas_sent_end = $3
                 where id = $1",
            )
            .bind(start)
            .bind(end),
            Progress::CanvasAppointment { id: canvas, start, end } => by_id(
                "update appointments set canvas_appointment_id = $2, canvas_start = $3, canvas_end = $4 where id = $1",
            )
            .bind(canvas)
            .bind(start)
            .bind(end),
            Progress::CanvasMoved { start, end } => {
                by_id("update appointments set canvas_start = $2, canvas_end = $3 where id = $1")
                    .bind(start)
                    .bind(end)
            }
            Progress::CanvasCancelled => by_id("update appointments set canvas_cancelled = true where id = $1"),
            Progress::CanvasNewKey => {
                by_id("update appointments set canvas_key_version = canvas_key_version + 1 where id = $1")
            }
            Progress::Booked => by_id("update appointments set status = 'booked' where id = $1 and status = 'pending'"),
            Progress::Failed(reason) => by_id(
                "update appointments set status = 'failed', failure_reason = $2 where id = $1 and status = 'pending'",
            )
            .bind(reason),
            // Only the move Canvas refused is undone: a later move stands (the next run tries it).
            Progress::MoveRefused { start, end, refused } => by_id(
                "update appointments set start_time = $2, end_time = $3, failure_reason = 'move_refused_by_canvas',
                     schedule_version = schedule_version + 1
                 where id = $1 and start_time = $4",
            )
            .bind(start)
            .bind(end)
            .bind(refused),
            Progress::Confirmed(start) => {
                by_id("update appointments set confirmed_start = $2 where id = $1").bind(start)
            }
            Progress::Reminder { key, at } => {
                by_id("update appointments set reminder_key = $2, reminder_at = $3 where id = $1")
                    .bind(key)
                    .bind(at)
            }
            Progress::CancellationNotified => {
                by_id("update appointments set cancellation_notified = true where id = $1")
            }
        };
        q.execute(&mut *tx).await?;
        sqlx::query("update appointments set updated_at = now() where id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// One step of the booking job, as [`Store::record`] writes it. (No `Debug`: it carries the join
/// link.)
pub(crate) enum Progress<'a> {
    /// A create is about to go to Zoom: if its answer never arrives, look before creating again.
    ZoomCreateSent,
    ZoomMeeting {
        id: i64,
        join_url: &'a str,
        password: &'a str,
        /// `None` when the meeting's start is not known (found by lookup after a lost answer).
        start: Option<DateTime<Utc>>,
    },
    ZoomMoved(DateTime<Utc>),
    ZoomGone,
    /// A create is about to go to Canvas with these times; retries send the same.
    CanvasCreateSent {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
    CanvasAppointment {
        id: &'a str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
    CanvasMoved {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
    CanvasCancelled,
    /// Canvas found nothing an earlier create under the key made: the next create takes a new key.
    CanvasNewKey,
    Booked,
    Failed(&'a str),
    /// Canvas refused a move (to `refused`) for good: the appointment goes back to the time Canvas
    /// has.
    MoveRefused {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        refused: DateTime<Utc>,
    },
    Confirmed(DateTime<Utc>),
    Reminder {
        key: Option<&'a str>,
        at: Option<DateTime<Utc>>,
    },
    CancellationNotified,
}
