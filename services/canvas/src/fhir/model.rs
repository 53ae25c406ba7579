//! The FHIR R4 resources the mesh reads from Canvas, typed as far as the mesh uses them. Every field
//! is optional or defaulted: Canvas leaves out what is empty, and a missing field must not fail a
//! whole page of results.

use serde::Deserialize;

/// `ResourceType/id`, with Canvas's optional `type` and `display`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reference {
    pub reference: Option<String>,
    pub display: Option<String>,
}

impl Reference {
    /// The id when the reference points at a resource of type `ty` (`Patient/abc` -> `abc`).
    pub fn id_of(&self, ty: &str) -> Option<&str> {
        let r = self.reference.as_deref()?;
        let rest = r.strip_prefix(ty)?.strip_prefix('/')?;
        Some(rest.split('/').next().unwrap_or(rest)).filter(|s| !s.is_empty())
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Coding {
    pub system: Option<String>,
    pub code: Option<String>,
    pub display: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct CodeableConcept {
    #[serde(default)]
    pub coding: Vec<Coding>,
    pub text: Option<String>,
}

impl CodeableConcept {
    pub fn first(&self) -> Option<&Coding> {
        self.coding.first()
    }

    pub fn code_in(&self, system: &str) -> Option<&str> {
        self.coding
            .iter()
            .find(|c| c.system.as_deref() == Some(system))
            .and_then(|c| c.code.as_deref())
    }

    /// Text, else the first coding's display, else its code.
    pub fn label(&self) -> String {
        self.text
            .clone()
            .or_else(|| self.first().and_then(|c| c.display.clone().or_else(|| c.code.clone())))
            .unwrap_or_default()
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Extension {
    pub url: String,
    #[serde(rename = "valueCode")]
    pub value_code: Option<String>,
    #[serde(rename = "valueString")]
    pub value_string: Option<String>,
    #[serde(rename = "valueBoolean")]
    pub value_boolean: Option<bool>,
    #[serde(rename = "valueId")]
    pub value_id: Option<String>,
}

pub fn extension<'a>(extensions: &'a [Extension], url: &str) -> Option<&'a Extension> {
    extensions.iter().find(|e| e.url == url)
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Meta {
    #[serde(rename = "lastUpdated")]
    pub last_updated: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct HumanName {
    #[serde(rename = "use")]
    pub use_: Option<String>,
    pub family: Option<String>,
    #[serde(default)]
    pub given: Vec<String>,
    pub text: Option<String>,
    #[serde(default)]
    pub suffix: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct ContactPoint {
    pub system: Option<String>,
    pub value: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    #[serde(default)]
    pub line: Vec<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub postal_code: Option<String>,
    pub country: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identifier {
    pub system: Option<String>,
    pub value: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<CodeableConcept>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Patient {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub meta: Meta,
    #[serde(default)]
    pub extension: Vec<Extension>,
    #[serde(default)]
    pub identifier: Vec<Identifier>,
    pub active: Option<bool>,
    #[serde(default)]
    pub name: Vec<HumanName>,
    #[serde(default)]
    pub telecom: Vec<ContactPoint>,
    pub gender: Option<String>,
    pub birth_date: Option<String>,
    #[serde(default)]
    pub address: Vec<Address>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Annotation {
    #[serde(default)]
    pub text: String,
    pub time: Option<String>,
    pub author_reference: Option<Reference>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Period {
    pub start: Option<String>,
    pub end: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct TaskRestriction {
    pub period: Option<Period>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskInput {
    #[serde(rename = "type", default)]
    pub kind: CodeableConcept,
    pub value_string: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub status: String,
    pub description: Option<String>,
    #[serde(rename = "for")]
    pub for_: Option<Reference>,
    pub owner: Option<Reference>,
    pub requester: Option<Reference>,
    pub authored_on: Option<String>,
    pub last_modified: Option<String>,
    pub restriction: Option<TaskRestriction>,
    pub priority: Option<String>,
    #[serde(default)]
    pub note: Vec<Annotation>,
    #[serde(default)]
    pub input: Vec<TaskInput>,
    #[serde(default)]
    pub extension: Vec<Extension>,
}

impl Task {
    pub fn labels(&self) -> Vec<String> {
        self.input
            .iter()
            .filter(|i| i.kind.text.as_deref() == Some("label"))
            .filter_map(|i| i.value_string.clone())
            .collect()
    }

    pub fn patient_id(&self) -> Option<&str> {
        self.for_.as_ref().and_then(|r| r.id_of("Patient"))
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Practitioner {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub identifier: Vec<Identifier>,
    #[serde(default)]
    pub name: Vec<HumanName>,
    #[serde(default)]
    pub telecom: Vec<ContactPoint>,
    pub active: Option<bool>,
    #[serde(default)]
    pub extension: Vec<Extension>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Quantity {
    pub value: Option<serde_json::Number>,
    pub unit: Option<String>,
}

impl Quantity {
    /// "0.25 mg", "2 mL", "182".
    pub fn show(&self) -> String {
        match (&self.value, &self.unit) {
            (Some(v), Some(u)) => format!("{v} {u}"),
            (Some(v), None) => v.to_string(),
            (None, Some(u)) => u.clone(),
            (None, None) => String::new(),
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DoseAndRate {
    pub dose_quantity: Option<Quantity>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dosage {
    pub text: Option<String>,
    #[serde(default)]
    pub dose_and_rate: Vec<DoseAndRate>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DispenseRequest {
    pub number_of_repeats_allowed: Option<i32>,
    pub quantity: Option<Quantity>,
    pub expected_supply_duration: Option<Quantity>,
    pub performer: Option<Reference>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Substitution {
    pub allowed_boolean: Option<bool>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MedicationRequest {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub intent: String,
    pub medication_codeable_concept: Option<CodeableConcept>,
    pub subject: Option<Reference>,
    pub authored_on: Option<String>,
    pub requester: Option<Reference>,
    #[serde(default)]
    pub dosage_instruction: Vec<Dosage>,
    pub dispense_request: Option<DispenseRequest>,
    pub substitution: Option<Substitution>,
    #[serde(default)]
    pub note: Vec<Annotation>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(default)]
    pub id: String,
    pub clinical_status: Option<CodeableConcept>,
    pub code: Option<CodeableConcept>,
    pub onset_date_time: Option<String>,
    pub recorded_date: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservationComponent {
    pub code: Option<CodeableConcept>,
    pub value_quantity: Option<Quantity>,
    pub value_string: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Observation {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub category: Vec<CodeableConcept>,
    pub code: Option<CodeableConcept>,
    pub value_quantity: Option<Quantity>,
    pub value_string: Option<String>,
    #[serde(default)]
    pub component: Vec<ObservationComponent>,
    pub effective_date_time: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnswerValue {
    pub value_string: Option<String>,
    pub value_integer: Option<i64>,
    pub value_decimal: Option<serde_json::Number>,
    pub value_boolean: Option<bool>,
    pub value_date: Option<String>,
    pub value_coding: Option<Coding>,
}

impl AnswerValue {
    pub fn show(&self) -> String {
        if let Some(s) = &self.value_string {
            return s.clone();
        }
        if let Some(i) = self.value_integer {
            return i.to_string();
        }
        if let Some(d) = &self.value_decimal {
            return d.to_string();
        }
        if let Some(b) = self.value_boolean {
            return if b { "yes" } else { "no" }.to_owned();
        }
        if let Some(d) = &self.value_date {
            return d.clone();
        }
        self.value_coding
            .as_ref()
            .and_then(|c| c.display.clone().or_else(|| c.code.clone()))
            .unwrap_or_default()
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuestionnaireItem {
    #[serde(default)]
    pub link_id: String,
    pub text: Option<String>,
    #[serde(default)]
    pub answer: Vec<AnswerValue>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuestionnaireResponse {
    #[serde(default)]
    pub id: String,
    pub questionnaire: Option<String>,
    pub subject: Option<Reference>,
    pub authored: Option<String>,
    #[serde(default)]
    pub item: Vec<QuestionnaireItem>,
}

impl QuestionnaireResponse {
    /// The first answer's code (a choice) or text: what the mesh compares with its own ids.
    pub fn answer_code(&self, link_id: &str) -> Option<String> {
        let answer = self.item.iter().find(|i| i.link_id == link_id)?.answer.first()?;
        answer
            .value_coding
            .as_ref()
            .and_then(|c| c.code.clone())
            .or_else(|| answer.value_string.clone())
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnswerOption {
    pub value_coding: Option<Coding>,
    pub value_string: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Question {
    #[serde(default)]
    pub link_id: String,
    pub text: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub repeats: Option<bool>,
    pub required: Option<bool>,
    #[serde(default)]
    pub answer_option: Vec<AnswerOption>,
    /// Questions inside a group.
    #[serde(default)]
    pub item: Vec<Question>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Questionnaire {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub item: Vec<Question>,
}

impl Questionnaire {
    /// Every question, groups included.
    pub fn questions(&self) -> impl Iterator<Item = &Question> {
        fn walk<'a>(items: &'a [Question], out: &mut Vec<&'a Question>) {
            for q in items {
                out.push(q);
                walk(&q.item, out);
            }
        }
        let mut out = Vec::new();
        walk(&self.item, &mut out);
        out.into_iter()
    }

    /// A question by link id, groups included.
    pub fn question(&self, link_id: &str) -> Option<&Question> {
        self.questions().find(|q| q.link_id == link_id)
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payload {
    pub content_string: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Communication {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub status: String,
    pub sender: Option<Reference>,
    #[serde(default)]
    pub recipient: Vec<Reference>,
    #[serde(default)]
    pub payload: Vec<Payload>,
    pub sent: Option<String>,
    pub received: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Schedule {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub actor: Vec<Reference>,
    pub comment: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Slot {
    #[serde(default)]
    pub schedule: Reference,
    pub start: Option<String>,
    pub end: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct AppointmentParticipant {
    pub actor: Option<Reference>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct ContainedEndpoint {
    #[serde(rename = "resourceType", default)]
    pub resource_type: String,
    pub address: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Appointment {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub status: String,
    pub start: Option<String>,
    pub end: Option<String>,
    #[serde(default)]
    pub participant: Vec<AppointmentParticipant>,
    #[serde(default)]
    pub supporting_information: Vec<Reference>,
    #[serde(default)]
    pub contained: Vec<ContainedEndpoint>,
    pub appointment_type: Option<CodeableConcept>,
    #[serde(default)]
    pub reason_code: Vec<CodeableConcept>,
    pub description: Option<String>,
    #[serde(default)]
    pub extension: Vec<Extension>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct DocumentReference {
    #[serde(default)]
    pub id: String,
    pub description: Option<String>,
    #[serde(default)]
    pub content: Vec<DocumentContent>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct DocumentContent {
    #[serde(default)]
    pub attachment: Attachment,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Attachment {
    pub title: Option<String>,
}

/// A searchset page.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Bundle<T> {
    pub(crate) total: Option<u32>,
    #[serde(default = "Vec::new")]
    pub(crate) link: Vec<BundleLink>,
    #[serde(default = "Vec::new")]
    pub(crate) entry: Vec<BundleEntry<T>>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct BundleLink {
    pub(crate) relation: String,
    pub(crate) url: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct BundleEntry<T> {
    pub(crate) resource: T,
}

/// Canvas's error body.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct OperationOutcome {
    #[serde(default)]
    pub(crate) issue: Vec<OutcomeIssue>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct OutcomeIssue {
    #[serde(default)]
    pub(crate) code: String,
    pub(crate) details: Option<CodeableConcept>,
    pub(crate) diagnostics: Option<String>,
}

impl OperationOutcome {
    /// The first issue's code and text.
    pub(crate) fn summary(&self) -> (String, String) {
        let Some(issue) = self.issue.first() else {
            return (String::new(), String::new());
        };
        let text = issue
            .details
            .as_ref()
            .and_then(|d| d.text.clone())
            .or_else(|| issue.diagnostics.clone())
            .unwrap_or_default();
        (issue.code.clone(), text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_ids() {
        let r = Reference {
            reference: Some("Patient/abc".into()),
            display: None,
        };
        assert_eq!(r.id_of("Patient"), Some("abc"));
        assert_eq!(r.id_of("Practitioner"), None);
        let r = Reference {
            reference: Some("Practitioner/x/_history/2".into()),
            display: None,
        };
        assert_eq!(r.id_of("Practitioner"), Some("x"));
    }
}
