//! Revoked admin sessions and accepted plugin signatures, in the edge's database so every replica
//! sees them. Revoked jtis are also kept in memory, since every admin request checks them.

use std::{
    collections::HashSet,
    sync::{Arc, RwLock},
    time::Duration,
};

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::error::ApiError;

const REVOKED_CHANNEL: &str = "era_token_revoked";
const RELOAD_EVERY: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
pub struct Revocations {
    pool: PgPool,
    revoked: Arc<RwLock<HashSet<String>>>,
}

async fn load(pool: &PgPool) -> sqlx::Result<HashSet<String>> {
    let rows: Vec<String> = sqlx::query_scalar("select jti from revoked_tokens where expires_at > now()")
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().collect())
}

impl Revocations {
    pub async fn start(pool: PgPool) -> anyhow::Result<Self> {
        // Listen first, load second: a logout committed in between is then still noticed.
        let revoked = Arc::new(RwLock::new(HashSet::new()));
        let reload_pool = pool.clone();
        era_kit::db::spawn_change_listener(
            pool.clone(),
            REVOKED_CHANNEL,
            RELOAD_EVERY,
            Arc::downgrade(&revoked),
            move |set| {
                let pool = reload_pool.clone();
                async move {
                    match load(&pool).await {
                        Ok(fresh) => *set.write().unwrap_or_else(|e| e.into_inner()) = fresh,
                        Err(e) => tracing::warn!(error = %e, "revocation list reload failed"),
                    }
                }
            },
        )
        .await;
        *revoked.write().unwrap_or_else(|e| e.into_inner()) = load(&pool).await?;
        Ok(Self { pool, revoked })
    }

    pub fn is_revoked(&self, jti: &str) -> bool {
        self.revoked.read().unwrap_or_else(|e| e.into_inner()).contains(jti)
    }

    pub async fn revoke(&self, jti: &str, subject: &str, expires_at: DateTime<Utc>) -> Result<(), ApiError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        sqlx::query(
            "insert into revoked_tokens (jti, subject, expires_at) values ($1, $2, $3) on conflict (jti) do nothing",
        )
        .bind(jti)
        .bind(subject)
        .bind(expires_at)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        sqlx::query("delete from revoked_tokens where expires_at < now() - interval '1 hour'")
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query("select pg_notify($1, $2)")
            .bind(REVOKED_CHANNEL)
            .bind(jti)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        self.revoked
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(jti.to_owned());
        Ok(())
    }

    /// Records an accepted signature until `expires_at` (Unix seconds); false if it was seen before.
    pub async fn remember_signature(&self, signature: &str, expires_at: i64) -> Result<bool, ApiError> {
        let expires_at = DateTime::from_timestamp(expires_at, 0).unwrap_or_else(Utc::now);
        let inserted = sqlx::query(
            "insert into hmac_replays (signature, expires_at) values ($1, $2) on conflict (signature) do nothing",
        )
        .bind(signature)
        .bind(expires_at)
        .execute(&self.pool)
        .await
        .map_err(db)?
        .rows_affected();
        if inserted == 1 {
            sqlx::query("delete from hmac_replays where expires_at < now() - interval '10 minutes'")
                .execute(&self.pool)
                .await
                .map_err(db)?;
        }
        Ok(inserted == 1)
    }
}

pub(super) fn db(e: sqlx::Error) -> ApiError {
    ApiError::internal(&anyhow::Error::new(e).context("edge database"))
}
