//! Practitioner: Canvas's staff. Searches hide inactive staff unless `active` is asked for, and
//! staff who take no appointments unless `include-non-schedulable-practitioners=true`.

use serde_json::{json, Value};

use super::{boolean_param, required_str};
use crate::canvas::{
    fields::{contains_ci, extension},
    outcome::{FhirError, FhirResult},
    search::SearchRequest,
};

pub(super) const PARAMS: &[&str] = &[
    "_id",
    "name",
    "email",
    "active",
    "npi-number",
    "include-non-schedulable-practitioners",
];

/// Whether a practitioner takes appointments. Canvas keeps this in its staff settings and does
/// not expose it over FHIR; the sandbox marks it with this extension instead (valueBoolean, absent
/// = schedulable), so a seeded or created practitioner can opt out.
pub(crate) const SCHEDULABLE_URL: &str = "http://era-sandbox.local/fhir/extensions/schedulable";

pub(crate) const NPI_SYSTEM: &str = "http://hl7.org/fhir/sid/us-npi";

pub(super) fn create(mut body: Value) -> FhirResult<Value> {
    validate(&body)?;
    if body.get("active").is_none() {
        body["active"] = json!(true);
    }
    Ok(body)
}

pub(super) fn update(current: &Value, mut body: Value) -> FhirResult<Value> {
    validate(&body)?;
    if body.get("active").is_none() {
        body["active"] = current.get("active").cloned().unwrap_or(json!(true));
    }
    Ok(body)
}

fn validate(body: &Value) -> FhirResult<()> {
    let name = body
        .pointer("/name/0")
        .ok_or_else(|| FhirError::invalid("Practitioner.name is required"))?;
    required_str(name, "family", "Practitioner.name[0].family")?;
    if let Some(npi) = npi(body) {
        if npi.len() != 10 || !npi.bytes().all(|b| b.is_ascii_digit()) {
            return Err(FhirError::invalid(format!(
                "Practitioner.identifier ({NPI_SYSTEM}) must be a 10-digit NPI"
            )));
        }
    }
    Ok(())
}

fn npi(r: &Value) -> Option<&str> {
    r.get("identifier")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|i| i.get("system").and_then(Value::as_str) == Some(NPI_SYSTEM))
        .and_then(|i| i.get("value").and_then(Value::as_str))
}

pub(crate) fn is_schedulable(r: &Value) -> bool {
    extension(r, SCHEDULABLE_URL)
        .and_then(|e| e.get("valueBoolean"))
        .and_then(Value::as_bool)
        != Some(false)
}

pub(crate) fn is_active(r: &Value) -> bool {
    r.get("active").and_then(Value::as_bool).unwrap_or(true)
}

/// "Canvas Bot"-style display name: given names then family.
pub(crate) fn display_name(r: &Value) -> String {
    let Some(name) = r.pointer("/name/0") else {
        return String::new();
    };
    if let Some(text) = name.get("text").and_then(Value::as_str) {
        return text.to_owned();
    }
    let given = name
        .get("given")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str);
    given
        .chain(name.get("family").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Canvas's defaults: only active, schedulable staff unless the search asks otherwise.
pub(super) fn implicitly_kept(r: &Value, req: &SearchRequest) -> bool {
    let active_ok = req.has("active") || is_active(r);
    let schedulable_ok = req.first("include-non-schedulable-practitioners") == Some("true") || is_schedulable(r);
    active_ok && schedulable_ok
}

pub(super) fn matches(r: &Value, param: &str, value: &str) -> FhirResult<bool> {
    Ok(match param {
        "name" => r.get("name").and_then(Value::as_array).into_iter().flatten().any(|n| {
            let given = n
                .get("given")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str);
            given
                .chain(
                    ["family", "text"]
                        .into_iter()
                        .filter_map(|f| n.get(f).and_then(Value::as_str)),
                )
                .any(|part| contains_ci(part, value))
        }),
        "email" => r
            .get("telecom")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|t| {
                t.get("system").and_then(Value::as_str) == Some("email")
                    && t.get("value")
                        .and_then(Value::as_str)
                        .is_some_and(|e| e.eq_ignore_ascii_case(value))
            }),
        "active" => is_active(r) == boolean_param(value, param)?,
        "npi-number" => npi(r) == Some(value),
        // Consumed by `implicitly_kept`; here only checked for a sensible value.
        "include-non-schedulable-practitioners" => {
            boolean_param(value, param)?;
            true
        }
        _ => false,
    })
}
