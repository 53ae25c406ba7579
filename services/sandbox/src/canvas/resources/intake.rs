//! Questionnaire (read only; the clinic's forms are seeded) and QuestionnaireResponse, the
//! intake answers, checked against the questionnaire they answer.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{one_of, Kind};
use crate::canvas::{
    fields::{contains_ci, date_matches, ref_id, ref_matches, reference, str_at, timestamp},
    outcome::{FhirError, FhirResult},
    store::Store,
};

pub(super) const RESPONSE_PARAMS: &[&str] = &["_id", "patient", "questionnaire", "authored"];
pub(super) const SORTS: &[&str] = &["_id", "authored"];
pub(super) const QUESTIONNAIRE_PARAMS: &[&str] = &["_id", "name", "status"];

const ANSWER_TYPES: &[&str] = &[
    "valueString",
    "valueCoding",
    "valueInteger",
    "valueDecimal",
    "valueBoolean",
    "valueDate",
];

pub(super) fn create_response(mut body: Value, store: &Store, now: DateTime<Utc>) -> FhirResult<Value> {
    let questionnaire_id = body
        .get("questionnaire")
        .and_then(Value::as_str)
        .and_then(|q| q.strip_prefix("Questionnaire/"))
        .filter(|id| !id.is_empty())
        .ok_or_else(|| {
            FhirError::invalid("QuestionnaireResponse.questionnaire is required, as 'Questionnaire/<id>'")
        })?;
    let questionnaire = store
        .get(Kind::Questionnaire, questionnaire_id)
        .ok_or_else(|| FhirError::business_rule(format!("Questionnaire '{questionnaire_id}' does not exist")))?;
    if body.get("status").and_then(Value::as_str) != Some("completed") {
        return Err(FhirError::invalid("QuestionnaireResponse.status must be 'completed'"));
    }
    let subject = body
        .get("subject")
        .and_then(|s| ref_id(s, "Patient"))
        .ok_or_else(|| FhirError::invalid("QuestionnaireResponse.subject is required (a Patient reference)"))?
        .to_owned();
    if !store.exists(Kind::Patient, &subject) {
        return Err(FhirError::business_rule(format!("Patient '{subject}' does not exist")));
    }
    let items = body
        .get("item")
        .and_then(Value::as_array)
        .filter(|items| !items.is_empty())
        .ok_or_else(|| FhirError::invalid("QuestionnaireResponse.item is required"))?;
    for item in items {
        check_item(questionnaire, questionnaire_id, item)?;
    }
    body["subject"] = reference("Patient", &subject);
    if body.get("authored").is_none() {
        body["authored"] = json!(timestamp(now));
    }
    Ok(body)
}

/// One answered question: its linkId must be in the questionnaire and its answers must be of a
/// FHIR answer type; choice questions take one of their options, once unless they repeat.
fn check_item(questionnaire: &Value, questionnaire_id: &str, item: &Value) -> FhirResult<()> {
    let link_id =
        str_at(item, "/linkId").ok_or_else(|| FhirError::invalid("QuestionnaireResponse.item[].linkId is required"))?;
    let question = questionnaire
        .get("item")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|q| str_at(q, "/linkId") == Some(link_id))
        .ok_or_else(|| {
            FhirError::business_rule(format!(
                "Question '{link_id}' is not in Questionnaire '{questionnaire_id}'"
            ))
        })?;
    let answers = item
        .get("answer")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if answers.len() > 1 && question.get("repeats").and_then(Value::as_bool) != Some(true) {
        return Err(FhirError::business_rule(format!(
            "Question '{link_id}' accepts only one answer"
        )));
    }
    for answer in answers {
        let kinds: Vec<&str> = answer
            .as_object()
            .into_iter()
            .flat_map(|o| o.keys())
            .filter(|k| k.starts_with("value"))
            .map(String::as_str)
            .collect();
        let [kind] = kinds.as_slice() else {
            return Err(FhirError::business_rule(format!(
                "Question '{link_id}': each answer needs exactly one of {}",
                ANSWER_TYPES.join(", ")
            )));
        };
        if !ANSWER_TYPES.contains(kind) {
            return Err(FhirError::business_rule(format!(
                "Question '{link_id}': {kind} is not a supported answer type (use one of {})",
                ANSWER_TYPES.join(", ")
            )));
        }
        if str_at(question, "/type") == Some("choice") && !is_option(question, answer) {
            return Err(FhirError::business_rule(format!(
                "Question '{link_id}': the answer is not one of the question's options"
            )));
        }
    }
    Ok(())
}

/// A choice answer is a coding whose code (and system, if given) is one of the options: Canvas
/// refuses a string, or a code of another system ("Question expects answer of code system ...").
fn is_option(question: &Value, answer: &Value) -> bool {
    let options = question
        .get("answerOption")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    let mut options = options.filter_map(|o| o.get("valueCoding"));
    if let Some(coding) = answer.get("valueCoding") {
        return options.any(|o| {
            str_at(o, "/code") == str_at(coding, "/code")
                && str_at(coding, "/system").is_none_or(|s| str_at(o, "/system") == Some(s))
        });
    }
    false
}

/// Canvas lets a response update do one thing: mark it entered in error.
pub(super) fn update_response(current: &Value, body: &Value) -> FhirResult<Value> {
    let status = body.get("status").and_then(Value::as_str).unwrap_or_default();
    one_of(
        status,
        &["entered-in-error"],
        "QuestionnaireResponse.status (the only change Canvas allows)",
    )?;
    let mut next = current.clone();
    next["status"] = json!(status);
    Ok(next)
}

pub(super) fn response_matches(r: &Value, param: &str, value: &str) -> FhirResult<bool> {
    Ok(match param {
        "patient" => ref_matches(r.get("subject"), "Patient", value),
        "questionnaire" => {
            let wanted = value.strip_prefix("Questionnaire/").unwrap_or(value);
            r.get("questionnaire")
                .and_then(Value::as_str)
                .and_then(|q| q.strip_prefix("Questionnaire/"))
                == Some(wanted)
        }
        "authored" => date_matches(str_at(r, "/authored"), value, param)?,
        _ => false,
    })
}

pub(super) fn questionnaire_matches(r: &Value, param: &str, value: &str) -> FhirResult<bool> {
    Ok(match param {
        "name" => ["name", "title"]
            .into_iter()
            .filter_map(|f| r.get(f).and_then(Value::as_str))
            .any(|n| contains_ci(n, value)),
        "status" => r.get("status").and_then(Value::as_str) == Some(value),
        _ => false,
    })
}
