//! A pharmacy's signed status and tracking callbacks (verified by the edge): each processed once by
//! the pharmacy's event id, an order's status only moving forward, shipments and their events kept,
//! the patient told when the order ships and when it is delivered.

use chrono::{DateTime, Utc};
use era_kit::auth::Caller;
use era_proto::notifications::v1 as notifications;
use serde_json::Value;
use uuid::Uuid;

use super::{
    orders::{self, Exchange},
    steps::code_of,
    Pipeline,
};
use crate::error::{Error, Result};

/// A callback's body: the fields the pipeline reads.
#[derive(Debug)]
struct Callback {
    external_order_id: String,
    reference_id: String,
    status: String,
    carrier: String,
    tracking_number: String,
    shipped_at: Option<DateTime<Utc>>,
    delivered_at: Option<DateTime<Utc>>,
    occurred_at: DateTime<Utc>,
}

fn parse(body: &[u8], pharmacy: &str, callback_id: &str) -> Result<Callback> {
    let v: Value = serde_json::from_slice(body).map_err(|_| Error::field("body", "is not a JSON object"))?;
    let text = |k: &str| match &v[k] {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    };
    if text("eventId") != callback_id {
        return Err(Error::field("callback_id", "differs from the body's eventId"));
    }
    // The edge checked the signature with the secret of the pharmacy the path names; the body must
    // name that pharmacy too, so a callback replayed to another pharmacy's path applies to nothing.
    let named = match text("pharmacy").to_lowercase().as_str() {
        "pioneerrx" | "gmp" => "gmp".to_owned(),
        other => other.to_owned(),
    };
    if named != pharmacy {
        return Err(Error::field(
            "body.pharmacy",
            "must name the pharmacy the callback came to",
        ));
    }
    let time = |k: &str| {
        DateTime::parse_from_rfc3339(&text(k))
            .ok()
            .map(|t| t.with_timezone(&Utc))
    };
    let status = text("status").to_lowercase();
    if status.is_empty() {
        return Err(Error::field("body.status", "is required"));
    }
    let external_order_id = text("orderId");
    let reference_id = text("referenceId");
    if external_order_id.is_empty() && reference_id.is_empty() {
        return Err(Error::field("body.orderId", "is required (or referenceId)"));
    }
    Ok(Callback {
        external_order_id,
        reference_id,
        status,
        carrier: text("carrier"),
        tracking_number: text("trackingNumber"),
        shipped_at: time("shippedAt"),
        delivered_at: time("deliveredAt"),
        occurred_at: time("occurredAt").unwrap_or_else(Utc::now),
    })
}

/// Our order status for the pharmacy's word, and how far along it is (statuses only move forward;
/// cancelled and rejected end an order unless it already shipped).
fn status_of(pharmacy_status: &str) -> Option<(&'static str, u8)> {
    Some(match pharmacy_status {
        "received" | "accepted" | "processing" | "in_progress" | "compounding" => ("accepted", 2),
        "shipped" | "in_transit" => ("shipped", 4),
        "delivered" => ("delivered", 5),
        "cancelled" | "canceled" => ("cancelled", 3),
        "rejected" => ("rejected", 3),
        _ => return None,
    })
}

fn rank(status: &str) -> u8 {
    match status {
        "pending" => 0,
        "submitted" => 1,
        "accepted" => 2,
        "cancelled" | "rejected" => 3,
        "shipped" => 4,
        "delivered" => 5,
        _ => 0,
    }
}

impl Pipeline {
    /// Processes one callback; `Ok(false)` when its id was processed before.
    pub(crate) async fn pharmacy_callback(&self, pharmacy: &str, callback_id: &str, body: &[u8]) -> Result<bool> {
        if !matches!(pharmacy, "gmp" | "boothwyn" | "strive") {
            return Err(Error::field("pharmacy_id", "must be gmp, boothwyn or strive"));
        }
        if callback_id.trim().is_empty() || callback_id.len() > 200 {
            return Err(Error::field("callback_id", "is required (at most 200 characters)"));
        }
        let cb = parse(body, pharmacy, callback_id)?;
        let Some(order) =
            orders::find_for_callback(&self.pool, pharmacy, &cb.external_order_id, &cb.reference_id).await?
        else {
            // Not recorded as processed: the pharmacy redelivers, and a callback that raced ahead of
            // the order's own commit is applied then.
            orders::log(
                &self.pool,
                &Exchange {
                    pharmacy_id: pharmacy,
                    operation: "callback",
                    status: "retry",
                    detail: format!("callback {callback_id} names no order of ours (yet)"),
                    ..Default::default()
                },
            )
            .await?;
            return Err(Error::NotFound {
                what: "pharmacy order",
                id: cb.external_order_id.clone(),
            });
        };
        let mut tx = self.pool.begin().await?;
        // The order's row first, locked: callbacks for one order apply one at a time (and in this
        // order no two of them wait on each other's key locks).
        let (current, known): (String, String) =
            sqlx::query_as("select status, external_order_id from pharmacy_orders where id = $1 for update")
                .bind(order.id)
                .fetch_one(&mut *tx)
                .await?;
        let fresh = sqlx::query(
            "insert into pharmacy_callbacks (pharmacy_id, callback_id, order_id, status) values ($1, $2, $3, $4)
             on conflict do nothing",
        )
        .bind(pharmacy)
        .bind(callback_id)
        .bind(order.id)
        .bind(code_of(&cb.status))
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !fresh {
            return Ok(false);
        }
        if !known.is_empty() && !cb.external_order_id.is_empty() && known != cb.external_order_id {
            // A second order the pharmacy holds under our reference (a duplicate): not the one we
            // keep. Logged for an admin to cancel; our order is left as it is.
            orders::log(
                &mut *tx,
                &Exchange::of(
                    &order,
                    "callback",
                    "failure",
                    0,
                    format!(
                        "status {} for pharmacy order {} (a duplicate; {known} is kept): cancel it",
                        code_of(&cb.status),
                        code_of(&cb.external_order_id)
                    ),
                ),
            )
            .await?;
            tx.commit().await?;
            return Ok(true);
        }
        if known.is_empty() && !cb.external_order_id.is_empty() {
            // The callback outran the submission's answer: learn the pharmacy's id from it.
            sqlx::query("update pharmacy_orders set external_order_id = $2 where id = $1")
                .bind(order.id)
                .bind(&cb.external_order_id)
                .execute(&mut *tx)
                .await?;
        }
        let mut detail = format!("status {}", code_of(&cb.status));
        let mut notify = None;
        match status_of(&cb.status) {
            Some((next, r)) if r > rank(&current) || (r == rank(&current) && next != current && r != 3) => {
                orders::set_status(&mut tx, order.id, next, None, None).await?;
                if r == 3 && current == "accepted" {
                    // Paid for and then dropped by the pharmacy: an admin decides about the money.
                    detail.push_str(" after acceptance: review the run's charge (refund from the orders view)");
                    tracing::warn!(order = %order.id, "a pharmacy dropped an accepted order");
                }
                if matches!(next, "shipped" | "delivered") {
                    let shipment = self.record_shipment(&mut tx, &order, &cb, next).await?;
                    notify = Some((next, shipment));
                }
            }
            Some(_) => detail.push_str(" (order already further along: kept as it was)"),
            None => detail.push_str(" (not a status we act on)"),
        }
        orders::log(&mut *tx, &Exchange::of(&order, "callback", "success", 0, detail)).await?;
        // Queued before the commit, once per order and status: a commit lost after it is redelivered
        // and finds the notification already queued; a notification that could not be queued rolls
        // the callback back, so the pharmacy's redelivery tries again.
        if let Some((status, shipment)) = notify {
            self.notify_shipment(&order, shipment, status, &cb).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn record_shipment(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        order: &orders::Order,
        cb: &Callback,
        status: &str,
    ) -> Result<Uuid> {
        let id: Uuid = sqlx::query_scalar(
            "insert into shipments (id, order_id, canvas_patient_id, pharmacy_id, carrier, tracking_number, status,
                 shipped_at, delivered_at)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             on conflict (order_id) do update set
                 carrier = case when excluded.carrier <> '' then excluded.carrier else shipments.carrier end,
                 tracking_number = case when excluded.tracking_number <> '' then excluded.tracking_number
                                        else shipments.tracking_number end,
                 status = excluded.status,
                 shipped_at = coalesce(shipments.shipped_at, excluded.shipped_at),
                 delivered_at = coalesce(excluded.delivered_at, shipments.delivered_at),
                 updated_at = now()
             returning id",
        )
        .bind(Uuid::new_v4())
        .bind(order.id)
        .bind(&order.canvas_patient_id)
        .bind(&order.pharmacy_id)
        .bind(&cb.carrier)
        .bind(&cb.tracking_number)
        .bind(status)
        .bind(cb.shipped_at.or((status == "shipped").then_some(cb.occurred_at)))
        .bind(cb.delivered_at.or((status == "delivered").then_some(cb.occurred_at)))
        .fetch_one(&mut **tx)
        .await?;
        sqlx::query(
            "insert into shipment_events (shipment_id, status, description, occurred_at) values ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(status)
        .bind(format!("{} reported {status}", order.pharmacy_id))
        .bind(cb.occurred_at)
        .execute(&mut **tx)
        .await?;
        Ok(id)
    }

    async fn notify_shipment(&self, order: &orders::Order, shipment: Uuid, status: &str, cb: &Callback) -> Result<()> {
        let (kind, mut variables) = if status == "shipped" {
            (notifications::NotificationType::ShipmentCreated, vec![])
        } else {
            (
                notifications::NotificationType::ShipmentUpdated,
                vec![("status".to_owned(), status.to_owned())],
            )
        };
        let tracking = if cb.tracking_number.is_empty() {
            "on its way".to_owned()
        } else {
            cb.tracking_number.clone()
        };
        variables.push(("tracking_number".to_owned(), tracking));
        variables.push((
            "tracking_url".to_owned(),
            tracking_link(&cb.carrier, &cb.tracking_number),
        ));
        let req = era_kit::client::request(
            notifications::SendNotificationRequest {
                notification_type: kind as i32,
                canvas_patient_id: order.canvas_patient_id.clone(),
                variables: variables.into_iter().collect(),
                reference: shipment.to_string(),
                dedupe_key: format!("order:{}:{status}", order.id),
                ..Default::default()
            },
            &self.tokens,
            &Caller::service(super::SERVICE),
        );
        match self.notifications.clone().send_notification(req).await {
            Ok(_) => Ok(()),
            Err(s) => {
                tracing::warn!(%shipment, code = ?s.code(), "the shipment notification could not be queued");
                Err(Error::Unavailable(
                    "NOTIFICATIONS_UNAVAILABLE",
                    "the patient's shipment notification could not be queued; redeliver the callback".into(),
                ))
            }
        }
    }
}

/// Where the patient follows a parcel: the carrier's page when we know it, else their portal.
pub(crate) fn tracking_link(carrier: &str, number: &str) -> String {
    if carrier.eq_ignore_ascii_case("fedex") && !number.is_empty() {
        crate::carriers::fedex::tracking_url(number)
    } else {
        "the Shipments page of your portal".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callbacks_parse_and_statuses_only_move_forward() {
        let body = br#"{"eventId":"evt_1","pharmacy":"strive","orderId":1234,"referenceId":"r","status":"Shipped"}"#;
        let cb = parse(body, "strive", "evt_1").unwrap();
        assert_eq!((cb.external_order_id.as_str(), cb.status.as_str()), ("1234", "shipped"));
        assert!(parse(body, "strive", "evt_2").is_err());
        assert!(
            parse(body, "boothwyn", "evt_1").is_err(),
            "replayed to another pharmacy's path"
        );
        assert!(parse(b"[]", "strive", "evt_1").is_err());
        let gmp = br#"{"eventId":"e","pharmacy":"pioneerrx","orderId":"g","status":"received"}"#;
        assert!(parse(gmp, "gmp", "e").is_ok());
        assert_eq!(status_of("delivered"), Some(("delivered", 5)));
        assert!(rank("delivered") > rank("shipped") && rank("shipped") > rank("cancelled"));
        assert_eq!(status_of("mystery"), None);
    }
}
