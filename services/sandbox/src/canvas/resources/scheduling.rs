//! Booking: Schedule (one per schedulable practitioner at the clinic's one location), Slot (free
//! time computed from office hours minus booked appointments) and Appointment.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Offset, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use serde_json::{json, Value};

use super::{existing_ref, one_of, practitioner, Kind};
use crate::canvas::{
    fields::{date_matches, instant, ref_id, ref_matches, reference, str_at},
    outcome::{FhirError, FhirResult},
    search::SearchRequest,
    store::Store,
};

pub(super) const SLOT_PARAMS: &[&str] = &["schedule", "start", "end", "duration", "appointment-type"];
pub(super) const APPOINTMENT_PARAMS: &[&str] = &["_id", "patient", "practitioner", "location", "status", "date"];

/// The clinic's one practice location; Canvas schedule ids embed this small integer.
pub(crate) const LOCATION_ID: &str = "1";
const CLINIC_NAME: &str = "Era Telehealth";
/// The location's IANA time zone. Canvas answers slots in the location's local time, each written
/// with the offset in force on its date, so office hours follow the zone's daylight-saving rules
/// rather than one fixed offset: 09:00 is 14:00Z (-05:00) in winter and 13:00Z (-04:00) in summer.
const OFFICE_TIME_ZONE: Tz = chrono_tz::America::New_York;
/// Office hours: weekdays 09:00 to 17:00, local wall-clock time in [`OFFICE_TIME_ZONE`].
const OPENS_AT: u32 = 9;
const CLOSES_AT: u32 = 17;
const MAX_SLOT_WINDOW_DAYS: i64 = 62;

const STATUSES: &[&str] = &[
    "proposed",
    "pending",
    "booked",
    "arrived",
    "checked-in",
    "fulfilled",
    "noshow",
    "cancelled",
];
/// Statuses that free the practitioner's time again.
const RELEASED: &[&str] = &["cancelled", "noshow", "entered-in-error"];
const ENDPOINT_IDS: &[&str] = &["appointment-meeting-endpoint-0", "appointment-meeting-endpoint"];
const NOTE_ID_URL: &str = "http://schemas.canvasmedical.com/fhir/extensions/note-id";

pub(crate) fn schedule_id(practitioner_id: &str) -> String {
    format!("Location.{LOCATION_ID}-Staff.{practitioner_id}")
}

pub(super) fn schedules(store: &Store) -> Vec<Value> {
    store
        .all(Kind::Practitioner)
        .iter()
        .filter(|p| practitioner::is_active(p) && practitioner::is_schedulable(p))
        .filter_map(|p| {
            let id = p.get("id")?.as_str()?;
            Some(json!({
                "resourceType": "Schedule",
                "id": schedule_id(id),
                "actor": [reference("Practitioner", id)],
                "comment": format!("Schedule for {} at {CLINIC_NAME}", practitioner::display_name(p)),
            }))
        })
        .collect()
}

/// Free slots for one schedule: every `duration`-minute span in office hours, weekdays, from
/// `start` (inclusive) to `end` (exclusive), that overlaps none of the practitioner's appointments.
/// The days are the location's local calendar days; each slot's `start` and `end` carry the local
/// offset of that date (e.g. `2027-03-15T09:00:00-04:00`).
pub(super) fn slots(store: &Store, req: &SearchRequest) -> FhirResult<Vec<Value>> {
    let schedule = req
        .first("schedule")
        .ok_or_else(|| FhirError::invalid("Slot search requires the 'schedule' parameter"))?;
    let schedule = schedule.strip_prefix("Schedule/").unwrap_or(schedule);
    let start = match req.first("start") {
        Some(s) => parse_day(s, "start")?,
        None => Utc::now().with_timezone(&OFFICE_TIME_ZONE).date_naive(),
    };
    let end = match req.first("end") {
        Some(s) => parse_day(s, "end")?,
        None => start
            .checked_add_signed(Duration::days(7))
            .ok_or_else(|| FhirError::invalid("Slot search 'start' is out of range"))?,
    };
    if end <= start {
        return Err(FhirError::invalid("Slot search 'end' must be after 'start'"));
    }
    // Slots are computed per request; a bounded window keeps a careless query cheap.
    if end - start > Duration::days(MAX_SLOT_WINDOW_DAYS) {
        return Err(FhirError::invalid(format!(
            "Slot search covers at most {MAX_SLOT_WINDOW_DAYS} days from 'start'"
        )));
    }
    let duration = match req.first("duration") {
        Some(d) => parse_minutes(d)?,
        None => 20,
    };
    // Only schedules Canvas would list have slots; any other id finds none.
    let Some((_, practitioner_id)) = schedule.rsplit_once("-Staff.") else {
        return Ok(Vec::new());
    };
    if !schedules(store).iter().any(|s| s["id"] == schedule) {
        return Ok(Vec::new());
    }
    let busy = busy_intervals(store, practitioner_id, None);
    let mut slots = Vec::new();
    for day in start.iter_days().take_while(|d| *d < end) {
        if matches!(day.weekday(), Weekday::Sat | Weekday::Sun) {
            continue;
        }
        let (Some(mut from), Some(closes)) = (office_time(day, OPENS_AT, 0), office_time(day, CLOSES_AT, 0)) else {
            continue;
        };
        while from + Duration::minutes(duration) <= closes {
            let to = from + Duration::minutes(duration);
            let (f, t) = (from.with_timezone(&Utc), to.with_timezone(&Utc));
            if !busy.iter().any(|(bs, be)| f < *be && *bs < t) {
                slots.push(json!({
                    "resourceType": "Slot",
                    "schedule": { "reference": format!("Schedule/{schedule}"), "type": "Schedule" },
                    "status": "free",
                    "start": from.to_rfc3339(),
                    "end": to.to_rfc3339(),
                }));
            }
            from = to;
        }
    }
    Ok(slots)
}

/// The instant that the wall-clock `hour` of `day` names in [`OFFICE_TIME_ZONE`]. An hour the
/// autumn change repeats names its first occurrence (`earliest`). An hour the spring change skips
/// is read with the offset in force before the gap, as RFC 5545 does, so 02:30 on that day names
/// 03:30 daylight time. (America/New_York changes at 02:00, so 09:00 and 17:00 never hit either.)
pub(crate) fn office_time(day: NaiveDate, hour: u32, minute: u32) -> Option<DateTime<Tz>> {
    let local = day.and_hms_opt(hour, minute, 0)?;
    OFFICE_TIME_ZONE.from_local_datetime(&local).earliest().or_else(|| {
        // Zones change offset at most once a day, so a day earlier is before the gap.
        let before = OFFICE_TIME_ZONE
            .offset_from_local_datetime(&local.checked_sub_signed(Duration::days(1))?)
            .earliest()?
            .fix();
        let at = before.from_local_datetime(&local).single()?;
        Some(at.with_timezone(&OFFICE_TIME_ZONE))
    })
}

fn parse_minutes(s: &str) -> FhirResult<i64> {
    s.parse::<i64>()
        .ok()
        .filter(|m| (5..=480).contains(m))
        .ok_or_else(|| FhirError::invalid(format!("Invalid duration '{s}': expected minutes between 5 and 480")))
}

fn parse_day(s: &str, param: &str) -> FhirResult<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
        FhirError::invalid(format!(
            "Invalid date '{s}' for parameter '{param}': expected YYYY-MM-DD"
        ))
    })
}

/// The practitioner's booked time: every appointment not cancelled (or otherwise released).
fn busy_intervals(store: &Store, practitioner_id: &str, except: Option<&str>) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    store
        .all(Kind::Appointment)
        .iter()
        .filter(|a| except.is_none_or(|id| a.get("id").and_then(Value::as_str) != Some(id)))
        .filter(|a| !RELEASED.contains(&a.get("status").and_then(Value::as_str).unwrap_or_default()))
        .filter(|a| practitioner_of(a) == Some(practitioner_id))
        .filter_map(|a| Some((instant(str_at(a, "/start")?)?, instant(str_at(a, "/end")?)?)))
        .collect()
}

fn participants(a: &Value) -> impl Iterator<Item = &Value> {
    a.get("participant")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("actor"))
}

fn practitioner_of(a: &Value) -> Option<&str> {
    participants(a).find_map(|actor| ref_id(actor, "Practitioner"))
}

pub(super) fn create_appointment(mut body: Value, store: &Store) -> FhirResult<Value> {
    validate(&mut body, store, None)?;
    if body.get("extension").is_none() {
        let note_id = uuid::Uuid::new_v4().simple().to_string();
        body["extension"] = json!([{ "url": NOTE_ID_URL, "valueId": note_id }]);
    }
    Ok(body)
}

/// Partial update: fields in the body replace the stored ones, the rest are kept. A cancelled
/// appointment stays cancelled.
pub(super) fn update_appointment(current: &Value, body: Value, store: &Store) -> FhirResult<Value> {
    let mut next = current.clone();
    if let (Some(target), Value::Object(fields)) = (next.as_object_mut(), body) {
        for (k, v) in fields {
            if !matches!(k.as_str(), "id" | "meta" | "resourceType") {
                target.insert(k, v);
            }
        }
    }
    let was = current.get("status").and_then(Value::as_str);
    let now = next.get("status").and_then(Value::as_str);
    if was == Some("cancelled") && now != Some("cancelled") {
        return Err(FhirError::business_rule(
            "A cancelled appointment cannot be moved to another status",
        ));
    }
    let id = current.get("id").and_then(Value::as_str);
    validate(&mut next, store, id)?;
    Ok(next)
}

/// Create and update share these rules; `self_id` keeps an update from overlapping itself.
fn validate(body: &mut Value, store: &Store, self_id: Option<&str>) -> FhirResult<()> {
    let status = body.get("status").and_then(Value::as_str).unwrap_or_default();
    if status == "entered-in-error" {
        return Err(FhirError::invalid(
            "Appointment.status 'entered-in-error' is not allowed",
        ));
    }
    if status.is_empty() {
        return Err(FhirError::invalid("Appointment.status is required"));
    }
    one_of(status, STATUSES, "Appointment.status")?;
    let blocks_time = !RELEASED.contains(&status);

    let time = |field: &str| -> FhirResult<DateTime<Utc>> {
        let s = str_at(body, &format!("/{field}"))
            .ok_or_else(|| FhirError::invalid(format!("Appointment.{field} is required")))?;
        instant(s).ok_or_else(|| FhirError::invalid(format!("Appointment.{field} must be a dateTime with an offset")))
    };
    let (start, end) = (time("start")?, time("end")?);
    if end <= start {
        return Err(FhirError::invalid("Appointment.end must be after Appointment.start"));
    }

    let actors: Vec<Value> = participants(body).cloned().collect();
    let practitioner = actors
        .iter()
        .find(|a| ref_id(a, "Practitioner").is_some())
        .ok_or_else(|| FhirError::invalid("Appointment.participant must include a Practitioner actor"))?;
    let practitioner_id = existing_ref(
        store,
        Some(practitioner),
        Kind::Practitioner,
        "Appointment.participant.actor",
    )?;
    for patient in actors.iter().filter(|a| ref_id(a, "Patient").is_some()) {
        existing_ref(store, Some(patient), Kind::Patient, "Appointment.participant.actor")?;
    }

    let location = body
        .get("supportingInformation")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find_map(|s| ref_id(s, "Location"))
        .ok_or_else(|| FhirError::invalid("Appointment.supportingInformation must include a Location reference"))?;
    if location != LOCATION_ID {
        return Err(FhirError::invalid(format!(
            "Appointment.supportingInformation references unknown Location '{location}'"
        )));
    }

    if let Some(contained) = body.get_mut("contained").and_then(Value::as_array_mut) {
        for endpoint in contained
            .iter_mut()
            .filter(|c| c.get("resourceType").and_then(Value::as_str) == Some("Endpoint"))
        {
            complete_endpoint(endpoint)?;
        }
    }

    if blocks_time
        && busy_intervals(store, &practitioner_id, self_id)
            .iter()
            .any(|(s, e)| start < *e && *s < end)
    {
        return Err(FhirError::business_rule(
            "This appointment time is no longer available.",
        ));
    }
    Ok(())
}

/// The telehealth link as Canvas reads it back: the address sent, plus its fixed endpoint fields.
fn complete_endpoint(endpoint: &mut Value) -> FhirResult<()> {
    let id = str_at(endpoint, "/id").unwrap_or_default();
    if !ENDPOINT_IDS.contains(&id) {
        return Err(FhirError::invalid(format!(
            "Appointment.contained Endpoint id must be one of {}",
            ENDPOINT_IDS.join(", ")
        )));
    }
    if str_at(endpoint, "/address").is_none() {
        return Err(FhirError::invalid(
            "Appointment.contained Endpoint.address (the meeting link) is required",
        ));
    }
    endpoint["status"] = json!("active");
    endpoint["connectionType"] = json!({
        "system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type",
        "code": "https",
    });
    if endpoint.get("payloadType").is_none() {
        endpoint["payloadType"] = json!([{ "coding": [{ "code": "video-call" }] }]);
    }
    Ok(())
}

pub(super) fn appointment_matches(r: &Value, param: &str, value: &str) -> FhirResult<bool> {
    Ok(match param {
        "patient" => participants(r).any(|a| ref_matches(Some(a), "Patient", value)),
        "practitioner" => participants(r).any(|a| ref_matches(Some(a), "Practitioner", value)),
        "location" => r
            .get("supportingInformation")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|s| ref_matches(Some(s), "Location", value)),
        "status" => r.get("status").and_then(Value::as_str) == Some(value),
        "date" => date_matches(str_at(r, "/start"), value, param)?,
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(day: &str, hour: u32) -> String {
        let day = NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap();
        office_time(day, hour, 0).unwrap().to_rfc3339()
    }

    #[test]
    fn office_hours_follow_new_york_daylight_saving() {
        assert_eq!(at("2027-03-12", OPENS_AT), "2027-03-12T09:00:00-05:00");
        assert_eq!(at("2027-03-15", OPENS_AT), "2027-03-15T09:00:00-04:00");
        assert_eq!(at("2027-11-05", CLOSES_AT), "2027-11-05T17:00:00-04:00");
        assert_eq!(at("2027-11-08", CLOSES_AT), "2027-11-08T17:00:00-05:00");
    }

    #[test]
    fn skipped_and_repeated_hours_resolve_instead_of_failing() {
        // 2027-03-14 02:00 does not exist in New York: read with -05:00, it is 03:00 daylight time.
        assert_eq!(at("2027-03-14", 2), "2027-03-14T03:00:00-04:00");
        // 2027-11-07 01:00 happens twice: the first, daylight-time one is taken.
        assert_eq!(at("2027-11-07", 1), "2027-11-07T01:00:00-04:00");
    }
}
