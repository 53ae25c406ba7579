//! The service's tables. Every transaction runs as `era_payments_service` (see
//! migrations/payments/0002), which owns nothing and cannot change the refund audit.

use chrono::{DateTime, Utc};
use era_kit::keylock::{KeyLock, KeyLocks};
use era_proto::{common::v1::Actor, payments::v1 as pb};
use sqlx::{postgres::PgRow, PgPool, Postgres, Row as _, Transaction};
use uuid::Uuid;

use crate::error::Result;

const SET_ROLE: &str = "set local role era_payments_service";

#[derive(Clone, Debug)]
pub struct Store {
    pool: PgPool,
    locks: KeyLocks,
}

use era_kit::time::timestamp as ts;

pub fn hold_status(s: &str) -> pb::PaymentHoldStatus {
    use pb::PaymentHoldStatus as S;
    match s {
        "pending" => S::Pending,
        "active" => S::Active,
        "requires_action" => S::RequiresAction,
        "failed" => S::Failed,
        "replaced" => S::Replaced,
        _ => S::Unspecified,
    }
}

pub fn charge_status(s: &str) -> pb::ChargeStatus {
    use pb::ChargeStatus as S;
    match s {
        "pending" => S::Pending,
        "processing" => S::Processing,
        "succeeded" => S::Succeeded,
        "declined" => S::Declined,
        "authentication_required" => S::AuthenticationRequired,
        "failed" => S::Failed,
        "canceled" => S::Canceled,
        "authorized" => S::Authorized,
        _ => S::Unspecified,
    }
}

pub fn charge_status_code(s: pb::ChargeStatus) -> &'static str {
    use pb::ChargeStatus as S;
    match s {
        S::Pending => "pending",
        S::Processing => "processing",
        S::Succeeded => "succeeded",
        S::Declined => "declined",
        S::AuthenticationRequired => "authentication_required",
        S::Failed => "failed",
        S::Canceled => "canceled",
        S::Authorized => "authorized",
        S::Unspecified => "",
    }
}

pub fn refund_status(s: &str) -> pb::RefundStatus {
    use pb::RefundStatus as S;
    match s {
        "pending" => S::Pending,
        "requires_action" => S::RequiresAction,
        "succeeded" => S::Succeeded,
        "failed" => S::Failed,
        "canceled" => S::Canceled,
        _ => S::Unspecified,
    }
}

pub fn refund_reason_code(r: pb::RefundReason) -> Option<&'static str> {
    match r {
        pb::RefundReason::RequestedByCustomer => Some("requested_by_customer"),
        pb::RefundReason::Duplicate => Some("duplicate"),
        pb::RefundReason::Fraudulent => Some("fraudulent"),
        pb::RefundReason::Unspecified => None,
    }
}

fn refund_reason(s: &str) -> pb::RefundReason {
    match s {
        "requested_by_customer" => pb::RefundReason::RequestedByCustomer,
        "duplicate" => pb::RefundReason::Duplicate,
        "fraudulent" => pb::RefundReason::Fraudulent,
        _ => pb::RefundReason::Unspecified,
    }
}

fn actor(subject: String, role: String) -> Option<Actor> {
    Some(Actor { subject, role })
}

/// The on-behalf-of columns of a row, when set.
fn on_behalf_of(r: &PgRow) -> Result<Option<Actor>> {
    let subject: Option<String> = r.try_get("on_behalf_of_subject")?;
    let role: Option<String> = r.try_get("on_behalf_of_role")?;
    Ok(subject.map(|subject| Actor {
        subject,
        role: role.unwrap_or_default(),
    }))
}

/// A charge row with what the flow needs besides the message.
#[derive(Clone, Debug)]
pub struct ChargeRow {
    pub charge: pb::Charge,
    pub id: Uuid,
    pub stripe_key: String,
    pub client_key: Option<String>,
    /// Authorised now, captured later (AuthorizeHold).
    pub manual_capture: bool,
}

/// A refund row with what the flow needs besides the message.
#[derive(Clone, Debug)]
pub struct RefundRow {
    pub refund: pb::Refund,
    pub id: Uuid,
    pub request_mac: String,
}

/// The authenticated caller, and whom a service caller said it acted for.
#[derive(Debug)]
pub struct Actors {
    pub by: Actor,
    pub on_behalf_of: Option<Actor>,
}

/// What the resume worker finds (see [`Store::unfinished`]).
#[derive(Debug, Default)]
pub struct Unfinished {
    pub charges: Vec<Uuid>,
    pub refunds: Vec<Uuid>,
    /// Unfinished work too old to send to Stripe again, waiting for an operator.
    pub for_operator: i64,
}

/// Which table [`Store::postpone`] touches.
#[derive(Clone, Copy, Debug)]
pub enum Postponed {
    Charge,
    Refund,
}

/// A charge to record before Stripe is called.
#[derive(Debug)]
pub struct NewCharge<'a> {
    pub reference: &'a str,
    pub client_key: Option<&'a str>,
    pub canvas_patient_id: &'a str,
    pub hold_id: Uuid,
    pub amount_cents: i64,
    pub currency: &'a str,
    pub description: &'a str,
    pub actors: &'a Actors,
    pub manual_capture: bool,
}

/// A refund to record (with its audit row) before Stripe is called.
#[derive(Debug)]
pub struct NewRefund<'a> {
    pub client_key: &'a str,
    pub request_mac: &'a str,
    pub amount: i64,
    pub reason: &'a str,
    pub note: &'a str,
    pub by: &'a Actors,
}

/// What Stripe said of a charge.
#[derive(Debug, Default)]
pub struct ChargeOutcome {
    pub status: &'static str,
    pub payment_intent: Option<String>,
    pub stripe_charge: Option<String>,
    pub failure_code: Option<String>,
    pub decline_code: Option<String>,
    pub failure_message: Option<String>,
}

/// Which cap stopped a card attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CardCap {
    PerSetupIntent,
    PerPatient,
}

impl Store {
    pub fn new(pool: PgPool) -> Self {
        let locks = KeyLocks::new(pool.clone(), Some(SET_ROLE));
        Self { pool, locks }
    }

    pub async fn lock(&self, key: &str) -> Result<KeyLock> {
        Ok(self.locks.lock(key).await?)
    }

    /// The key if it is free now (see [`KeyLocks::try_lock`]).
    pub async fn try_lock(&self, key: &str) -> Result<Option<KeyLock>> {
        Ok(self.locks.try_lock(key).await?)
    }

    async fn begin(&self) -> Result<Transaction<'static, Postgres>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(SET_ROLE).execute(&mut *tx).await?;
        Ok(tx)
    }

    // ---- customers and holds ----

    pub async fn customer(&self, patient: &str) -> Result<Option<String>> {
        let mut tx = self.begin().await?;
        let id = sqlx::query_scalar("select stripe_customer_id from customers where canvas_patient_id = $1")
            .bind(patient)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn save_customer(&self, patient: &str, customer: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "insert into customers (canvas_patient_id, stripe_customer_id) values ($1, $2) on conflict do nothing",
        )
        .bind(patient)
        .bind(customer)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records the SetupIntent as a pending hold (once per SetupIntent).
    pub async fn pending_hold(&self, patient: &str, customer: &str, setup_intent: &str, setup_key: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "insert into payment_holds (id, canvas_patient_id, stripe_customer_id, setup_intent_id, status, setup_key) \
             values ($1, $2, $3, $4, 'pending', $5) on conflict (setup_intent_id) do nothing",
        )
        .bind(Uuid::new_v4())
        .bind(patient)
        .bind(customer)
        .bind(setup_intent)
        .bind(setup_key)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Whether a SetupIntent was already created under this key (a replay, not a new one), and how
    /// many SetupIntents the patient opened in the last day.
    pub async fn setups(&self, patient: &str, setup_key: &str) -> Result<(bool, i64)> {
        let mut tx = self.begin().await?;
        let row: (bool, i64) = sqlx::query_as(
            "select coalesce(bool_or(setup_key = $2), false), \
                    count(*) filter (where created_at > now() - interval '24 hours') \
             from payment_holds where canvas_patient_id = $1",
        )
        .bind(patient)
        .bind(setup_key)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(row)
    }

    /// Makes the SetupIntent's hold the patient's active one (the previous active one is replaced).
    pub async fn activate_hold(
        &self,
        patient: &str,
        customer: &str,
        setup_intent: &str,
        payment_method: &str,
        card: &pb::Card,
    ) -> Result<pb::PaymentHold> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "insert into payment_holds (id, canvas_patient_id, stripe_customer_id, setup_intent_id, status) \
             values ($1, $2, $3, $4, 'pending') on conflict (setup_intent_id) do nothing",
        )
        .bind(Uuid::new_v4())
        .bind(patient)
        .bind(customer)
        .bind(setup_intent)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "update payment_holds set status = 'replaced', updated_at = now() \
             where canvas_patient_id = $1 and status = 'active' and setup_intent_id <> $2",
        )
        .bind(patient)
        .bind(setup_intent)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(
            "update payment_holds set status = 'active', stripe_payment_method_id = $2, card_brand = $3, \
             card_last4 = $4, card_exp_month = $5, card_exp_year = $6, card_funding = $7, updated_at = now() \
             where setup_intent_id = $1 returning *",
        )
        .bind(setup_intent)
        .bind(payment_method)
        .bind(&card.brand)
        .bind(&card.last4)
        .bind(card.exp_month)
        .bind(card.exp_year)
        .bind(&card.funding)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        hold_of(&row)
    }

    /// Records a server-side card confirmation about to go to Stripe, unless a cap is reached:
    /// `Ok(Err(cap))` names the one. Checked and written under the patient's lock, so concurrent
    /// attempts cannot pass a cap together.
    pub async fn begin_card_attempt(
        &self,
        patient: &str,
        setup_intent: &str,
        per_intent: i64,
        per_patient_per_day: i64,
    ) -> Result<std::result::Result<i64, CardCap>> {
        let mut tx = self.begin().await?;
        sqlx::query("select pg_advisory_xact_lock(hashtext('card-attempts:' || $1))")
            .bind(patient)
            .execute(&mut *tx)
            .await?;
        let (intent, day): (i64, i64) = sqlx::query_as(
            "select count(*) filter (where setup_intent_id = $2), \
                    count(*) filter (where created_at > now() - interval '24 hours') \
             from card_attempts where canvas_patient_id = $1",
        )
        .bind(patient)
        .bind(setup_intent)
        .fetch_one(&mut *tx)
        .await?;
        if intent >= per_intent {
            return Ok(Err(CardCap::PerSetupIntent));
        }
        if day >= per_patient_per_day {
            return Ok(Err(CardCap::PerPatient));
        }
        let id: i64 = sqlx::query_scalar(
            "insert into card_attempts (canvas_patient_id, setup_intent_id) values ($1, $2) returning id",
        )
        .bind(patient)
        .bind(setup_intent)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Ok(id))
    }

    /// What a card attempt came to, with Stripe's reason when it declined (kept for support).
    pub async fn finish_card_attempt(&self, id: i64, outcome: &str, failure_code: Option<&str>) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("update card_attempts set outcome = $2, failure_code = $3 where id = $1")
            .bind(id)
            .bind(outcome)
            .bind(failure_code)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn set_hold_status(&self, setup_intent: &str, status: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "update payment_holds set status = $2, updated_at = now() where setup_intent_id = $1 and status = 'pending'",
        )
        .bind(setup_intent)
        .bind(status)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn hold(&self, id: Option<Uuid>, patient: Option<&str>) -> Result<Option<pb::PaymentHold>> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "select * from payment_holds where ($1::uuid is null or id = $1) \
             and ($2::text is null or (canvas_patient_id = $2 and ($1::uuid is not null or status = 'active'))) \
             order by created_at desc limit 1",
        )
        .bind(id)
        .bind(patient)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        row.as_ref().map(hold_of).transpose()
    }

    pub async fn holds_of(&self, patient: &str) -> Result<Vec<pb::PaymentHold>> {
        let mut tx = self.begin().await?;
        let rows = sqlx::query(
            "select * from payment_holds where canvas_patient_id = $1 \
             order by (status = 'active') desc, created_at desc",
        )
        .bind(patient)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter().map(hold_of).collect()
    }

    // ---- charges ----

    pub async fn charge_by_reference(&self, reference: &str) -> Result<Option<ChargeRow>> {
        self.charge_where("reference = $1", reference).await
    }

    pub async fn charge_by_client_key(&self, key: &str) -> Result<Option<ChargeRow>> {
        self.charge_where("client_key = $1", key).await
    }

    pub async fn charge_by_id(&self, id: Uuid) -> Result<Option<ChargeRow>> {
        self.charge_where("id = $1::text::uuid", &id.to_string()).await
    }

    pub async fn charge_by_payment_intent(&self, pi: &str) -> Result<Option<ChargeRow>> {
        self.charge_where("stripe_payment_intent_id = $1", pi).await
    }

    async fn charge_where(&self, condition: &str, value: &str) -> Result<Option<ChargeRow>> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(&format!("select * from charges where {condition}"))
            .bind(value)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            tx.commit().await?;
            return Ok(None);
        };
        let id: Uuid = row.try_get("id")?;
        let refunds = sqlx::query("select * from refunds where charge_id = $1 order by created_at")
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        let mut out = charge_of(&row)?;
        out.charge.refunds = refunds
            .iter()
            .map(|r| refund_of(r).map(|r| r.refund))
            .collect::<Result<_>>()?;
        for r in &mut out.charge.refunds {
            r.canvas_patient_id = out.charge.canvas_patient_id.clone();
        }
        Ok(Some(out))
    }

    /// Writes the charge before Stripe hears of it; its id makes the Stripe idempotency key.
    pub async fn insert_charge(&self, c: NewCharge<'_>) -> Result<ChargeRow> {
        let id = Uuid::new_v4();
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "insert into charges (id, reference, idempotency_key, client_key, canvas_patient_id, hold_id, amount_cents, \
             currency, description, status, created_by_subject, created_by_role, on_behalf_of_subject, \
             on_behalf_of_role, capture_method) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10, $11, $12, $13, $14) \
             returning *",
        )
        .bind(id)
        .bind(c.reference)
        .bind(format!("charge-{id}"))
        .bind(c.client_key)
        .bind(c.canvas_patient_id)
        .bind(c.hold_id)
        .bind(c.amount_cents)
        .bind(c.currency)
        .bind(c.description)
        .bind(&c.actors.by.subject)
        .bind(&c.actors.by.role)
        .bind(c.actors.on_behalf_of.as_ref().map(|a| &a.subject))
        .bind(c.actors.on_behalf_of.as_ref().map(|a| &a.role))
        .bind(if c.manual_capture { "manual" } else { "automatic" })
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        charge_of(&row)
    }

    /// Records Stripe's answer. Statuses only move forward (pending, then processing or authorized,
    /// then one terminal status, which never changes); the ids Stripe gave are kept either way.
    pub async fn settle_charge(&self, id: Uuid, o: &ChargeOutcome) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "update charges set stripe_payment_intent_id = coalesce(stripe_payment_intent_id, $2), \
             stripe_charge_id = coalesce($3, stripe_charge_id), updated_at = now() where id = $1",
        )
        .bind(id)
        .bind(&o.payment_intent)
        .bind(&o.stripe_charge)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "update charges set status = $2, failure_code = $3, decline_code = $4, failure_message = $5, \
             updated_at = now() where id = $1 and $2 <> status and (status = 'pending' \
             or (status = 'processing' and $2 not in ('pending', 'processing')) \
             or (status = 'authorized' and $2 not in ('pending', 'processing', 'authorized')))",
        )
        .bind(id)
        .bind(o.status)
        .bind(&o.failure_code)
        .bind(&o.decline_code)
        .bind(&o.failure_message)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn list_charges(
        &self,
        patient: Option<&str>,
        status: Option<&str>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        before: Option<(DateTime<Utc>, Uuid)>,
        limit: i64,
    ) -> Result<(Vec<pb::Charge>, Option<(DateTime<Utc>, Uuid)>)> {
        let (before_at, before_id) = before.map_or((None, None), |(t, i)| (Some(t), Some(i)));
        let mut tx = self.begin().await?;
        let rows = sqlx::query(
            "select * from charges where ($1::text is null or canvas_patient_id = $1) \
             and ($2::text is null or status = $2) and ($3::timestamptz is null or created_at >= $3) \
             and ($4::timestamptz is null or created_at < $4) \
             and ($5::timestamptz is null or (created_at, id) < ($5, $6)) \
             order by created_at desc, id desc limit $7",
        )
        .bind(patient)
        .bind(status)
        .bind(from)
        .bind(to)
        .bind(before_at)
        .bind(before_id)
        .bind(limit + 1)
        .fetch_all(&mut *tx)
        .await?;
        let ids: Vec<Uuid> = rows.iter().map(|r| r.try_get("id")).collect::<Result<_, _>>()?;
        let refunds = sqlx::query("select * from refunds where charge_id = any($1) order by created_at")
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        let limit = usize::try_from(limit).unwrap_or(0);
        let more = rows.len() > limit;
        let rows = &rows[..rows.len().min(limit)];
        let next = match rows.last() {
            Some(last) if more => Some((last.try_get("created_at")?, last.try_get("id")?)),
            _ => None,
        };
        let refunds: Vec<RefundRow> = refunds.iter().map(refund_of).collect::<Result<_>>()?;
        let charges = rows
            .iter()
            .map(|r| {
                let mut c = charge_of(r)?.charge;
                c.refunds = refunds
                    .iter()
                    .filter(|x| x.refund.charge_id == c.id)
                    .map(|x| pb::Refund {
                        canvas_patient_id: c.canvas_patient_id.clone(),
                        ..x.refund.clone()
                    })
                    .collect();
                Ok(c)
            })
            .collect::<Result<_>>()?;
        Ok((charges, next))
    }

    /// Revenue over a period (all time when unbounded) in US dollars, the clinic's currency; other
    /// currencies are not summed with it.
    pub async fn stats(
        &self,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Result<pb::GetPaymentStatsResponse> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "select coalesce(sum(amount_cents) filter (where status = 'succeeded'), 0)::bigint as gross, \
             count(*) filter (where status = 'succeeded') as succeeded, \
             count(*) filter (where status in ('declined', 'authentication_required', 'failed')) as failed \
             from charges where currency = 'usd' and ($1::timestamptz is null or created_at >= $1) \
             and ($2::timestamptz is null or created_at < $2)",
        )
        .bind(from)
        .bind(to)
        .fetch_one(&mut *tx)
        .await?;
        let refunds = sqlx::query(
            "select coalesce(sum(amount_cents), 0)::bigint as refunded, count(*) as n from refunds \
             where status = 'succeeded' and currency = 'usd' and ($1::timestamptz is null or created_at >= $1) \
             and ($2::timestamptz is null or created_at < $2)",
        )
        .bind(from)
        .bind(to)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        let gross: i64 = row.try_get("gross")?;
        let refunded: i64 = refunds.try_get("refunded")?;
        Ok(pb::GetPaymentStatsResponse {
            gross_cents: gross,
            refunded_cents: refunded,
            net_cents: gross - refunded,
            currency: "usd".into(),
            succeeded_count: row.try_get::<i64, _>("succeeded")? as i32,
            failed_count: row.try_get::<i64, _>("failed")? as i32,
            refund_count: refunds.try_get::<i64, _>("n")? as i32,
        })
    }

    // ---- Stripe events ----

    /// Stores the raw event; true when it still needs processing (new, or stored by an attempt that
    /// stopped before finishing).
    pub async fn record_event(&self, id: &str, kind: &str, payload: &[u8]) -> Result<bool> {
        let mut tx = self.begin().await?;
        sqlx::query("insert into stripe_events (id, event_type, payload) values ($1, $2, $3) on conflict do nothing")
            .bind(id)
            .bind(kind)
            .bind(payload)
            .execute(&mut *tx)
            .await?;
        let processed: Option<DateTime<Utc>> =
            sqlx::query_scalar("select processed_at from stripe_events where id = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(processed.is_none())
    }

    pub async fn mark_event_processed(&self, id: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("update stripe_events set processed_at = now() where id = $1 and processed_at is null")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The patient and customer of a SetupIntent's hold while it still waits for the card; a hold
    /// already active, replaced or failed is not touched by a late event.
    pub async fn hold_owner(&self, setup_intent: &str) -> Result<Option<(String, String)>> {
        let mut tx = self.begin().await?;
        let row: Option<(String, String)> = sqlx::query_as(
            "select canvas_patient_id, stripe_customer_id from payment_holds \
             where setup_intent_id = $1 and status in ('pending', 'requires_action')",
        )
        .bind(setup_intent)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(row)
    }

    // ---- refunds ----

    pub async fn refund_by_client_key(&self, key: &str) -> Result<Option<RefundRow>> {
        self.refund_where("client_key = $1", key).await
    }

    async fn refund_where(&self, condition: &str, value: &str) -> Result<Option<RefundRow>> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(&format!("select * from refunds where {condition}"))
            .bind(value)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        row.as_ref().map(refund_of).transpose()
    }

    /// What may still be refunded: the amount less refunds that succeeded or may still succeed.
    pub async fn refundable(&self, charge: Uuid) -> Result<i64> {
        let mut tx = self.begin().await?;
        let left: i64 = sqlx::query_scalar(
            "select c.amount_cents - coalesce((select sum(amount_cents) from refunds r where r.charge_id = c.id \
             and r.status not in ('failed', 'canceled')), 0)::bigint from charges c where c.id = $1",
        )
        .bind(charge)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(left)
    }

    /// Writes the refund and its audit row before Stripe hears of it.
    pub async fn insert_refund(&self, charge: &ChargeRow, r: NewRefund<'_>) -> Result<RefundRow> {
        let NewRefund {
            client_key,
            request_mac,
            amount,
            reason,
            note,
            by,
        } = r;
        let id = Uuid::new_v4();
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "insert into refunds (id, client_key, request_mac, charge_id, amount_cents, currency, status, reason, note, \
             requested_by_subject, requested_by_role, on_behalf_of_subject, on_behalf_of_role) \
             values ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $9, $10, $11, $12) returning *",
        )
        .bind(id)
        .bind(client_key)
        .bind(request_mac)
        .bind(charge.id)
        .bind(amount)
        .bind(&charge.charge.currency)
        .bind(reason)
        .bind(note)
        .bind(&by.by.subject)
        .bind(&by.by.role)
        .bind(by.on_behalf_of.as_ref().map(|a| &a.subject))
        .bind(by.on_behalf_of.as_ref().map(|a| &a.role))
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "insert into refund_audit (refund_id, charge_id, amount_cents, reason, note, actor_subject, actor_role, \
             on_behalf_of_subject, on_behalf_of_role) values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(id)
        .bind(charge.id)
        .bind(amount)
        .bind(reason)
        .bind(note)
        .bind(&by.by.subject)
        .bind(&by.by.role)
        .bind(by.on_behalf_of.as_ref().map(|a| &a.subject))
        .bind(by.on_behalf_of.as_ref().map(|a| &a.role))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut out = refund_of(&row)?;
        out.refund.canvas_patient_id = charge.charge.canvas_patient_id.clone();
        Ok(out)
    }

    /// Records Stripe's answer for a refund, and the charge's refunded total from its succeeded refunds.
    /// A status only moves forward, so a stale read landing late changes nothing: pending and
    /// requires_action may become anything, succeeded only failed or canceled (Stripe reports some
    /// refunds failing after succeeding), and failed and canceled are final.
    pub async fn settle_refund(
        &self,
        id: Uuid,
        status: &str,
        stripe_refund: Option<&str>,
        failure: Option<&str>,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "update refunds set stripe_refund_id = coalesce(stripe_refund_id, $2), updated_at = now() where id = $1",
        )
        .bind(id)
        .bind(stripe_refund)
        .execute(&mut *tx)
        .await?;
        let moved: Option<Uuid> = sqlx::query_scalar(
            "update refunds set status = $2, failure_reason = $3, updated_at = now() where id = $1 and status <> $2 \
             and (status in ('pending', 'requires_action') or (status = 'succeeded' and $2 in ('failed', 'canceled'))) \
             returning charge_id",
        )
        .bind(id)
        .bind(status)
        .bind(failure)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(charge) = moved else {
            tx.commit().await?;
            return Ok(());
        };
        sqlx::query(
            "update charges set amount_refunded_cents = (select coalesce(sum(amount_cents), 0) from refunds \
             where charge_id = $1 and status = 'succeeded'), updated_at = now() where id = $1",
        )
        .bind(charge)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn refund_by_id(&self, id: Uuid) -> Result<Option<RefundRow>> {
        self.refund_where("id = $1::text::uuid", &id.to_string()).await
    }

    // ---- unfinished work ----

    /// Charges and refunds left unfinished for at least `quiet` (a crash, a timeout, Stripe down),
    /// least recently tried first, and how many unfinished ones are too old to send again: work
    /// whose Stripe key may be forgotten and which Stripe never acknowledged is left for an operator
    /// (see charges::KEY_LIFETIME). Times are the database's, like the rows'.
    pub async fn unfinished(&self, quiet: std::time::Duration, limit: i64) -> Result<Unfinished> {
        let quiet = quiet.as_secs_f64();
        let remembered = crate::charges::KEY_LIFETIME.num_seconds() as f64;
        let mut tx = self.begin().await?;
        let charges = sqlx::query_scalar(
            "select id from charges where status in ('pending', 'processing') \
             and updated_at < now() - make_interval(secs => $1) \
             and (created_at > now() - make_interval(secs => $2) or stripe_payment_intent_id is not null) \
             order by updated_at limit $3",
        )
        .bind(quiet)
        .bind(remembered)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let refunds = sqlx::query_scalar(
            "select id from refunds where status in ('pending', 'requires_action') \
             and updated_at < now() - make_interval(secs => $1) \
             and (created_at > now() - make_interval(secs => $2) or stripe_refund_id is not null) \
             order by updated_at limit $3",
        )
        .bind(quiet)
        .bind(remembered)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let for_operator: i64 = sqlx::query_scalar(
            "select (select count(*) from charges where status = 'pending' and stripe_payment_intent_id is null \
             and created_at <= now() - make_interval(secs => $1)) \
             + (select count(*) from refunds where status = 'pending' and stripe_refund_id is null \
             and created_at <= now() - make_interval(secs => $1))",
        )
        .bind(remembered)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Unfinished {
            charges,
            refunds,
            for_operator,
        })
    }

    /// Puts work a pass could not finish at the back of the queue, so it cannot crowd out the rest.
    pub async fn postpone(&self, table: Postponed, id: Uuid) -> Result<()> {
        let sql = match table {
            Postponed::Charge => "update charges set updated_at = now() where id = $1",
            Postponed::Refund => "update refunds set updated_at = now() where id = $1",
        };
        let mut tx = self.begin().await?;
        sqlx::query(sql).bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn refund_by_stripe_id(&self, stripe_id: &str) -> Result<Option<RefundRow>> {
        self.refund_where("stripe_refund_id = $1", stripe_id).await
    }
}

fn hold_of(r: &PgRow) -> Result<pb::PaymentHold> {
    let status: String = r.try_get("status")?;
    Ok(pb::PaymentHold {
        id: r.try_get::<Uuid, _>("id")?.to_string(),
        canvas_patient_id: r.try_get("canvas_patient_id")?,
        stripe_customer_id: r.try_get("stripe_customer_id")?,
        stripe_payment_method_id: r
            .try_get::<Option<String>, _>("stripe_payment_method_id")?
            .unwrap_or_default(),
        setup_intent_id: r.try_get("setup_intent_id")?,
        status: hold_status(&status) as i32,
        card: r.try_get::<Option<String>, _>("card_brand")?.map(|brand| pb::Card {
            brand,
            last4: r
                .try_get::<Option<String>, _>("card_last4")
                .ok()
                .flatten()
                .unwrap_or_default(),
            exp_month: r
                .try_get::<Option<i32>, _>("card_exp_month")
                .ok()
                .flatten()
                .unwrap_or_default(),
            exp_year: r
                .try_get::<Option<i32>, _>("card_exp_year")
                .ok()
                .flatten()
                .unwrap_or_default(),
            funding: r
                .try_get::<Option<String>, _>("card_funding")
                .ok()
                .flatten()
                .unwrap_or_default(),
        }),
        created_at: Some(ts(r.try_get("created_at")?)),
        updated_at: Some(ts(r.try_get("updated_at")?)),
    })
}

fn charge_of(r: &PgRow) -> Result<ChargeRow> {
    let id: Uuid = r.try_get("id")?;
    let status: String = r.try_get("status")?;
    let hold: Uuid = r.try_get("hold_id")?;
    Ok(ChargeRow {
        id,
        stripe_key: r.try_get("idempotency_key")?,
        client_key: r.try_get("client_key")?,
        manual_capture: r.try_get::<String, _>("capture_method")? == "manual",
        charge: pb::Charge {
            id: id.to_string(),
            canvas_patient_id: r.try_get("canvas_patient_id")?,
            reference: r.try_get("reference")?,
            amount_cents: r.try_get("amount_cents")?,
            currency: r.try_get("currency")?,
            status: charge_status(&status) as i32,
            description: r.try_get("description")?,
            hold_id: hold.to_string(),
            stripe_payment_intent_id: r
                .try_get::<Option<String>, _>("stripe_payment_intent_id")?
                .unwrap_or_default(),
            stripe_charge_id: r.try_get::<Option<String>, _>("stripe_charge_id")?.unwrap_or_default(),
            failure_code: r.try_get::<Option<String>, _>("failure_code")?.unwrap_or_default(),
            decline_code: r.try_get::<Option<String>, _>("decline_code")?.unwrap_or_default(),
            failure_message: r.try_get::<Option<String>, _>("failure_message")?.unwrap_or_default(),
            amount_refunded_cents: r.try_get("amount_refunded_cents")?,
            refunds: Vec::new(),
            created_by: actor(r.try_get("created_by_subject")?, r.try_get("created_by_role")?),
            created_at: Some(ts(r.try_get("created_at")?)),
            updated_at: Some(ts(r.try_get("updated_at")?)),
            on_behalf_of: on_behalf_of(r)?,
        },
    })
}

fn refund_of(r: &PgRow) -> Result<RefundRow> {
    let id: Uuid = r.try_get("id")?;
    let status: String = r.try_get("status")?;
    let reason: String = r.try_get("reason")?;
    Ok(RefundRow {
        id,
        request_mac: r.try_get("request_mac")?,
        refund: pb::Refund {
            id: id.to_string(),
            charge_id: r.try_get::<Uuid, _>("charge_id")?.to_string(),
            canvas_patient_id: String::new(),
            amount_cents: r.try_get("amount_cents")?,
            currency: r.try_get("currency")?,
            status: refund_status(&status) as i32,
            reason: refund_reason(&reason) as i32,
            note: r.try_get("note")?,
            stripe_refund_id: r.try_get::<Option<String>, _>("stripe_refund_id")?.unwrap_or_default(),
            failure_reason: r.try_get::<Option<String>, _>("failure_reason")?.unwrap_or_default(),
            requested_by: actor(r.try_get("requested_by_subject")?, r.try_get("requested_by_role")?),
            created_at: Some(ts(r.try_get("created_at")?)),
            updated_at: Some(ts(r.try_get("updated_at")?)),
            on_behalf_of: on_behalf_of(r)?,
        },
    })
}
