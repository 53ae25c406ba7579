//! A physician prescribing in Canvas. FHIR MedicationRequest is read-only over the API: a
//! prescription is made by the Prescribe command in the EMR, and stopped or changed there too.
//! These controls stand in for that physician, so the clinic's plugin ([`super::plugin`]) has
//! something to announce. Each change is made to the FHIR store as Canvas would make it (a new
//! resource, or the next version of it) and emits its plugin event under the same lock.
//!
//! Controls under `/_sandbox/canvas`:
//! - `POST /prescriptions {"patientId", "medication", "doseLabel"}` → 201
//!   `{"medicationRequestId", "eventId"}` (PRESCRIPTION_CREATED)
//! - `POST /prescriptions/{id}/stop {"status"?: "stopped" | "cancelled" | "entered-in-error"}` →
//!   200 `{"medicationRequestId", "status", "eventId"}` (PRESCRIPTION_UPDATED)
//! - `POST /prescriptions/{id}/adjust {"doseLabel"}` → 200 `{"medicationRequestId", "status",
//!   "doseLabel", "eventId"}` (PRESCRIPTION_UPDATED)

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::post,
    Json, Router,
};
use chrono::Utc;
use serde_json::{json, Value};

use super::{
    fields::{ref_id, reference, str_at, timestamp},
    plugin::{self, EventType},
    resources::Kind,
    seed,
};
use crate::{webhook::problem, Sandbox};

/// The forms the catalogue's products come in, which decide the SIG and what is dispensed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    /// A compounded vial, injected once a week; one 2 mL vial lasts four weeks.
    WeeklyInjection,
    /// Ondansetron 4 mg orally disintegrating tablets, taken as needed for nausea.
    DisintegratingTablet,
}

/// A medication of the clinic's catalogue, as Canvas codes it.
#[derive(Debug)]
struct Medication {
    /// The catalogue id (`semaglutide`), which is also the coding's `display`.
    id: &'static str,
    rxcui: &'static str,
    product: &'static str,
    form: Form,
}

const CATALOGUE: &[Medication] = &[
    Medication {
        id: "semaglutide",
        rxcui: "1991302",
        product: "Semaglutide 2.5 mg/mL subcutaneous solution (compounded)",
        form: Form::WeeklyInjection,
    },
    Medication {
        id: "tirzepatide",
        rxcui: "2601723",
        product: "Tirzepatide 10 mg/mL subcutaneous solution (compounded)",
        form: Form::WeeklyInjection,
    },
    Medication {
        id: "ondansetron",
        rxcui: "104894",
        product: "Ondansetron 4 MG Disintegrating Oral Tablet",
        form: Form::DisintegratingTablet,
    },
];

/// Milligrams in one ondansetron tablet.
const TABLET_MG: f64 = 4.0;

impl Medication {
    fn find(id: &str) -> Option<&'static Medication> {
        CATALOGUE.iter().find(|m| m.id == id)
    }

    /// The medication a stored MedicationRequest is for (its coding's display is the catalogue id).
    fn of(request: &Value) -> Option<&'static Medication> {
        str_at(request, "/medicationCodeableConcept/coding/0/display").and_then(Self::find)
    }

    /// `dosageInstruction[0]`: the SIG, its timing and the dose.
    fn dosage(&self, dose: &Dose) -> Value {
        let quantity = json!({ "doseQuantity": { "value": dose.json_value(), "unit": dose.unit } });
        match self.form {
            Form::WeeklyInjection => json!({
                "text": format!("Inject {} {} subcutaneously once weekly", dose.value, dose.unit),
                "timing": seed::weekly(),
                "doseAndRate": [quantity],
            }),
            Form::DisintegratingTablet => json!({
                "text": format!("Dissolve {} on the tongue as needed", dose.tablets()),
                "asNeededBoolean": true,
                "doseAndRate": [quantity],
            }),
        }
    }

    /// `dispenseRequest`: what the pharmacy sends, for how long, with two refills.
    fn dispense(&self) -> Value {
        let (quantity, unit, days) = match self.form {
            Form::WeeklyInjection => (2, "mL", 28),
            Form::DisintegratingTablet => (30, "tablets", 30),
        };
        json!({
            "numberOfRepeatsAllowed": 2,
            "quantity": { "value": quantity, "unit": unit },
            "expectedSupplyDuration": { "value": days, "unit": "days", "system": seed::UCUM, "code": "d" },
            "performer": { "display": seed::PHARMACY_DISPLAY },
        })
    }
}

/// The dose a `doseLabel` starts with: "0.25 mg weekly" is 0.25 mg.
#[derive(Clone, Debug, PartialEq)]
struct Dose {
    value: f64,
    unit: String,
}

impl Dose {
    /// A positive decimal number and a unit of letters, as the first two words; `None` otherwise.
    fn parse(label: &str) -> Option<Dose> {
        let mut words = label.split_whitespace();
        let (number, unit) = (words.next()?, words.next()?);
        // Plain decimals only: f64's parser would also take "inf", "NaN" and "1e3".
        let plain =
            number.bytes().all(|b| b.is_ascii_digit() || b == b'.') && number.bytes().any(|b| b.is_ascii_digit());
        let value = number
            .parse::<f64>()
            .ok()
            .filter(|v| plain && *v > 0.0 && v.is_finite())?;
        if !unit.bytes().all(|b| b.is_ascii_alphabetic()) {
            return None;
        }
        Some(Dose {
            value,
            unit: unit.to_owned(),
        })
    }

    /// A whole dose is a JSON integer (4, not 4.0), as Canvas writes it.
    fn json_value(&self) -> Value {
        if self.value.fract() == 0.0 && self.value < 1e15 {
            json!(self.value as i64)
        } else {
            json!(self.value)
        }
    }

    /// "1 tablet" for 4 mg of ondansetron; a dose that is not whole tablets is said as given.
    fn tablets(&self) -> String {
        let n = self.value / TABLET_MG;
        if self.unit.eq_ignore_ascii_case("mg") && n.fract() == 0.0 {
            format!("{n} tablet{}", if n == 1.0 { "" } else { "s" })
        } else {
            format!("{} {}", self.value, self.unit)
        }
    }
}

pub(crate) fn router() -> Router<Sandbox> {
    Router::new()
        .route("/prescriptions", post(prescribe))
        .route("/prescriptions/{id}/stop", post(stop))
        .route("/prescriptions/{id}/adjust", post(adjust))
}

/// Why a control call was refused: a status and a message naming the field or the record.
#[derive(Debug)]
struct Refused(StatusCode, String);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        problem(self.0, self.1)
    }
}

fn bad(message: impl Into<String>) -> Refused {
    Refused(StatusCode::BAD_REQUEST, message.into())
}

/// The body as a JSON object; an empty body is an empty object (a stop needs no fields).
fn object(body: &[u8]) -> Result<serde_json::Map<String, Value>, Refused> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(fields)) => Ok(fields),
        _ => Err(bad("the body must be a JSON object")),
    }
}

/// A required non-empty string field, trimmed.
fn required<'a>(fields: &'a serde_json::Map<String, Value>, name: &str) -> Result<&'a str, Refused> {
    fields
        .get(name)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad(format!("{name} is required (a non-empty string)")))
}

/// `doseLabel` and the dose it starts with.
fn dose_of(fields: &serde_json::Map<String, Value>) -> Result<(&str, Dose), Refused> {
    let label = required(fields, "doseLabel")?;
    let dose = Dose::parse(label)
        .ok_or_else(|| bad("doseLabel must start with a number and a unit, e.g. \"0.25 mg weekly\""))?;
    Ok((label, dose))
}

/// `POST /prescriptions`: the physician prescribes from the catalogue; Canvas stores the
/// MedicationRequest and the plugin announces PRESCRIPTION_CREATED.
async fn prescribe(State(sandbox): State<Sandbox>, body: Bytes) -> Result<Response, Refused> {
    let fields = object(&body)?;
    let patient_id = required(&fields, "patientId")?;
    let medication = required(&fields, "medication")?;
    let medication = Medication::find(medication).ok_or_else(|| {
        let known: Vec<&str> = CATALOGUE.iter().map(|m| m.id).collect();
        bad(format!("medication must be one of {}", known.join(", ")))
    })?;
    let (_, dose) = dose_of(&fields)?;

    let now = Utc::now();
    let (request_id, event_id) = {
        let mut canvas = sandbox.canvas();
        let patient = canvas
            .store
            .get(Kind::Patient, patient_id)
            .ok_or_else(|| Refused(StatusCode::NOT_FOUND, format!("Canvas has no Patient {patient_id}")))?;
        // The state's prescriber signs it; a chart without a state falls to the first prescriber.
        let prescriber = str_at(patient, "/address/0/state")
            .map(|s| seed::prescriber_for_state(&s.to_ascii_uppercase()))
            .unwrap_or(seed::ALI_NOLAN_ID);
        let resource = json!({
            "resourceType": "MedicationRequest",
            "status": "active",
            "intent": "order",
            "category": seed::outpatient_category(),
            "reportedBoolean": false,
            "medicationCodeableConcept": {
                "coding": [{ "system": seed::RXNORM, "code": medication.rxcui, "display": medication.id }],
                "text": medication.product,
            },
            "subject": reference("Patient", patient_id),
            "authoredOn": timestamp(now),
            "requester": reference("Practitioner", prescriber),
            "dosageInstruction": [medication.dosage(&dose)],
            "dispenseRequest": medication.dispense(),
            "substitution": { "allowedBoolean": false },
        });
        let request_id = canvas.store.insert(Kind::MedicationRequest, resource, now);
        let event_id = plugin::emit(&sandbox, EventType::PrescriptionCreated, patient_id, Some(&request_id));
        (request_id, event_id)
    };
    let detail = format!("{} {event_id}", EventType::PrescriptionCreated.as_str());
    sandbox.record_effect("canvas", "prescription.created", Some(&request_id), Some(&detail));
    Ok((
        StatusCode::CREATED,
        Json(json!({ "medicationRequestId": request_id, "eventId": event_id })),
    )
        .into_response())
}

/// The statuses a physician can end a prescription with.
const END_STATUSES: &[&str] = &["stopped", "cancelled", "entered-in-error"];

/// `POST /prescriptions/{id}/stop`: the physician stops (or cancels, or marks in error) an active
/// prescription; Canvas stores the next version and the plugin announces PRESCRIPTION_UPDATED.
async fn stop(State(sandbox): State<Sandbox>, Path(id): Path<String>, body: Bytes) -> Result<Response, Refused> {
    let fields = object(&body)?;
    let status = match fields.get("status") {
        None | Some(Value::Null) => "stopped",
        Some(Value::String(s)) if END_STATUSES.contains(&s.as_str()) => s.as_str(),
        Some(_) => return Err(bad("status must be stopped, cancelled or entered-in-error")),
    };
    let event_id = change(&sandbox, &id, |request| {
        request["status"] = json!(status);
    })?;
    let detail = format!("{status} {event_id}");
    sandbox.record_effect("canvas", "prescription.stopped", Some(&id), Some(&detail));
    Ok(Json(json!({ "medicationRequestId": id, "status": status, "eventId": event_id })).into_response())
}

/// `POST /prescriptions/{id}/adjust`: the physician changes an active prescription's dose (its SIG
/// and dose quantity); Canvas stores the next version and the plugin announces
/// PRESCRIPTION_UPDATED.
async fn adjust(State(sandbox): State<Sandbox>, Path(id): Path<String>, body: Bytes) -> Result<Response, Refused> {
    let fields = object(&body)?;
    let (label, dose) = dose_of(&fields)?;
    let event_id = change(&sandbox, &id, |request| match Medication::of(request) {
        Some(medication) => request["dosageInstruction"] = json!([medication.dosage(&dose)]),
        // Not one of the catalogue's (a chart imported from elsewhere): the dose changes as given.
        None => {
            request["dosageInstruction"] = json!([{
                "text": label,
                "doseAndRate": [{ "doseQuantity": { "value": dose.json_value(), "unit": dose.unit } }],
            }]);
        }
    })?;
    let detail = format!("{} {event_id}", EventType::PrescriptionUpdated.as_str());
    sandbox.record_effect("canvas", "prescription.adjusted", Some(&id), Some(&detail));
    Ok(Json(json!({
        "medicationRequestId": id,
        "status": "active",
        "doseLabel": label,
        "eventId": event_id,
    }))
    .into_response())
}

/// Applies `edit` to active MedicationRequest `id` as its next version and emits
/// PRESCRIPTION_UPDATED under the same lock; the event's id. 404 if there is no such request, 409
/// if it is no longer active.
fn change(sandbox: &Sandbox, id: &str, edit: impl FnOnce(&mut Value)) -> Result<String, Refused> {
    let now = Utc::now();
    let mut canvas = sandbox.canvas();
    let mut request = canvas
        .store
        .get(Kind::MedicationRequest, id)
        .cloned()
        .ok_or_else(|| Refused(StatusCode::NOT_FOUND, format!("Canvas has no MedicationRequest {id}")))?;
    let status = str_at(&request, "/status").unwrap_or_default();
    if status != "active" {
        return Err(Refused(
            StatusCode::CONFLICT,
            format!("MedicationRequest {id} is {status}, not active"),
        ));
    }
    let patient_id = request
        .get("subject")
        .and_then(|s| ref_id(s, "Patient"))
        .unwrap_or_default()
        .to_owned();
    edit(&mut request);
    canvas.store.replace(Kind::MedicationRequest, id, request, now);
    Ok(plugin::emit(
        sandbox,
        EventType::PrescriptionUpdated,
        &patient_id,
        Some(id),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dose_label_starts_with_a_number_and_a_unit() {
        let d = Dose::parse("0.25 mg weekly").unwrap();
        assert_eq!((d.value, d.unit.as_str()), (0.25, "mg"));
        assert_eq!(d.json_value(), json!(0.25));
        let d = Dose::parse("4 mg as needed").unwrap();
        assert_eq!(d.json_value().to_string(), "4");
        assert_eq!(d.tablets(), "1 tablet");
        assert_eq!(Dose::parse("8 mg").unwrap().tablets(), "2 tablets");
        assert_eq!(Dose::parse("2 mg").unwrap().tablets(), "2 mg");
        for bad in [
            "", "weekly", "0.25", "mg 0.25", "0 mg", "-1 mg", "inf mg", "1e3 mg", "2.5 m9", ".",
        ] {
            assert_eq!(Dose::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_sig_follows_the_form() {
        let sema = Medication::find("semaglutide").unwrap();
        let dosage = sema.dosage(&Dose::parse("0.25 mg weekly").unwrap());
        assert_eq!(dosage["text"], "Inject 0.25 mg subcutaneously once weekly");
        assert_eq!(dosage["timing"]["repeat"]["periodUnit"], "wk");
        let ond = Medication::find("ondansetron").unwrap();
        let dosage = ond.dosage(&Dose::parse("4 mg as needed").unwrap());
        assert_eq!(dosage["text"], "Dissolve 1 tablet on the tongue as needed");
        assert_eq!(
            dosage["doseAndRate"][0]["doseQuantity"],
            json!({ "value": 4, "unit": "mg" })
        );
        assert_eq!(ond.dispense()["quantity"], json!({ "value": 30, "unit": "tablets" }));
        assert_eq!(ond.dispense()["expectedSupplyDuration"]["value"], 30);
        assert_eq!(sema.dispense()["quantity"], json!({ "value": 2, "unit": "mL" }));
        assert_eq!(sema.dispense()["expectedSupplyDuration"]["value"], 28);
    }
}
