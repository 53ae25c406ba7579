//! DocumentReference: how the mesh files the H&P note, as a PDF upload with Canvas's required
//! review extensions.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{existing_ref, Kind};
use crate::canvas::{
    fields::{extension, is_base64, is_date, ref_id, ref_matches, reference, str_at, timestamp, token_matches},
    outcome::{FhirError, FhirResult},
    store::Store,
};

pub(super) const PARAMS: &[&str] = &["_id", "patient", "type"];

const EXT: &str = "http://schemas.canvasmedical.com/fhir/document-reference";

pub(super) fn create(mut body: Value, store: &Store, now: DateTime<Utc>) -> FhirResult<Value> {
    let loinc = body
        .pointer("/type/coding/0")
        .filter(|c| str_at(c, "/system") == Some("http://loinc.org") && str_at(c, "/code").is_some());
    if loinc.is_none() {
        return Err(FhirError::invalid(
            "DocumentReference.type.coding[0] must be a LOINC code (system http://loinc.org)",
        ));
    }
    if body.get("status").and_then(Value::as_str) != Some("current") {
        return Err(FhirError::invalid("DocumentReference.status must be 'current'"));
    }
    let subject = existing_ref(store, body.get("subject"), Kind::Patient, "DocumentReference.subject")?;
    body["subject"] = reference("Patient", &subject);
    let attachment = body
        .pointer("/content/0/attachment")
        .ok_or_else(|| FhirError::invalid("DocumentReference.content[0].attachment is required"))?;
    if str_at(attachment, "/contentType") != Some("application/pdf") {
        return Err(FhirError::invalid(
            "DocumentReference.content[0].attachment.contentType must be 'application/pdf'",
        ));
    }
    if !str_at(attachment, "/data").is_some_and(is_base64) {
        return Err(FhirError::invalid(
            "DocumentReference.content[0].attachment.data must be base64-encoded PDF bytes",
        ));
    }
    check_extensions(&body, store)?;
    if body.get("date").is_none() {
        body["date"] = json!(timestamp(now));
    }
    Ok(body)
}

/// Canvas's three required extensions, each named in the error when missing or malformed.
fn check_extensions(body: &Value, store: &Store) -> FhirResult<()> {
    let required = |suffix: &str| {
        let url = format!("{EXT}-{suffix}");
        extension(body, &url)
            .ok_or_else(|| FhirError::invalid(format!("DocumentReference extension {url} is required")))
    };
    let clinical_date = required("clinical-date")?;
    if !clinical_date
        .get("valueDate")
        .and_then(Value::as_str)
        .is_some_and(is_date)
    {
        return Err(FhirError::invalid(format!(
            "DocumentReference extension {EXT}-clinical-date needs a valueDate (YYYY-MM-DD)"
        )));
    }
    let reviewer = required("reviewer")?;
    let reviewer_ok = reviewer
        .get("valueReference")
        .and_then(|r| ref_id(r, "Practitioner"))
        .is_some_and(|id| store.exists(Kind::Practitioner, id));
    if !reviewer_ok {
        return Err(FhirError::invalid(format!(
            "DocumentReference extension {EXT}-reviewer needs a valueReference to an existing Practitioner"
        )));
    }
    let signature = required("requires-signature")?;
    if !signature.get("valueBoolean").is_some_and(Value::is_boolean) {
        return Err(FhirError::invalid(format!(
            "DocumentReference extension {EXT}-requires-signature needs a valueBoolean"
        )));
    }
    Ok(())
}

pub(super) fn matches(r: &Value, param: &str, value: &str) -> FhirResult<bool> {
    Ok(match param {
        "patient" => ref_matches(r.get("subject"), "Patient", value),
        "type" => token_matches(r.get("type"), value),
        _ => false,
    })
}
