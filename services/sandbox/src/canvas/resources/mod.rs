//! The resource types the simulator serves: what each supports, how each validates a create or
//! update, and how each answers its search parameters.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{
    fields::{ref_id, ref_type},
    outcome::{FhirError, FhirResult},
    search::{SearchRequest, DEFAULT_COUNT},
    store::Store,
};

mod clinical;
mod document;
mod intake;
mod messaging;
mod patient;
mod practitioner;
mod scheduling;
mod task;

pub(crate) use practitioner::{NPI_SYSTEM, SCHEDULABLE_URL};
pub(crate) use scheduling::{office_time, LOCATION_ID};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Patient,
    Task,
    MedicationRequest,
    Condition,
    Observation,
    Practitioner,
    QuestionnaireResponse,
    Questionnaire,
    Communication,
    Schedule,
    Slot,
    Appointment,
    DocumentReference,
}

/// What a type allows (canvas.md §3's method lists) and which search parameters it knows.
pub(crate) struct Spec {
    pub(crate) name: &'static str,
    pub(crate) read: bool,
    pub(crate) create: bool,
    pub(crate) update: bool,
    pub(crate) params: &'static [&'static str],
    pub(crate) sorts: &'static [&'static str],
}

const ALL: [Kind; 13] = [
    Kind::Patient,
    Kind::Task,
    Kind::MedicationRequest,
    Kind::Condition,
    Kind::Observation,
    Kind::Practitioner,
    Kind::QuestionnaireResponse,
    Kind::Questionnaire,
    Kind::Communication,
    Kind::Schedule,
    Kind::Slot,
    Kind::Appointment,
    Kind::DocumentReference,
];

impl Kind {
    pub(crate) fn parse(name: &str) -> Option<Self> {
        ALL.into_iter().find(|k| k.spec().name == name)
    }

    pub(crate) fn name(self) -> &'static str {
        self.spec().name
    }

    pub(crate) fn spec(self) -> Spec {
        let spec = |name, (read, create, update), params, sorts| Spec {
            name,
            read,
            create,
            update,
            params,
            sorts,
        };
        let all = (true, true, true);
        let read_create = (true, true, false);
        match self {
            Kind::Patient => spec("Patient", all, patient::PARAMS, patient::SORTS),
            Kind::Task => spec("Task", all, task::PARAMS, task::SORTS),
            Kind::MedicationRequest => spec(
                "MedicationRequest",
                (true, false, false),
                clinical::MEDICATION_REQUEST_PARAMS,
                &["_id"],
            ),
            Kind::Condition => spec("Condition", all, clinical::CONDITION_PARAMS, &["_id"]),
            Kind::Observation => spec("Observation", read_create, clinical::OBSERVATION_PARAMS, &["_id"]),
            Kind::Practitioner => spec("Practitioner", all, practitioner::PARAMS, &["_id"]),
            Kind::QuestionnaireResponse => spec("QuestionnaireResponse", all, intake::RESPONSE_PARAMS, intake::SORTS),
            Kind::Questionnaire => spec(
                "Questionnaire",
                (true, false, false),
                intake::QUESTIONNAIRE_PARAMS,
                &["_id"],
            ),
            Kind::Communication => spec("Communication", read_create, messaging::PARAMS, &["_id"]),
            Kind::Schedule => spec("Schedule", (false, false, false), &["_id"], &[]),
            Kind::Slot => spec("Slot", (false, false, false), scheduling::SLOT_PARAMS, &[]),
            Kind::Appointment => spec("Appointment", all, scheduling::APPOINTMENT_PARAMS, &["_id", "date"]),
            Kind::DocumentReference => spec("DocumentReference", read_create, document::PARAMS, &["_id"]),
        }
    }
}

/// Validates a new resource and returns what Canvas would store (server-set fields filled in).
pub(crate) fn create(kind: Kind, body: Value, store: &mut Store, now: DateTime<Utc>) -> FhirResult<Value> {
    match kind {
        Kind::Patient => patient::create(body, store),
        Kind::Task => task::create(body, store, now),
        Kind::Condition => clinical::create_condition(body, store, now),
        Kind::Observation => clinical::create_observation(body, store, now),
        Kind::Practitioner => practitioner::create(body),
        Kind::QuestionnaireResponse => intake::create_response(body, store, now),
        Kind::Communication => messaging::create(body, store, now),
        Kind::Appointment => scheduling::create_appointment(body, store),
        Kind::DocumentReference => document::create(body, store, now),
        _ => Err(FhirError::not_supported()),
    }
}

/// Applies a PUT body to the stored resource, each type with its own Canvas semantics.
pub(crate) fn update(kind: Kind, current: &Value, body: Value, store: &Store, now: DateTime<Utc>) -> FhirResult<Value> {
    match kind {
        Kind::Patient => patient::update(current, body),
        Kind::Task => task::update(current, body, store, now),
        Kind::Condition => clinical::update_condition(current, &body),
        Kind::Practitioner => practitioner::update(current, body),
        Kind::QuestionnaireResponse => intake::update_response(current, &body),
        Kind::Appointment => scheduling::update_appointment(current, body, store),
        _ => Err(FhirError::not_supported()),
    }
}

/// The matching resources, in creation order or `_sort` order, before paging.
pub(crate) fn search(kind: Kind, store: &Store, req: &SearchRequest) -> FhirResult<Vec<Value>> {
    let candidates: Vec<Value> = match kind {
        Kind::Slot => return scheduling::slots(store, req),
        Kind::Schedule => scheduling::schedules(store),
        _ => store.all(kind).to_vec(),
    };
    let mut results = Vec::new();
    for r in candidates {
        if req.keeps(|param, value| matches(kind, &r, param, value))? && implicitly_kept(kind, &r, req) {
            results.push(r);
        }
    }
    req.sort(&mut results, |r, key| sort_key(kind, r, key));
    Ok(results)
}

/// The page size when the caller gives no `_count`. Slots are computed, not stored, and Canvas's
/// examples return a whole window of them at once.
pub(crate) fn default_count(kind: Kind) -> Option<usize> {
    (kind != Kind::Slot).then_some(DEFAULT_COUNT)
}

/// Filters a type applies even when not asked to.
fn implicitly_kept(kind: Kind, r: &Value, req: &SearchRequest) -> bool {
    match kind {
        Kind::Practitioner => practitioner::implicitly_kept(r, req),
        _ => true,
    }
}

fn matches(kind: Kind, r: &Value, param: &str, value: &str) -> FhirResult<bool> {
    if param == "_id" {
        return Ok(r.get("id").and_then(Value::as_str) == Some(value));
    }
    match kind {
        Kind::Patient => patient::matches(r, param, value),
        Kind::Task => task::matches(r, param, value),
        Kind::MedicationRequest => clinical::medication_request_matches(r, param, value),
        Kind::Condition => clinical::condition_matches(r, param, value),
        Kind::Observation => clinical::observation_matches(r, param, value),
        Kind::Practitioner => practitioner::matches(r, param, value),
        Kind::QuestionnaireResponse => intake::response_matches(r, param, value),
        Kind::Questionnaire => intake::questionnaire_matches(r, param, value),
        Kind::Communication => messaging::matches(r, param, value),
        Kind::Appointment => scheduling::appointment_matches(r, param, value),
        Kind::DocumentReference => document::matches(r, param, value),
        Kind::Schedule | Kind::Slot => Ok(true),
    }
}

fn sort_key(kind: Kind, r: &Value, key: &str) -> String {
    let s = |pointer: &str| {
        r.pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    match (kind, key) {
        (_, "_id") => s("/id"),
        (Kind::Patient, _) => patient::sort_key(r, key),
        (Kind::Task, "due-date") => s("/restriction/period/end"),
        (Kind::QuestionnaireResponse, "authored") => s("/authored"),
        (Kind::Appointment, "date") => s("/start"),
        _ => String::new(),
    }
}

/// A stored resource as a read returns it; some fields depend on the host the caller used.
pub(crate) fn render(kind: Kind, r: &Value, host: &str) -> Value {
    match kind {
        Kind::Task => task::render(r, host),
        _ => r.clone(),
    }
}

// ---- validation helpers shared by the resource modules ----

/// A required non-empty string field.
fn required_str<'a>(body: &'a Value, field: &str, label: &str) -> FhirResult<&'a str> {
    body.get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| FhirError::invalid(format!("{label} is required")))
}

/// A code that must be one of `allowed`.
fn one_of<'a>(value: &'a str, allowed: &[&str], label: &str) -> FhirResult<&'a str> {
    if allowed.contains(&value) {
        Ok(value)
    } else {
        Err(FhirError::invalid(format!(
            "{label} must be one of {}",
            allowed.join(", ")
        )))
    }
}

/// A reference field that must point at an existing resource of `kind`; returns the id.
fn existing_ref(store: &Store, reference: Option<&Value>, kind: Kind, label: &str) -> FhirResult<String> {
    let reference = reference.ok_or_else(|| FhirError::invalid(format!("{label} is required")))?;
    let Some(id) = ref_id(reference, kind.name()) else {
        return Err(FhirError::invalid(format!(
            "{label} must reference a {} (got '{}')",
            kind.name(),
            ref_type(reference).unwrap_or("nothing")
        )));
    };
    if !store.exists(kind, id) {
        return Err(FhirError::invalid(format!(
            "{label} references unknown {} '{id}'",
            kind.name()
        )));
    }
    Ok(id.to_owned())
}

/// A parameter value that must be `true` or `false`.
fn boolean_param(value: &str, param: &str) -> FhirResult<bool> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(FhirError::invalid(format!(
            "Invalid value '{value}' for parameter '{param}': expected true or false"
        ))),
    }
}

/// Rejects a PUT whose body names a different id than the URL.
pub(crate) fn check_body(kind: Kind, body: &Value, url_id: Option<&str>) -> FhirResult<()> {
    if !body.is_object() || body.get("resourceType").and_then(Value::as_str) != Some(kind.name()) {
        return Err(FhirError::invalid(format!(
            "Request body must be a JSON {} resource (resourceType \"{}\")",
            kind.name(),
            kind.name()
        )));
    }
    if let (Some(url_id), Some(body_id)) = (url_id, body.get("id").and_then(Value::as_str)) {
        if url_id != body_id {
            return Err(FhirError::invalid(format!(
                "{}.id '{body_id}' does not match the id in the URL",
                kind.name()
            )));
        }
    }
    Ok(())
}
