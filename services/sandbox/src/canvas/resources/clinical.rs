//! The chart: Condition (create, entered-in-error updates), vital-sign Observation (create only)
//! and MedicationRequest (read only: prescriptions come from Canvas's own commands).

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{existing_ref, one_of, Kind};
use crate::canvas::{
    fields::{codings, date_matches, extension, instant, ref_matches, reference, str_at, timestamp, token_matches},
    outcome::{FhirError, FhirResult},
    store::Store,
};

pub(super) const CONDITION_PARAMS: &[&str] = &["_id", "patient", "clinical-status", "verification-status", "category"];
pub(super) const OBSERVATION_PARAMS: &[&str] = &["_id", "patient", "category", "code", "date"];
pub(super) const MEDICATION_REQUEST_PARAMS: &[&str] = &["_id", "patient", "requester", "intent", "status"];

const CLINICAL_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/condition-clinical";
const CATEGORY_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/condition-category";
const NOTE_ID_URL: &str = "http://schemas.canvasmedical.com/fhir/extensions/note-id";
const OBSERVATION_CATEGORY_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/observation-category";

pub(super) fn create_condition(mut body: Value, store: &Store, now: DateTime<Utc>) -> FhirResult<Value> {
    let clinical = codings(body.get("clinicalStatus"))
        .into_iter()
        .find(|c| str_at(c, "/system") == Some(CLINICAL_SYSTEM))
        .ok_or_else(|| {
            FhirError::invalid(format!(
                "Condition.clinicalStatus is required (a {CLINICAL_SYSTEM} coding)"
            ))
        })?;
    one_of(
        str_at(clinical, "/code").unwrap_or_default(),
        &["active", "resolved"],
        "Condition.clinicalStatus code",
    )?;
    if !token_matches(body.get("category"), &format!("{CATEGORY_SYSTEM}|encounter-diagnosis")) {
        return Err(FhirError::invalid(format!(
            "Condition.category is required: a {CATEGORY_SYSTEM} coding with code 'encounter-diagnosis'"
        )));
    }
    if !codings(body.get("code")).iter().any(|c| str_at(c, "/code").is_some()) {
        return Err(FhirError::invalid(
            "Condition.code.coding is required (ICD-10-CM recommended)",
        ));
    }
    let subject = existing_ref(store, body.get("subject"), Kind::Patient, "Condition.subject")?;
    body["subject"] = reference("Patient", &subject);
    if body.get("encounter").is_some() && extension(&body, NOTE_ID_URL).is_some() {
        return Err(FhirError::invalid(
            "Condition.encounter and the note-id extension cannot both be given",
        ));
    }
    if body.get("recordedDate").is_none() {
        body["recordedDate"] = json!(timestamp(now));
    }
    Ok(body)
}

/// Canvas lets a Condition update do one thing: mark it entered in error.
pub(super) fn update_condition(current: &Value, body: &Value) -> FhirResult<Value> {
    let entered_in_error = codings(body.get("verificationStatus"))
        .iter()
        .any(|c| str_at(c, "/code") == Some("entered-in-error"));
    if !entered_in_error {
        return Err(FhirError::invalid(
            "Condition updates may only set verificationStatus to 'entered-in-error'",
        ));
    }
    let mut next = current.clone();
    next["verificationStatus"] = body["verificationStatus"].clone();
    Ok(next)
}

pub(super) fn create_observation(mut body: Value, store: &Store, now: DateTime<Utc>) -> FhirResult<Value> {
    if body.get("status").and_then(Value::as_str) != Some("final") {
        return Err(FhirError::invalid("Observation.status must be 'final'"));
    }
    if !token_matches(body.get("category"), "vital-signs") {
        return Err(FhirError::invalid(format!(
            "Observation.category must be vital-signs ({OBSERVATION_CATEGORY_SYSTEM}): Canvas creates vital signs only"
        )));
    }
    if !token_matches(body.get("code"), "http://loinc.org|") {
        return Err(FhirError::invalid("Observation.code must carry a LOINC coding"));
    }
    let subject = existing_ref(store, body.get("subject"), Kind::Patient, "Observation.subject")?;
    body["subject"] = reference("Patient", &subject);
    match body.get("effectiveDateTime").map(|v| v.as_str().and_then(instant)) {
        None => body["effectiveDateTime"] = json!(timestamp(now)),
        Some(None) => return Err(FhirError::invalid("Observation.effectiveDateTime must be a dateTime")),
        Some(Some(_)) => {}
    }
    Ok(body)
}

pub(super) fn condition_matches(r: &Value, param: &str, value: &str) -> FhirResult<bool> {
    Ok(match param {
        "patient" => ref_matches(r.get("subject"), "Patient", value),
        "clinical-status" => token_matches(r.get("clinicalStatus"), value),
        "verification-status" => token_matches(r.get("verificationStatus"), value),
        "category" => token_matches(r.get("category"), value),
        _ => false,
    })
}

pub(super) fn observation_matches(r: &Value, param: &str, value: &str) -> FhirResult<bool> {
    Ok(match param {
        "patient" => ref_matches(r.get("subject"), "Patient", value),
        "category" => token_matches(r.get("category"), value),
        "code" => token_matches(r.get("code"), value),
        "date" => date_matches(str_at(r, "/effectiveDateTime"), value, param)?,
        _ => false,
    })
}

pub(super) fn medication_request_matches(r: &Value, param: &str, value: &str) -> FhirResult<bool> {
    let eq = |field: &str| r.get(field).and_then(Value::as_str) == Some(value);
    Ok(match param {
        "patient" => ref_matches(r.get("subject"), "Patient", value),
        "requester" => ref_matches(r.get("requester"), "Practitioner", value),
        "intent" => eq("intent"),
        "status" => eq("status"),
        _ => false,
    })
}
