//! Serialising work on one idempotency key across calls and replicas: a transaction-scoped
//! PostgreSQL advisory lock, so a crashed holder releases it with its connection.
//!
//! Waiters poll (`pg_try_advisory_xact_lock`) instead of blocking in PostgreSQL: a blocked waiter
//! would hold a pooled connection, and enough of them would starve the holder of the connection it
//! needs to finish. Holders are bounded to half the pool for the same reason.

use std::{sync::Arc, time::Duration};

use rand::Rng as _;
use sqlx::{PgPool, Postgres, Transaction};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a call waits for another call holding the same key.
pub const LOCK_WAIT: Duration = Duration::from_secs(30);

/// Why a key could not be (or is no longer) held. Each service maps these to its own error, as a
/// "retry shortly" answer.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("too many writes in progress; retry shortly")]
    Busy,
    #[error("another request with this key is still in progress; retry shortly")]
    InProgress,
    #[error("the request lost its hold on the idempotency key; retry it")]
    Lost,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl LockError {
    /// The stable reason code for callers.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Busy => "BUSY",
            Self::InProgress => "REQUEST_IN_PROGRESS",
            Self::Lost => "LOCK_LOST",
            Self::Db(_) => "INTERNAL",
        }
    }
}

/// The locks of one service's database.
#[derive(Clone, Debug)]
pub struct KeyLocks {
    pool: PgPool,
    /// Run inside the lock's transaction first, e.g. `set local role ...`.
    setup: Option<&'static str>,
    holders: Arc<Semaphore>,
}

/// A held key; dropping it releases the lock.
pub struct KeyLock {
    tx: Transaction<'static, Postgres>,
    _permit: OwnedSemaphorePermit,
}

impl std::fmt::Debug for KeyLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyLock")
    }
}

impl KeyLocks {
    pub fn new(pool: PgPool, setup: Option<&'static str>) -> Self {
        let holders = (pool.options().get_max_connections() as usize / 2).max(1);
        Self {
            pool,
            setup,
            holders: Arc::new(Semaphore::new(holders)),
        }
    }

    pub async fn lock(&self, key: &str) -> Result<KeyLock, LockError> {
        let deadline = tokio::time::Instant::now() + LOCK_WAIT;
        let permit = tokio::time::timeout(LOCK_WAIT, self.holders.clone().acquire_owned())
            .await
            .map_err(|_| LockError::Busy)?
            .map_err(|_| LockError::Busy)?;
        loop {
            if let Some(tx) = self.attempt(key).await? {
                return Ok(KeyLock { tx, _permit: permit });
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(LockError::InProgress);
            }
            let pause = rand::thread_rng().gen_range(20..60);
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
    }

    /// The key if nobody holds it right now, without waiting: for background workers, which skip
    /// work a caller (or another replica) is already doing.
    pub async fn try_lock(&self, key: &str) -> Result<Option<KeyLock>, LockError> {
        let Ok(permit) = self.holders.clone().try_acquire_owned() else {
            return Ok(None);
        };
        Ok(self.attempt(key).await?.map(|tx| KeyLock { tx, _permit: permit }))
    }

    async fn attempt(&self, key: &str) -> Result<Option<Transaction<'static, Postgres>>, LockError> {
        let mut tx = self.pool.begin().await?;
        if let Some(setup) = self.setup {
            sqlx::query(setup).execute(&mut *tx).await?;
        }
        let got: bool = sqlx::query_scalar("select pg_try_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(key)
            .fetch_one(&mut *tx)
            .await?;
        if got {
            return Ok(Some(tx));
        }
        tx.rollback().await?;
        Ok(None)
    }
}

impl KeyLock {
    /// Fails when the lock's connection is gone (and with it the lock): checked right before each
    /// external effect, so a holder that lost its lock stops instead of racing the next holder.
    pub async fn check(&mut self) -> Result<(), LockError> {
        match tokio::time::timeout(Duration::from_secs(2), sqlx::query("select 1").execute(&mut *self.tx)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(LockError::Lost),
        }
    }
}
