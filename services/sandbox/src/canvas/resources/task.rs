//! Task (canvas.md §3): Canvas's staff tasks. Labels ride in `input`, the due date in
//! `restriction.period.end`; a PUT replaces most fields but appends its notes as new comments.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{existing_ref, one_of, required_str, Kind};
use crate::canvas::{
    fields::{contains_ci, date_matches, date_range, ref_matches, reference, str_at, timestamp},
    outcome::{FhirError, FhirResult},
    store::Store,
};

pub(super) const PARAMS: &[&str] = &[
    "_id",
    "patient",
    "owner",
    "requester",
    "status",
    "label",
    "priority",
    "description",
    "due",
    "modified",
];
pub(super) const SORTS: &[&str] = &["_id", "due-date"];

const PERMALINK_URL: &str = "http://schemas.canvasmedical.com/fhir/extensions/task-permalink";
const STATUSES: &[&str] = &["requested", "completed", "cancelled"];
const PRIORITIES: &[&str] = &["routine", "urgent", "asap", "stat"];

pub(super) fn create(mut body: Value, store: &Store, now: DateTime<Utc>) -> FhirResult<Value> {
    let status = required_str(&body, "status", "Task.status")?;
    one_of(status, STATUSES, "Task.status")?;
    check_intent(&body, true)?;
    required_str(&body, "description", "Task.description")?;
    let requester = existing_ref(store, body.get("requester"), Kind::Practitioner, "Task.requester")?;
    body["requester"] = reference("Practitioner", &requester);
    check_optional(&mut body, store)?;
    if body.get("authoredOn").is_none() {
        body["authoredOn"] = json!(timestamp(now));
    }
    if body.get("note").is_some() {
        body["note"] = Value::Array(stamped_notes(&body, now)?);
    }
    strip_permalink(&mut body);
    body["lastModified"] = json!(timestamp(now));
    Ok(body)
}

/// Canvas's PUT: `description`, `owner`, `restriction` and `input` are cleared when left out;
/// `status`, `priority`, `for`, `requester`, `authoredOn` and extensions are kept when left out;
/// every note in the body is appended as a new comment (DOCS25), with no de-duplication.
pub(super) fn update(current: &Value, mut body: Value, store: &Store, now: DateTime<Utc>) -> FhirResult<Value> {
    let status = required_str(&body, "status", "Task.status")?;
    one_of(status, STATUSES, "Task.status")?;
    check_intent(&body, false)?;
    if body.get("requester").is_some() {
        let requester = existing_ref(store, body.get("requester"), Kind::Practitioner, "Task.requester")?;
        body["requester"] = reference("Practitioner", &requester);
    }
    check_optional(&mut body, store)?;
    let added_notes = stamped_notes(&body, now)?;
    strip_permalink(&mut body);

    let mut next = current.clone();
    let Some(fields) = next.as_object_mut() else {
        return Err(FhirError::invalid("Stored Task is not an object"));
    };
    for key in ["description", "owner", "restriction", "input"] {
        match body.get(key) {
            Some(v) => fields.insert(key.to_owned(), v.clone()),
            None => fields.remove(key),
        };
    }
    for key in ["status", "priority", "for", "requester", "authoredOn", "extension"] {
        if let Some(v) = body.get(key) {
            fields.insert(key.to_owned(), v.clone());
        }
    }
    let mut notes = fields
        .get("note")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    notes.extend(added_notes);
    fields.insert("note".to_owned(), Value::Array(notes));
    fields.insert("lastModified".to_owned(), json!(timestamp(now)));
    Ok(next)
}

fn check_intent(body: &Value, required: bool) -> FhirResult<()> {
    match body.get("intent").and_then(Value::as_str) {
        Some("unknown") => Ok(()),
        None if !required => Ok(()),
        _ => Err(FhirError::invalid("Task.intent is required and must be 'unknown'")),
    }
}

/// The optional fields' rules; references are rewritten with their `type`, as Canvas reads do.
fn check_optional(body: &mut Value, store: &Store) -> FhirResult<()> {
    if body.get("for").is_some() {
        let patient = existing_ref(store, body.get("for"), Kind::Patient, "Task.for")?;
        body["for"] = reference("Patient", &patient);
    }
    if body.get("owner").is_some() {
        let owner = existing_ref(store, body.get("owner"), Kind::Practitioner, "Task.owner")?;
        body["owner"] = reference("Practitioner", &owner);
    }
    if let Some(priority) = body.get("priority") {
        one_of(priority.as_str().unwrap_or_default(), PRIORITIES, "Task.priority")?;
    }
    for (field, pointer) in [
        ("Task.authoredOn", "/authoredOn"),
        ("Task.restriction.period.end", "/restriction/period/end"),
    ] {
        if let Some(v) = body.pointer(pointer) {
            if v.as_str().and_then(date_range).is_none() {
                return Err(FhirError::invalid(format!("{field} must be a FHIR date or dateTime")));
            }
        }
    }
    if let Some(inputs) = body.get("input") {
        let inputs = inputs
            .as_array()
            .ok_or_else(|| FhirError::invalid("Task.input must be a list"))?;
        for (i, input) in inputs.iter().enumerate() {
            if str_at(input, "/valueString").is_none() {
                return Err(FhirError::invalid(format!(
                    "Task.input[{i}].valueString (the label) is required"
                )));
            }
        }
    }
    Ok(())
}

/// The body's notes, each stamped with the current time if it has none.
fn stamped_notes(body: &Value, now: DateTime<Utc>) -> FhirResult<Vec<Value>> {
    let Some(notes) = body.get("note") else {
        return Ok(Vec::new());
    };
    let notes = notes
        .as_array()
        .ok_or_else(|| FhirError::invalid("Task.note must be a list"))?;
    notes
        .iter()
        .enumerate()
        .map(|(i, note)| {
            if str_at(note, "/text").is_none() {
                return Err(FhirError::invalid(format!("Task.note[{i}].text is required")));
            }
            let mut note = note.clone();
            if note.get("time").is_none() {
                note["time"] = json!(timestamp(now));
            }
            Ok(note)
        })
        .collect()
}

/// The permalink is read-only and depends on the host; reads add it back.
fn strip_permalink(body: &mut Value) {
    if let Some(extensions) = body.get_mut("extension").and_then(Value::as_array_mut) {
        extensions.retain(|e| e.get("url").and_then(Value::as_str) != Some(PERMALINK_URL));
    }
}

pub(super) fn render(task: &Value, host: &str) -> Value {
    let mut task = task.clone();
    let id = task.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
    let permalink = json!({ "url": PERMALINK_URL, "valueString": format!("http://{host}/canvas/tasks/{id}") });
    match task.get_mut("extension").and_then(Value::as_array_mut) {
        Some(extensions) => extensions.push(permalink),
        None => task["extension"] = json!([permalink]),
    }
    task
}

pub(super) fn matches(r: &Value, param: &str, value: &str) -> FhirResult<bool> {
    let eq = |field: &str| r.get(field).and_then(Value::as_str) == Some(value);
    Ok(match param {
        "patient" => ref_matches(r.get("for"), "Patient", value),
        "owner" => ref_matches(r.get("owner"), "Practitioner", value),
        "requester" => ref_matches(r.get("requester"), "Practitioner", value),
        "status" => eq("status"),
        "priority" => eq("priority"),
        "label" => r.get("input").and_then(Value::as_array).into_iter().flatten().any(|i| {
            str_at(i, "/type/text") == Some("label") && i.get("valueString").and_then(Value::as_str) == Some(value)
        }),
        "description" => r
            .get("description")
            .and_then(Value::as_str)
            .is_some_and(|d| contains_ci(d, value)),
        "due" => date_matches(str_at(r, "/restriction/period/end"), value, param)?,
        "modified" => date_matches(str_at(r, "/lastModified"), value, param)?,
        _ => false,
    })
}
