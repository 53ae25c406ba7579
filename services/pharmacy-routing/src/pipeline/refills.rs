//! Refills, once the first fill succeeded: the patient is reminded a few days before the due date;
//! on the due date a refill run (the prescription run's steps: the pharmacy re-decided live, the
//! saved card authorised and captured under the refill's own reference, the order placed, the
//! patient told) is recorded in the same commit that marks the refill due, so a crash never loses
//! or doubles one. A declined card is tried again on a schedule, then the refill is overdue. Admins
//! skip, pause, resume, cancel, process now and change the dose; every action is kept with who did
//! it, and a repeated idempotency key answers the first result.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use era_proto::{common::v1::Actor, notifications::v1 as notifications};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::{
    orders::{RefillRow, REFILL_COLUMNS},
    runs::{self, Inserted, NewRun, Run},
    Pipeline,
};
use crate::error::{Error, Result};

/// Who a refill the schedule starts acts as.
const SCHEDULE: &str = "refill-schedule";

/// An admin's action on a refill.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    Skip,
    Pause,
    Resume,
    Cancel,
    ProcessNow,
    Dose,
}

/// Statuses in which nothing is under way and nothing was ordered.
pub(crate) const OPEN: &[&str] = &["scheduled", "paused", "payment_failed", "overdue", "failed"];

impl Action {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Action::Skip => "skip",
            Action::Pause => "pause",
            Action::Resume => "resume",
            Action::Cancel => "cancel",
            Action::ProcessNow => "process_now",
            Action::Dose => "dose",
        }
    }

    fn done(self) -> &'static str {
        match self {
            Action::Skip => "skipped",
            Action::Pause => "paused",
            Action::Resume => "resumed",
            Action::Cancel => "cancelled",
            Action::ProcessNow => "processed now",
            Action::Dose => "given another dose",
        }
    }

    /// The statuses a refill must have for the action (the later refills it reaches too).
    fn applies_to(self) -> &'static [&'static str] {
        match self {
            Action::Skip | Action::Cancel | Action::Dose | Action::ProcessNow => OPEN,
            Action::Pause => &["scheduled", "payment_failed"],
            Action::Resume => &["paused"],
        }
    }

    /// Whether it reaches the later refills of the same prescription as well.
    fn reaches_later(self) -> bool {
        matches!(self, Action::Pause | Action::Resume | Action::Cancel | Action::Dose)
    }
}

/// An admin action, validated.
#[derive(Debug)]
pub(crate) struct ActionRequest {
    pub refill_id: Uuid,
    pub action: Action,
    pub dose_label: String,
    pub idempotency_key: String,
    pub actor: Actor,
}

#[derive(Debug)]
pub(crate) struct ActionResult {
    pub refill: RefillRow,
    pub changed: Vec<Uuid>,
    pub run: Option<Run>,
    pub existing: bool,
}

/// One entry of a refill's history, oldest first.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct HistoryRow {
    pub refill_id: Uuid,
    pub at: DateTime<Utc>,
    /// "run" or the action.
    pub kind: String,
    pub run_id: Option<Uuid>,
    pub run_status: String,
    pub failure_reason: String,
    pub actor: String,
    pub detail: String,
}

/// The runs and admin actions of these refills, oldest first.
pub(crate) async fn history(pool: &PgPool, refills: &[Uuid]) -> Result<Vec<HistoryRow>> {
    Ok(sqlx::query_as(
        "select refill_id, created_at as at, 'run' as kind, id as run_id, status as run_status, failure_reason,
             '' as actor, '' as detail
         from orchestration_runs where refill_id = any($1)
         union all
         select refill_id, created_at, action, run_id, '', '', actor_subject, detail
         from refill_actions where refill_id = any($1)
         order by at",
    )
    .bind(refills)
    .fetch_all(pool)
    .await?)
}

/// Moves the refill with its run's end, in the run's final commit: ordered; or, after a declined
/// card, tried again after the next wait of `retry` (overdue once they are used up); cancelled when
/// its prescription was stopped; failed (for an admin) otherwise.
pub(crate) async fn run_finished(tx: &mut Transaction<'_, Postgres>, run: &Run, retry: &[Duration]) -> Result<()> {
    let Some(refill) = run.refill_id else {
        return Ok(());
    };
    let attempts: i32 = sqlx::query_scalar("select attempts from refills where id = $1")
        .bind(refill)
        .fetch_one(&mut **tx)
        .await?;
    let (status, wait) = match (run.status.as_str(), run.failure_reason.as_str()) {
        ("succeeded", _) => ("ordered", None),
        (_, "payment_declined") => match retry.get(attempts.max(1) as usize - 1) {
            Some(wait) => ("payment_failed", Some(wait.as_secs_f64())),
            None => ("overdue", None),
        },
        (_, "prescription_stopped") => ("cancelled", None),
        _ => ("failed", None),
    };
    sqlx::query(
        "update refills set status = $2, updated_at = now(),
             next_attempt_at = case when $3::float8 is null then null else now() + make_interval(secs => $3) end
         where id = $1 and status = 'due' and run_id = $4",
    )
    .bind(refill)
    .bind(status)
    .bind(wait)
    .bind(run.id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Pipeline {
    /// One turn of the refill clock.
    pub(crate) async fn refill_tick(self: &Arc<Self>) -> Result<()> {
        self.remind_refills().await?;
        self.start_due_refills().await?;
        self.tell_overdue_refills().await
    }

    /// The refill_due reminder, once per refill, `refill_reminder_days` before its due date.
    async fn remind_refills(&self) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let due: Vec<RefillRow> = sqlx::query_as(&format!(
            "select {REFILL_COLUMNS} from refills
             where status = 'scheduled' and reminded_at is null
               and due_at > now() and due_at <= now() + make_interval(days => $1)
             order by due_at limit 50 for update skip locked"
        ))
        .bind(self.refill_reminder_days as i32)
        .fetch_all(&mut *tx)
        .await?;
        for r in &due {
            let variables = vec![
                ("medication", self.medication_name(&r.medication).await),
                ("due_date", r.due_at.format("%B %-d, %Y").to_string()),
            ];
            let key = format!("refill:{}:reminder", r.id);
            if self
                .tell(
                    &r.canvas_patient_id,
                    notifications::NotificationType::RefillDue,
                    key,
                    r.id,
                    variables,
                )
                .await
            {
                sqlx::query("update refills set reminded_at = now(), updated_at = now() where id = $1")
                    .bind(r.id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records a run for every refill that came due (or whose retry came), with the refill marked
    /// due in the same commit, then drives them.
    async fn start_due_refills(self: &Arc<Self>) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let due: Vec<RefillRow> = sqlx::query_as(&format!(
            "select {REFILL_COLUMNS} from refills
             where status in ('scheduled', 'payment_failed') and coalesce(next_attempt_at, due_at) <= now()
             order by coalesce(next_attempt_at, due_at) limit 20 for update skip locked"
        ))
        .fetch_all(&mut *tx)
        .await?;
        let mut started = Vec::new();
        for r in &due {
            if let Some(run) = self.start_refill_in(&mut tx, r, SCHEDULE).await? {
                started.push(run);
            }
        }
        tx.commit().await?;
        for run in started {
            tracing::info!(run = %run.id, refill = ?run.refill_id, "refill run recorded");
            self.start(run);
        }
        Ok(())
    }

    /// Tells the patient, once, that a refill is on hold because every retry was declined.
    async fn tell_overdue_refills(&self) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let overdue: Vec<(Uuid, String)> = sqlx::query_as(
            "select id, canvas_patient_id from refills where status = 'overdue' and overdue_notified_at is null
             limit 50 for update skip locked",
        )
        .fetch_all(&mut *tx)
        .await?;
        for (id, patient) in &overdue {
            let key = format!("refill:{id}:overdue");
            if self
                .tell(
                    patient,
                    notifications::NotificationType::RefillOverdue,
                    key,
                    *id,
                    Vec::new(),
                )
                .await
            {
                sqlx::query("update refills set overdue_notified_at = now() where id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records the refill's next run in `tx` and marks the refill due. The charge's reference is
    /// `refill:<id>`, and `refill:<id>:<attempt>` for a retry (payments charges a reference once,
    /// and a declined attempt's reference stays declined).
    async fn start_refill_in(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        r: &RefillRow,
        approved_by: &str,
    ) -> Result<Option<Run>> {
        let first: Option<(String, Option<String>)> = sqlx::query_as(
            "select run.practitioner_id, run.medication_request_id from pharmacy_orders o
             join orchestration_runs run on run.id = o.run_id where o.id = $1",
        )
        .bind(r.order_id)
        .fetch_optional(&mut **tx)
        .await?;
        let (practitioner, prescription) = first.unwrap_or_default();
        let attempt = r.attempts + 1;
        let reference = if attempt == 1 {
            format!("refill:{}", r.id)
        } else {
            format!("refill:{}:{attempt}", r.id)
        };
        let new = NewRun {
            id: Uuid::new_v4(),
            task_id: None,
            kind: "refill",
            canvas_patient_id: &r.canvas_patient_id,
            medication: &r.medication,
            dose_label: &r.dose_label,
            practitioner_id: &practitioner,
            note: None,
            approved_by,
            idempotency_key: "",
            owner: self.owner,
            lease_secs: self.lease_secs(),
            medication_request_id: prescription.as_deref(),
            target_run_id: None,
            cover_days: 0,
            refill_id: Some(r.id),
            payment_reference: Some(reference),
        };
        let Inserted::New(run) = runs::insert_in(tx, &new).await? else {
            return Ok(None);
        };
        sqlx::query(
            "update refills set status = 'due', run_id = $2, attempts = $3, next_attempt_at = null, updated_at = now()
             where id = $1",
        )
        .bind(r.id)
        .bind(run.id)
        .bind(attempt)
        .execute(&mut **tx)
        .await?;
        Ok(Some(run))
    }

    async fn medication_name(&self, id: &str) -> String {
        match self.snapshot().await {
            Ok(s) => s
                .medications
                .get(id)
                .map_or_else(|| id.to_owned(), |m| m.row.name.clone()),
            Err(_) => id.to_owned(),
        }
    }

    /// Sends a notification through the outbox (which retries the vendors); false when it could not
    /// be queued, so the clock tries again on its next turn (the key makes that one message).
    async fn tell(
        &self,
        patient: &str,
        kind: notifications::NotificationType,
        key: String,
        refill: Uuid,
        variables: Vec<(&str, String)>,
    ) -> bool {
        let req = self.request(notifications::SendNotificationRequest {
            notification_type: kind as i32,
            canvas_patient_id: patient.to_owned(),
            variables: variables.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            reference: refill.to_string(),
            dedupe_key: key,
            actor: Some(Actor {
                subject: SCHEDULE.into(),
                role: "system".into(),
            }),
            ..Default::default()
        });
        match self.notifications.clone().send_notification(req).await {
            Ok(_) => true,
            Err(s) => {
                tracing::warn!(%refill, code = ?s.code(), "a refill notice could not be queued");
                false
            }
        }
    }

    /// Does an admin's action on a refill (see the module's doc).
    pub(crate) async fn refill_action(self: &Arc<Self>, req: ActionRequest) -> Result<ActionResult> {
        for _ in 0..3 {
            if let Some(found) = self.earlier_action(&req).await? {
                return Ok(found);
            }
            if let Some(done) = self.act(&req).await? {
                return Ok(done);
            }
        }
        Err(Error::Busy)
    }

    /// The result of an earlier action with the same key, if any.
    async fn earlier_action(&self, req: &ActionRequest) -> Result<Option<ActionResult>> {
        if req.idempotency_key.is_empty() {
            return Ok(None);
        }
        let row: Option<(String, Option<Uuid>)> = sqlx::query_as(
            "select detail, run_id from refill_actions where refill_id = $1 and action = $2 and idempotency_key = $3",
        )
        .bind(req.refill_id)
        .bind(req.action.as_str())
        .bind(&req.idempotency_key)
        .fetch_optional(&self.pool)
        .await?;
        let Some((detail, run_id)) = row else {
            return Ok(None);
        };
        let refill = self.refill(req.refill_id).await?;
        let run = match run_id {
            Some(id) => runs::get(&self.pool, id).await?,
            None => None,
        };
        Ok(Some(ActionResult {
            refill,
            changed: changed_of(&detail),
            run,
            existing: true,
        }))
    }

    async fn refill(&self, id: Uuid) -> Result<RefillRow> {
        sqlx::query_as(&format!("select {REFILL_COLUMNS} from refills where id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| Error::NotFound {
                what: "refill",
                id: id.to_string(),
            })
    }

    /// The action, in one transaction with its audit row; `None` when a concurrent request with the
    /// same key recorded it first.
    async fn act(self: &Arc<Self>, req: &ActionRequest) -> Result<Option<ActionResult>> {
        let mut tx = self.pool.begin().await?;
        let refill: RefillRow = sqlx::query_as(&format!(
            "select {REFILL_COLUMNS} from refills where id = $1 for update"
        ))
        .bind(req.refill_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| Error::NotFound {
            what: "refill",
            id: req.refill_id.to_string(),
        })?;
        let not_actionable = || Error::RefillNotActionable {
            refill_id: refill.id.to_string(),
            status: refill.status.clone(),
            action: req.action.done(),
        };
        let mut run = None;
        let mut started = false;
        let changed: Vec<Uuid> = match req.action {
            Action::ProcessNow if matches!(refill.status.as_str(), "due" | "ordered") => {
                // Already under way or done: processing it again is the same refill.
                run = match refill.run_id {
                    Some(id) => runs::get(&self.pool, id).await?,
                    None => None,
                };
                Vec::new()
            }
            Action::ProcessNow if OPEN.contains(&refill.status.as_str()) => {
                run = self.start_refill_in(&mut tx, &refill, &req.actor.subject).await?;
                started = run.is_some();
                vec![refill.id]
            }
            Action::ProcessNow => return Err(not_actionable()),
            action => {
                if !action.applies_to().contains(&refill.status.as_str()) {
                    return Err(not_actionable());
                }
                if action == Action::Dose {
                    self.check_dose(&refill.medication, &req.dose_label).await?;
                }
                self.change(&mut tx, &refill, action, &req.dose_label).await?
            }
        };
        let detail = match req.action {
            Action::Dose => format!("dose {}; changed: {}", req.dose_label, ids(&changed)),
            _ if changed.is_empty() => format!("already {}", refill.status),
            _ => format!("changed: {}", ids(&changed)),
        };
        let recorded: Option<Uuid> = sqlx::query_scalar(
            "insert into refill_actions (id, refill_id, action, actor_subject, actor_role, idempotency_key, detail, run_id)
             values ($1, $2, $3, $4, $5, $6, $7, $8)
             on conflict (refill_id, action, idempotency_key) where idempotency_key <> '' do nothing
             returning id",
        )
        .bind(Uuid::new_v4())
        .bind(refill.id)
        .bind(req.action.as_str())
        .bind(&req.actor.subject)
        .bind(&req.actor.role)
        .bind(&req.idempotency_key)
        .bind(&detail)
        .bind(run.as_ref().map(|r| r.id))
        .fetch_optional(&mut *tx)
        .await?;
        if recorded.is_none() {
            return Ok(None);
        }
        tx.commit().await?;
        tracing::info!(refill = %refill.id, action = req.action.as_str(), changed = changed.len(), "refill action");
        if let (true, Some(run)) = (started, run.clone()) {
            self.start(run);
        }
        Ok(Some(ActionResult {
            refill: self.refill(refill.id).await?,
            changed,
            run,
            existing: !started && req.action == Action::ProcessNow,
        }))
    }

    /// Applies a status or dose change to the refill (and, for the actions that reach them, the
    /// later refills of the same prescription still in a status the action applies to).
    async fn change(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        refill: &RefillRow,
        action: Action,
        dose: &str,
    ) -> Result<Vec<Uuid>> {
        let set = match action {
            Action::Skip => "status = 'skipped'",
            Action::Pause => "status = 'paused'",
            Action::Resume => "status = 'scheduled', next_attempt_at = null",
            Action::Cancel => "status = 'cancelled'",
            Action::Dose => "dose_label = $5",
            Action::ProcessNow => {
                return Err(Error::Internal(anyhow::anyhow!(
                    "process-now starts a run; it changes no status here"
                )))
            }
        };
        let statuses: Vec<String> = action.applies_to().iter().map(|s| (*s).to_owned()).collect();
        let sql = format!(
            "update refills set {set}, updated_at = now()
             where order_id = $1 and (id = $2 or ($3 and sequence > $4)) and status = any($6)
             returning id"
        );
        Ok(sqlx::query_scalar(&sql)
            .bind(refill.order_id)
            .bind(refill.id)
            .bind(action.reaches_later())
            .bind(refill.sequence)
            .bind(dose)
            .bind(statuses)
            .fetch_all(&mut **tx)
            .await?)
    }

    async fn check_dose(&self, medication: &str, dose: &str) -> Result<()> {
        let snapshot = self.snapshot().await?;
        let labels: Vec<String> = snapshot
            .medications
            .get(medication)
            .map(|m| m.doses.iter().map(|d| d.label.clone()).collect())
            .unwrap_or_default();
        if labels.iter().any(|l| l == dose) {
            Ok(())
        } else {
            Err(Error::field(
                "dose_label",
                format!("must be one of the medication's doses: {}", labels.join("; ")),
            ))
        }
    }
}

fn ids(changed: &[Uuid]) -> String {
    changed.iter().map(Uuid::to_string).collect::<Vec<_>>().join(",")
}

/// The refill ids an action's detail names after "changed: ".
fn changed_of(detail: &str) -> Vec<Uuid> {
    detail
        .split("changed: ")
        .nth(1)
        .map(|list| {
            list.split(',')
                .filter_map(|id| Uuid::parse_str(id.trim()).ok())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_actions_detail_gives_back_what_it_changed() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        assert_eq!(changed_of(&format!("changed: {}", ids(&[a, b]))), [a, b]);
        assert_eq!(changed_of(&format!("dose 0.5 mg weekly; changed: {a}")), [a]);
        assert!(changed_of("already ordered").is_empty());
    }

    #[test]
    fn only_open_refills_can_be_acted_on() {
        for action in [Action::Skip, Action::Cancel, Action::Dose, Action::ProcessNow] {
            assert!(!action.applies_to().contains(&"ordered"), "{action:?}");
            assert!(!action.applies_to().contains(&"due"), "{action:?}");
        }
        assert_eq!(Action::Resume.applies_to(), ["paused"]);
        assert!(Action::Pause.reaches_later() && !Action::Skip.reaches_later());
    }
}
