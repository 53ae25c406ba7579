//! The runs' tables: a run written before its first effect, its steps, the fenced writes a worker
//! makes while it holds a run, and the claim that hands an unfinished run to a worker.

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::error::Result;

/// The order the steps run in, by kind. An approval authorises the card before the order goes to
/// the pharmacy and captures it once the pharmacy accepted (see the README's "Approval pipeline").
pub(crate) const APPROVE_STEPS: &[&str] = &[
    "medication_config",
    "patient_lookup",
    "prescriber_routing",
    "pharmacy_routing",
    "payment_authorization",
    "pharmacy_sync",
    "payment",
    "notification",
    "hp_note",
    "task_completion",
];
pub(crate) const DENY_STEPS: &[&str] = &["task_update", "notification"];
/// A prescription written in Canvas, and a refill: the approval's steps without the task's (there
/// is none, and the prescriber documented it in Canvas). A refill re-decides the route live.
pub(crate) const PRESCRIPTION_STEPS: &[&str] = &[
    "medication_config",
    "patient_lookup",
    "prescriber_routing",
    "pharmacy_routing",
    "payment_authorization",
    "pharmacy_sync",
    "payment",
    "notification",
];
/// A prescription stopped in Canvas: its fulfilment run is stopped first (it undoes what it did
/// before it paid), then what a finished one left is undone here.
pub(crate) const STOP_STEPS: &[&str] = &[
    "halt_fulfilment",
    "order_cancellation",
    "payment_review",
    "refill_cancellation",
];
/// The phase a failed run passes through to undo what it did before it is marked failed.
pub(crate) const COMPENSATION: &str = "compensation";
pub(crate) const DONE: &str = "done";

#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct Run {
    pub(crate) id: Uuid,
    /// The Rx Review task of an approval or denial.
    pub(crate) task_id: Option<String>,
    pub(crate) kind: String,
    pub(crate) canvas_patient_id: String,
    pub(crate) medication: String,
    pub(crate) dose_label: String,
    pub(crate) status: String,
    pub(crate) phase: String,
    pub(crate) failure_reason: String,
    pub(crate) warnings: Vec<String>,
    pub(crate) practitioner_id: String,
    pub(crate) patient_state: String,
    pub(crate) prescriber_id: String,
    pub(crate) pharmacy_id: String,
    pub(crate) amount_cents: i64,
    pub(crate) currency: String,
    pub(crate) charge_id: String,
    pub(crate) hp_note_id: String,
    pub(crate) note_ciphertext: Option<Vec<u8>>,
    pub(crate) note_nonce: Option<Vec<u8>>,
    pub(crate) note_key_version: Option<i32>,
    pub(crate) approved_by: String,
    pub(crate) generation: i64,
    pub(crate) attempts: i32,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
    pub(crate) medication_request_id: Option<String>,
    pub(crate) target_run_id: Option<Uuid>,
    pub(crate) refill_id: Option<Uuid>,
    pub(crate) payment_reference: Option<String>,
}

/// The steps of a run of `kind`, in order.
pub(crate) fn steps_of_kind(kind: &str) -> &'static [&'static str] {
    match kind {
        "deny" => DENY_STEPS,
        "prescription" | "refill" => PRESCRIPTION_STEPS,
        "stop" => STOP_STEPS,
        _ => APPROVE_STEPS,
    }
}

impl Run {
    pub(crate) fn steps(&self) -> &'static [&'static str] {
        steps_of_kind(&self.kind)
    }

    /// A run that orders and charges (and so can be stopped when its prescription is).
    pub(crate) fn fulfils(&self) -> bool {
        matches!(self.kind.as_str(), "approve" | "prescription" | "refill")
    }

    /// The reference payments keys the run's charge by (one charge per reference).
    pub(crate) fn payment_reference(&self) -> String {
        self.payment_reference
            .clone()
            .unwrap_or_else(|| format!("run:{}", self.id))
    }

    /// The step after `step`, or [`DONE`].
    pub(crate) fn after(&self, step: &str) -> &'static str {
        let steps = self.steps();
        steps
            .iter()
            .position(|s| *s == step)
            .and_then(|i| steps.get(i + 1))
            .copied()
            .unwrap_or(DONE)
    }

    pub(crate) fn finished(&self) -> bool {
        matches!(self.status.as_str(), "succeeded" | "failed" | "denied")
    }
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct StepRow {
    pub(crate) run_id: Uuid,
    pub(crate) name: String,
    pub(crate) status: String,
    pub(crate) detail: String,
    pub(crate) finished_at: Option<DateTime<Utc>>,
}

/// A run to record: everything known before the first step.
#[derive(Debug)]
pub(crate) struct NewRun<'a> {
    pub(crate) id: Uuid,
    pub(crate) task_id: Option<&'a str>,
    pub(crate) kind: &'a str,
    pub(crate) canvas_patient_id: &'a str,
    pub(crate) medication: &'a str,
    pub(crate) dose_label: &'a str,
    pub(crate) practitioner_id: &'a str,
    pub(crate) note: Option<era_kit::sealing::Sealed>,
    pub(crate) approved_by: &'a str,
    pub(crate) idempotency_key: &'a str,
    /// The replica that records it holds it first, for `lease_secs`.
    pub(crate) owner: Uuid,
    pub(crate) lease_secs: i64,
    pub(crate) medication_request_id: Option<&'a str>,
    pub(crate) target_run_id: Option<Uuid>,
    /// For a fulfilment: how many days back another fulfilment of the same patient and medication
    /// covers this one (the medication's supply).
    pub(crate) cover_days: i32,
    pub(crate) refill_id: Option<Uuid>,
    /// The charge's reference when it is not `run:<id>`.
    pub(crate) payment_reference: Option<String>,
}

/// What recording a run found.
#[derive(Debug)]
pub(crate) enum Inserted {
    New(Run),
    /// The task, or the prescription, already has a live run (or a stop).
    Taken,
    /// Another fulfilment of the same patient and medication covers this one: for an approval, a
    /// prescription written in Canvas; for a prescription, the approval it was written for (now
    /// linked to it).
    Covered(Run),
}

/// Records the run and its pending steps, unless the task or prescription already has a live run
/// or another fulfilment covers it. Approvals and prescriptions of one patient and medication take
/// the same lock, so the two paths never both order.
pub(crate) async fn insert(pool: &PgPool, run: &NewRun<'_>) -> Result<Inserted> {
    let mut tx = pool.begin().await?;
    let inserted = insert_in(&mut tx, run).await?;
    tx.commit().await?;
    Ok(inserted)
}

/// As [`insert`], in the caller's transaction (a refill's run is recorded with the refill's change).
pub(crate) async fn insert_in(tx: &mut Transaction<'_, Postgres>, run: &NewRun<'_>) -> Result<Inserted> {
    if matches!(run.kind, "approve" | "prescription") {
        sqlx::query("select pg_advisory_xact_lock(hashtextextended('fulfil:' || $1 || ':' || $2, 0))")
            .bind(run.canvas_patient_id)
            .bind(run.medication)
            .execute(&mut **tx)
            .await?;
        if let Some(covering) = covering(tx, run).await? {
            if run.kind == "prescription" {
                sqlx::query("update orchestration_runs set medication_request_id = $2 where id = $1")
                    .bind(covering.id)
                    .bind(run.medication_request_id)
                    .execute(&mut **tx)
                    .await?;
            }
            return Ok(Inserted::Covered(covering));
        }
    }
    let first = steps_of_kind(run.kind)[0];
    let inserted: Option<Run> = sqlx::query_as(
        "insert into orchestration_runs (id, task_id, kind, canvas_patient_id, medication, dose_label, status,
             phase, practitioner_id, note_ciphertext, note_nonce, note_key_version, approved_by, idempotency_key,
             lease_owner, lease_until, generation, medication_request_id, target_run_id, refill_id, payment_reference)
         values ($1, $2, $3, $4, $5, $6, 'running', $7, $8, $9, $10, $11, $12, $13, $14,
             now() + make_interval(secs => $15), 1, $16, $17, $18, $19)
         on conflict do nothing
         returning *",
    )
    .bind(run.id)
    .bind(run.task_id)
    .bind(run.kind)
    .bind(run.canvas_patient_id)
    .bind(run.medication)
    .bind(run.dose_label)
    .bind(first)
    .bind(run.practitioner_id)
    .bind(run.note.as_ref().map(|s| s.ciphertext.clone()))
    .bind(run.note.as_ref().map(|s| s.nonce.clone()))
    .bind(run.note.as_ref().map(|s| s.key_version as i32))
    .bind(run.approved_by)
    .bind(run.idempotency_key)
    .bind(run.owner)
    .bind(run.lease_secs as f64)
    .bind(run.medication_request_id)
    .bind(run.target_run_id)
    .bind(run.refill_id)
    .bind(&run.payment_reference)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(inserted) = inserted else {
        return Ok(Inserted::Taken);
    };
    for (position, name) in inserted.steps().iter().enumerate() {
        sqlx::query("insert into run_steps (run_id, position, name, status) values ($1, $2, $3, 'pending')")
            .bind(inserted.id)
            .bind(position as i32)
            .bind(name)
            .execute(&mut **tx)
            .await?;
    }
    Ok(Inserted::New(inserted))
}

/// The live fulfilment of the other path that covers `run` (see [`Inserted::Covered`]): a
/// prescription written in Canvas covers a later approval; an approval not yet linked to a
/// prescription covers the prescription written for it.
async fn covering(tx: &mut Transaction<'_, Postgres>, run: &NewRun<'_>) -> Result<Option<Run>> {
    let (other, unlinked) = if run.kind == "approve" {
        ("prescription", false)
    } else {
        ("approve", true)
    };
    Ok(sqlx::query_as(
        "select * from orchestration_runs
         where canvas_patient_id = $1 and medication = $2 and kind = $3
           and status in ('pending', 'running', 'succeeded')
           and created_at > now() - make_interval(days => $4)
           and (not $5 or medication_request_id is null)
         order by created_at desc limit 1",
    )
    .bind(run.canvas_patient_id)
    .bind(run.medication)
    .bind(other)
    .bind(run.cover_days)
    .bind(unlinked)
    .fetch_optional(&mut **tx)
    .await?)
}

/// The newest run of `kind` for a prescription, in any status.
pub(crate) async fn for_prescription(
    pool: &PgPool,
    medication_request_id: &str,
    kinds: &[&str],
) -> Result<Option<Run>> {
    let kinds: Vec<String> = kinds.iter().map(|k| (*k).to_owned()).collect();
    Ok(sqlx::query_as(
        "select * from orchestration_runs where medication_request_id = $1 and kind = any($2)
         order by created_at desc limit 1",
    )
    .bind(medication_request_id)
    .bind(kinds)
    .fetch_optional(pool)
    .await?)
}

/// Asks a fulfilment run to stop at its next step; true when it was still running.
pub(crate) async fn request_stop(pool: &PgPool, run: Uuid) -> Result<bool> {
    let live: Option<bool> = sqlx::query_scalar(
        "update orchestration_runs set stop_requested_at = coalesce(stop_requested_at, now())
         where id = $1 returning status in ('pending', 'running')",
    )
    .bind(run)
    .fetch_optional(pool)
    .await?;
    Ok(live.unwrap_or(false))
}

/// Whether the run was asked to stop (read afresh: the request comes from another run).
pub(crate) async fn stop_requested(pool: &PgPool, run: Uuid) -> Result<bool> {
    Ok(
        sqlx::query_scalar("select stop_requested_at is not null from orchestration_runs where id = $1")
            .bind(run)
            .fetch_optional(pool)
            .await?
            .unwrap_or(false),
    )
}

pub(crate) async fn get(pool: &PgPool, id: Uuid) -> Result<Option<Run>> {
    Ok(sqlx::query_as("select * from orchestration_runs where id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?)
}

/// The task's live run (pending, running, succeeded or denied), if any.
pub(crate) async fn live_for_task(pool: &PgPool, task_id: &str) -> Result<Option<Run>> {
    Ok(sqlx::query_as(
        "select * from orchestration_runs
         where task_id = $1 and status in ('pending', 'running', 'succeeded', 'denied')",
    )
    .bind(task_id)
    .fetch_optional(pool)
    .await?)
}

/// The task's run started with this client key, in any status.
pub(crate) async fn by_key(pool: &PgPool, task_id: &str, key: &str) -> Result<Option<Run>> {
    Ok(sqlx::query_as(
        "select * from orchestration_runs where task_id = $1 and idempotency_key = $2
         order by created_at desc limit 1",
    )
    .bind(task_id)
    .bind(key)
    .fetch_optional(pool)
    .await?)
}

/// The task's newest run that ended at or after `since` (so was live then).
pub(crate) async fn ended_since(pool: &PgPool, task_id: &str, since: DateTime<Utc>) -> Result<Option<Run>> {
    Ok(sqlx::query_as(
        "select * from orchestration_runs where task_id = $1 and updated_at >= $2
         order by created_at desc limit 1",
    )
    .bind(task_id)
    .bind(since)
    .fetch_optional(pool)
    .await?)
}

/// The database's clock, which every run's times are written with.
pub(crate) async fn db_now(pool: &PgPool) -> Result<DateTime<Utc>> {
    Ok(sqlx::query_scalar("select now()").fetch_one(pool).await?)
}

/// The steps of these runs, each run's in order.
pub(crate) async fn steps_of(pool: &PgPool, runs: &[Uuid]) -> Result<Vec<StepRow>> {
    Ok(sqlx::query_as(
        "select run_id, name, status, detail, finished_at from run_steps where run_id = any($1)
         order by run_id, position",
    )
    .bind(runs)
    .fetch_all(pool)
    .await?)
}

/// A newest-first page of one of the pipeline's tables: equality filters (a `None` matches all),
/// keyset paging on (created_at, id).
#[derive(Debug)]
pub(crate) struct Newest {
    pub(crate) filters: Vec<(&'static str, Option<String>)>,
    pub(crate) after: Option<era_kit::time::Keyset>,
    pub(crate) limit: i64,
}

/// The page `q` asks of `table` (a constant of ours, as are the filter columns).
pub(crate) async fn newest_first<T>(pool: &PgPool, table: &'static str, q: &Newest) -> Result<Vec<T>>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    let mut sql = format!("select * from {table} where ($1::timestamptz is null or (created_at, id) < ($1, $2))");
    for (i, (column, _)) in q.filters.iter().enumerate() {
        sql.push_str(&format!(" and (${n}::text is null or {column} = ${n})", n = i + 3));
    }
    sql.push_str(&format!(
        " order by created_at desc, id desc limit ${}",
        q.filters.len() + 3
    ));
    let (at, id) = q.after.unzip();
    let mut query = sqlx::query_as::<_, T>(&sql).bind(at).bind(id);
    for (_, value) in &q.filters {
        query = query.bind(value.clone());
    }
    Ok(query.bind(q.limit).fetch_all(pool).await?)
}

/// Why a held run's write did not happen: another replica took the run over (its lease ran out).
#[derive(Debug, thiserror::Error)]
#[error("the run's lease was taken over")]
pub(crate) struct Fenced;

/// A write under the holder's generation: begins a transaction that holds the run's row, or
/// answers [`Fenced`] when the generation moved on.
pub(crate) async fn fenced(
    pool: &PgPool,
    run: Uuid,
    generation: i64,
) -> Result<std::result::Result<Transaction<'static, Postgres>, Fenced>> {
    let mut tx = pool.begin().await?;
    let held: Option<i64> = sqlx::query_scalar("select generation from orchestration_runs where id = $1 for update")
        .bind(run)
        .fetch_optional(&mut *tx)
        .await?;
    if held != Some(generation) {
        return Ok(Err(Fenced));
    }
    Ok(Ok(tx))
}

/// Saves the run's findings and its phase, and one step's outcome, in `tx`.
pub(crate) async fn save(
    tx: &mut Transaction<'_, Postgres>,
    run: &Run,
    step: Option<(&str, &str, &str)>,
) -> Result<()> {
    sqlx::query(
        "update orchestration_runs set status = $2, phase = $3, failure_reason = $4, warnings = $5,
             patient_state = $6, prescriber_id = $7, pharmacy_id = $8, amount_cents = $9, currency = $10,
             charge_id = $11, hp_note_id = $12, practitioner_id = $13, updated_at = clock_timestamp(),
             lease_owner = case when $2 in ('succeeded', 'failed', 'denied') then null else lease_owner end,
             lease_until = case when $2 in ('succeeded', 'failed', 'denied') then null else lease_until end
         where id = $1",
    )
    .bind(run.id)
    .bind(&run.status)
    .bind(&run.phase)
    .bind(&run.failure_reason)
    .bind(&run.warnings)
    .bind(&run.patient_state)
    .bind(&run.prescriber_id)
    .bind(&run.pharmacy_id)
    .bind(run.amount_cents)
    .bind(&run.currency)
    .bind(&run.charge_id)
    .bind(&run.hp_note_id)
    .bind(&run.practitioner_id)
    .execute(&mut **tx)
    .await?;
    if let Some((name, status, detail)) = step {
        sqlx::query(
            "update run_steps set status = $3, detail = $4,
                 finished_at = case when $3 = 'pending' then null else now() end
             where run_id = $1 and name = $2",
        )
        .bind(run.id)
        .bind(name)
        .bind(status)
        .bind(detail)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Puts the run back for a later attempt (a peer or pharmacy was unavailable): the lease is
/// released so any replica's worker takes it when it is due.
pub(crate) async fn postpone(
    tx: &mut Transaction<'_, Postgres>,
    run: Uuid,
    step: &str,
    detail: &str,
    delay_secs: f64,
) -> Result<()> {
    sqlx::query(
        "update orchestration_runs set attempts = attempts + 1, lease_owner = null, lease_until = null,
             next_attempt_at = now() + make_interval(secs => $2), updated_at = now()
         where id = $1",
    )
    .bind(run)
    .bind(delay_secs)
    .execute(&mut **tx)
    .await?;
    sqlx::query("update run_steps set detail = $3 where run_id = $1 and name = $2")
        .bind(run)
        .bind(step)
        .bind(detail)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Renews the lease of a run held in `tx`, only while it has not run out.
pub(crate) async fn renew_lease(tx: &mut Transaction<'_, Postgres>, run: Uuid, lease_secs: i64) -> Result<bool> {
    let done = sqlx::query(
        "update orchestration_runs set lease_until = now() + make_interval(secs => $2)
         where id = $1 and lease_until > clock_timestamp()",
    )
    .bind(run)
    .bind(lease_secs as f64)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Extends the holder's lease; false when the generation moved on (the run was taken over).
pub(crate) async fn heartbeat(pool: &PgPool, run: Uuid, generation: i64, lease_secs: i64) -> Result<bool> {
    let done = sqlx::query(
        "update orchestration_runs set lease_until = now() + make_interval(secs => $3)
         where id = $1 and generation = $2 and lease_owner is not null and status in ('pending', 'running')",
    )
    .bind(run)
    .bind(generation)
    .bind(lease_secs as f64)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Takes the oldest due run whose lease is free or ran out, for `owner`, with a new generation.
pub(crate) async fn claim(pool: &PgPool, owner: Uuid, lease_secs: i64) -> Result<Option<Run>> {
    Ok(sqlx::query_as(
        "update orchestration_runs set lease_owner = $1, lease_until = now() + make_interval(secs => $2),
             generation = generation + 1
         where id = (
             select id from orchestration_runs
             where status in ('pending', 'running') and next_attempt_at <= now()
               and (lease_until is null or lease_until < now())
             order by next_attempt_at
             for update skip locked
             limit 1)
         returning *",
    )
    .bind(owner)
    .bind(lease_secs as f64)
    .fetch_optional(pool)
    .await?)
}
