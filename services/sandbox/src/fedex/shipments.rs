//! The parcels FedEx knows and how they move: label created → picked up → in transit → out for
//! delivery → delivered, or a delivery exception after going out (the next step after one is
//! going out again: FedEx re-attempts the next business day). Each step is one scan event, and
//! each parcel renders as one Track API `trackResult`.
//!
//! What each step looks like (event type, description, location type, derived status, and the
//! `latestStatusDetail` it leaves) follows responses captured from FedEx's sandbox by community
//! clients (external-apis.md §5 lists the codes). Two of their quirks are kept on purpose, so a
//! client written against the sandbox copes with FedEx: label created is `code: "OC"` with
//! `derivedCode: "IN"` ("Initiated"), and out for delivery is `code: "OD"` with
//! `derivedCode: "IT"` ("In transit"), so only `code` tells "on the vehicle" from "in transit".
//!
//! Sandbox assumptions, not FedEx's: every parcel travels one fixed route (picked up in Memphis,
//! through Indianapolis, delivered in Newark; the sandbox does not know, and must not carry, the
//! patient's address), as FedEx Priority Overnight, estimated for the next business day between
//! 08:00 and 10:30 at the destination; a delivery exception is always "customer not available"
//! (code 007); and a step's time is now, or a second after the step before when several are taken
//! at once, so scan times always increase.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use rand::Rng;
use serde::Serialize;
use serde_json::{json, Value};

use crate::Sandbox;

/// Where a parcel is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    LabelCreated,
    PickedUp,
    InTransit,
    OutForDelivery,
    Delivered,
    Exception,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::LabelCreated => "label_created",
            Status::PickedUp => "picked_up",
            Status::InTransit => "in_transit",
            Status::OutForDelivery => "out_for_delivery",
            Status::Delivered => "delivered",
            Status::Exception => "exception",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "label_created" => Status::LabelCreated,
            "picked_up" => Status::PickedUp,
            "in_transit" => Status::InTransit,
            "out_for_delivery" => Status::OutForDelivery,
            "delivered" => Status::Delivered,
            "exception" => Status::Exception,
            _ => return None,
        })
    }

    /// The step time takes a parcel to next; none after delivery.
    fn next(self) -> Option<Status> {
        Some(match self {
            Status::LabelCreated => Status::PickedUp,
            Status::PickedUp => Status::InTransit,
            Status::InTransit => Status::OutForDelivery,
            Status::OutForDelivery => Status::Delivered,
            // Re-attempted the next business day.
            Status::Exception => Status::OutForDelivery,
            Status::Delivered => return None,
        })
    }

    /// The scan this step leaves: `(eventType, eventDescription, locationType, derivedStatusCode,
    /// derivedStatus)`.
    fn scan(self) -> (&'static str, &'static str, &'static str, &'static str, &'static str) {
        match self {
            Status::LabelCreated => (
                "OC",
                "Shipment information sent to FedEx",
                "CUSTOMER",
                "IN",
                "Initiated",
            ),
            Status::PickedUp => ("PU", "Picked up", "PICKUP_LOCATION", "PU", "Picked up"),
            Status::InTransit => ("IT", "In transit", "FEDEX_FACILITY", "IT", "In transit"),
            Status::OutForDelivery => ("OD", "On FedEx vehicle for delivery", "VEHICLE", "IT", "In transit"),
            Status::Delivered => ("DL", "Delivered", "DELIVERY_LOCATION", "DL", "Delivered"),
            Status::Exception => (
                "DE",
                "Delivery exception",
                "DESTINATION_FEDEX_FACILITY",
                "DE",
                "Delivery exception",
            ),
        }
    }

    /// `latestStatusDetail` while this is the last step: `(code, derivedCode, statusByLocale,
    /// description)`.
    fn latest(self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self {
            Status::LabelCreated => ("OC", "IN", "Initiated", "Shipment information sent to FedEx"),
            Status::PickedUp => ("PU", "PU", "Picked up", "Picked up"),
            Status::InTransit => ("IT", "IT", "In transit", "In transit"),
            Status::OutForDelivery => ("OD", "IT", "In transit", "On FedEx vehicle for delivery"),
            Status::Delivered => ("DL", "DL", "Delivered", "Delivered"),
            Status::Exception => ("DE", "DE", "Delivery exception", "Delivery exception"),
        }
    }

    /// Where the scan happens on the sandbox's route.
    fn place(self) -> &'static Place {
        match self {
            Status::LabelCreated | Status::PickedUp => &ORIGIN,
            Status::InTransit => &HUB,
            Status::OutForDelivery | Status::Delivered | Status::Exception => &DESTINATION,
        }
    }
}

/// The exception every delivery exception carries (as captured from FedEx's sandbox).
const EXCEPTION_CODE: &str = "007";
const EXCEPTION_DESCRIPTION: &str = "Customer not available or business closed";
const EXCEPTION_ACTION: &str = "Delivery will be re-attempted the next business day.";

/// A stop on the sandbox's route, and the time zone its scans are stamped in (FedEx gives each
/// scan the local time of where it happened).
#[derive(Debug)]
struct Place {
    city: &'static str,
    state: &'static str,
    postal_code: &'static str,
    location_id: &'static str,
    tz: Tz,
}

const ORIGIN: Place = Place {
    city: "MEMPHIS",
    state: "TN",
    postal_code: "38118",
    location_id: "MEMA",
    tz: chrono_tz::America::Chicago,
};
const HUB: Place = Place {
    city: "INDIANAPOLIS",
    state: "IN",
    postal_code: "46241",
    location_id: "INDH",
    tz: chrono_tz::America::Indiana::Indianapolis,
};
const DESTINATION: Place = Place {
    city: "NEWARK",
    state: "NJ",
    postal_code: "07114",
    location_id: "EWRA",
    tz: chrono_tz::America::New_York,
};

impl Place {
    /// `scanLocation` as FedEx writes it; the shipper's own scan (OC) names only its postal code.
    fn scan_location(&self, customer: bool) -> Value {
        if customer {
            return json!({
                "streetLines": [""], "postalCode": self.postal_code, "countryCode": "US",
                "residential": false, "countryName": "United States",
            });
        }
        json!({
            "streetLines": [""], "city": self.city, "stateOrProvinceCode": self.state,
            "postalCode": self.postal_code, "countryCode": "US", "residential": false,
            "countryName": "United States",
        })
    }

    /// An address as `shipperInformation`, `recipientInformation` and `latestStatusDetail` give it.
    fn address(&self) -> Value {
        json!({
            "city": self.city, "stateOrProvinceCode": self.state, "countryCode": "US",
            "residential": false, "countryName": "United States",
        })
    }

    /// FedEx's date-time: local to the place, with its offset (`2024-04-26T09:26:00-07:00`).
    fn time(&self, at: DateTime<Utc>) -> String {
        at.with_timezone(&self.tz).format("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }
}

/// One scan.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Event {
    pub(crate) status: Status,
    pub(crate) at: DateTime<Utc>,
}

impl Event {
    fn json(&self) -> Value {
        let (event_type, description, location_type, derived_code, derived) = self.status.scan();
        let place = self.status.place();
        let exception = self.status == Status::Exception;
        let mut v = json!({
            "date": place.time(self.at),
            "eventType": event_type,
            "eventDescription": description,
            "exceptionCode": if exception { EXCEPTION_CODE } else { "" },
            "exceptionDescription": if exception { EXCEPTION_DESCRIPTION } else { "" },
            "scanLocation": place.scan_location(self.status == Status::LabelCreated),
            "locationType": location_type,
            "derivedStatusCode": derived_code,
            "derivedStatus": derived,
        });
        // The shipper's scan has no FedEx location id.
        if self.status != Status::LabelCreated {
            v["locationId"] = json!(place.location_id);
        }
        v
    }
}

/// One parcel.
#[derive(Clone, Debug)]
pub(crate) struct Shipment {
    pub(crate) tracking_number: String,
    /// Who registered it: `manual` (a control) or `pharmacy:{slug}`.
    pub(crate) source: String,
    pub(crate) created_at: DateTime<Utc>,
    /// Oldest first; never empty (the label is created with the parcel).
    pub(crate) events: Vec<Event>,
    /// The estimated delivery window, set at pickup and moved by an exception.
    pub(crate) estimate: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

impl Shipment {
    fn new(tracking_number: String, source: String, now: DateTime<Utc>) -> Self {
        Self {
            tracking_number,
            source,
            created_at: now,
            events: vec![Event {
                status: Status::LabelCreated,
                at: now,
            }],
            estimate: None,
        }
    }

    pub(crate) fn status(&self) -> Status {
        self.events.last().map_or(Status::LabelCreated, |e| e.status)
    }

    fn first(&self, status: Status) -> Option<DateTime<Utc>> {
        self.events.iter().find(|e| e.status == status).map(|e| e.at)
    }

    fn last(&self, status: Status) -> Option<DateTime<Utc>> {
        self.events.iter().rev().find(|e| e.status == status).map(|e| e.at)
    }

    /// Takes one step: a scan at `now` (or a second after the last one), and the estimate it moves.
    fn step(&mut self, status: Status, now: DateTime<Utc>) {
        let after_last = self.events.last().map(|e| e.at + Duration::seconds(1));
        let at = after_last.map_or(now, |t| t.max(now));
        self.events.push(Event { status, at });
        // Picked up sets the promise; an exception moves it to the re-attempt's day.
        if matches!(status, Status::PickedUp | Status::Exception) {
            self.estimate = Some(overnight_window(at));
        }
    }

    /// Takes every step from where the parcel is to `target`; `None` (and no change) when `target`
    /// is not ahead of it.
    fn walk_to(&mut self, target: Status, now: DateTime<Utc>) -> Option<Vec<Status>> {
        let steps = path(self.status(), target)?;
        for s in &steps {
            self.step(*s, now);
        }
        Some(steps)
    }

    /// The `trackResult` FedEx answers for this parcel; without detailed scans, `scanEvents` is
    /// empty (sandbox assumption: FedEx's summary answer was not seen).
    pub(crate) fn track_result(&self, detailed: bool) -> Value {
        let status = self.status();
        let (code, derived_code, by_locale, description) = status.latest();
        let mut latest = json!({
            "code": code,
            "derivedCode": derived_code,
            "statusByLocale": by_locale,
            "description": description,
            "scanLocation": status.place().address(),
        });
        if status == Status::Exception {
            latest["ancillaryDetails"] = json!([{
                "reason": EXCEPTION_CODE,
                "reasonDescription": EXCEPTION_DESCRIPTION,
                "action": EXCEPTION_ACTION,
                "actionDescription": EXCEPTION_DESCRIPTION,
            }]);
            latest["delayDetail"] = json!({ "status": "DELAYED" });
        }

        let delivered = self.last(Status::Delivered).filter(|_| status == Status::Delivered);
        let picked_up = self.first(Status::PickedUp);
        let mut dates = Vec::new();
        match (delivered, self.estimate) {
            (Some(at), _) => dates.push(json!({ "type": "ACTUAL_DELIVERY", "dateTime": DESTINATION.time(at) })),
            (None, Some((_, ends))) => {
                dates.push(json!({ "type": "ESTIMATED_DELIVERY", "dateTime": DESTINATION.time(ends) }));
            }
            (None, None) => {}
        }
        if let Some(at) = picked_up {
            dates.push(json!({ "type": "ACTUAL_PICKUP", "dateTime": ORIGIN.time(at) }));
        }
        dates.push(json!({ "type": "SHIP", "dateTime": ship_date(picked_up.unwrap_or(self.created_at)) }));

        // Once delivered FedEx leaves the window empty, as before pickup.
        let window = match (delivered, self.estimate) {
            (None, Some((begins, ends))) => {
                json!({ "window": { "begins": DESTINATION.time(begins), "ends": DESTINATION.time(ends) } })
            }
            _ => json!({ "window": {} }),
        };
        let standard_ends = overnight_window(picked_up.unwrap_or(self.created_at)).1;

        let attempts = self.events.iter().filter(|e| e.status == Status::Exception).count();
        let mut delivery = json!({ "deliveryAttempts": attempts.to_string() });
        if delivered.is_some() {
            delivery["actualDeliveryAddress"] = DESTINATION.address();
            delivery["locationType"] = json!("RESIDENCE");
            delivery["locationDescription"] = json!("Residence");
            // FedEx names who signed; the sandbox holds no names.
            delivery["receivedByName"] = json!("");
        }

        let scans: Vec<Value> = if detailed {
            self.events.iter().rev().map(Event::json).collect()
        } else {
            Vec::new()
        };
        let mut result = json!({
            "trackingNumberInfo": {
                "trackingNumber": self.tracking_number,
                "trackingNumberUniqueId": format!("{}~{}~FX", self.created_at.format("%Y%j"), self.tracking_number),
                "carrierCode": "FDXE",
            },
            "additionalTrackingInfo": { "nickname": "", "packageIdentifiers": [], "hasAssociatedShipments": false },
            "shipperInformation": { "address": ORIGIN.address() },
            "recipientInformation": { "address": DESTINATION.address() },
            "latestStatusDetail": latest,
            "dateAndTimes": dates,
            "availableImages": [],
            "packageDetails": {
                "packagingDescription": { "type": "YOUR_PACKAGING", "description": "Your Packaging" },
                "sequenceNumber": "1",
                "count": "1",
                "weightAndDimensions": {
                    "weight": [{ "value": "1.0", "unit": "LB" }, { "value": "0.45", "unit": "KG" }],
                },
                "packageContent": [],
            },
            "shipmentDetails": { "possessionStatus": status != Status::LabelCreated },
            "scanEvents": scans,
            "availableNotifications": if delivered.is_some() {
                json!(["ON_DELIVERY"])
            } else {
                json!(["ON_DELIVERY", "ON_EXCEPTION", "ON_ESTIMATED_DELIVERY"])
            },
            "deliveryDetails": delivery,
            "originLocation": {
                "locationContactAndAddress": { "address": ORIGIN.address() },
                "locationId": ORIGIN.location_id,
            },
            "lastUpdatedDestinationAddress": DESTINATION.address(),
            "serviceDetail": {
                "type": "PRIORITY_OVERNIGHT",
                "description": "FedEx Priority Overnight",
                "shortDescription": "P-1",
            },
            "standardTransitTimeWindow": { "window": { "ends": DESTINATION.time(standard_ends) } },
            "estimatedDeliveryTimeWindow": window,
            "goodsClassificationCode": "",
            "returnDetail": {},
        });
        if status == Status::LabelCreated {
            result["serviceCommitMessage"] = json!({
                "message": "The delivery date may be updated when FedEx receives the package.",
                "type": "SHIPMENT_LABEL_CREATED",
            });
        }
        result
    }

    /// The control view: status, where it came from, the window, and the scans newest first.
    pub(crate) fn view(&self) -> Value {
        let time = |at: DateTime<Utc>| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        json!({
            "trackingNumber": self.tracking_number,
            "status": self.status(),
            "code": self.status().latest().0,
            "source": self.source,
            "createdAt": time(self.created_at),
            "estimatedDelivery": self.estimate.filter(|_| self.status() != Status::Delivered)
                .map(|(b, e)| json!({ "begins": time(b), "ends": time(e) })),
            "deliveredAt": self.last(Status::Delivered).map(time),
            "events": self.events.iter().rev()
                .map(|e| json!({ "status": e.status, "eventType": e.status.scan().0, "at": time(e.at) }))
                .collect::<Vec<_>>(),
        })
    }
}

/// The steps from `from` to `to`, each the next one; a delivery exception happens out on the
/// vehicle, so a walk to one goes out for delivery first. `None` when `to` is not ahead.
fn path(from: Status, to: Status) -> Option<Vec<Status>> {
    let mut steps = Vec::new();
    let mut at = from;
    // The longest walk: label created, out for delivery and back (exception), then on to
    // delivered; anything longer goes round in circles.
    while steps.len() < 6 {
        let next = if to == Status::Exception && at == Status::OutForDelivery {
            Status::Exception
        } else {
            at.next()?
        };
        steps.push(next);
        at = next;
        if at == to {
            return Some(steps);
        }
    }
    None
}

/// Priority Overnight's promise as the sandbox makes it: the next business day after `from`
/// (at the destination), between 08:00 and 10:30.
fn overnight_window(from: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let tz = DESTINATION.tz;
    let mut day = from.with_timezone(&tz).date_naive() + Duration::days(1);
    while matches!(day.weekday(), Weekday::Sat | Weekday::Sun) {
        day += Duration::days(1);
    }
    let at = |h, m| {
        let local = day.and_time(NaiveTime::from_hms_opt(h, m, 0).unwrap_or_default());
        tz.from_local_datetime(&local)
            .earliest()
            .map_or(from, |t| t.with_timezone(&Utc))
    };
    (at(8, 0), at(10, 30))
}

/// The ship date as FedEx gives it: midnight at the origin.
fn ship_date(at: DateTime<Utc>) -> String {
    let local = at.with_timezone(&ORIGIN.tz).date_naive().and_time(NaiveTime::MIN);
    ORIGIN
        .tz
        .from_local_datetime(&local)
        .earliest()
        .map_or_else(|| ORIGIN.time(at), |t| ORIGIN.time(t.with_timezone(&Utc)))
}

/// What FedEx holds.
#[derive(Debug, Default)]
pub(crate) struct Shipments {
    by_number: BTreeMap<String, Shipment>,
}

impl Shipments {
    pub(crate) fn get(&self, number: &str) -> Option<&Shipment> {
        self.by_number.get(number)
    }

    /// Every parcel, oldest first.
    pub(crate) fn all(&self) -> Vec<&Shipment> {
        let mut all: Vec<&Shipment> = self.by_number.values().collect();
        all.sort_by(|a, b| (a.created_at, &a.tracking_number).cmp(&(b.created_at, &b.tracking_number)));
        all
    }

    /// A 12-digit number like FedEx Express's (`7946…`, as the pharmacies' are) no parcel has.
    fn fresh_number(&self) -> String {
        loop {
            let n = format!("7946{:08}", rand::thread_rng().gen_range(0..100_000_000u32));
            if !self.by_number.contains_key(&n) {
                return n;
            }
        }
    }
}

/// Why a parcel could not be registered or moved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ShipmentError {
    /// No parcel has this number.
    NotFound,
    /// A parcel has this number already.
    Exists,
    /// The target is not ahead of the parcel's status.
    Conflict(Status),
}

/// Registers a parcel (a new number when none is given) and walks it from label created to `at`;
/// records `shipment.registered`.
pub(crate) fn register(
    sandbox: &Sandbox,
    number: Option<String>,
    at: Status,
    source: &str,
) -> Result<Shipment, ShipmentError> {
    let shipment = {
        let mut st = sandbox.fedex().state();
        let number = number.unwrap_or_else(|| st.shipments.fresh_number());
        if st.shipments.by_number.contains_key(&number) {
            return Err(ShipmentError::Exists);
        }
        let now = Utc::now();
        let mut shipment = Shipment::new(number.clone(), source.to_owned(), now);
        if at != Status::LabelCreated {
            shipment.walk_to(at, now);
        }
        st.shipments.by_number.insert(number, shipment.clone());
        shipment
    };
    sandbox.record_effect(
        "fedex",
        "shipment.registered",
        Some(&shipment.tracking_number),
        Some(shipment.status().as_str()),
    );
    Ok(shipment)
}

/// Moves a parcel one step, or through every step to `to`; records `shipment.advanced`.
pub(crate) fn advance(sandbox: &Sandbox, number: &str, to: Option<Status>) -> Result<Shipment, ShipmentError> {
    let shipment = {
        let mut st = sandbox.fedex().state();
        let shipment = st.shipments.by_number.get_mut(number).ok_or(ShipmentError::NotFound)?;
        let current = shipment.status();
        let target = to.or_else(|| current.next()).ok_or(ShipmentError::Conflict(current))?;
        shipment
            .walk_to(target, Utc::now())
            .ok_or(ShipmentError::Conflict(current))?;
        shipment.clone()
    };
    sandbox.record_effect(
        "fedex",
        "shipment.advanced",
        Some(&shipment.tracking_number),
        Some(shipment.status().as_str()),
    );
    Ok(shipment)
}

/// A pharmacy handed FedEx a parcel (its order shipped): the number becomes known, picked up; and
/// when the pharmacy reports it delivered, FedEx shows it delivered too. Safe to call again.
pub(crate) fn from_pharmacy(sandbox: &Sandbox, number: &str, pharmacy: &str, delivered: bool) {
    let known = sandbox.fedex().state().shipments.get(number).map(Shipment::status);
    let status = match known {
        Some(s) => s,
        None => match register(
            sandbox,
            Some(number.to_owned()),
            Status::PickedUp,
            &format!("pharmacy:{pharmacy}"),
        ) {
            Ok(s) => s.status(),
            // Registered meanwhile by a concurrent change: it is known either way.
            Err(_) => Status::PickedUp,
        },
    };
    if delivered && status != Status::Delivered {
        // A conflict means a concurrent call delivered it first.
        let _ = advance(sandbox, number, Some(Status::Delivered));
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn statuses_round_trip() {
        for s in [
            Status::LabelCreated,
            Status::PickedUp,
            Status::InTransit,
            Status::OutForDelivery,
            Status::Delivered,
            Status::Exception,
        ] {
            assert_eq!(Status::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }

    #[test]
    fn paths_only_go_forward() {
        use Status::*;
        assert_eq!(path(LabelCreated, PickedUp), Some(vec![PickedUp]));
        assert_eq!(
            path(LabelCreated, Delivered),
            Some(vec![PickedUp, InTransit, OutForDelivery, Delivered])
        );
        assert_eq!(path(InTransit, Exception), Some(vec![OutForDelivery, Exception]));
        assert_eq!(path(Exception, Delivered), Some(vec![OutForDelivery, Delivered]));
        assert_eq!(path(Exception, Exception), Some(vec![OutForDelivery, Exception]));
        assert_eq!(path(OutForDelivery, InTransit), None);
        assert_eq!(path(Delivered, Delivered), None);
        assert_eq!(path(InTransit, InTransit), None);
        assert_eq!(path(Exception, InTransit), None);
    }

    #[test]
    fn the_estimate_skips_the_weekend() {
        // Friday 2025-03-07, 15:00 in Newark: Monday 08:00–10:30 EDT (daylight saving began on the 9th).
        let friday = Utc.with_ymd_and_hms(2025, 3, 7, 20, 0, 0).unwrap();
        let (begins, ends) = overnight_window(friday);
        assert_eq!(DESTINATION.time(begins), "2025-03-10T08:00:00-04:00");
        assert_eq!(DESTINATION.time(ends), "2025-03-10T10:30:00-04:00");
        assert_eq!(ship_date(friday), "2025-03-07T00:00:00-06:00");
    }

    #[test]
    fn steps_taken_at_once_are_a_second_apart() {
        let now = Utc::now();
        let mut s = Shipment::new("794600000001".into(), "manual".into(), now);
        s.walk_to(Status::Delivered, now).unwrap();
        let times: Vec<_> = s.events.iter().map(|e| e.at).collect();
        assert!(
            times.windows(2).all(|w| w[1] == w[0] + Duration::seconds(1)),
            "{times:?}"
        );
        assert_eq!(s.status(), Status::Delivered);
    }
}
