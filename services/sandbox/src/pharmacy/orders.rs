//! The orders the pharmacies hold and how they move. Placing one is not idempotent (the same
//! order twice is two orders, as at a real pharmacy); every status change, the first `received`
//! included, becomes a callback event queued under the same lock, so events keep their order.
//! Ledger effects name the order and its status, never the patient.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rand::Rng;
use serde::Serialize;
use serde_json::{json, Value};

use super::{callbacks::Event, npi, Pharmacy, Refusal};
use crate::Sandbox;

/// Where an order is. `delivered`, `cancelled` and `rejected` are final.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Received,
    Processing,
    Shipped,
    Delivered,
    Cancelled,
    Rejected,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Received => "received",
            Status::Processing => "processing",
            Status::Shipped => "shipped",
            Status::Delivered => "delivered",
            Status::Cancelled => "cancelled",
            Status::Rejected => "rejected",
        }
    }

    /// Accepts the American spelling of `cancelled` too.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "received" => Status::Received,
            "processing" => Status::Processing,
            "shipped" => Status::Shipped,
            "delivered" => Status::Delivered,
            "cancelled" | "canceled" => Status::Cancelled,
            "rejected" => Status::Rejected,
            _ => return None,
        })
    }

    pub fn is_final(self) -> bool {
        matches!(self, Status::Delivered | Status::Cancelled | Status::Rejected)
    }

    /// Position along received → processing → shipped → delivered.
    fn step(self) -> u8 {
        match self {
            Status::Received => 0,
            Status::Processing => 1,
            Status::Shipped => 2,
            Status::Delivered => 3,
            Status::Cancelled | Status::Rejected => 4,
        }
    }

    /// Before shipping, an order can still be cancelled or rejected.
    fn before_shipping(self) -> bool {
        matches!(self, Status::Received | Status::Processing)
    }
}

/// The parcel, once the order has shipped.
#[derive(Clone, Debug)]
pub(crate) struct Shipment {
    pub(crate) carrier: &'static str,
    pub(crate) tracking_number: String,
    pub(crate) tracking_url: String,
    pub(crate) shipped_at: DateTime<Utc>,
    pub(crate) delivered_at: Option<DateTime<Utc>>,
}

impl Shipment {
    /// A FedEx parcel: tracking numbers like `7946…`, 12 digits, as FedEx Express's are. (The FedEx
    /// simulator learns the number when the order ships; see [`crate::fedex`].)
    fn fedex(at: DateTime<Utc>) -> Self {
        let number = format!("7946{:08}", rand::thread_rng().gen_range(0..100_000_000u32));
        Self {
            carrier: "fedex",
            tracking_url: format!("https://www.fedex.com/fedextrack/?trknbr={number}"),
            tracking_number: number,
            shipped_at: at,
            delivered_at: None,
        }
    }
}

/// One order as the pharmacy holds it.
#[derive(Clone, Debug)]
pub(crate) struct Order {
    pub(crate) id: String,
    pub(crate) pharmacy: Pharmacy,
    /// Our reference for the order (PioneerRx `referenceId`, LifeFile `order.general.referenceId`).
    pub(crate) reference_id: String,
    pub(crate) status: Status,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
    pub(crate) shipment: Option<Shipment>,
    /// Why it was cancelled or rejected, when a reason was given.
    pub(crate) reason: Option<String>,
    pub(crate) history: Vec<(Status, DateTime<Utc>)>,
    /// The order body exactly as the pharmacy received it (for tests to inspect).
    pub(crate) request: Value,
}

pub(crate) fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl Order {
    /// Status and shipment fields, camelCase, `null` where not known yet.
    pub(crate) fn status_fields(&self) -> Value {
        let s = self.shipment.as_ref();
        json!({
            "orderId": self.id,
            "referenceId": self.reference_id,
            "status": self.status,
            "createdAt": time(self.created_at),
            "updatedAt": time(self.updated_at),
            "carrier": s.map(|s| s.carrier),
            "trackingNumber": s.map(|s| &s.tracking_number),
            "trackingUrl": s.map(|s| &s.tracking_url),
            "shippedAt": s.map(|s| time(s.shipped_at)),
            "deliveredAt": s.and_then(|s| s.delivered_at).map(time),
            "reason": self.reason,
        })
    }

    /// The control view: status fields, the pharmacy, the history and the order as received.
    pub(crate) fn view(&self) -> Value {
        let mut v = self.status_fields();
        v["pharmacy"] = json!(self.pharmacy.slug());
        v["history"] = self
            .history
            .iter()
            .map(|(s, at)| json!({ "status": s, "at": time(*at) }))
            .collect();
        v["request"] = self.request.clone();
        v
    }
}

/// Refuses the order for a bad NPI or a state not served; otherwise takes a pending reject-next,
/// or stores the order as `received` and emits its first callback. `ship_state` is where it
/// would ship.
pub(crate) fn place(
    sandbox: &Sandbox,
    pharmacy: Pharmacy,
    reference_id: &str,
    npi: &str,
    ship_state: &str,
    request: Value,
) -> Result<Order, Refusal> {
    let screened = if !npi::is_valid(npi) {
        Err(Refusal::InvalidNpi(npi.to_owned()))
    } else if !pharmacy.serves(sandbox.config(), ship_state) {
        Err(Refusal::StateNotServed(ship_state.to_owned()))
    } else {
        Ok(())
    };
    let handle = sandbox.pharmacy();
    let placed = screened.and_then(|()| {
        let mut st = handle.state();
        if let Some(reason) = st.reject_next.remove(&pharmacy) {
            return Err(Refusal::Rejected(reason));
        }
        let now = Utc::now();
        let order = Order {
            id: new_id(pharmacy, &st.orders),
            pharmacy,
            reference_id: reference_id.to_owned(),
            status: Status::Received,
            created_at: now,
            updated_at: now,
            shipment: None,
            reason: None,
            history: vec![(Status::Received, now)],
            request,
        };
        st.orders.push(order.clone());
        emit(sandbox, &mut st, &order, now);
        Ok(order)
    });
    match &placed {
        Ok(order) => {
            sandbox.record_effect(pharmacy.slug(), "order.created", Some(&order.id), Some(pharmacy.slug()));
            if let Some(secs) = sandbox.config().pharmacy_auto_advance_secs {
                tokio::spawn(auto_advance(sandbox.clone(), pharmacy, order.id.clone(), secs));
            }
        }
        Err(refusal) => sandbox.record_effect(pharmacy.slug(), "order.refused", None, Some(refusal.code())),
    }
    placed
}

/// The `referenceId` an order lookup asks for (`?referenceId=...`); `None` when it is missing or
/// blank.
pub(crate) fn lookup_reference(query: Option<&str>) -> Option<String> {
    let pairs = crate::urlencoded::pairs(query.unwrap_or(""));
    crate::urlencoded::first(&pairs, "referenceId")
        .filter(|r| !r.trim().is_empty())
        .map(str::to_owned)
}

/// `pharmacy`'s orders placed with our `reference_id`, oldest first: what a client asks for before
/// submitting again, since a repeated submission is a second order.
pub(crate) fn by_reference(sandbox: &Sandbox, pharmacy: Pharmacy, reference_id: &str) -> Vec<Order> {
    let st = sandbox.pharmacy().state();
    st.orders
        .iter()
        .filter(|o| o.pharmacy == pharmacy && o.reference_id == reference_id)
        .cloned()
        .collect()
}

/// PioneerRx order ids are GUIDs (it is a .NET system); LifeFile's are numbers.
fn new_id(pharmacy: Pharmacy, orders: &[Order]) -> String {
    if pharmacy == Pharmacy::PioneerRx {
        return uuid::Uuid::new_v4().to_string();
    }
    loop {
        let id = rand::thread_rng().gen_range(10_000_000..100_000_000u32).to_string();
        if !orders.iter().any(|o| o.pharmacy == pharmacy && o.id == id) {
            return id;
        }
    }
}

/// Stores the callback event for `order`'s current status and queues it while the state lock is
/// held, so concurrent changes are delivered in the order they happened.
fn emit(sandbox: &Sandbox, st: &mut super::State, order: &Order, at: DateTime<Utc>) {
    let handle = sandbox.pharmacy();
    let active = handle.webhook().active();
    let event = Event::new(order, at, active);
    let id = event.id.clone();
    st.events.push(event);
    if active {
        handle.queue.push(sandbox, id);
    }
}

/// Why an order could not move.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MoveError {
    NotFound,
    /// The move is not possible from the order's current status.
    Conflict(Status),
}

/// Cancels an order that has not shipped. Cancelling a cancelled order changes nothing.
pub(crate) fn cancel(
    sandbox: &Sandbox,
    pharmacy: Pharmacy,
    id: &str,
    reason: Option<String>,
) -> Result<Order, MoveError> {
    change(
        sandbox,
        pharmacy,
        id,
        Status::Cancelled,
        reason,
        |current| match current {
            Status::Cancelled => Ok(false),
            s if s.before_shipping() => Ok(true),
            s => Err(MoveError::Conflict(s)),
        },
    )
}

/// Moves an order forward (`processing`, `shipped`, `delivered`), or rejects it before shipping.
/// Steps may be skipped; going back, or moving a final order, is a conflict.
pub(crate) fn advance(
    sandbox: &Sandbox,
    pharmacy: Pharmacy,
    id: &str,
    target: Status,
    reason: Option<String>,
) -> Result<Order, MoveError> {
    change(sandbox, pharmacy, id, target, reason, |current| {
        let ok = match target {
            Status::Rejected => current.before_shipping(),
            Status::Cancelled | Status::Received => false,
            _ => !current.is_final() && target.step() > current.step(),
        };
        if ok {
            Ok(true)
        } else {
            Err(MoveError::Conflict(current))
        }
    })
}

/// Applies a status change `allowed` approves (`Ok(false)`: nothing to do), then emits its
/// callback and records the ledger effect.
fn change(
    sandbox: &Sandbox,
    pharmacy: Pharmacy,
    id: &str,
    target: Status,
    reason: Option<String>,
    allowed: impl FnOnce(Status) -> Result<bool, MoveError>,
) -> Result<Order, MoveError> {
    let handle = sandbox.pharmacy();
    let order = {
        let mut st = handle.state();
        let i = st
            .orders
            .iter()
            .position(|o| o.pharmacy == pharmacy && o.id == id)
            .ok_or(MoveError::NotFound)?;
        if !allowed(st.orders[i].status)? {
            return Ok(st.orders[i].clone());
        }
        let now = Utc::now();
        let order = &mut st.orders[i];
        order.status = target;
        order.updated_at = now;
        order.history.push((target, now));
        if matches!(target, Status::Cancelled | Status::Rejected) {
            order.reason = reason;
        }
        if matches!(target, Status::Shipped | Status::Delivered) {
            order.shipment.get_or_insert_with(|| Shipment::fedex(now));
        }
        if target == Status::Delivered {
            if let Some(s) = order.shipment.as_mut() {
                s.delivered_at = Some(now);
            }
        }
        let order = order.clone();
        emit(sandbox, &mut st, &order, now);
        order
    };
    // The parcel is FedEx's now: its number becomes trackable there, picked up, and delivered when
    // the pharmacy says so. Told after the pharmacy's lock is released, so the two never nest.
    if let Some(s) = order.shipment.as_ref().filter(|s| s.carrier == "fedex") {
        if matches!(target, Status::Shipped | Status::Delivered) {
            crate::fedex::from_pharmacy(
                sandbox,
                &s.tracking_number,
                pharmacy.slug(),
                target == Status::Delivered,
            );
        }
    }
    let (kind, detail) = match target {
        Status::Cancelled => ("order.cancelled", pharmacy.slug()),
        other => ("order.status", other.as_str()),
    };
    sandbox.record_effect(pharmacy.slug(), kind, Some(&order.id), Some(detail));
    Ok(order)
}

/// The local demo's pharmacy: every `secs` seconds the order takes its next step, unless it was
/// already moved past it (by a test) or ended (cancelled, rejected, or gone after a reset).
async fn auto_advance(sandbox: Sandbox, pharmacy: Pharmacy, id: String, secs: u64) {
    for target in [Status::Processing, Status::Shipped, Status::Delivered] {
        tokio::time::sleep(Duration::from_secs(secs)).await;
        let current = {
            let st = sandbox.pharmacy().state();
            match st.orders.iter().find(|o| o.pharmacy == pharmacy && o.id == id) {
                Some(o) => o.status,
                None => return,
            }
        };
        if current.is_final() {
            return;
        }
        if current.step() < target.step() {
            // A concurrent move wins; the next step is tried after the next pause.
            let _ = advance(&sandbox, pharmacy, &id, target, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracking_numbers_look_like_fedex_express() {
        let s = Shipment::fedex(Utc::now());
        assert_eq!(s.tracking_number.len(), 12);
        assert!(s.tracking_number.starts_with("7946"));
        assert!(s.tracking_number.bytes().all(|b| b.is_ascii_digit()));
        assert!(s.tracking_url.ends_with(&s.tracking_number));
    }

    #[test]
    fn statuses_round_trip() {
        for s in [
            Status::Received,
            Status::Processing,
            Status::Shipped,
            Status::Delivered,
            Status::Cancelled,
            Status::Rejected,
        ] {
            assert_eq!(Status::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(Status::parse("Canceled"), Some(Status::Cancelled));
    }
}
