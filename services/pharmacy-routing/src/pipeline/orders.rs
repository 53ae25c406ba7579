//! Pharmacy orders, the sync log (every exchange with a pharmacy, append-only), shipments and refills.

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::error::Result;

#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct Order {
    pub(crate) id: Uuid,
    pub(crate) run_id: Uuid,
    pub(crate) canvas_patient_id: String,
    pub(crate) pharmacy_id: String,
    pub(crate) prescriber_id: String,
    pub(crate) medication: String,
    pub(crate) dose_label: String,
    pub(crate) status: String,
    pub(crate) external_order_id: String,
    pub(crate) rejection_reason: String,
    pub(crate) submit_started_at: Option<DateTime<Utc>>,
    pub(crate) submit_attempts: i32,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
}

pub(crate) async fn for_run(pool: &PgPool, run: Uuid) -> Result<Option<Order>> {
    Ok(sqlx::query_as("select * from pharmacy_orders where run_id = $1")
        .bind(run)
        .fetch_optional(pool)
        .await?)
}

pub(crate) async fn get(pool: &PgPool, id: Uuid) -> Result<Option<Order>> {
    Ok(sqlx::query_as("select * from pharmacy_orders where id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?)
}

/// The order a pharmacy's callback names: by the pharmacy's id, or by our reference (the order id).
pub(crate) async fn find_for_callback(
    pool: &PgPool,
    pharmacy: &str,
    external: &str,
    reference: &str,
) -> Result<Option<Order>> {
    let reference = Uuid::parse_str(reference).ok();
    Ok(sqlx::query_as(
        "select * from pharmacy_orders
         where pharmacy_id = $1 and ((external_order_id <> '' and external_order_id = $2)
             -- By our reference only while we know no id of theirs, or the same one: a duplicate
             -- order's callbacks must not land on the order we kept.
             or (id = $3 and (external_order_id = '' or $2 = '' or external_order_id = $2)))
         order by (external_order_id = $2) desc limit 1",
    )
    .bind(pharmacy)
    .bind(external)
    .bind(reference)
    .fetch_optional(pool)
    .await?)
}

/// Records the run's order before it is submitted (once: a second call returns the first).
pub(crate) async fn insert(tx: &mut Transaction<'_, Postgres>, order: &Order) -> Result<Order> {
    sqlx::query(
        "insert into pharmacy_orders (id, run_id, canvas_patient_id, pharmacy_id, prescriber_id, medication,
             dose_label, status)
         values ($1, $2, $3, $4, $5, $6, $7, 'pending') on conflict (run_id) do nothing",
    )
    .bind(order.id)
    .bind(order.run_id)
    .bind(&order.canvas_patient_id)
    .bind(&order.pharmacy_id)
    .bind(&order.prescriber_id)
    .bind(&order.medication)
    .bind(&order.dose_label)
    .execute(&mut **tx)
    .await?;
    Ok(sqlx::query_as("select * from pharmacy_orders where run_id = $1")
        .bind(order.run_id)
        .fetch_one(&mut **tx)
        .await?)
}

/// Marks that a submission is about to go out: from here on the pharmacy may have the order.
pub(crate) async fn mark_submitting(tx: &mut Transaction<'_, Postgres>, id: Uuid) -> Result<()> {
    sqlx::query(
        "update pharmacy_orders set submit_started_at = now(), submit_attempts = submit_attempts + 1,
             updated_at = now()
         where id = $1",
    )
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Records the pharmacy's id for the order and marks it accepted, unless a callback already moved
/// it on (statuses only move forward) or already named another order of theirs for our reference
/// (a duplicate: the first id stays). Answers the order's status and the id it keeps.
pub(crate) async fn accept(tx: &mut Transaction<'_, Postgres>, id: Uuid, external: &str) -> Result<(String, String)> {
    Ok(sqlx::query_as(
        "update pharmacy_orders set
             external_order_id = case when external_order_id = '' then $2 else external_order_id end,
             status = case when status in ('pending', 'submitted') then 'accepted' else status end,
             updated_at = now()
         where id = $1
         returning status, external_order_id",
    )
    .bind(id)
    .bind(external)
    .fetch_one(&mut **tx)
    .await?)
}

pub(crate) async fn set_status(
    tx: &mut Transaction<'_, Postgres>,
    id: Uuid,
    status: &str,
    external: Option<&str>,
    rejection: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "update pharmacy_orders set status = $2, external_order_id = coalesce($3, external_order_id),
             rejection_reason = coalesce($4, rejection_reason), updated_at = now()
         where id = $1",
    )
    .bind(id)
    .bind(status)
    .bind(external)
    .bind(rejection)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// One exchange with a pharmacy, as the sync log keeps it. No PHI: ids, statuses, codes.
#[derive(Clone, Debug, Default)]
pub(crate) struct Exchange<'a> {
    pub(crate) pharmacy_id: &'a str,
    pub(crate) canvas_patient_id: &'a str,
    pub(crate) order_id: String,
    pub(crate) operation: &'a str,
    /// success, failure or retry.
    pub(crate) status: &'a str,
    pub(crate) http_status: u16,
    pub(crate) detail: String,
}

impl<'a> Exchange<'a> {
    /// An exchange about `order`.
    pub(crate) fn of(order: &'a Order, operation: &'a str, status: &'a str, http_status: u16, detail: String) -> Self {
        Self {
            pharmacy_id: &order.pharmacy_id,
            canvas_patient_id: &order.canvas_patient_id,
            order_id: order.id.to_string(),
            operation,
            status,
            http_status,
            detail,
        }
    }
}

pub(crate) async fn log(executor: impl sqlx::PgExecutor<'_>, e: &Exchange<'_>) -> Result<()> {
    sqlx::query(
        "insert into sync_logs (pharmacy_id, canvas_patient_id, order_id, operation, status, http_status, detail)
         values ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(e.pharmacy_id)
    .bind(e.canvas_patient_id)
    .bind(&e.order_id)
    .bind(e.operation)
    .bind(e.status)
    .bind(i32::from(e.http_status))
    .bind(&e.detail)
    .execute(executor)
    .await?;
    Ok(())
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct SyncLogRow {
    pub(crate) id: i64,
    pub(crate) pharmacy_id: String,
    pub(crate) canvas_patient_id: String,
    pub(crate) order_id: String,
    pub(crate) operation: String,
    pub(crate) status: String,
    pub(crate) http_status: i32,
    pub(crate) detail: String,
    pub(crate) created_at: DateTime<Utc>,
}

#[derive(Debug, Default)]
pub(crate) struct LogFilter {
    pub(crate) canvas_patient_id: Option<String>,
    pub(crate) pharmacy_id: Option<String>,
    pub(crate) status: Option<String>,
    pub(crate) from: Option<DateTime<Utc>>,
    pub(crate) to: Option<DateTime<Utc>>,
    /// Entries older than this id (the log only grows, so ids page it).
    pub(crate) before_id: Option<i64>,
    pub(crate) limit: i64,
}

pub(crate) async fn logs(pool: &PgPool, filter: &LogFilter) -> Result<Vec<SyncLogRow>> {
    Ok(sqlx::query_as(
        "select * from sync_logs
         where ($1::text is null or canvas_patient_id = $1)
           and ($2::text is null or pharmacy_id = $2)
           and ($3::text is null or status = $3)
           and ($4::timestamptz is null or created_at >= $4)
           and ($5::timestamptz is null or created_at < $5)
           and ($6::bigint is null or id < $6)
         order by id desc
         limit $7",
    )
    .bind(&filter.canvas_patient_id)
    .bind(&filter.pharmacy_id)
    .bind(&filter.status)
    .bind(filter.from)
    .bind(filter.to)
    .bind(filter.before_id)
    .bind(filter.limit)
    .fetch_all(pool)
    .await?)
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct ShipmentRow {
    pub(crate) id: Uuid,
    pub(crate) order_id: Uuid,
    pub(crate) canvas_patient_id: String,
    pub(crate) pharmacy_id: String,
    pub(crate) carrier: String,
    pub(crate) tracking_number: String,
    pub(crate) status: String,
    pub(crate) shipped_at: Option<DateTime<Utc>>,
    pub(crate) delivered_at: Option<DateTime<Utc>>,
    pub(crate) created_at: DateTime<Utc>,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct ShipmentEventRow {
    pub(crate) shipment_id: Uuid,
    pub(crate) status: String,
    pub(crate) description: String,
    pub(crate) occurred_at: DateTime<Utc>,
}

/// The orders these runs placed.
pub(crate) async fn for_runs(pool: &PgPool, runs: &[Uuid]) -> Result<Vec<Order>> {
    Ok(
        sqlx::query_as("select * from pharmacy_orders where run_id = any($1) order by created_at desc, id desc")
            .bind(runs)
            .fetch_all(pool)
            .await?,
    )
}

/// The shipments of these orders.
pub(crate) async fn shipments_of(pool: &PgPool, orders: &[Uuid]) -> Result<Vec<ShipmentRow>> {
    Ok(sqlx::query_as("select * from shipments where order_id = any($1)")
        .bind(orders)
        .fetch_all(pool)
        .await?)
}

/// These shipments as they stand now, in the order given.
pub(crate) async fn shipments_by_id(pool: &PgPool, ids: &[Uuid]) -> Result<Vec<ShipmentRow>> {
    let mut rows: Vec<ShipmentRow> = sqlx::query_as("select * from shipments where id = any($1)")
        .bind(ids)
        .fetch_all(pool)
        .await?;
    rows.sort_by_key(|r| ids.iter().position(|id| *id == r.id));
    Ok(rows)
}

/// The tracking events of these shipments, oldest first.
pub(crate) async fn events_of(pool: &PgPool, shipments: &[Uuid]) -> Result<Vec<ShipmentEventRow>> {
    Ok(sqlx::query_as(
        "select shipment_id, status, description, occurred_at from shipment_events
         where shipment_id = any($1) order by occurred_at, id",
    )
    .bind(shipments)
    .fetch_all(pool)
    .await?)
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct RefillRow {
    pub(crate) id: Uuid,
    pub(crate) order_id: Uuid,
    pub(crate) canvas_patient_id: String,
    pub(crate) medication: String,
    pub(crate) sequence: i32,
    pub(crate) status: String,
    pub(crate) due_at: DateTime<Utc>,
    pub(crate) run_id: Option<Uuid>,
    pub(crate) dose_label: String,
    pub(crate) reminded_at: Option<DateTime<Utc>>,
    pub(crate) attempts: i32,
    pub(crate) next_attempt_at: Option<DateTime<Utc>>,
}

/// The columns a [`RefillRow`] is read from.
pub(crate) const REFILL_COLUMNS: &str = "id, order_id, canvas_patient_id, medication, sequence, status, due_at, \
     run_id, dose_label, reminded_at, attempts, next_attempt_at";

/// Schedules the refills an order allows, one every `days_supply` days from now (once per order).
pub(crate) async fn schedule_refills(
    tx: &mut Transaction<'_, Postgres>,
    order: &Order,
    refills: i32,
    days_supply: i32,
) -> Result<()> {
    // A dose changed in Canvas while the run was under way applies to every refill.
    let dose: Option<String> = sqlx::query_scalar("select refill_dose_label from orchestration_runs where id = $1")
        .bind(order.run_id)
        .fetch_one(&mut **tx)
        .await?;
    let dose = dose.unwrap_or_else(|| order.dose_label.clone());
    for sequence in 1..=refills {
        sqlx::query(
            "insert into refills (id, order_id, canvas_patient_id, medication, sequence, status, due_at, dose_label)
             values ($1, $2, $3, $4, $5, 'scheduled', now() + make_interval(days => $6), $7)
             on conflict (order_id, sequence) do nothing",
        )
        .bind(Uuid::new_v4())
        .bind(order.id)
        .bind(&order.canvas_patient_id)
        .bind(&order.medication)
        .bind(sequence)
        .bind(days_supply * sequence)
        .bind(&dose)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

pub(crate) async fn refills(
    pool: &PgPool,
    patient: &str,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<RefillRow>> {
    let (at, id) = after.unzip();
    Ok(sqlx::query_as(&format!(
        "select {REFILL_COLUMNS} from refills
         where canvas_patient_id = $1 and ($2::timestamptz is null or (due_at, id) > ($2, $3))
         order by due_at, id limit $4"
    ))
    .bind(patient)
    .bind(at)
    .bind(id)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}
