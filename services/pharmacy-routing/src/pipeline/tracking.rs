//! Shipments the pharmacies send by FedEx, tracked with FedEx's Track API. A read is served from a
//! cache of at most `TRACKING_CACHE_SECS` per number (a table every replica shares); an older or
//! missing entry is asked of FedEx first, 30 numbers a call, and so is every shipment not yet
//! delivered, on each replica's clock. A 429 stops every replica until FedEx's wait has passed;
//! FedEx down leaves the last answer, with its time, for the patient to see. A status that moves
//! (out for delivery, delivered, an exception) moves the shipment and tells the patient once.

use std::{collections::HashMap, time::Duration};

use chrono::{DateTime, Utc};
use era_kit::auth::Caller;
use era_proto::notifications::v1 as notifications;
use sqlx::types::Json;

use super::Pipeline;
use crate::{
    carriers::fedex::{Scan, TrackError, Tracked, MAX_NUMBERS},
    error::{Error, Result},
};

/// The carrier name shipments carry when FedEx takes them.
const FEDEX: &str = "fedex";

/// A number's tracking as last answered.
#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct TrackingRow {
    pub(crate) tracking_number: String,
    pub(crate) found: bool,
    pub(crate) status_code: String,
    pub(crate) description: String,
    pub(crate) estimated_begins: Option<DateTime<Utc>>,
    pub(crate) estimated_ends: Option<DateTime<Utc>>,
    pub(crate) delivered_at: Option<DateTime<Utc>>,
    pub(crate) scans: Json<Vec<Scan>>,
    pub(crate) fetched_at: DateTime<Utc>,
}

/// Our shipment status for FedEx's code, when the code moves it (label created, picked up and in
/// transit leave a shipped shipment as it is).
fn status_of(code: &str) -> Option<&'static str> {
    match code {
        "OD" => Some("out_for_delivery"),
        "DL" => Some("delivered"),
        "DE" | "SE" | "DY" | "CA" => Some("exception"),
        _ => None,
    }
}

impl Pipeline {
    /// The tracking of these FedEx numbers: refreshed first where older than the cache window (when
    /// FedEx is configured, answers and is not throttling us), else as last known.
    pub(crate) async fn tracking(&self, numbers: &[String]) -> Result<HashMap<String, TrackingRow>> {
        if numbers.is_empty() {
            return Ok(HashMap::new());
        }
        self.refresh(numbers).await;
        let rows: Vec<TrackingRow> = sqlx::query_as("select * from tracking_cache where tracking_number = any($1)")
            .bind(numbers)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|r| (r.tracking_number.clone(), r)).collect())
    }

    /// The clock's turn: every FedEx shipment not yet delivered whose tracking is older than the window.
    pub(crate) async fn tracking_tick(&self) -> Result<()> {
        if self.fedex.is_none() {
            return Ok(());
        }
        let numbers: Vec<String> = sqlx::query_scalar(
            "select s.tracking_number from shipments s
             left join tracking_cache c on c.tracking_number = s.tracking_number
             where lower(s.carrier) = 'fedex' and s.status <> 'delivered' and s.tracking_number <> ''
               and (c.fetched_at is null or c.fetched_at < now() - make_interval(secs => $1))
             order by c.fetched_at nulls first limit 90",
        )
        .bind(self.tracking_cache.as_secs_f64())
        .fetch_all(&self.pool)
        .await?;
        self.refresh(&numbers).await;
        Ok(())
    }

    /// Asks FedEx about the numbers among `numbers` whose tracking is older than the window, and
    /// applies what moved. Never fails the caller: FedEx throttling or down is logged, and what was
    /// known stays.
    async fn refresh(&self, numbers: &[String]) {
        let Some(fedex) = &self.fedex else {
            return;
        };
        let fetched = async {
            // One refresh at a time across replicas, the staleness read again under the lock: two
            // reads of the same shipment make one call to FedEx.
            let mut tx = self.pool.begin().await?;
            sqlx::query("select pg_advisory_xact_lock(hashtext('tracking:fedex'))")
                .execute(&mut *tx)
                .await?;
            let throttled: Option<DateTime<Utc>> =
                sqlx::query_scalar("select until from carrier_throttles where carrier = $1 and until > now()")
                    .bind(FEDEX)
                    .fetch_optional(&mut *tx)
                    .await?;
            if throttled.is_some() {
                return Ok(Vec::new());
            }
            let fresh: Vec<String> = sqlx::query_scalar(
                "select tracking_number from tracking_cache
                 where tracking_number = any($1) and fetched_at >= now() - make_interval(secs => $2)",
            )
            .bind(numbers)
            .bind(self.tracking_cache.as_secs_f64())
            .fetch_all(&mut *tx)
            .await?;
            let mut stale: Vec<String> = numbers.iter().filter(|n| !fresh.contains(n)).cloned().collect();
            stale.sort();
            stale.dedup();
            let mut tracked = Vec::new();
            for chunk in stale.chunks(MAX_NUMBERS) {
                match fedex.track(chunk).await {
                    Ok(answer) => {
                        for t in &answer {
                            save(&mut tx, t).await?;
                        }
                        tracked.extend(answer);
                    }
                    Err(TrackError::Throttled(wait)) => {
                        let wait = wait.unwrap_or(Duration::from_secs(60));
                        tracing::warn!(wait_secs = wait.as_secs(), "FedEx throttled tracking");
                        sqlx::query(
                            "insert into carrier_throttles (carrier, until) values ($1, now() + make_interval(secs => $2))
                             on conflict (carrier) do update set until = excluded.until",
                        )
                        .bind(FEDEX)
                        .bind(wait.as_secs_f64())
                        .execute(&mut *tx)
                        .await?;
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "FedEx tracking failed: the last known status stays");
                        break;
                    }
                }
            }
            tx.commit().await?;
            Ok::<_, Error>(tracked)
        }
        .await;
        match fetched {
            Ok(tracked) => {
                for t in tracked.iter().filter(|t| t.found) {
                    if let Err(e) = self.apply_tracking(t).await {
                        tracing::warn!(error = %e, "a tracked status could not be applied; the next refresh tries again");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "tracking could not be refreshed"),
        }
    }

    /// Moves the shipments with this number to FedEx's status, once per status: an event, the
    /// order delivered with it, and the patient told (the notification's key is the order's and
    /// status's, as for the pharmacy's callbacks, so however the news arrives it is told once).
    async fn apply_tracking(&self, t: &Tracked) -> Result<()> {
        let Some(status) = status_of(&t.code) else {
            return Ok(());
        };
        let mut tx = self.pool.begin().await?;
        let shipments: Vec<(uuid::Uuid, uuid::Uuid, String, String)> = sqlx::query_as(
            "select id, order_id, canvas_patient_id, status from shipments
             where tracking_number = $1 and lower(carrier) = 'fedex' for update",
        )
        .bind(&t.number)
        .fetch_all(&mut *tx)
        .await?;
        let mut tell = Vec::new();
        for (id, order, patient, current) in shipments {
            if current == status || current == "delivered" {
                continue;
            }
            let at = t.scans.first().and_then(|s| s.at).unwrap_or_else(Utc::now);
            sqlx::query(
                "update shipments set status = $2, estimated_begins = $3, estimated_ends = $4,
                     delivered_at = coalesce(delivered_at, $5), updated_at = now()
                 where id = $1",
            )
            .bind(id)
            .bind(status)
            .bind(t.estimated.map(|e| e.0))
            .bind(t.estimated.map(|e| e.1))
            .bind((status == "delivered").then(|| t.delivered_at.unwrap_or(at)))
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "insert into shipment_events (shipment_id, status, description, occurred_at) values ($1, $2, $3, $4)",
            )
            .bind(id)
            .bind(status)
            .bind(format!("FedEx {}", t.code))
            .bind(at)
            .execute(&mut *tx)
            .await?;
            if status == "delivered" {
                sqlx::query("update pharmacy_orders set status = 'delivered', updated_at = now() where id = $1")
                    .bind(order)
                    .execute(&mut *tx)
                    .await?;
            }
            tell.push((id, order, patient));
        }
        // Queued before the commit: a notification that cannot be queued leaves the status unmoved,
        // and the next refresh tries again (the key keeps it one message).
        for (shipment, order, patient) in tell {
            let req = era_kit::client::request(
                notifications::SendNotificationRequest {
                    notification_type: notifications::NotificationType::ShipmentUpdated as i32,
                    canvas_patient_id: patient,
                    variables: [
                        ("status".to_owned(), status.replace('_', " ")),
                        ("tracking_number".to_owned(), t.number.clone()),
                        (
                            "tracking_url".to_owned(),
                            crate::carriers::fedex::tracking_url(&t.number),
                        ),
                    ]
                    .into(),
                    reference: shipment.to_string(),
                    dedupe_key: format!("order:{order}:{status}"),
                    ..Default::default()
                },
                &self.tokens,
                &Caller::service(super::SERVICE),
            );
            self.notifications
                .clone()
                .send_notification(req)
                .await
                .map_err(|s| Error::Unavailable("NOTIFICATIONS_UNAVAILABLE", format!("{:?}", s.code())))?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Keeps FedEx's answer for one number.
async fn save(tx: &mut sqlx::Transaction<'_, sqlx::Postgres>, t: &Tracked) -> Result<()> {
    sqlx::query(
        "insert into tracking_cache (tracking_number, carrier, found, status_code, description, estimated_begins,
             estimated_ends, delivered_at, scans, fetched_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, now())
         on conflict (tracking_number) do update set found = excluded.found, status_code = excluded.status_code,
             description = excluded.description, estimated_begins = excluded.estimated_begins,
             estimated_ends = excluded.estimated_ends, delivered_at = excluded.delivered_at, scans = excluded.scans,
             fetched_at = excluded.fetched_at",
    )
    .bind(&t.number)
    .bind(FEDEX)
    .bind(t.found)
    .bind(&t.code)
    .bind(&t.description)
    .bind(t.estimated.map(|e| e.0))
    .bind(t.estimated.map(|e| e.1))
    .bind(t.delivered_at)
    .bind(Json(&t.scans))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_fedexs_moving_codes_move_a_shipment() {
        assert_eq!(status_of("DL"), Some("delivered"));
        assert_eq!(status_of("OD"), Some("out_for_delivery"));
        assert_eq!(status_of("DE"), Some("exception"));
        for code in ["OC", "PU", "IT", "AR", ""] {
            assert_eq!(status_of(code), None, "{code}");
        }
    }
}
