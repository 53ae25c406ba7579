//! The approval pipeline: a practitioner's decision on an Rx Review task becomes a run, recorded
//! before its first side effect, whose steps are driven to the end by whichever replica holds it.
//!
//! Exactly once, whatever crashes: every effect goes through a call that is safe to repeat (keys
//! derived from the run and step for payments, notifications and Canvas; the task's status change is
//! a no-op when already made), except the pharmacy submission, which no pharmacy deduplicates: its
//! order row is marked before each call and a later attempt asks the pharmacy for the order by our
//! reference before it ever submits again. A replica holds a run under a lease it heartbeats; every
//! write checks the run's generation, so a replica whose lease was taken over stops at its next write.

pub(crate) mod callbacks;
pub(crate) mod orders;
pub(crate) mod prescriptions;
pub(crate) mod refills;
pub(crate) mod runs;
pub(crate) mod steps;
mod stop;
pub(crate) mod tracking;
mod worker;

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use era_kit::{
    auth::{Caller, InternalTokens},
    sealing::Keyring,
};
use era_proto::{
    canvas::v1::{self as canvas, canvas_service_client::CanvasServiceClient},
    common::v1::Actor,
    notifications::v1::notifications_service_client::NotificationsServiceClient,
    payments::v1::payments_service_client::PaymentsServiceClient,
};
use sqlx::PgPool;
use tokio::time::Instant;
use tonic::transport::Channel;
use uuid::Uuid;

use self::runs::{Inserted, NewRun, Run};
pub(crate) use self::worker::{run as run_worker, run_clock};
use crate::{
    config::{Config, FailAt, Failpoint},
    error::{Error, Result},
    pharmacies::PharmacyAdapter,
    store::{Matrix, Snapshot},
};

/// The caller the pipeline presents to its peers; the approving admin travels as the actor.
const SERVICE: &str = "era-pharmacy-routing";

#[derive(Debug)]
pub(crate) struct Pipeline {
    pool: PgPool,
    matrix: Arc<tokio::sync::OnceCell<Matrix>>,
    keys: Keyring,
    pharmacies: BTreeMap<String, Box<dyn PharmacyAdapter>>,
    canvas: CanvasServiceClient<Channel>,
    payments: PaymentsServiceClient<Channel>,
    notifications: NotificationsServiceClient<Channel>,
    tokens: InternalTokens,
    /// This replica, as the lease owner.
    owner: Uuid,
    lease: Duration,
    poll: Duration,
    sync_wait: Duration,
    retry_max: Duration,
    /// The waits before each retry of a refill whose card was declined.
    refill_retry: Vec<Duration>,
    refill_reminder_days: u32,
    /// FedEx, when configured; how long a tracking answer is served.
    fedex: Option<crate::carriers::fedex::Fedex>,
    tracking_cache: Duration,
    /// How long a possibly placed submission waits before we ask the pharmacy for it: past any
    /// request still in flight there.
    uncertain_wait: Duration,
    failpoint: Option<Failpoint>,
    /// Set when a failpoint fired: this replica's pipeline is "dead" and does nothing more.
    halted: AtomicBool,
}

/// Why driving a run stopped without finishing it: a failpoint fired, or another replica took it over.
#[derive(Debug)]
pub(crate) struct Stop;

impl Pipeline {
    pub(crate) fn new(
        config: &Config,
        pool: PgPool,
        matrix: Arc<tokio::sync::OnceCell<Matrix>>,
    ) -> anyhow::Result<Self> {
        let err = |e: era_kit::config::ConfigError| anyhow::anyhow!("{e}");
        let pharmacies = config
            .pharmacies
            .adapters()
            .map_err(err)?
            .into_iter()
            .map(|a| (a.pharmacy_id().to_owned(), a))
            .collect();
        Ok(Self {
            pool,
            matrix,
            keys: config.keys.keyring().map_err(err)?,
            pharmacies,
            canvas: CanvasServiceClient::new(config.service.mesh.channel(&config.peers.canvas_grpc_url)?),
            payments: PaymentsServiceClient::new(config.service.mesh.channel(&config.peers.payments_grpc_url)?),
            notifications: NotificationsServiceClient::new(
                config.service.mesh.channel(&config.peers.notifications_grpc_url)?,
            ),
            tokens: InternalTokens::new(&config.service.auth.internal_token_secret),
            owner: Uuid::new_v4(),
            lease: Duration::from_secs(config.pipeline.lease_secs),
            poll: Duration::from_millis(config.pipeline.poll_ms),
            sync_wait: Duration::from_millis(config.pipeline.sync_wait_ms),
            retry_max: Duration::from_secs(config.pipeline.retry_max_secs),
            refill_retry: config
                .pipeline
                .refill_retry_secs
                .iter()
                .map(|s| Duration::from_secs(*s))
                .collect(),
            refill_reminder_days: config.pipeline.refill_reminder_days,
            fedex: config.carriers.fedex(),
            tracking_cache: Duration::from_secs(config.carriers.tracking_cache_secs),
            uncertain_wait: Duration::from_secs(
                config
                    .pipeline
                    .lookup_delay_secs
                    .unwrap_or(config.pipeline.lease_secs + config.pharmacies.timeout_secs),
            ),
            failpoint: config.pipeline.failpoint.clone(),
            halted: AtomicBool::new(false),
        })
    }

    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn snapshot(&self) -> Result<Arc<Snapshot>> {
        Ok(self
            .matrix
            .get_or_try_init(|| Matrix::start(self.pool.clone()))
            .await?
            .snapshot())
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        era_kit::client::request(message, &self.tokens, &Caller::service(SERVICE))
    }

    fn lease_secs(&self) -> i64 {
        self.lease.as_secs() as i64
    }

    /// Fires the test failpoint when it names this point: the replica stops as if killed.
    fn crash(&self, step: &str, at: FailAt) -> std::result::Result<(), Stop> {
        if self.halted.load(Ordering::SeqCst) {
            return Err(Stop);
        }
        if self.failpoint.as_ref().is_some_and(|f| f.step == step && f.at == at) {
            tracing::warn!(step, ?at, "pipeline failpoint reached: this replica's pipeline stops");
            self.halted.store(true, Ordering::SeqCst);
            return Err(Stop);
        }
        Ok(())
    }

    fn halted(&self) -> bool {
        self.halted.load(Ordering::SeqCst)
    }

    /// Starts driving `run` on its own task (it outlives the caller's request) and waits a bounded
    /// time for it to finish; answers the run as it then stands.
    async fn start_and_wait(self: &Arc<Self>, run: Run, deadline: Instant) -> Result<Run> {
        let id = run.id;
        self.start(run);
        self.wait(id, deadline).await
    }

    /// Drives `run`, recorded and held by this replica, on its own task: it outlives the request.
    fn start(self: &Arc<Self>, run: Run) {
        let me = self.clone();
        tokio::spawn(async move { me.drive(run).await });
    }

    /// The moment an answer is due for a request that arrived `at`: the configured wait counts from
    /// the request's arrival, so reading the task first never pushes the answer past the caller's
    /// deadline.
    pub(crate) fn answer_by(&self, at: Instant) -> Instant {
        at + self.sync_wait
    }

    async fn wait(&self, id: Uuid, deadline: Instant) -> Result<Run> {
        loop {
            let run = runs::get(&self.pool, id).await?.ok_or_else(|| Error::NotFound {
                what: "orchestration run",
                id: id.to_string(),
            })?;
            if run.finished() || tokio::time::Instant::now() >= deadline {
                return Ok(run);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// What an approval asks for, validated. (Its Debug output leaves the note out: clinical text.)
pub(crate) struct Approval {
    pub task_id: String,
    pub canvas_patient_id: String,
    pub medication: String,
    pub dose_label: String,
    pub note: String,
    pub idempotency_key: String,
    pub approved_by: Actor,
}

pub(crate) struct Denial {
    pub task_id: String,
    pub canvas_patient_id: String,
    pub reason: String,
    pub denied_by: Actor,
}

enum Recorded {
    New(Run),
    Existing(Run),
}

impl std::fmt::Debug for Approval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Approval")
            .field("task_id", &self.task_id)
            .field("medication", &self.medication)
            .field("dose_label", &self.dose_label)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Denial")
            .field("task_id", &self.task_id)
            .finish_non_exhaustive()
    }
}

/// The Rx Review task as the decision needs it.
struct OpenTask {
    patient: String,
    medication: String,
    owner: String,
}

impl Pipeline {
    /// Starts (or finds) the task's approval run and answers it once it ended or the wait ran out.
    pub(crate) async fn approve(self: &Arc<Self>, a: Approval, deadline: Instant) -> Result<(Run, bool)> {
        if !a.idempotency_key.is_empty() {
            // A retry of a request that got no answer finds its run, even a failed one.
            if let Some(run) = runs::by_key(&self.pool, &a.task_id, &a.idempotency_key).await? {
                return Ok((same_decision(run, "approve", &a.medication, &a.dose_label)?, true));
            }
        }
        let arrived = runs::db_now(&self.pool).await?;
        if let Some(run) = self.current_run(&a.task_id, arrived).await? {
            return Ok((same_decision(run, "approve", &a.medication, &a.dose_label)?, true));
        }
        let task = self.open_task(&a.task_id, &a.canvas_patient_id).await?;
        if !a.medication.is_empty() && !task.medication.is_empty() && a.medication != task.medication {
            return Err(Error::field(
                "medication",
                format!("must be the task's medication ({})", task.medication),
            ));
        }
        let medication = if a.medication.is_empty() {
            task.medication.clone()
        } else {
            a.medication.clone()
        };
        let snapshot = self.snapshot().await?;
        let Some(med) = snapshot.medications.get(&medication).filter(|m| m.row.active) else {
            return Err(Error::field(
                "medication",
                if medication.is_empty() {
                    "is required: the task names no medication".to_owned()
                } else {
                    format!("{medication} is not in the medication catalogue")
                },
            ));
        };
        if !med.doses.iter().any(|d| d.label == a.dose_label) {
            let labels: Vec<&str> = med.doses.iter().map(|d| d.label.as_str()).collect();
            return Err(Error::field(
                "dose_label",
                format!("must be one of the task's dosage options: {}", labels.join("; ")),
            ));
        }
        let id = Uuid::new_v4();
        let note = self.seal_note(id, &a.note)?;
        let new = NewRun {
            id,
            task_id: Some(&a.task_id),
            kind: "approve",
            canvas_patient_id: &task.patient,
            medication: &medication,
            dose_label: &a.dose_label,
            practitioner_id: &task.owner,
            note,
            approved_by: &a.approved_by.subject,
            idempotency_key: &a.idempotency_key,
            owner: self.owner,
            lease_secs: self.lease_secs(),
            medication_request_id: None,
            target_run_id: None,
            cover_days: med.row.days_supply,
            refill_id: None,
            payment_reference: None,
        };
        match self.record(&new, arrived).await? {
            Recorded::New(run) => {
                tracing::info!(run = %run.id, task = ?run.task_id, "approval run recorded");
                Ok((self.start_and_wait(run, deadline).await?, false))
            }
            Recorded::Existing(run) => {
                let run = same_decision(run, "approve", &medication, &a.dose_label)?;
                Ok((self.wait(run.id, deadline).await?, true))
            }
        }
    }

    /// Records the decision's run, or finds the run another request recorded for the task first.
    async fn record(&self, new: &NewRun<'_>, arrived: chrono::DateTime<chrono::Utc>) -> Result<Recorded> {
        let task_id = new.task_id.unwrap_or_default();
        for _ in 0..3 {
            // Checked right before each insert too: a sibling may have started and ended while this
            // request read the task.
            if let Some(run) = self.current_run(task_id, arrived).await? {
                return Ok(Recorded::Existing(run));
            }
            match runs::insert(&self.pool, new).await? {
                Inserted::New(run) => return Ok(Recorded::New(run)),
                Inserted::Taken => {}
                Inserted::Covered(run) => {
                    return Err(Error::AlreadyFulfilled {
                        run_id: run.id.to_string(),
                    })
                }
            }
        }
        Err(Error::Busy)
    }

    /// The run a decision arriving at `arrived` (the database's clock) joins: the task's live run,
    /// or one that was still live when this request arrived and has ended since (the same click from
    /// two portals must not become two attempts on the card, even when the first failed at once).
    async fn current_run(&self, task_id: &str, arrived: chrono::DateTime<chrono::Utc>) -> Result<Option<Run>> {
        if let Some(run) = runs::live_for_task(&self.pool, task_id).await? {
            return Ok(Some(run));
        }
        runs::ended_since(&self.pool, task_id, arrived).await
    }

    /// Records the denial and drives it: the task is closed with the reason, the patient told.
    pub(crate) async fn deny(self: &Arc<Self>, d: Denial, deadline: Instant) -> Result<Run> {
        let arrived = runs::db_now(&self.pool).await?;
        if let Some(run) = self.current_run(&d.task_id, arrived).await? {
            return same_decision(run, "deny", "", "");
        }
        let task = self.open_task(&d.task_id, &d.canvas_patient_id).await?;
        let id = Uuid::new_v4();
        let new = NewRun {
            id,
            task_id: Some(&d.task_id),
            kind: "deny",
            canvas_patient_id: &task.patient,
            medication: &task.medication,
            dose_label: "",
            practitioner_id: &task.owner,
            note: self.seal_note(id, &d.reason)?,
            approved_by: &d.denied_by.subject,
            idempotency_key: "",
            owner: self.owner,
            lease_secs: self.lease_secs(),
            medication_request_id: None,
            target_run_id: None,
            cover_days: 0,
            refill_id: None,
            payment_reference: None,
        };
        match self.record(&new, arrived).await? {
            Recorded::New(run) => self.start_and_wait(run, deadline).await,
            Recorded::Existing(run) => same_decision(run, "deny", "", ""),
        }
    }

    /// Reads the task: it must be an open Rx Review task of `patient` (when given).
    async fn open_task(&self, task_id: &str, patient: &str) -> Result<OpenTask> {
        let req = self.request(canvas::GetRxReviewTaskRequest {
            task_id: task_id.to_owned(),
        });
        let found = match self.canvas.clone().get_rx_review_task(req).await {
            Ok(r) => r.into_inner(),
            Err(s) if s.code() == tonic::Code::NotFound => {
                return Err(Error::NotFound {
                    what: "task",
                    id: task_id.to_owned(),
                })
            }
            Err(s) if s.code() == tonic::Code::InvalidArgument => {
                return Err(Error::field("task_id", "is not a task id"))
            }
            Err(s) => {
                return Err(Error::Unavailable(
                    "CANVAS_UNAVAILABLE",
                    format!("the task could not be read ({:?})", s.code()),
                ))
            }
        };
        let task = found.task.unwrap_or_default();
        if task.status != canvas::TaskStatus::Requested as i32 {
            return Err(Error::TaskNotOpen {
                task_id: task_id.to_owned(),
            });
        }
        if !patient.is_empty() && patient != task.canvas_patient_id {
            return Err(Error::field("canvas_patient_id", "is not the task's patient"));
        }
        Ok(OpenTask {
            patient: task.canvas_patient_id,
            medication: task.medication,
            owner: task.owner_practitioner_id,
        })
    }

    fn seal_note(&self, id: Uuid, note: &str) -> Result<Option<era_kit::sealing::Sealed>> {
        let note = note.trim();
        if note.is_empty() {
            return Ok(None);
        }
        Ok(Some(self.keys.seal(id, b"run-note", note.as_bytes())?))
    }

    /// The run's note (approval) or reason (denial), opened.
    fn note(&self, run: &Run) -> Result<String> {
        let (Some(ciphertext), Some(nonce), Some(version)) =
            (&run.note_ciphertext, &run.note_nonce, run.note_key_version)
        else {
            return Ok(String::new());
        };
        let sealed = era_kit::sealing::Sealed {
            key_version: version as u32,
            nonce: nonce.clone(),
            ciphertext: ciphertext.clone(),
        };
        let plain = self
            .keys
            .open(run.id, b"run-note", &sealed)
            .map_err(|e| Error::Internal(anyhow::anyhow!("{e}")))?;
        Ok(String::from_utf8_lossy(&plain).into_owned())
    }
}

/// A second decision on a task with a live run gets that run when it asks the same; otherwise it is
/// refused with the run it collides with.
fn same_decision(run: Run, kind: &str, medication: &str, dose_label: &str) -> Result<Run> {
    let same = run.kind == kind
        && (medication.is_empty() || medication == run.medication)
        && (dose_label.is_empty() || dose_label == run.dose_label);
    if same {
        Ok(run)
    } else {
        Err(Error::TaskAlreadyDecided {
            task_id: run.task_id.unwrap_or_default(),
            run_id: run.id.to_string(),
        })
    }
}
