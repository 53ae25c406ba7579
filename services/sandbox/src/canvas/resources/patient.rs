//! Patient (canvas.md §3): birth sex, one official name, gender and birth date are required on
//! create and update; Canvas adds the MRN and ids on each telecom and address entry.

use serde_json::{json, Value};

use super::{boolean_param, one_of, required_str};
use crate::canvas::{
    fields::{contains_ci, date_matches, extension, is_date},
    outcome::{FhirError, FhirResult},
    store::Store,
};

pub(super) const PARAMS: &[&str] = &[
    "_id",
    "identifier",
    "email",
    "phone",
    "name",
    "given",
    "family",
    "nickname",
    "birthdate",
    "gender",
    "active",
];
pub(super) const SORTS: &[&str] = &["_id", "birthdate", "family", "given"];

const BIRTHSEX_URL: &str = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex";
/// The system of the MRN Canvas assigns; clients find a patient by MRN with `identifier=<this>|<mrn>`.
pub(crate) const MRN_SYSTEM: &str = "http://canvasmedical.com";

pub(super) fn create(mut body: Value, store: &mut Store) -> FhirResult<Value> {
    validate(&body)?;
    normalise(&mut body);
    let mut identifiers = take_array(&mut body, "identifier");
    identifiers.retain(|i| !is_mrn(i));
    identifiers.push(mrn(&store.next_mrn()));
    body["identifier"] = Value::Array(identifiers);
    if body.get("active").is_none() {
        body["active"] = json!(true);
    }
    Ok(body)
}

/// A Canvas MRN identifier.
pub(crate) fn mrn(value: &str) -> Value {
    json!({
        "use": "usual",
        "type": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR" }] },
        "system": MRN_SYSTEM,
        "value": value,
        "assigner": { "display": "Canvas Medical" },
    })
}

/// PUT replaces the patient: telecom and address entries left out are deleted, new ones get ids.
/// The MRN is Canvas's own and survives.
pub(super) fn update(current: &Value, mut body: Value) -> FhirResult<Value> {
    validate(&body)?;
    normalise(&mut body);
    let mut identifiers = take_array(&mut body, "identifier");
    identifiers.retain(|i| !is_mrn(i));
    if let Some(existing) = current.get("identifier").and_then(Value::as_array) {
        identifiers.extend(existing.iter().filter(|i| is_mrn(i)).cloned());
    }
    body["identifier"] = Value::Array(identifiers);
    if body.get("active").is_none() {
        body["active"] = current.get("active").cloned().unwrap_or(json!(true));
    }
    Ok(body)
}

fn validate(body: &Value) -> FhirResult<()> {
    let birthsex = extension(body, BIRTHSEX_URL)
        .ok_or_else(|| FhirError::invalid(format!("Patient.extension {BIRTHSEX_URL} (birth sex) is required")))?;
    let code = birthsex.get("valueCode").and_then(Value::as_str).unwrap_or_default();
    one_of(code, &["M", "F", "OTH", "UNK"], "Patient birth sex extension valueCode")?;

    let names = body
        .get("name")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let official: Vec<&Value> = names
        .iter()
        .filter(|n| n.get("use").and_then(Value::as_str) == Some("official"))
        .collect();
    let [official] = official.as_slice() else {
        return Err(FhirError::invalid(
            "Patient.name must have exactly one entry with use 'official'",
        ));
    };
    required_str(official, "family", "Patient.name (official).family")?;
    let has_given = official
        .get("given")
        .and_then(Value::as_array)
        .is_some_and(|g| g.first().and_then(Value::as_str).is_some_and(|s| !s.trim().is_empty()));
    if !has_given {
        return Err(FhirError::invalid("Patient.name (official).given is required"));
    }

    let gender = required_str(body, "gender", "Patient.gender")?;
    one_of(gender, &["male", "female", "other", "unknown"], "Patient.gender")?;
    let birth_date = required_str(body, "birthDate", "Patient.birthDate")?;
    if !is_date(birth_date) {
        return Err(FhirError::invalid(
            "Patient.birthDate must be a date: YYYY-MM-DD (or YYYY, YYYY-MM)",
        ));
    }
    Ok(())
}

/// Canvas's storage rules for contact points and addresses, and the ids reads return on them.
fn normalise(body: &mut Value) {
    if let Some(telecom) = body.get_mut("telecom").and_then(Value::as_array_mut) {
        for t in telecom.iter_mut().filter(|t| t.is_object()) {
            let system = match t.get("system").and_then(Value::as_str) {
                Some("sms") => Some("phone"),
                Some("url") => Some("other"),
                _ => None,
            };
            if let Some(system) = system {
                t["system"] = json!(system);
            }
            default(t, "use", json!("home"));
            default(t, "rank", json!(1));
            default(t, "id", json!(entry_id()));
        }
    }
    if let Some(addresses) = body.get_mut("address").and_then(Value::as_array_mut) {
        for a in addresses.iter_mut().filter(|a| a.is_object()) {
            default(a, "use", json!("home"));
            default(a, "id", json!(entry_id()));
        }
    }
}

fn default(entry: &mut Value, key: &str, value: Value) {
    if entry.get(key).is_none() {
        entry[key] = value;
    }
}

fn entry_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn take_array(body: &mut Value, key: &str) -> Vec<Value> {
    match body.get_mut(key).map(Value::take) {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    }
}

fn is_mrn(identifier: &Value) -> bool {
    identifier.get("system").and_then(Value::as_str) == Some(MRN_SYSTEM)
}

fn names(r: &Value) -> impl Iterator<Item = &Value> {
    r.get("name").and_then(Value::as_array).into_iter().flatten()
}

fn official_name(r: &Value) -> Option<&Value> {
    names(r).find(|n| n.get("use").and_then(Value::as_str) == Some("official"))
}

fn givens(name: &Value) -> impl Iterator<Item = &str> {
    name.get("given")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.to_lowercase().starts_with(&prefix.to_lowercase())
}

fn telecoms<'a>(r: &'a Value, system: &'a str) -> impl Iterator<Item = &'a str> {
    r.get("telecom")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(move |t| t.get("system").and_then(Value::as_str) == Some(system))
        .filter_map(|t| t.get("value").and_then(Value::as_str))
}

/// The last ten digits of a phone number, so `+15555550100` and `555-555-0100` compare equal.
fn phone_digits(s: &str) -> String {
    let digits: Vec<char> = s.chars().filter(char::is_ascii_digit).collect();
    digits[digits.len().saturating_sub(10)..].iter().collect()
}

pub(super) fn matches(r: &Value, param: &str, value: &str) -> FhirResult<bool> {
    Ok(match param {
        "identifier" => {
            let (system, wanted) = value.split_once('|').map_or((None, value), |(s, v)| (Some(s), v));
            r.get("identifier")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|i| {
                    let sys_ok =
                        system.is_none_or(|s| s.is_empty() || i.get("system").and_then(Value::as_str) == Some(s));
                    let val_ok = wanted.is_empty() || i.get("value").and_then(Value::as_str) == Some(wanted);
                    sys_ok && val_ok
                })
        }
        "email" => telecoms(r, "email").any(|e| e.eq_ignore_ascii_case(value)),
        "phone" => {
            let wanted = phone_digits(value);
            !wanted.is_empty() && telecoms(r, "phone").any(|p| phone_digits(p) == wanted)
        }
        "name" => names(r).any(|n| {
            givens(n)
                .chain(n.get("family").and_then(Value::as_str))
                .chain(n.get("text").and_then(Value::as_str))
                .any(|part| contains_ci(part, value))
        }),
        "given" => names(r).flat_map(givens).any(|g| starts_with_ci(g, value)),
        "family" => names(r)
            .filter_map(|n| n.get("family").and_then(Value::as_str))
            .any(|f| starts_with_ci(f, value)),
        "nickname" => names(r)
            .filter(|n| n.get("use").and_then(Value::as_str) == Some("nickname"))
            .flat_map(givens)
            .any(|g| starts_with_ci(g, value)),
        "birthdate" => date_matches(r.get("birthDate").and_then(Value::as_str), value, param)?,
        "gender" => r.get("gender").and_then(Value::as_str) == Some(value),
        "active" => r.get("active").and_then(Value::as_bool).unwrap_or(true) == boolean_param(value, param)?,
        _ => false,
    })
}

pub(super) fn sort_key(r: &Value, key: &str) -> String {
    let official = official_name(r);
    let key = match key {
        "birthdate" => r.get("birthDate").and_then(Value::as_str),
        "family" => official.and_then(|n| n.get("family")).and_then(Value::as_str),
        "given" => official.and_then(|n| givens(n).next()),
        _ => None,
    };
    key.unwrap_or_default().to_lowercase()
}
