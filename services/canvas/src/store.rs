//! The service's own tables: encrypted intake records, the intake flow's progress, and idempotent
//! Canvas writes. Every transaction runs as `era_canvas_service`, a role that owns nothing and may
//! only read and insert intake records (see migrations/canvas/0002).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use era_proto::canvas::v1 as pb;
use prost::Message as _;
use sqlx::{PgPool, Postgres, Row as _, Transaction};
use uuid::Uuid;

use era_kit::sealing::{Keyring, OpenError, Sealed};

use crate::error::{Error, Result};

/// Every query runs as this role (migrations/canvas/0002).
const SET_ROLE: &str = "set local role era_canvas_service";

pub use era_kit::keylock::KeyLock;

#[derive(Clone, Debug)]
pub struct Store {
    pool: PgPool,
    keys: Keyring,
    locks: era_kit::keylock::KeyLocks,
}

/// A record to write.
#[derive(Debug)]
pub struct NewRecord<'a> {
    pub submission_id: &'a str,
    pub canvas_patient_id: &'a str,
    pub submission: &'a pb::IntakeSubmission,
    pub raw_json: &'a str,
    pub submitted_at: DateTime<Utc>,
}

/// Filters of ListIntakeRecords.
#[derive(Debug, Default)]
pub struct RecordFilter {
    pub canvas_patient_id: Option<String>,
    pub email: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Keyset position: records strictly older than this (submitted_at, id).
    pub before: Option<(DateTime<Utc>, Uuid)>,
    /// Page size.
    pub limit: i64,
}

/// One page of ListIntakeRecords.
#[derive(Debug)]
pub struct RecordPage {
    pub records: Vec<pb::IntakeRecord>,
    /// Where the next page starts, when there is one.
    pub next: Option<(DateTime<Utc>, Uuid)>,
}

const REVIEW_SELECT: &str = "select id, submission_id, reason, candidates, key_version, nonce, ciphertext, \
     created_at, resolved_at, resolved_by, canvas_patient_id from identity_reviews";

/// An intake held for an identity review, opened.
#[derive(Debug)]
pub struct Review {
    pub id: Uuid,
    pub submission_id: String,
    pub reason: String,
    pub candidates: Vec<String>,
    /// The submission as it arrived, to complete once decided.
    pub request: pb::SubmitIntakeRequest,
    pub created_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_by: Option<String>,
    pub canvas_patient_id: Option<String>,
}

/// Progress of one intake submission.
#[derive(Debug, Default, Clone)]
pub struct Submission {
    pub request_mac: String,
    pub canvas_patient_id: Option<String>,
    pub record_id: Option<Uuid>,
    pub questionnaire_response_id: Option<String>,
    pub task_id: Option<String>,
    pub completed: bool,
    /// When the submission was first seen: its time when the client gives none, so every attempt
    /// writes the same `authored` time and a resumed attempt can find what an earlier one wrote.
    pub first_seen: DateTime<Utc>,
}

/// What an idempotent write found when it started.
#[derive(Debug)]
pub enum WriteState {
    /// First time: go ahead.
    New,
    /// An earlier attempt stopped after starting (at `started_at`): Canvas may or may not have the
    /// resource.
    Unfinished { started_at: DateTime<Utc> },
    /// Done before: its resource id and result.
    Done {
        resource_id: String,
        result: serde_json::Value,
    },
}

impl Store {
    pub fn new(pool: PgPool, keys: Keyring) -> Self {
        let locks = era_kit::keylock::KeyLocks::new(pool.clone(), Some(SET_ROLE));
        Self { pool, keys, locks }
    }

    async fn begin(&self) -> Result<Transaction<'static, Postgres>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(SET_ROLE).execute(&mut *tx).await?;
        Ok(tx)
    }

    /// Serialises work on one idempotency key across calls and replicas (see `era_kit::keylock`).
    pub async fn lock_key(&self, key: &str) -> Result<KeyLock> {
        Ok(self.locks.lock(key).await?)
    }

    /// A keyed fingerprint of a request, to tell a retry from a different request under the same key.
    pub fn fingerprint(&self, kind: &str, canonical: &[u8]) -> String {
        self.keys.blind_index(kind, &hex::encode(canonical))
    }

    // ---- intake records ----

    /// Inserts a record; the same submission id again returns the stored one (`true`), or
    /// IDEMPOTENCY_KEY_REUSED when its content differs.
    pub async fn insert_record(&self, new: NewRecord<'_>) -> Result<(pb::IntakeRecord, bool)> {
        let content = content_bytes(new.submission, new.raw_json);
        let content_mac = self.fingerprint(
            "intake-content",
            &canonical_submission(new.canvas_patient_id, new.submission),
        );
        let demographics = new.submission.demographics.clone().unwrap_or_default();
        let id = Uuid::new_v4();
        // PostgreSQL keeps microseconds; the sealed context must match what is read back.
        let submitted_at =
            DateTime::from_timestamp_micros(new.submitted_at.timestamp_micros()).unwrap_or(new.submitted_at);
        let sealed = self.keys.seal(
            id,
            &row_context(new.canvas_patient_id, new.submission_id, submitted_at),
            &content,
        )?;
        let mut tx = self.begin().await?;
        let inserted = sqlx::query(
            "insert into intake_records (id, submission_id, canvas_patient_id, email_index, birth_date_index, \
             content_mac, submitted_at, key_version, nonce, ciphertext) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) on conflict (submission_id) do nothing",
        )
        .bind(id)
        .bind(new.submission_id)
        .bind(new.canvas_patient_id)
        .bind(self.keys.blind_index("email", &demographics.email))
        .bind(self.keys.blind_index("birth_date", &demographics.birth_date))
        .bind(&content_mac)
        .bind(submitted_at)
        .bind(sealed.key_version as i32)
        .bind(&sealed.nonce)
        .bind(&sealed.ciphertext)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        let row = sqlx::query(&format!("{RECORD_SELECT} where submission_id = $1"))
            .bind(new.submission_id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        let stored_mac: String = row.try_get("content_mac")?;
        if !inserted && stored_mac != content_mac {
            return Err(Error::KeyReused("submission_id"));
        }
        Ok((self.open_row(&row)?, !inserted))
    }

    pub async fn get_record(&self, id: Uuid) -> Result<Option<pb::IntakeRecord>> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(&format!("{RECORD_SELECT} where id = $1"))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        row.map(|r| self.open_row(&r)).transpose()
    }

    /// A page of records, newest first. The cursor comes from the rows, not from the records that
    /// opened, so an unreadable record cannot end the paging early.
    pub async fn list_records(&self, f: &RecordFilter) -> Result<RecordPage> {
        let email_index = f.email.as_deref().map(|e| self.keys.blind_index("email", e));
        let (before_at, before_id) = f.before.map_or((None, None), |(t, i)| (Some(t), Some(i)));
        let mut tx = self.begin().await?;
        let rows = sqlx::query(&format!(
            "{RECORD_SELECT} where ($1::text is null or canvas_patient_id = $1) \
             and ($2::text is null or email_index = $2) \
             and ($3::timestamptz is null or submitted_at >= $3) \
             and ($4::timestamptz is null or submitted_at < $4) \
             and ($5::timestamptz is null or (submitted_at, id) < ($5, $6)) \
             order by submitted_at desc, id desc limit $7"
        ))
        .bind(&f.canvas_patient_id)
        .bind(email_index)
        .bind(f.from)
        .bind(f.to)
        .bind(before_at)
        .bind(before_id)
        .bind(f.limit + 1)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let limit = usize::try_from(f.limit).unwrap_or(0);
        let more = rows.len() > limit;
        let rows = &rows[..rows.len().min(limit)];
        let next = match rows.last() {
            Some(last) if more => Some((last.try_get("submitted_at")?, last.try_get("id")?)),
            _ => None,
        };
        Ok(RecordPage {
            records: self.open_readable(rows).collect(),
            next,
        })
    }

    /// The newest record of each of these patients.
    pub async fn latest_records(&self, patient_ids: &[String]) -> Result<HashMap<String, pb::IntakeRecord>> {
        if patient_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut tx = self.begin().await?;
        let rows = sqlx::query(&format!(
            "select distinct on (canvas_patient_id) * from ({RECORD_SELECT} where canvas_patient_id = any($1)) r \
             order by canvas_patient_id, submitted_at desc, id desc"
        ))
        .bind(patient_ids)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(self
            .open_readable(&rows)
            .map(|r| (r.canvas_patient_id.clone(), r))
            .collect())
    }

    /// The records of these submissions, by submission id.
    pub async fn records_by_submission(&self, submission_ids: &[String]) -> Result<HashMap<String, pb::IntakeRecord>> {
        if submission_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut tx = self.begin().await?;
        let rows = sqlx::query(&format!("{RECORD_SELECT} where submission_id = any($1)"))
            .bind(submission_ids)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(self
            .open_readable(&rows)
            .map(|r| (r.submission_id.clone(), r))
            .collect())
    }

    /// Canvas patient ids whose intake matched this email or date of birth (blind index lookups).
    pub async fn patients_matching(&self, email: Option<&str>, birth_date: Option<&str>) -> Result<Vec<String>> {
        let email_index = email.map(|e| self.keys.blind_index("email", e));
        let dob_index = birth_date.map(|d| self.keys.blind_index("birth_date", d));
        let mut tx = self.begin().await?;
        let ids: Vec<String> = sqlx::query_scalar(
            "select canvas_patient_id from intake_records \
             where ($1::text is null or email_index = $1) and ($2::text is null or birth_date_index = $2) \
             group by canvas_patient_id order by max(submitted_at) desc limit 100",
        )
        .bind(email_index)
        .bind(dob_index)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(ids)
    }

    /// The rows that open, for lists: one unreadable record must not hide the others (reading it
    /// alone reports RECORD_INTEGRITY); it is logged by id.
    fn open_readable<'a>(&'a self, rows: &'a [sqlx::postgres::PgRow]) -> impl Iterator<Item = pb::IntakeRecord> + 'a {
        rows.iter().filter_map(|row| {
            self.open_row(row)
                .map_err(|e| tracing::error!(error = %e, "intake record cannot be opened"))
                .ok()
        })
    }

    fn open_row(&self, row: &sqlx::postgres::PgRow) -> Result<pb::IntakeRecord> {
        let id: Uuid = row.try_get("id")?;
        let version: i32 = row.try_get("key_version")?;
        let sealed = Sealed {
            key_version: u32::try_from(version).unwrap_or(0),
            nonce: row.try_get("nonce")?,
            ciphertext: row.try_get("ciphertext")?,
        };
        let patient: String = row.try_get("canvas_patient_id")?;
        let submission_id: String = row.try_get("submission_id")?;
        let submitted_at: DateTime<Utc> = row.try_get("submitted_at")?;
        let context = row_context(&patient, &submission_id, submitted_at);
        let plain = self.keys.open(id, &context, &sealed).map_err(|e| match e {
            OpenError::UnknownKey { .. } | OpenError::Integrity { .. } => Error::RecordIntegrity(id),
        })?;
        let content = pb::IntakeRecord::decode(plain.as_slice()).map_err(|_| Error::RecordIntegrity(id))?;
        let created_at: DateTime<Utc> = row.try_get("created_at")?;
        Ok(pb::IntakeRecord {
            id: id.to_string(),
            canvas_patient_id: patient,
            submission_id,
            submission: content.submission,
            raw_json: content.raw_json,
            submitted_at: Some(crate::convert::timestamp(submitted_at)),
            key_version: version,
            created_at: Some(crate::convert::timestamp(created_at)),
        })
    }

    /// Appends to the PHI read trail: one row per record read, or one for the patient when the
    /// call read their chart without a record.
    pub async fn audit_read(
        &self,
        actor: &era_kit::auth::Caller,
        rpc: &str,
        reads: &[(String, Option<Uuid>)],
    ) -> Result<()> {
        if reads.is_empty() {
            return Ok(());
        }
        let role = match actor.role {
            era_kit::auth::Role::Admin => "admin",
            era_kit::auth::Role::Patient => "patient",
            era_kit::auth::Role::Service => "service",
        };
        let (patients, records): (Vec<String>, Vec<Option<Uuid>>) = reads.iter().cloned().unzip();
        let mut tx = self.begin().await?;
        sqlx::query(
            "insert into phi_reads (actor_subject, actor_role, rpc, canvas_patient_id, record_id) \
             select $1, $2, $3, p, r from unnest($4::text[], $5::uuid[]) as t(p, r)",
        )
        .bind(&actor.subject)
        .bind(role)
        .bind(rpc)
        .bind(&patients)
        .bind(&records)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    // ---- identity reviews ----

    /// Holds a submission for review (sealed); the same submission again returns the first hold.
    pub async fn hold_for_review(
        &self,
        submission_id: &str,
        reason: &str,
        candidates: &[String],
        request: &pb::SubmitIntakeRequest,
    ) -> Result<Uuid> {
        let id = Uuid::new_v4();
        let sealed = self.keys.seal(id, submission_id.as_bytes(), &request.encode_to_vec())?;
        let mut tx = self.begin().await?;
        sqlx::query(
            "insert into identity_reviews (id, submission_id, reason, candidates, key_version, nonce, ciphertext) \
             values ($1, $2, $3, $4, $5, $6, $7) on conflict (submission_id) do nothing",
        )
        .bind(id)
        .bind(submission_id)
        .bind(reason)
        .bind(candidates)
        .bind(sealed.key_version as i32)
        .bind(&sealed.nonce)
        .bind(&sealed.ciphertext)
        .execute(&mut *tx)
        .await?;
        let held: Uuid = sqlx::query_scalar("select id from identity_reviews where submission_id = $1")
            .bind(submission_id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(held)
    }

    /// The blind index of an email, for locks keyed by a person.
    pub fn email_index(&self, email: &str) -> String {
        self.keys.blind_index("email", email)
    }

    /// The review holding this submission, if any.
    pub async fn review_of_submission(&self, submission_id: &str) -> Result<Option<Review>> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(&format!("{REVIEW_SELECT} where submission_id = $1"))
            .bind(submission_id)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        row.map(|r| self.open_review(&r)).transpose()
    }

    pub async fn review(&self, id: Uuid) -> Result<Option<Review>> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(&format!("{REVIEW_SELECT} where id = $1"))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        row.map(|r| self.open_review(&r)).transpose()
    }

    /// Reviews oldest first (open ones only unless `include_resolved`), after `offset`.
    pub async fn reviews(&self, include_resolved: bool, offset: i64, limit: i64) -> Result<Vec<Review>> {
        let mut tx = self.begin().await?;
        let rows = sqlx::query(&format!(
            "{REVIEW_SELECT} where $1 or resolved_at is null order by created_at, id offset $2 limit $3"
        ))
        .bind(include_resolved)
        .bind(offset)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter().map(|r| self.open_review(r)).collect()
    }

    /// Records the decision, once: false when the review was already decided.
    pub async fn resolve_review(&self, id: Uuid, canvas_patient_id: &str, by: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "update identity_reviews set resolved_at = now(), resolved_by = $2, canvas_patient_id = $3 \
             where id = $1 and resolved_at is null",
        )
        .bind(id)
        .bind(by)
        .bind(canvas_patient_id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        tx.commit().await?;
        Ok(done)
    }

    fn open_review(&self, row: &sqlx::postgres::PgRow) -> Result<Review> {
        let id: Uuid = row.try_get("id")?;
        let submission_id: String = row.try_get("submission_id")?;
        let version: i32 = row.try_get("key_version")?;
        let sealed = Sealed {
            key_version: u32::try_from(version).unwrap_or(0),
            nonce: row.try_get("nonce")?,
            ciphertext: row.try_get("ciphertext")?,
        };
        let plain = self
            .keys
            .open(id, submission_id.as_bytes(), &sealed)
            .map_err(|_| Error::RecordIntegrity(id))?;
        let request = pb::SubmitIntakeRequest::decode(plain.as_slice()).map_err(|_| Error::RecordIntegrity(id))?;
        Ok(Review {
            id,
            submission_id,
            reason: row.try_get("reason")?,
            candidates: row.try_get("candidates")?,
            request,
            created_at: row.try_get("created_at")?,
            resolved_at: row.try_get("resolved_at")?,
            resolved_by: row.try_get("resolved_by")?,
            canvas_patient_id: row.try_get("canvas_patient_id")?,
        })
    }

    // ---- the intake flow ----

    /// The submission's progress, creating its row on first sight. IDEMPOTENCY_KEY_REUSED when the
    /// id was used for a different submission.
    pub async fn submission(&self, submission_id: &str, request_mac: &str) -> Result<Submission> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "insert into intake_submissions (submission_id, request_mac) values ($1, $2) on conflict do nothing",
        )
        .bind(submission_id)
        .bind(request_mac)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(
            "select request_mac, canvas_patient_id, record_id, questionnaire_response_id, task_id, completed_at, \
             created_at from intake_submissions where submission_id = $1",
        )
        .bind(submission_id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        let stored: String = row.try_get("request_mac")?;
        if stored != request_mac {
            return Err(Error::KeyReused("submission_id"));
        }
        Ok(Submission {
            request_mac: stored,
            canvas_patient_id: row.try_get("canvas_patient_id")?,
            record_id: row.try_get("record_id")?,
            questionnaire_response_id: row.try_get("questionnaire_response_id")?,
            task_id: row.try_get("task_id")?,
            completed: row.try_get::<Option<DateTime<Utc>>, _>("completed_at")?.is_some(),
            first_seen: row.try_get("created_at")?,
        })
    }

    /// The submission when it has finished (IDEMPOTENCY_KEY_REUSED when the id came with another
    /// submission); `None` when it is new or still in progress. Writes nothing.
    pub async fn finished_submission(&self, submission_id: &str, request_mac: &str) -> Result<Option<Submission>> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "select request_mac, canvas_patient_id, record_id, questionnaire_response_id, task_id, created_at \
             from intake_submissions where submission_id = $1 and completed_at is not null",
        )
        .bind(submission_id)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        let Some(row) = row else { return Ok(None) };
        let stored: String = row.try_get("request_mac")?;
        if stored != request_mac {
            return Err(Error::KeyReused("submission_id"));
        }
        Ok(Some(Submission {
            request_mac: stored,
            canvas_patient_id: row.try_get("canvas_patient_id")?,
            record_id: row.try_get("record_id")?,
            questionnaire_response_id: row.try_get("questionnaire_response_id")?,
            task_id: row.try_get("task_id")?,
            completed: true,
            first_seen: row.try_get("created_at")?,
        }))
    }

    /// Records one finished step of a submission.
    pub async fn save_submission(&self, submission_id: &str, s: &Submission) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "update intake_submissions set canvas_patient_id = $2, record_id = $3, questionnaire_response_id = $4, \
             task_id = $5, completed_at = case when $6 then coalesce(completed_at, now()) end \
             where submission_id = $1",
        )
        .bind(submission_id)
        .bind(&s.canvas_patient_id)
        .bind(s.record_id)
        .bind(&s.questionnaire_response_id)
        .bind(&s.task_id)
        .bind(s.completed)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    // ---- idempotent writes ----

    /// Starts (or finds) the write under `key`. IDEMPOTENCY_KEY_REUSED when the key came with other
    /// parameters.
    pub async fn begin_write(&self, key: &str, kind: &str, request_mac: &str) -> Result<WriteState> {
        let mut tx = self.begin().await?;
        let inserted = sqlx::query(
            "insert into canvas_writes (idempotency_key, kind, request_mac) values ($1, $2, $3) on conflict do nothing",
        )
        .bind(key)
        .bind(kind)
        .bind(request_mac)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        let row = sqlx::query(
            "select kind, request_mac, resource_id, result, created_at from canvas_writes where idempotency_key = $1",
        )
        .bind(key)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        let stored_kind: String = row.try_get("kind")?;
        let stored_mac: String = row.try_get("request_mac")?;
        if stored_kind != kind || stored_mac != request_mac {
            return Err(Error::KeyReused("idempotency_key"));
        }
        if inserted {
            return Ok(WriteState::New);
        }
        let resource_id: Option<String> = row.try_get("resource_id")?;
        let result: Option<serde_json::Value> = row.try_get("result")?;
        Ok(match (resource_id, result) {
            (Some(resource_id), Some(result)) => WriteState::Done { resource_id, result },
            // Canvas refused the last attempt outright: nothing exists, so this one may create, and
            // is unfinished until it says otherwise (a crash now must not read as "refused").
            (None, Some(_)) => {
                let mut tx = self.begin().await?;
                sqlx::query(
                    "update canvas_writes set result = null, created_at = now() \
                     where idempotency_key = $1 and resource_id is null",
                )
                .bind(key)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                WriteState::New
            }
            (_, None) => WriteState::Unfinished {
                started_at: row.try_get("created_at")?,
            },
        })
    }

    /// Records that Canvas refused the write outright (4xx, credentials), so a retry under the same
    /// key may create instead of having to guess whether an earlier attempt did.
    pub async fn reject_write(&self, key: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "update canvas_writes set result = '{\"rejected\": true}'::jsonb, created_at = now() \
             where idempotency_key = $1 and resource_id is null",
        )
        .bind(key)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn finish_write(&self, key: &str, resource_id: &str, result: &serde_json::Value) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "update canvas_writes set resource_id = $2, result = $3, completed_at = now() where idempotency_key = $1",
        )
        .bind(key)
        .bind(resource_id)
        .bind(result)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// The record's clear columns, bound into its ciphertext: moving a row to another patient,
/// submission or time makes it fail its integrity check.
fn row_context(patient: &str, submission_id: &str, submitted_at: DateTime<Utc>) -> Vec<u8> {
    let mut out = Vec::new();
    for part in [patient.as_bytes(), submission_id.as_bytes()] {
        out.extend_from_slice(&(part.len() as u64).to_be_bytes());
        out.extend_from_slice(part);
    }
    out.extend_from_slice(&submitted_at.timestamp_micros().to_be_bytes());
    out
}

const RECORD_SELECT: &str = "select id, submission_id, canvas_patient_id, content_mac, submitted_at, key_version, \
                             nonce, ciphertext, created_at from intake_records";

/// What is encrypted: the submission and the raw JSON, as protobuf.
fn content_bytes(submission: &pb::IntakeSubmission, raw_json: &str) -> Vec<u8> {
    pb::IntakeRecord {
        submission: Some(submission.clone()),
        raw_json: raw_json.to_owned(),
        ..Default::default()
    }
    .encode_to_vec()
}

/// A byte string equal for equal submissions: protobuf with the metadata map (whose encoding order
/// is not fixed) taken out and appended sorted. The raw JSON is left out: the same submission sent
/// again with its keys in another order is still the same submission.
pub fn canonical_submission(context: &str, submission: &pb::IntakeSubmission) -> Vec<u8> {
    let mut without_map = submission.clone();
    let mut metadata: Vec<_> = std::mem::take(&mut without_map.metadata).into_iter().collect();
    metadata.sort();
    let mut out = Vec::new();
    for part in [context.as_bytes(), &without_map.encode_to_vec()] {
        out.extend_from_slice(&(part.len() as u64).to_be_bytes());
        out.extend_from_slice(part);
    }
    for (k, v) in metadata {
        for part in [k.as_bytes(), v.as_bytes()] {
            out.extend_from_slice(&(part.len() as u64).to_be_bytes());
            out.extend_from_slice(part);
        }
    }
    out
}
