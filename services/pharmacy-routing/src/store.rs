//! The routing tables, read into an in-memory snapshot that every decision uses (a decision is on
//! the hot path of every approval and costs no database round trip), and written only through
//! [`update_state`], which audits the change and tells every replica to reload.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, RwLock},
    time::Duration,
};

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::{
    domain::{Candidate, PrescriberChoice, StateFacts},
    error::{Error, Result},
};

/// Replicas reload when this channel is notified (by the triggers of migration 0003).
const CHANGED_CHANNEL: &str = "era_routing_changed";
/// Safety net for a notification lost while the listening connection was down.
const RELOAD_EVERY: Duration = Duration::from_secs(30);

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct StateRow {
    pub code: String,
    pub name: String,
    pub excluded: bool,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct RouteRow {
    pub state: String,
    pub pharmacy_id: String,
    pub prescriber_id: String,
    pub active: bool,
    pub priority: i32,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct PharmacyRow {
    pub id: String,
    pub name: String,
    pub system: String,
    pub active: bool,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct PrescriberRow {
    pub id: String,
    pub name: String,
    pub npi: String,
    pub active: bool,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct LicenceRow {
    pub prescriber_id: String,
    pub state: String,
    pub licence_number: String,
    pub expires_on: NaiveDate,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct MedicationRow {
    pub id: String,
    pub name: String,
    pub quantity: String,
    pub days_supply: i32,
    pub refills: i32,
    pub price_cents: i64,
    pub currency: String,
    pub active: bool,
    /// How a prescription written in Canvas names it ("" when it cannot be prescribed there).
    pub rxnorm_code: String,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct DoseRow {
    pub medication_id: String,
    pub label: String,
    pub strength: String,
    pub directions: String,
}

#[derive(Clone, Debug)]
pub struct Medication {
    pub row: MedicationRow,
    pub doses: Vec<DoseRow>,
    pub pharmacy_ids: Vec<String>,
}

/// Everything the router knows, as of one read.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub states: BTreeMap<String, StateRow>,
    pub routes: BTreeMap<String, Vec<RouteRow>>,
    pub pharmacies: BTreeMap<String, PharmacyRow>,
    pub prescribers: BTreeMap<String, PrescriberRow>,
    pub licences: BTreeMap<String, Vec<LicenceRow>>,
    pub medications: BTreeMap<String, Medication>,
}

impl Snapshot {
    pub async fn load(pool: &PgPool) -> Result<Self> {
        let mut tx = pool.begin().await?;
        // One consistent view across the tables.
        sqlx::query("set transaction isolation level repeatable read, read only")
            .execute(&mut *tx)
            .await?;
        let states: Vec<StateRow> =
            sqlx::query_as("select code, name, excluded, updated_at, updated_by from jurisdictions order by code")
                .fetch_all(&mut *tx)
                .await?;
        let routes: Vec<RouteRow> = sqlx::query_as(
            "select state, pharmacy_id, prescriber_id, active, priority from state_routes order by state, priority, pharmacy_id",
        )
        .fetch_all(&mut *tx)
        .await?;
        let pharmacies: Vec<PharmacyRow> =
            sqlx::query_as("select id, name, system, active from pharmacies order by id")
                .fetch_all(&mut *tx)
                .await?;
        let prescribers: Vec<PrescriberRow> =
            sqlx::query_as("select id, name, npi, active from prescribers order by id")
                .fetch_all(&mut *tx)
                .await?;
        let licences: Vec<LicenceRow> = sqlx::query_as(
            "select prescriber_id, state, licence_number, expires_on from prescriber_licences order by prescriber_id, state",
        )
        .fetch_all(&mut *tx)
        .await?;
        let medications: Vec<MedicationRow> = sqlx::query_as(
            "select id, name, quantity, days_supply, refills, price_cents, currency, active, rxnorm_code from medications order by id",
        )
        .fetch_all(&mut *tx)
        .await?;
        let doses: Vec<DoseRow> = sqlx::query_as(
            "select medication_id, label, strength, directions from medication_doses order by medication_id, position",
        )
        .fetch_all(&mut *tx)
        .await?;
        let fills: Vec<(String, String)> = sqlx::query_as(
            "select medication_id, pharmacy_id from medication_pharmacies order by medication_id, pharmacy_id",
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;

        let mut snapshot = Snapshot {
            states: states.into_iter().map(|s| (s.code.clone(), s)).collect(),
            pharmacies: pharmacies.into_iter().map(|p| (p.id.clone(), p)).collect(),
            prescribers: prescribers.into_iter().map(|p| (p.id.clone(), p)).collect(),
            ..Snapshot::default()
        };
        for r in routes {
            snapshot.routes.entry(r.state.clone()).or_default().push(r);
        }
        for l in licences {
            snapshot.licences.entry(l.prescriber_id.clone()).or_default().push(l);
        }
        let mut doses_by: HashMap<String, Vec<DoseRow>> = HashMap::new();
        for d in doses {
            doses_by.entry(d.medication_id.clone()).or_default().push(d);
        }
        let mut fills_by: HashMap<String, Vec<String>> = HashMap::new();
        for (m, p) in fills {
            fills_by.entry(m).or_default().push(p);
        }
        for row in medications {
            let doses = doses_by.remove(&row.id).unwrap_or_default();
            let pharmacy_ids = fills_by.remove(&row.id).unwrap_or_default();
            snapshot.medications.insert(
                row.id.clone(),
                Medication {
                    row,
                    doses,
                    pharmacy_ids,
                },
            );
        }
        Ok(snapshot)
    }

    pub fn licence(&self, prescriber_id: &str, state: &str) -> Option<&LicenceRow> {
        self.licences.get(prescriber_id)?.iter().find(|l| l.state == state)
    }

    fn choice(&self, prescriber_id: &str, state: &str) -> Option<PrescriberChoice> {
        let p = self.prescribers.get(prescriber_id)?;
        Some(PrescriberChoice {
            id: p.id.clone(),
            name: p.name.clone(),
            npi: p.npi.clone(),
            active: p.active,
            licence_expires_on: self.licence(prescriber_id, state).map(|l| l.expires_on),
        })
    }

    /// The facts the decision needs about one state, or `None` if the code is unknown.
    pub fn state_facts(&self, code: &str) -> Option<StateFacts> {
        let state = self.states.get(code)?;
        let routes = self
            .routes
            .get(code)
            .into_iter()
            .flatten()
            .filter_map(|r| {
                let pharmacy = self.pharmacies.get(&r.pharmacy_id)?;
                Some(Candidate {
                    pharmacy_id: r.pharmacy_id.clone(),
                    pharmacy_name: pharmacy.name.clone(),
                    pharmacy_active: pharmacy.active,
                    route_active: r.active,
                    priority: r.priority,
                    prescriber: self.choice(&r.prescriber_id, code)?,
                })
            })
            .collect();
        let licensed = self
            .licences
            .values()
            .flatten()
            .filter(|l| l.state == code)
            .filter_map(|l| self.choice(&l.prescriber_id, code))
            .collect();
        Some(StateFacts {
            code: state.code.clone(),
            excluded: state.excluded,
            routes,
            licensed,
        })
    }
}

/// The current snapshot, shared by every request of this replica.
#[derive(Clone, Debug)]
pub struct Matrix(Arc<MatrixInner>);

#[derive(Debug)]
pub struct MatrixInner {
    pool: PgPool,
    current: RwLock<Arc<Snapshot>>,
    /// One load at a time, so a load that started earlier can never replace a later one.
    loading: tokio::sync::Mutex<()>,
}

impl MatrixInner {
    /// Reads the tables afresh, installs the result and returns it.
    async fn reload(&self) -> Result<Arc<Snapshot>> {
        let _one_at_a_time = self.loading.lock().await;
        let fresh = Arc::new(Snapshot::load(&self.pool).await?);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::clone(&fresh);
        Ok(fresh)
    }
}

impl Matrix {
    /// Loads the snapshot and keeps it fresh: on every change notification (triggers on every table
    /// it reads send one) and every 30 s, for as long as the service holds the matrix.
    pub async fn start(pool: PgPool) -> Result<Self> {
        // Listen first, load second: a change committed in between is then still noticed.
        let current = RwLock::new(Arc::new(Snapshot::default()));
        let matrix = Self(Arc::new(MatrixInner {
            pool,
            current,
            loading: Default::default(),
        }));
        era_kit::db::spawn_change_listener(
            matrix.0.pool.clone(),
            CHANGED_CHANNEL,
            RELOAD_EVERY,
            Arc::downgrade(&matrix.0),
            |inner| async move {
                if let Err(e) = inner.reload().await {
                    tracing::warn!(error = %e, "routing matrix reload failed; keeping the previous one");
                }
            },
        )
        .await;
        matrix.reload().await?;
        Ok(matrix)
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.0.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn pool(&self) -> &PgPool {
        &self.0.pool
    }

    /// Reads the tables afresh, installs the result and returns it.
    pub async fn reload(&self) -> Result<Arc<Snapshot>> {
        self.0.reload().await
    }
}

/// A state's routing as the audit trail records it.
/// Written in the REST API's lowerCamelCase, since the edge hands it to admins as it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateSnapshot {
    pub excluded: bool,
    pub routes: Vec<RouteRow>,
}

pub struct StateUpdate {
    pub state: String,
    pub excluded: bool,
    pub routes: Vec<RouteRow>,
    pub note: String,
    pub changed_by: String,
}

/// Replaces one state's routes in one transaction with its audit row; the tables' triggers notify
/// the replicas when it commits.
pub async fn update_state(pool: &PgPool, update: &StateUpdate) -> Result<i64> {
    let mut tx = pool.begin().await?;
    let excluded: Option<bool> = sqlx::query_scalar("select excluded from jurisdictions where code = $1 for update")
        .bind(&update.state)
        .fetch_optional(&mut *tx)
        .await?;
    let excluded = excluded.ok_or_else(|| Error::NotFound {
        what: "state",
        id: update.state.clone(),
    })?;
    let routes: Vec<RouteRow> = sqlx::query_as(
        "select state, pharmacy_id, prescriber_id, active, priority from state_routes where state = $1 order by priority, pharmacy_id",
    )
    .bind(&update.state)
    .fetch_all(&mut *tx)
    .await?;
    let before = StateSnapshot { excluded, routes };
    let after = StateSnapshot {
        excluded: update.excluded,
        routes: update.routes.clone(),
    };

    sqlx::query("delete from state_routes where state = $1")
        .bind(&update.state)
        .execute(&mut *tx)
        .await?;
    for r in &update.routes {
        sqlx::query(
            "insert into state_routes (state, pharmacy_id, prescriber_id, active, priority) values ($1, $2, $3, $4, $5)",
        )
        .bind(&update.state)
        .bind(&r.pharmacy_id)
        .bind(&r.prescriber_id)
        .bind(r.active)
        .bind(r.priority)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query("update jurisdictions set excluded = $2, updated_at = now(), updated_by = $3 where code = $1")
        .bind(&update.state)
        .bind(update.excluded)
        .bind(&update.changed_by)
        .execute(&mut *tx)
        .await?;
    let audit_id: i64 = sqlx::query_scalar(
        "insert into routing_audit (state, changed_by, note, before, after) values ($1, $2, $3, $4, $5) returning id",
    )
    .bind(&update.state)
    .bind(&update.changed_by)
    .bind(&update.note)
    .bind(sqlx::types::Json(&before))
    .bind(sqlx::types::Json(&after))
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(audit_id)
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct AuditRow {
    pub id: i64,
    pub state: String,
    pub changed_by: String,
    pub note: String,
    pub before: sqlx::types::Json<serde_json::Value>,
    pub after: sqlx::types::Json<serde_json::Value>,
    pub changed_at: DateTime<Utc>,
}

/// Audit rows, newest first, strictly older than `before_id` when paging.
pub async fn audit(pool: &PgPool, state: Option<&str>, before_id: Option<i64>, limit: i64) -> Result<Vec<AuditRow>> {
    Ok(sqlx::query_as(
        "select id, state, changed_by, note, before, after, changed_at from routing_audit
         where ($1::text is null or state = $1) and ($2::bigint is null or id < $2)
         order by id desc limit $3",
    )
    .bind(state)
    .bind(before_id)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}
