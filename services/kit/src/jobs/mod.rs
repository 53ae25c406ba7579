//! Durable background work toward vendors, safe with any number of replicas and any crash.
//!
//! A job is a row in the service's `jobs` table (see `schema.sql`, installed by [`install`]), one
//! per key: asking for a key's job in the same transaction as the change that needs it
//! ([`Queue::request`]) makes the work exist exactly when the change commits. A [`Runner`] in every
//! replica claims due jobs with `FOR UPDATE SKIP LOCKED` under a lease it extends with heartbeats
//! while the handler works; every claim raises the job's generation, and the holder's writes check
//! it ([`Lease::fence`]) so a holder whose lease ran out can no longer commit anything. A handler
//! answers done, retry (on the runner's schedule, or at a time it names) or dead (a refusal that
//! will not change; the job waits for an operator). A job asked for again while it runs runs once
//! more afterwards, so a handler may treat its job as "make the vendors match the rows" and be
//! asked again whenever the rows change.
//!
//! A handler is written to resume: it records progress as it goes and, before repeating a vendor
//! call whose outcome it never learned, looks for what that call may have made. [`Failpoints`]
//! stop a replica at a named point as a crash would, for the crash matrices in tests.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use tokio::sync::Notify;

/// The table's definition; [`install`] runs it.
pub const SCHEMA: &str = include_str!("schema.sql");

/// Creates the `jobs` table and its indexes when missing. Safe to run at every start.
pub async fn install(pool: &PgPool) -> sqlx::Result<()> {
    // Replicas starting together would race on `create ... if not exists`; one at a time.
    let mut tx = pool.begin().await?;
    sqlx::query("select pg_advisory_xact_lock(hashtext('era_kit::jobs::install'))")
        .execute(&mut *tx)
        .await?;
    // A plain string runs unprepared, so the schema's several statements go in one round trip.
    sqlx::Executor::execute(&mut *tx, SCHEMA).await?;
    tx.commit().await
}

/// Where jobs are asked for, and how a local runner hears of them at once.
#[derive(Clone, Debug)]
pub struct Queue {
    pool: PgPool,
    wake: Arc<Notify>,
}

/// A job as an operator or a test sees it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct JobState {
    pub id: i64,
    pub kind: String,
    pub key: String,
    pub status: String,
    pub run_at: DateTime<Utc>,
    pub attempts: i32,
    pub rerun: bool,
    pub lease_generation: i64,
    pub last_error: Option<String>,
}

impl Queue {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            wake: Arc::new(Notify::new()),
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Asks for `key`'s job to run at `at` (now when `None`), in the caller's transaction: a new
    /// key is inserted; a waiting job becomes due no later than `at`; a finished or dead one is due
    /// again with its attempts counted afresh; a running one runs once more when it ends. Call
    /// [`Queue::wake`] after the transaction commits.
    pub async fn request(
        &self,
        conn: &mut PgConnection,
        kind: &str,
        key: &str,
        at: Option<DateTime<Utc>>,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "insert into jobs (kind, key, run_at) values ($1, $2, coalesce($3, now()))
             on conflict (key) do update set
                 rerun = jobs.status = 'running',
                 run_at = case when jobs.status = 'pending' then least(jobs.run_at, excluded.run_at)
                               when jobs.status = 'running' then jobs.run_at
                               else excluded.run_at end,
                 attempts = case when jobs.status in ('done', 'dead') then 0 else jobs.attempts end,
                 status = case when jobs.status = 'running' then 'running' else 'pending' end,
                 updated_at = now()",
        )
        .bind(kind)
        .bind(key)
        .bind(at)
        .execute(conn)
        .await?;
        Ok(())
    }

    /// Tells this process's runner that work may be due.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub async fn get(&self, key: &str) -> sqlx::Result<Option<JobState>> {
        sqlx::query_as(
            "select id, kind, key, status, run_at, attempts, rerun, lease_generation, last_error
             from jobs where key = $1",
        )
        .bind(key)
        .fetch_optional(&self.pool)
        .await
    }
}

/// A claimed job, handed to its handler.
#[derive(Clone, Debug)]
pub struct Job {
    pub kind: String,
    pub key: String,
    /// 1 for the first attempt since the job was last asked for.
    pub attempt: i32,
    pub lease: Lease,
}

/// The holder's claim on a job: its id and the generation it was claimed with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    id: i64,
    generation: i64,
}

/// The lease ran out and another holder may have the job: nothing more may be written.
#[derive(Debug, thiserror::Error)]
#[error("the job's lease was lost")]
pub struct LeaseLost;

impl Lease {
    /// Locks the job's row in `conn`'s transaction and checks that this holder still has an
    /// unexpired lease: what the transaction writes then commits only while the lease holds, since
    /// a new claim must wait for the row and then raises the generation.
    pub async fn fence(&self, conn: &mut PgConnection) -> Result<(), FenceError> {
        let held: Option<bool> = sqlx::query_scalar(
            "select lease_until > now() from jobs
             where id = $1 and lease_generation = $2 and status = 'running' for update",
        )
        .bind(self.id)
        .bind(self.generation)
        .fetch_optional(conn)
        .await?;
        match held {
            Some(true) => Ok(()),
            _ => Err(FenceError::Lost(LeaseLost)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FenceError {
    #[error(transparent)]
    Lost(LeaseLost),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// What a handler's attempt came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// A passing failure: the next attempt on the runner's schedule, or dead past its end.
    Retry(String),
    /// Come back at this time (a vendor's wait, a delay before a lookup); counts as an attempt.
    RetryAt(DateTime<Utc>, String),
    /// Will not succeed by trying again: the job waits for an operator.
    Dead(String),
    /// The holder stopped (a failpoint, a lost lease): leave the job to its lease, as a crash would.
    Abandoned,
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The work of one kind of job (or of several, told apart by [`Job::kind`]).
pub trait Handler: Send + Sync + 'static {
    fn run<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, Outcome>;
}

/// How a runner claims and retries.
#[derive(Clone, Debug)]
pub struct RunnerConfig {
    /// How long a claim lasts without a heartbeat; heartbeats come every third of it.
    pub lease: Duration,
    /// How often an idle runner looks for due jobs (it is also woken by [`Queue::wake`]).
    pub poll: Duration,
    /// Jobs one claim takes; they run concurrently.
    pub batch: i64,
    /// The wait before attempt n+1 after attempt n failed for a passing reason (the first entry
    /// follows the first attempt); past the end the job is dead.
    pub schedule: Vec<Duration>,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(60),
            poll: Duration::from_secs(1),
            batch: 16,
            schedule: [5, 30, 120, 600, 1800, 3600, 3600 * 3, 3600 * 6]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
        }
    }
}

/// Claims due jobs and runs them until dropped (or until a failpoint halts this replica).
pub struct Runner {
    queue: Queue,
    handler: Arc<dyn Handler>,
    config: RunnerConfig,
    owner: String,
    failpoints: Arc<Failpoints>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

#[derive(sqlx::FromRow)]
struct Claimed {
    id: i64,
    kind: String,
    key: String,
    attempts: i32,
    lease_generation: i64,
}

impl Runner {
    pub fn new(queue: Queue, handler: Arc<dyn Handler>, config: RunnerConfig, failpoints: Arc<Failpoints>) -> Self {
        Self {
            queue,
            handler,
            config,
            owner: format!("runner-{}", uuid::Uuid::new_v4()),
            failpoints,
        }
    }

    /// Runs until the future is dropped or a failpoint halts the replica.
    pub async fn run(self) {
        let this = Arc::new(self);
        while !this.failpoints.halted() {
            let claimed = match this.claim().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming jobs failed");
                    Vec::new()
                }
            };
            if claimed.is_empty() {
                tokio::select! {
                    () = this.queue.wake.notified() => {}
                    () = tokio::time::sleep(this.config.poll) => {}
                }
                continue;
            }
            let work = claimed.into_iter().map(|c| {
                let this = this.clone();
                // Each job on its own task: a panic stays with that job, whose lease then runs out.
                tokio::spawn(async move { this.hold(c).await })
            });
            for done in futures::future::join_all(work).await {
                if let Err(e) = done {
                    tracing::error!(error = %e, "a job panicked; its lease will run out");
                }
            }
        }
        tracing::warn!(owner = %this.owner, "the job runner stopped at a failpoint");
    }

    async fn claim(&self) -> sqlx::Result<Vec<Claimed>> {
        sqlx::query_as(
            "with due as (
                 select id from jobs
                 where (status = 'pending' and run_at <= now())
                    or (status = 'running' and lease_until < now())
                 order by run_at
                 limit $1
                 for update skip locked)
             update jobs set status = 'running', lease_owner = $2,
                 lease_until = now() + make_interval(secs => $3),
                 lease_generation = jobs.lease_generation + 1,
                 attempts = jobs.attempts + 1, updated_at = now()
             from due where jobs.id = due.id
             returning jobs.id, jobs.kind, jobs.key, jobs.attempts, jobs.lease_generation",
        )
        .bind(self.config.batch)
        .bind(&self.owner)
        .bind(self.config.lease.as_secs_f64())
        .fetch_all(&self.queue.pool)
        .await
    }

    /// Runs one claimed job while a heartbeat keeps its lease; both live in this one future, so
    /// however the handler ends (a panic included) the heartbeat ends with it.
    async fn hold(&self, c: Claimed) {
        let job = Job {
            kind: c.kind,
            key: c.key,
            attempt: c.attempts,
            lease: Lease {
                id: c.id,
                generation: c.lease_generation,
            },
        };
        let outcome = tokio::select! {
            o = self.handler.run(&job) => o,
            () = self.heartbeat(job.lease) => Outcome::Abandoned,
        };
        if let Err(e) = self.finish(&job, &outcome).await {
            tracing::warn!(job = %job.lease.id, error = %e, "recording a job's outcome failed; its lease will run out");
        }
    }

    /// Extends the lease every third of it; returns once the lease is lost, or once it may have run
    /// out because renewals kept failing (a database outage): another holder may have the job by
    /// then, so this one must stop calling vendors.
    async fn heartbeat(&self, lease: Lease) {
        let mut renewed = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.config.lease / 3).await;
            let kept = sqlx::query(
                "update jobs set lease_until = now() + make_interval(secs => $3)
                 where id = $1 and lease_generation = $2 and status = 'running'",
            )
            .bind(lease.id)
            .bind(lease.generation)
            .bind(self.config.lease.as_secs_f64())
            .execute(&self.queue.pool)
            .await;
            match kept {
                Ok(r) if r.rows_affected() == 0 => return,
                Ok(_) => renewed = tokio::time::Instant::now(),
                Err(e) => {
                    tracing::warn!(job = %lease.id, error = %e, "a job heartbeat failed");
                    if renewed.elapsed() >= self.config.lease {
                        return;
                    }
                }
            }
            if self.failpoints.halted() {
                // A halted replica is "dead": its leases must be left to run out.
                std::future::pending::<()>().await;
            }
        }
    }

    async fn finish(&self, job: &Job, outcome: &Outcome) -> sqlx::Result<()> {
        let retry_at = |wait: Option<Duration>| -> Option<DateTime<Utc>> {
            let wait = wait?;
            Utc::now().checked_add_signed(chrono::Duration::from_std(wait).ok()?)
        };
        let (status, at, error) = match outcome {
            Outcome::Abandoned => return Ok(()),
            Outcome::Done => ("done", None, None),
            Outcome::Retry(e) => {
                let next = retry_at(self.config.schedule.get(job.attempt.max(1) as usize - 1).copied());
                (if next.is_some() { "pending" } else { "dead" }, next, Some(e.as_str()))
            }
            Outcome::RetryAt(at, e) => ("pending", Some(*at), Some(e.as_str())),
            Outcome::Dead(e) => ("dead", None, Some(e.as_str())),
        };
        match status {
            "dead" => {
                tracing::warn!(kind = %job.kind, job = %job.lease.id, error = error.unwrap_or_default(), "job dead; an operator must look")
            }
            "pending" => {
                tracing::info!(kind = %job.kind, job = %job.lease.id, attempt = job.attempt, error = error.unwrap_or_default(), "job attempt failed; retrying later")
            }
            _ => {}
        }
        // Asked for again while it ran: due again now, its attempts counted afresh.
        sqlx::query(
            "update jobs set
                 status = case when rerun then 'pending' else $3 end,
                 run_at = case when rerun then now() else coalesce($4, run_at) end,
                 attempts = case when rerun then 0 else attempts end,
                 rerun = false, last_error = $5, lease_owner = null, lease_until = null,
                 updated_at = now()
             where id = $1 and lease_generation = $2 and status = 'running'",
        )
        .bind(job.lease.id)
        .bind(job.lease.generation)
        .bind(status)
        .bind(at)
        .bind(error)
        .execute(&self.queue.pool)
        .await?;
        Ok(())
    }
}

/// Where a test stops a replica: at `step`, before its vendor call, after the call returned but
/// before its result was committed, or after the commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failpoint {
    pub step: String,
    pub at: FailAt,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailAt {
    BeforeCall,
    AfterCall,
    AfterCommit,
}

/// A replica's armed failpoint (tests only) and whether it has fired.
#[derive(Debug, Default)]
pub struct Failpoints {
    armed: Option<Failpoint>,
    halted: AtomicBool,
}

/// A failpoint fired (now or earlier): this replica does nothing more.
#[derive(Debug, thiserror::Error)]
#[error("this replica stopped at a failpoint")]
pub struct Halted;

impl Failpoints {
    pub fn new(armed: Option<Failpoint>) -> Self {
        Self {
            armed,
            halted: AtomicBool::new(false),
        }
    }

    /// Fires when the armed failpoint names this point: the replica stops as if killed.
    pub fn check(&self, step: &str, at: FailAt) -> Result<(), Halted> {
        if self.halted() {
            return Err(Halted);
        }
        if self.armed.as_ref().is_some_and(|f| f.step == step && f.at == at) {
            tracing::warn!(step, ?at, "failpoint reached: this replica stops");
            self.halted.store(true, Ordering::SeqCst);
            return Err(Halted);
        }
        Ok(())
    }

    pub fn halted(&self) -> bool {
        self.halted.load(Ordering::SeqCst)
    }
}
