//! Revoked admin sessions and accepted plugin signatures, in the edge's database so every replica
//! sees them. Revoked jtis are also kept in memory, since every admin request checks them.

use std::{
    collections::{HashMap, HashSet},
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
    revoked: Arc<RwLock<Revoked>>,
}

/// What is revoked: single sessions by `jti`, and every session of a subject issued before a time
/// (an admin removed from the allowlist). Subject revocations are rows whose `jti` is
/// `subject:<subject>`; real jtis are UUIDs.
#[derive(Debug, Default)]
struct Revoked {
    jtis: HashSet<String>,
    /// Subject -> sessions issued at or before this Unix time are refused.
    subjects: HashMap<String, i64>,
}

const SUBJECT_PREFIX: &str = "subject:";

async fn load(pool: &PgPool) -> sqlx::Result<Revoked> {
    let rows: Vec<(String, DateTime<Utc>)> =
        sqlx::query_as("select jti, revoked_at from revoked_tokens where expires_at > now()")
            .fetch_all(pool)
            .await?;
    let mut out = Revoked::default();
    for (jti, at) in rows {
        match jti.strip_prefix(SUBJECT_PREFIX) {
            Some(subject) => {
                out.subjects.insert(subject.to_owned(), at.timestamp());
            }
            None => {
                out.jtis.insert(jti);
            }
        }
    }
    Ok(out)
}

impl Revocations {
    pub async fn start(pool: PgPool) -> anyhow::Result<Self> {
        // Listen first, load second: a logout committed in between is then still noticed.
        let revoked = Arc::new(RwLock::new(Revoked::default()));
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

    /// Whether a session is refused: logged out, or its subject's sessions were revoked after it
    /// was issued.
    pub fn is_revoked(&self, claims: &super::jwt::Claims) -> bool {
        let r = self.revoked.read().unwrap_or_else(|e| e.into_inner());
        r.jtis.contains(&claims.jti) || r.subjects.get(&claims.sub).is_some_and(|at| claims.iat <= *at)
    }

    /// Ends every session `subject` holds now (sessions issued later are unaffected), on every
    /// replica, for as long as any of them could still be valid.
    pub async fn revoke_subject(&self, subject: &str) -> Result<(), ApiError> {
        let jti = format!("{SUBJECT_PREFIX}{subject}");
        let lifetime = super::jwt::ADMIN_TTL_SECS + super::jwt::LEEWAY_SECS as i64 + 60;
        let mut tx = self.pool.begin().await.map_err(db)?;
        let at: DateTime<Utc> = sqlx::query_scalar(
            "insert into revoked_tokens (jti, subject, expires_at) values ($1, $2, now() + make_interval(secs => $3)) \
             on conflict (jti) do update set revoked_at = now(), expires_at = excluded.expires_at returning revoked_at",
        )
        .bind(&jti)
        .bind(subject)
        .bind(lifetime as f64)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        sqlx::query("select pg_notify($1, $2)")
            .bind(REVOKED_CHANNEL)
            .bind(&jti)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        self.revoked
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .subjects
            .insert(subject.to_owned(), at.timestamp());
        Ok(())
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
            .jtis
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
