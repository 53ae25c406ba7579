//! The service's tables (migrations/notifications/0002). Every transaction runs as
//! `era_notifications_service`, which owns nothing and cannot change delivery attempts.
//!
//! The outbox is claimed with `FOR UPDATE SKIP LOCKED`, so replicas never take the same message; a
//! claim is a lease (`lease_until`, extended by heartbeats) and bumps `lease_generation`, and every
//! write after the vendor call names the generation it claimed, so a worker whose lease ran out
//! (and whose message another worker took) can no longer record anything.

use std::time::Duration;

use chrono::{DateTime, Utc};
use era_kit::{sealing::Sealed, time::Keyset};
use sqlx::{postgres::PgRow, PgPool, Postgres, Row as _, Transaction};
use uuid::Uuid;

use crate::{
    error::Result,
    templates::{Channel, Kind},
};

const SET_ROLE: &str = "set local role era_notifications_service";

#[derive(Clone, Debug)]
pub struct Store {
    pool: PgPool,
}

/// A notification to record with its messages.
#[derive(Debug)]
pub struct NewNotification<'a> {
    pub id: Uuid,
    pub kind: Kind,
    pub patient: &'a str,
    pub reference: &'a str,
    pub dedupe_key: &'a str,
    pub sealed: &'a Sealed,
    pub send_at: DateTime<Utc>,
    pub channels: &'a [Channel],
    pub by_subject: &'a str,
    pub by_role: &'a str,
    pub on_behalf_of: Option<&'a str>,
}

/// A notification's sealed payload and the clear columns bound into it.
#[derive(Debug, Clone)]
pub struct NotificationRow {
    pub id: Uuid,
    pub kind: Kind,
    pub patient: String,
    pub reference: String,
    pub dedupe_key: String,
    pub sealed: Sealed,
}

/// An outbox message as stored.
#[derive(Debug, Clone)]
pub struct MessageRow {
    pub id: Uuid,
    pub notification_id: Uuid,
    pub kind: Kind,
    pub channel: Channel,
    pub status: String,
    pub patient: String,
    pub masked_to: String,
    pub dedupe_key: String,
    pub attempt_count: i32,
    pub vendor_message_id: String,
    pub last_error: String,
    pub send_at: DateTime<Utc>,
    pub next_attempt_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub uncertain_since: Option<DateTime<Utc>>,
    pub lease_generation: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One delivery attempt as stored.
#[derive(Debug, Clone)]
pub struct AttemptRow {
    pub number: i32,
    pub attempted_at: DateTime<Utc>,
    pub outcome: String,
    pub http_status: i32,
    pub error: String,
}

/// How an attempt ends, as the worker records it.
#[derive(Debug)]
pub struct Finish<'a> {
    /// sent | pending | dead_lettered | skipped
    pub status: &'a str,
    /// The attempt's row; `None` when nothing was tried (a skip, or a lookup that found it sent).
    pub attempt: Option<(&'a str, i32, &'a str)>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub vendor_message_id: Option<&'a str>,
    pub last_error: Option<&'a str>,
    /// Keep `uncertain_since` (the attempt's outcome is unknown) or clear it.
    pub still_uncertain: bool,
}

/// Filters of the admin outbox list.
#[derive(Debug, Default)]
pub struct MessageFilter<'a> {
    pub status: Option<&'a str>,
    pub channel: Option<Channel>,
    pub kind: Option<Kind>,
    pub patient: Option<&'a str>,
}

/// A portal notification as stored.
#[derive(Debug, Clone)]
pub struct PortalRow {
    pub id: Uuid,
    pub patient: String,
    pub kind: Kind,
    pub reference: String,
    pub sealed: Sealed,
    pub read_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A reply to record before it is posted.
#[derive(Debug)]
pub struct NewReply<'a> {
    pub key: &'a str,
    pub conversation_id: &'a str,
    pub request_mac: &'a str,
    pub internal_comment: bool,
    pub by: &'a str,
    pub on_behalf_of: Option<&'a str>,
}

/// A reply as recorded.
#[derive(Debug, Clone)]
pub struct ReplyRow {
    pub request_mac: String,
    pub hubspot_message_id: Option<String>,
    pub uncertain_since: Option<DateTime<Utc>>,
}

/// A login code or link to store (hashes only).
#[derive(Debug)]
pub struct NewLoginCode<'a> {
    pub id: Uuid,
    pub purpose: &'a str,
    pub email_hash: &'a str,
    pub admin_email: Option<&'a str>,
    pub canvas_patient_id: Option<&'a str>,
    pub secret_hash: &'a str,
    pub expires_at: DateTime<Utc>,
}

/// A login code or link as stored.
#[derive(Debug, Clone)]
pub struct LoginCodeRow {
    pub id: Uuid,
    pub admin_email: Option<String>,
    pub canvas_patient_id: Option<String>,
    pub secret_hash: String,
    pub failed_attempts: i32,
}

const MESSAGE_COLUMNS: &str = "m.*, n.dedupe_key, n.send_at";

impl Store {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Per-key locks on this database, taken as the service role.
    pub fn locks(&self) -> era_kit::keylock::KeyLocks {
        era_kit::keylock::KeyLocks::new(self.pool.clone(), Some(SET_ROLE))
    }

    async fn begin(&self) -> Result<Transaction<'static, Postgres>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(SET_ROLE).execute(&mut *tx).await?;
        Ok(tx)
    }

    // ---- recording ----

    /// Records the notification and one pending message per channel, unless its dedupe key is
    /// already recorded. Answers the notification's messages and whether they already existed.
    pub async fn record(&self, n: NewNotification<'_>) -> Result<(Uuid, Vec<MessageRow>, bool)> {
        let mut tx = self.begin().await?;
        let inserted: Option<Uuid> = sqlx::query_scalar(
            "insert into notifications (id, notification_type, canvas_patient_id, reference, dedupe_key, key_version, \
             nonce, sealed, send_at, created_by_subject, created_by_role, on_behalf_of_subject) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) on conflict (dedupe_key) do nothing returning id",
        )
        .bind(n.id)
        .bind(n.kind.code())
        .bind(n.patient)
        .bind(n.reference)
        .bind(n.dedupe_key)
        .bind(n.sealed.key_version as i32)
        .bind(&n.sealed.nonce)
        .bind(&n.sealed.ciphertext)
        .bind(n.send_at)
        .bind(n.by_subject)
        .bind(n.by_role)
        .bind(n.on_behalf_of)
        .fetch_optional(&mut *tx)
        .await?;
        let (id, existing) = match inserted {
            Some(id) => {
                for channel in n.channels {
                    sqlx::query(
                        "insert into outbox_messages (id, notification_id, notification_type, channel, status, \
                         canvas_patient_id, next_attempt_at) values ($1, $2, $3, $4, 'pending', $5, $6)",
                    )
                    .bind(Uuid::new_v4())
                    .bind(id)
                    .bind(n.kind.code())
                    .bind(channel.code())
                    .bind(n.patient)
                    .bind(n.send_at)
                    .execute(&mut *tx)
                    .await?;
                }
                (id, false)
            }
            None => {
                let id = sqlx::query_scalar("select id from notifications where dedupe_key = $1")
                    .bind(n.dedupe_key)
                    .fetch_one(&mut *tx)
                    .await?;
                (id, true)
            }
        };
        tx.commit().await?;
        Ok((id, self.messages_of(id).await?, existing))
    }

    pub async fn notification(&self, id: Uuid) -> Result<Option<NotificationRow>> {
        let mut tx = self.begin().await?;
        let row = sqlx::query("select * from notifications where id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        row.map(|r| {
            let kind: String = r.try_get("notification_type")?;
            Ok(NotificationRow {
                id: r.try_get("id")?,
                kind: kind_of(&kind)?,
                patient: r.try_get("canvas_patient_id")?,
                reference: r.try_get("reference")?,
                dedupe_key: r.try_get("dedupe_key")?,
                sealed: sealed_of(&r)?,
            })
        })
        .transpose()
    }

    pub async fn notification_by_key(&self, dedupe_key: &str) -> Result<Option<Uuid>> {
        let mut tx = self.begin().await?;
        let id = sqlx::query_scalar("select id from notifications where dedupe_key = $1")
            .bind(dedupe_key)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn messages_of(&self, notification: Uuid) -> Result<Vec<MessageRow>> {
        let mut tx = self.begin().await?;
        let rows = sqlx::query(&format!(
            "select {MESSAGE_COLUMNS} from outbox_messages m join notifications n on n.id = m.notification_id \
             where m.notification_id = $1 order by m.channel"
        ))
        .bind(notification)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter().map(message_of).collect()
    }

    pub async fn message(&self, id: Uuid) -> Result<Option<(MessageRow, Vec<AttemptRow>)>> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(&format!(
            "select {MESSAGE_COLUMNS} from outbox_messages m join notifications n on n.id = m.notification_id \
             where m.id = $1"
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.commit().await?;
            return Ok(None);
        };
        let attempts = sqlx::query("select * from delivery_attempts where message_id = $1 order by id")
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        let attempts = attempts
            .iter()
            .map(|a| {
                Ok(AttemptRow {
                    number: a.try_get("number")?,
                    attempted_at: a.try_get("attempted_at")?,
                    outcome: a.try_get("outcome")?,
                    http_status: a.try_get("http_status")?,
                    error: a.try_get("error")?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Some((message_of(&row)?, attempts)))
    }

    /// Newest first, after `before`.
    pub async fn list_messages(
        &self,
        f: &MessageFilter<'_>,
        before: Option<Keyset>,
        limit: i64,
    ) -> Result<Vec<MessageRow>> {
        let mut tx = self.begin().await?;
        let rows = sqlx::query(&format!(
            "select {MESSAGE_COLUMNS} from outbox_messages m join notifications n on n.id = m.notification_id \
             where ($1::text is null or m.status = $1) and ($2::text is null or m.channel = $2) \
             and ($3::text is null or m.notification_type = $3) and ($4::text is null or m.canvas_patient_id = $4) \
             and ($5::timestamptz is null or (m.created_at, m.id) < ($5, $6)) \
             order by m.created_at desc, m.id desc limit $7"
        ))
        .bind(f.status)
        .bind(f.channel.map(Channel::code))
        .bind(f.kind.map(Kind::code))
        .bind(f.patient)
        .bind(before.map(|b| b.0))
        .bind(before.map(|b| b.1))
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter().map(message_of).collect()
    }

    /// Withdraws the notification's messages that have not been taken by a worker (and erases a
    /// withdrawn sign-in code or link).
    pub async fn cancel(&self, notification: Uuid) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "update outbox_messages set status = 'cancelled', updated_at = now() \
             where notification_id = $1 and status = 'pending'",
        )
        .bind(notification)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "update notifications set nonce = ''::bytea, sealed = ''::bytea where id = $1 \
             and notification_type in ('one_time_code', 'magic_link') \
             and not exists (select 1 from outbox_messages where notification_id = $1 and status in ('pending', 'sending'))",
        )
        .bind(notification)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Puts a dead-lettered message back for a fresh round of attempts; `false` when it is not
    /// dead-lettered.
    pub async fn replay(&self, id: Uuid) -> Result<bool> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "update outbox_messages set status = 'pending', attempt_count = 0, next_attempt_at = now(), \
             updated_at = now() where id = $1 and status = 'dead_lettered'",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(done == 1)
    }

    // ---- the worker ----

    /// Takes up to `limit` due messages (pending and due, or held by a worker whose lease ran out)
    /// for `lease`.
    ///
    /// A message retaken from a worker whose lease ran out (it stopped mid-delivery) has that lost
    /// attempt counted and recorded as `abandoned`, so a message that kills its workers still reaches
    /// the dead letter.
    pub async fn claim(&self, owner: &str, lease: Duration, limit: i64) -> Result<Vec<MessageRow>> {
        let mut tx = self.begin().await?;
        let ids: Vec<(Uuid, String)> = sqlx::query_as(
            "with picked as (select id, status as was from outbox_messages \
             where (status = 'pending' and next_attempt_at <= now()) or (status = 'sending' and lease_until < now()) \
             order by next_attempt_at for update skip locked limit $3), \
             taken as (update outbox_messages m set status = 'sending', lease_owner = $1, \
             lease_until = now() + make_interval(secs => $2), lease_generation = m.lease_generation + 1, \
             attempt_count = m.attempt_count + case when picked.was = 'sending' then 1 else 0 end, updated_at = now() \
             from picked where m.id = picked.id returning m.id, picked.was), \
             lost as (insert into delivery_attempts (message_id, number, outcome, error) \
             select t.id, (select count(*) from delivery_attempts d where d.message_id = t.id) + 1, 'abandoned', \
             'its worker stopped before recording the outcome' from taken t where t.was = 'sending') \
             select id, was from taken",
        )
        .bind(owner)
        .bind(lease.as_secs_f64())
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let rows = sqlx::query(&format!(
            "select {MESSAGE_COLUMNS} from outbox_messages m join notifications n on n.id = m.notification_id \
             where m.id = any($1)"
        ))
        .bind(ids.iter().map(|(id, _)| *id).collect::<Vec<_>>())
        .fetch_all(&mut *tx)
        .await?;
        // A row this version cannot read (a type a newer release added) must not hold back the
        // rest of the batch: it goes back untouched for a replica that can.
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            match message_of(row) {
                Ok(m) => out.push(m),
                Err(e) => {
                    let id: Uuid = row.try_get("id")?;
                    tracing::error!(message = %id, error = %e, "an outbox message this version cannot read");
                    // Back as it was: the abandoned attempt the claim counted was not one.
                    let retaken = ids.iter().any(|(i, was)| *i == id && was == "sending");
                    sqlx::query(
                        "update outbox_messages set status = 'pending', lease_owner = null, lease_until = null, \
                         attempt_count = greatest(attempt_count - $2, 0), next_attempt_at = now() + interval '5 minutes' \
                         where id = $1",
                    )
                    .bind(id)
                    .bind(i32::from(retaken))
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Extends a held lease; `false` when the message is no longer ours.
    pub async fn heartbeat(&self, id: Uuid, generation: i64, lease: Duration) -> Result<bool> {
        self.fenced(
            "update outbox_messages set lease_until = now() + make_interval(secs => $3) \
             where id = $1 and lease_generation = $2 and status = 'sending'",
            id,
            generation,
            Some(lease.as_secs_f64()),
        )
        .await
    }

    /// Marks the message as possibly sent from now on, right before the vendor is called: if this
    /// worker stops before recording the answer, the next one asks the vendor first.
    pub async fn about_to_send(&self, id: Uuid, generation: i64, masked_to: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "update outbox_messages set uncertain_since = coalesce(uncertain_since, now()), masked_to = $3, \
             updated_at = now() where id = $1 and lease_generation = $2 and status = 'sending'",
        )
        .bind(id)
        .bind(generation)
        .bind(masked_to)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(done == 1)
    }

    async fn fenced(&self, sql: &str, id: Uuid, generation: i64, secs: Option<f64>) -> Result<bool> {
        let mut tx = self.begin().await?;
        let mut q = sqlx::query(sql).bind(id).bind(generation);
        if let Some(s) = secs {
            q = q.bind(s);
        }
        let done = q.execute(&mut *tx).await?.rows_affected();
        tx.commit().await?;
        Ok(done == 1)
    }

    /// Records how an attempt ended, and the attempt itself, if the lease is still ours.
    pub async fn finish(&self, m: &MessageRow, f: Finish<'_>) -> Result<bool> {
        let mut tx = self.begin().await?;
        let tried = i32::from(f.attempt.is_some());
        let done = sqlx::query(
            "update outbox_messages set status = $3, attempt_count = attempt_count + $4, \
             next_attempt_at = coalesce($5, next_attempt_at), vendor_message_id = coalesce($6, vendor_message_id), \
             last_error = coalesce($7, last_error), sent_at = case when $3 = 'sent' then now() else sent_at end, \
             uncertain_since = case when $8 then uncertain_since else null end, lease_owner = null, \
             lease_until = null, updated_at = now() \
             where id = $1 and lease_generation = $2 and status = 'sending'",
        )
        .bind(m.id)
        .bind(m.lease_generation)
        .bind(f.status)
        .bind(tried)
        .bind(f.next_attempt_at)
        .bind(f.vendor_message_id)
        .bind(f.last_error)
        .bind(f.still_uncertain)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if done != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        // A code or link is kept (sealed) only until its message is over: then nothing holds it
        // but the recipient's mailbox and the hash the login checks.
        if m.kind.is_secret() && f.status != "pending" {
            sqlx::query("update notifications set nonce = ''::bytea, sealed = ''::bytea where id = $1")
                .bind(m.notification_id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some((outcome, http_status, error)) = f.attempt {
            // Numbered by the message's whole history, which a replay keeps.
            sqlx::query(
                "insert into delivery_attempts (message_id, number, outcome, http_status, error) \
                 values ($1, (select count(*) from delivery_attempts where message_id = $1) + 1, $2, $3, $4)",
            )
            .bind(m.id)
            .bind(outcome)
            .bind(http_status)
            .bind(error)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// The portal channel's delivery: the patient's notification and the message sent, together.
    pub async fn deliver_portal(&self, m: &MessageRow, sealed: &Sealed, portal_id: Uuid) -> Result<bool> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "update outbox_messages set status = 'sent', sent_at = now(), attempt_count = attempt_count + 1, \
             vendor_message_id = $3, masked_to = 'portal', lease_owner = null, lease_until = null, updated_at = now() \
             where id = $1 and lease_generation = $2 and status = 'sending'",
        )
        .bind(m.id)
        .bind(m.lease_generation)
        .bind(portal_id.to_string())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if done != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query(
            "insert into patient_notifications (id, message_id, canvas_patient_id, notification_type, reference, \
             key_version, nonce, sealed) select $1, $2, $3, $4, n.reference, $5, $6, $7 from notifications n \
             where n.id = $8 on conflict (message_id) do nothing",
        )
        .bind(portal_id)
        .bind(m.id)
        .bind(&m.patient)
        .bind(m.kind.code())
        .bind(sealed.key_version as i32)
        .bind(&sealed.nonce)
        .bind(&sealed.ciphertext)
        .bind(m.notification_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "insert into delivery_attempts (message_id, number, outcome, http_status, error) \
             values ($1, (select count(*) from delivery_attempts where message_id = $1) + 1, 'sent', 0, '')",
        )
        .bind(m.id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    // ---- conversation replies ----

    pub async fn reply(&self, key: &str) -> Result<Option<ReplyRow>> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "select request_mac, hubspot_message_id, uncertain_since from conversation_replies where idempotency_key = $1",
        )
        .bind(key)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        row.map(|r| {
            Ok(ReplyRow {
                request_mac: r.try_get("request_mac")?,
                hubspot_message_id: r.try_get("hubspot_message_id")?,
                uncertain_since: r.try_get("uncertain_since")?,
            })
        })
        .transpose()
    }

    /// Whether some reply already records this HubSpot message as its own.
    pub async fn message_recorded(&self, message_id: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        let found =
            sqlx::query_scalar("select exists (select 1 from conversation_replies where hubspot_message_id = $1)")
                .bind(message_id)
                .fetch_one(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(found)
    }

    pub async fn insert_reply(&self, r: NewReply<'_>) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "insert into conversation_replies (idempotency_key, conversation_id, request_mac, internal_comment, \
             requested_by_subject, on_behalf_of_subject) values ($1, $2, $3, $4, $5, $6)",
        )
        .bind(r.key)
        .bind(r.conversation_id)
        .bind(r.request_mac)
        .bind(r.internal_comment)
        .bind(r.by)
        .bind(r.on_behalf_of)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn reply_set(&self, sql: &str, key: &str, message_id: Option<&str>) -> Result<()> {
        let mut tx = self.begin().await?;
        let mut q = sqlx::query(sql).bind(key);
        if let Some(id) = message_id {
            q = q.bind(id);
        }
        q.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Right before the post: from now on the reply may exist in HubSpot.
    pub async fn reply_uncertain(&self, key: &str) -> Result<()> {
        self.reply_set(
            "update conversation_replies set uncertain_since = coalesce(uncertain_since, now()) where idempotency_key = $1",
            key,
            None,
        )
        .await
    }

    /// The post certainly did not happen.
    pub async fn reply_not_posted(&self, key: &str) -> Result<()> {
        self.reply_set(
            "update conversation_replies set uncertain_since = null where idempotency_key = $1 and hubspot_message_id is null",
            key,
            None,
        )
        .await
    }

    pub async fn reply_posted(&self, key: &str, message_id: &str) -> Result<()> {
        self.reply_set(
            "update conversation_replies set hubspot_message_id = $2, uncertain_since = null, posted_at = now() \
             where idempotency_key = $1",
            key,
            Some(message_id),
        )
        .await
    }

    // ---- logins ----

    pub async fn insert_login_code(&self, c: NewLoginCode<'_>) -> Result<()> {
        let mut tx = self.begin().await?;
        // Codes and links live minutes; a day later a row only takes room.
        sqlx::query("delete from login_codes where created_at < now() - interval '1 day'")
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "insert into login_codes (id, purpose, email_hash, admin_email, canvas_patient_id, secret_hash, expires_at) \
             values ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(c.id)
        .bind(c.purpose)
        .bind(c.email_hash)
        .bind(c.admin_email)
        .bind(c.canvas_patient_id)
        .bind(c.secret_hash)
        .bind(c.expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Codes or links of this purpose created for the email since `since`.
    pub async fn recent_login_codes(&self, purpose: &str, email_hash: &str, since: DateTime<Utc>) -> Result<i64> {
        let mut tx = self.begin().await?;
        let n = sqlx::query_scalar(
            "select count(*) from login_codes where purpose = $1 and email_hash = $2 and created_at > $3",
        )
        .bind(purpose)
        .bind(email_hash)
        .bind(since)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Uses the email's newest live code if `matches` says the code given is it; a wrong code counts
    /// against it. The row is locked, so of concurrent right answers exactly one uses it.
    ///
    /// Beyond `max_failed_per_hour` wrong codes for the email in the last hour (over all its codes),
    /// nothing is checked: asking for new codes must not buy an attacker more guesses.
    pub async fn use_login_code(
        &self,
        purpose: &str,
        email_hash: &str,
        max_failed: i32,
        max_failed_per_hour: i64,
        matches: impl FnOnce(&LoginCodeRow) -> bool,
    ) -> Result<Option<LoginCodeRow>> {
        let mut tx = self.begin().await?;
        let failed: i64 = sqlx::query_scalar(
            "select coalesce(sum(failed_attempts), 0)::bigint from login_codes where purpose = $1 and email_hash = $2 \
             and created_at > now() - interval '1 hour'",
        )
        .bind(purpose)
        .bind(email_hash)
        .fetch_one(&mut *tx)
        .await?;
        if failed >= max_failed_per_hour {
            tx.commit().await?;
            return Ok(None);
        }
        let row = sqlx::query(
            "select * from login_codes where purpose = $1 and email_hash = $2 and expires_at > now() \
             order by created_at desc limit 1 for update",
        )
        .bind(purpose)
        .bind(email_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.commit().await?;
            return Ok(None);
        };
        let consumed: Option<DateTime<Utc>> = row.try_get("consumed_at")?;
        let code = login_code_of(&row)?;
        if consumed.is_some() || code.failed_attempts >= max_failed {
            tx.commit().await?;
            return Ok(None);
        }
        let right = matches(&code);
        let sql = if right {
            "update login_codes set consumed_at = now() where id = $1"
        } else {
            "update login_codes set failed_attempts = failed_attempts + 1 where id = $1"
        };
        sqlx::query(sql).bind(code.id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(right.then_some(code))
    }

    /// Uses a live, unused magic link once.
    /// Whether a magic link was used and whether it expired, without using it; `None` when unknown.
    pub async fn magic_link_state(&self, secret_hash: &str) -> Result<Option<(bool, bool)>> {
        let mut tx = self.begin().await?;
        let row: Option<(bool, bool)> = sqlx::query_as(
            "select consumed_at is not null, expires_at <= now() from login_codes \
             where purpose = 'magic_link' and secret_hash = $1",
        )
        .bind(secret_hash)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(row)
    }

    /// Records that a code sent to the email was entered for this chart.
    pub async fn prove_login(&self, email_hash: &str, canvas_patient_id: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("insert into proven_logins (email_hash, canvas_patient_id) values ($1, $2) on conflict do nothing")
            .bind(email_hash)
            .bind(canvas_patient_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The charts this email has signed in to.
    pub async fn proven_charts(&self, email_hash: &str) -> Result<Vec<String>> {
        let mut tx = self.begin().await?;
        let charts = sqlx::query_scalar("select canvas_patient_id from proven_logins where email_hash = $1")
            .bind(email_hash)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(charts)
    }

    pub async fn use_magic_link(&self, secret_hash: &str) -> Result<Option<LoginCodeRow>> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "update login_codes set consumed_at = now() where purpose = 'magic_link' and secret_hash = $1 \
             and consumed_at is null and expires_at > now() returning *",
        )
        .bind(secret_hash)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        row.as_ref().map(login_code_of).transpose()
    }

    // ---- the portal ----

    /// The patient's notifications, newest first, after `before`; and how many are unread.
    pub async fn portal(
        &self,
        patient: &str,
        unread_only: bool,
        before: Option<Keyset>,
        limit: i64,
    ) -> Result<(Vec<PortalRow>, i64)> {
        let mut tx = self.begin().await?;
        let rows = sqlx::query(
            "select * from patient_notifications where canvas_patient_id = $1 and (not $2 or read_at is null) \
             and ($3::timestamptz is null or (created_at, id) < ($3, $4)) order by created_at desc, id desc limit $5",
        )
        .bind(patient)
        .bind(unread_only)
        .bind(before.map(|b| b.0))
        .bind(before.map(|b| b.1))
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let unread: i64 = sqlx::query_scalar(
            "select count(*) from patient_notifications where canvas_patient_id = $1 and read_at is null",
        )
        .bind(patient)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((rows.iter().map(portal_of).collect::<Result<_>>()?, unread))
    }

    /// Marks one of the patient's notifications read (the first time only); `None` when the patient
    /// has no such notification.
    pub async fn mark_read(&self, patient: &str, id: Uuid) -> Result<Option<PortalRow>> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "update patient_notifications set read_at = coalesce(read_at, now()) \
             where id = $1 and canvas_patient_id = $2 returning *",
        )
        .bind(id)
        .bind(patient)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        row.as_ref().map(portal_of).transpose()
    }
}

fn kind_of(code: &str) -> Result<Kind> {
    Kind::from_code(code).ok_or_else(|| crate::Error::Internal(anyhow::anyhow!("unknown notification type {code}")))
}

fn sealed_of(r: &PgRow) -> Result<Sealed> {
    Ok(Sealed {
        key_version: u32::try_from(r.try_get::<i32, _>("key_version")?).unwrap_or_default(),
        nonce: r.try_get("nonce")?,
        ciphertext: r.try_get("sealed")?,
    })
}

fn message_of(r: &PgRow) -> Result<MessageRow> {
    let kind: String = r.try_get("notification_type")?;
    let channel: String = r.try_get("channel")?;
    Ok(MessageRow {
        id: r.try_get("id")?,
        notification_id: r.try_get("notification_id")?,
        kind: kind_of(&kind)?,
        channel: Channel::from_code(&channel)
            .ok_or_else(|| crate::Error::Internal(anyhow::anyhow!("unknown channel {channel}")))?,
        status: r.try_get("status")?,
        patient: r.try_get("canvas_patient_id")?,
        masked_to: r.try_get("masked_to")?,
        dedupe_key: r.try_get("dedupe_key")?,
        attempt_count: r.try_get("attempt_count")?,
        vendor_message_id: r.try_get::<Option<String>, _>("vendor_message_id")?.unwrap_or_default(),
        last_error: r.try_get::<Option<String>, _>("last_error")?.unwrap_or_default(),
        send_at: r.try_get("send_at")?,
        next_attempt_at: r.try_get("next_attempt_at")?,
        sent_at: r.try_get("sent_at")?,
        uncertain_since: r.try_get("uncertain_since")?,
        lease_generation: r.try_get("lease_generation")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn login_code_of(r: &PgRow) -> Result<LoginCodeRow> {
    Ok(LoginCodeRow {
        id: r.try_get("id")?,
        admin_email: r.try_get("admin_email")?,
        canvas_patient_id: r.try_get("canvas_patient_id")?,
        secret_hash: r.try_get("secret_hash")?,
        failed_attempts: r.try_get("failed_attempts")?,
    })
}

fn portal_of(r: &PgRow) -> Result<PortalRow> {
    let kind: String = r.try_get("notification_type")?;
    Ok(PortalRow {
        id: r.try_get("id")?,
        patient: r.try_get("canvas_patient_id")?,
        kind: kind_of(&kind)?,
        reference: r.try_get("reference")?,
        sealed: sealed_of(r)?,
        read_at: r.try_get("read_at")?,
        created_at: r.try_get("created_at")?,
    })
}
