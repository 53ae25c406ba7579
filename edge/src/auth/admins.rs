//! The admin allowlist and the login send throttle, in the edge's database so every replica agrees.

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use sqlx::PgPool;

use super::revocation::db;
use crate::error::ApiError;

/// Login sends allowed per email and purpose in [`WINDOW_MINUTES`].
pub(crate) const SENDS_PER_WINDOW: i64 = 5;
pub(crate) const WINDOW_MINUTES: i64 = 15;

#[derive(Clone, Debug)]
pub struct Admins {
    pool: PgPool,
    /// Keys the email hashes of the throttle (patients' emails are PHI).
    hash_key: SecretString,
}

/// One allowlisted admin.
#[derive(Debug, Clone)]
pub struct AdminUser {
    pub email: String,
    pub added_by: String,
    pub added_at: chrono::DateTime<chrono::Utc>,
}

impl Admins {
    /// `secret` is a key the edge already holds; the throttle's own key is derived from it.
    pub fn new(pool: PgPool, secret: &SecretString) -> Self {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()).expect("HMAC takes any key length");
        mac.update(b"era-login-throttle-key");
        let hash_key = SecretString::from(hex::encode(mac.finalize().into_bytes()));
        Self { pool, hash_key }
    }

    pub async fn is_admin(&self, email: &str) -> Result<bool, ApiError> {
        sqlx::query_scalar("select exists (select 1 from admin_users where email = $1)")
            .bind(email)
            .fetch_one(&self.pool)
            .await
            .map_err(db)
    }

    pub async fn list(&self) -> Result<Vec<AdminUser>, ApiError> {
        let rows: Vec<(String, String, chrono::DateTime<chrono::Utc>)> =
            sqlx::query_as("select email, added_by, added_at from admin_users order by email")
                .fetch_all(&self.pool)
                .await
                .map_err(db)?;
        Ok(rows
            .into_iter()
            .map(|(email, added_by, added_at)| AdminUser {
                email,
                added_by,
                added_at,
            })
            .collect())
    }

    /// Adds an admin; `false` when already listed.
    pub async fn add(&self, email: &str, by: &str) -> Result<bool, ApiError> {
        let done = sqlx::query("insert into admin_users (email, added_by) values ($1, $2) on conflict do nothing")
            .bind(email)
            .bind(by)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    /// Removes an admin; `false` when not listed. Their sessions end at expiry or logout.
    pub async fn remove(&self, email: &str) -> Result<bool, ApiError> {
        let done = sqlx::query("delete from admin_users where email = $1")
            .bind(email)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    fn email_hash(&self, email: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.hash_key.expose_secret().as_bytes())
            .expect("HMAC takes any key length");
        mac.update(email.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Counts a send for the email and purpose, refusing it beyond the allowance; known and
    /// unknown emails are counted alike.
    pub async fn throttle(&self, purpose: &str, email: &str) -> Result<(), ApiError> {
        let hash = self.email_hash(email);
        let mut tx = self.pool.begin().await.map_err(db)?;
        // One sender at a time per email, so concurrent sends cannot all slip under the count.
        sqlx::query("select pg_advisory_xact_lock(hashtextextended($1, 7))")
            .bind(&hash)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let recent: i64 = sqlx::query_scalar(
            "select count(*) from login_sends where purpose = $1 and email_hash = $2 \
             and sent_at > now() - make_interval(mins => $3::int)",
        )
        .bind(purpose)
        .bind(&hash)
        .bind(WINDOW_MINUTES as i32)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        if recent >= SENDS_PER_WINDOW {
            return Err(ApiError::new(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many codes or links were asked for this email; try again in 15 minutes",
            ));
        }
        sqlx::query("insert into login_sends (purpose, email_hash) values ($1, $2)")
            .bind(purpose)
            .bind(&hash)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        // Old rows only ever answer "not recent"; trimming them here keeps the table small.
        sqlx::query("delete from login_sends where sent_at < now() - interval '1 day'")
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)
    }
}
