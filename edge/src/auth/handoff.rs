//! One-time codes that hand an admin session from the magic link's confirm page to the admin portal.
//! The browser is sent to the portal with the code in the URL's fragment, which browsers never send
//! to a server (so it is in no access log); the portal exchanges it once, within a minute, for the
//! session token. The token itself is never in a URL, and the code in the history is spent.

use sha2::{Digest, Sha256};
use sqlx::PgPool;

use super::revocation::db;
use crate::error::ApiError;

/// How long a code waits for the portal.
pub const HANDOFF_TTL_SECS: i64 = 60;

#[derive(Clone, Debug)]
pub struct Handoffs {
    pool: PgPool,
}

fn digest(code: &str) -> String {
    hex::encode(Sha256::digest(code.as_bytes()))
}

impl Handoffs {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// A new code for `subject`'s session.
    pub async fn create(&self, subject: &str) -> Result<String, ApiError> {
        let bytes: [u8; 32] = rand::random();
        let code = hex::encode(bytes);
        // Spent and expired codes go as new ones come, so the table stays small without a sweeper.
        sqlx::query("delete from session_handoffs where expires_at < now() - interval '1 hour'")
            .execute(&self.pool)
            .await
            .map_err(db)?;
        sqlx::query(
            "insert into session_handoffs (code_hash, subject, expires_at) \
             values ($1, $2, now() + make_interval(secs => $3))",
        )
        .bind(digest(&code))
        .bind(subject)
        .bind(HANDOFF_TTL_SECS as f64)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(code)
    }

    /// The subject of an unspent, unexpired code, spending it.
    pub async fn redeem(&self, code: &str) -> Result<Option<String>, ApiError> {
        sqlx::query_scalar(
            "update session_handoffs set used_at = now() \
             where code_hash = $1 and used_at is null and expires_at > now() returning subject",
        )
        .bind(digest(code.trim()))
        .fetch_optional(&self.pool)
        .await
        .map_err(db)
    }
}
