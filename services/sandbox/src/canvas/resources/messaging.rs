//! Communication: messages between one practitioner and one patient (Canvas refuses staff-to-staff
//! and patient-to-patient), always stored as sent.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::Kind;
use crate::canvas::{
    fields::{ref_id, ref_matches, ref_type, reference, str_at, timestamp},
    outcome::{FhirError, FhirResult},
    store::Store,
};

pub(super) const PARAMS: &[&str] = &["_id", "patient", "sender", "recipient"];

pub(super) fn create(mut body: Value, store: &Store, now: DateTime<Utc>) -> FhirResult<Value> {
    let sender = body.get("sender").cloned().unwrap_or(Value::Null);
    let recipient = body.pointer("/recipient/0").cloned().unwrap_or(Value::Null);
    let (patient, practitioner) = match (ref_type(&sender), ref_type(&recipient)) {
        (Some("Patient"), Some("Practitioner")) => (&sender, &recipient),
        (Some("Practitioner"), Some("Patient")) => (&recipient, &sender),
        _ => {
            return Err(FhirError::invalid(
                "Communication.sender and Communication.recipient must be one Practitioner and one Patient",
            ))
        }
    };
    let patient_id = ref_id(patient, "Patient").unwrap_or_default().to_owned();
    let practitioner_id = ref_id(practitioner, "Practitioner").unwrap_or_default().to_owned();
    if !store.exists(Kind::Patient, &patient_id) {
        return Err(FhirError::invalid(format!(
            "Communication references unknown Patient '{patient_id}'"
        )));
    }
    if !store.exists(Kind::Practitioner, &practitioner_id) {
        return Err(FhirError::invalid(format!(
            "Communication references unknown Practitioner '{practitioner_id}'"
        )));
    }
    if str_at(&body, "/payload/0/contentString").is_none() {
        return Err(FhirError::invalid("Communication.payload[0].contentString is required"));
    }
    let patient_is_sender = ref_type(&sender) == Some("Patient");
    let (sender_ref, recipient_ref) = if patient_is_sender {
        (
            reference("Patient", &patient_id),
            reference("Practitioner", &practitioner_id),
        )
    } else {
        (
            reference("Practitioner", &practitioner_id),
            reference("Patient", &patient_id),
        )
    };
    body["sender"] = sender_ref;
    body["recipient"] = json!([recipient_ref]);
    body["subject"] = reference("Patient", &patient_id);
    body["status"] = json!("completed");
    if body.get("sent").is_none() {
        body["sent"] = json!(timestamp(now));
    }
    Ok(body)
}

pub(super) fn matches(r: &Value, param: &str, value: &str) -> FhirResult<bool> {
    let either =
        |field: Option<&Value>| ref_matches(field, "Patient", value) || ref_matches(field, "Practitioner", value);
    Ok(match param {
        "patient" => ref_matches(r.get("subject"), "Patient", value),
        "sender" => either(r.get("sender")),
        "recipient" => r
            .get("recipient")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|rec| either(Some(rec))),
        _ => false,
    })
}
