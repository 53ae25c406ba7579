//! JSON shapes of the canvas service's messages: lowerCamelCase, RFC 3339 UTC timestamps, enums as
//! lowercase strings, money in integer cents; and the helpers every route module shares (paging,
//! enum names, timestamps both ways, status filters).

use era_proto::{canvas::v1 as pb, common::v1 as common};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;

/// A list call's `pageSize` and `pageToken` query parameters, as the services take them.
pub fn page(page_size: Option<i32>, page_token: Option<String>) -> Option<common::PageRequest> {
    Some(common::PageRequest {
        page_size: page_size.unwrap_or_default(),
        page_token: page_token.unwrap_or_default(),
    })
}

/// A proto enum value's name in the API's snake_case (`AuthenticationRequired` ->
/// `authentication_required`); empty for the unspecified value.
pub fn snake<E: std::fmt::Debug>(e: E) -> String {
    let name = format!("{e:?}");
    if name == "Unspecified" {
        return String::new();
    }
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// A status filter of a list route: one of `statuses`, named as the API writes them ([`snake`]);
/// absent or empty means no filter (the enum's unspecified value). Anything else is a 400 naming
/// `field` and the accepted words.
pub fn status_filter<E: Copy + Default + std::fmt::Debug>(
    field: &str,
    value: Option<&str>,
    statuses: &[E],
) -> Result<E, ApiError> {
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return Ok(E::default());
    };
    statuses.iter().copied().find(|s| snake(*s) == value).ok_or_else(|| {
        let names: Vec<String> = statuses.iter().map(|s| snake(*s)).collect();
        let list = match names.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            _ => names.concat(),
        };
        ApiError::field(field, format!("must be {list}"))
    })
}

/// An RFC 3339 date-time from the caller (`2025-01-31T00:00:00Z`); absent or empty is `None`, anything
/// else unparseable a 400 naming `field`.
pub fn parse_time(field: &str, value: Option<&str>) -> Result<Option<era_proto::Timestamp>, ApiError> {
    match value {
        None | Some("") => Ok(None),
        Some(s) => {
            let t = chrono::DateTime::parse_from_rfc3339(s)
                .map_err(|_| ApiError::field(field, "must be an RFC 3339 date-time, e.g. 2025-01-31T00:00:00Z"))?;
            Ok(Some(era_proto::Timestamp {
                seconds: t.timestamp(),
                nanos: t.timestamp_subsec_nanos() as i32,
            }))
        }
    }
}

/// RFC 3339 UTC, as the API writes every timestamp.
pub fn rfc3339(t: era_proto::Timestamp) -> String {
    chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub(super) fn time(t: Option<era_proto::Timestamp>) -> Option<String> {
    t.map(rfc3339)
}

pub fn gender(g: i32) -> String {
    match pb::Gender::try_from(g).unwrap_or_default() {
        pb::Gender::Male => "male",
        pb::Gender::Female => "female",
        pb::Gender::Other => "other",
        pb::Gender::Unknown => "unknown",
        pb::Gender::Unspecified => "",
    }
    .into()
}

pub fn birth_sex(b: i32) -> String {
    match pb::BirthSex::try_from(b).unwrap_or_default() {
        pb::BirthSex::Male => "male",
        pb::BirthSex::Female => "female",
        pb::BirthSex::Other => "other",
        pb::BirthSex::Unknown => "unknown",
        pb::BirthSex::Unspecified => "",
    }
    .into()
}

#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddressView {
    #[serde(default)]
    pub lines: Vec<String>,
    #[serde(default)]
    pub city: String,
    /// Two-letter USPS code.
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub postal_code: String,
    /// "US".
    #[serde(default)]
    pub country: String,
}

impl From<common::Address> for AddressView {
    fn from(a: common::Address) -> Self {
        Self {
            lines: a.lines,
            city: a.city,
            state: a.state,
            postal_code: a.postal_code,
            country: a.country,
        }
    }
}

impl From<AddressView> for common::Address {
    fn from(a: AddressView) -> Self {
        Self {
            lines: a.lines,
            city: a.city,
            state: a.state,
            postal_code: a.postal_code,
            country: a.country,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PatientView {
    pub id: String,
    pub mrn: String,
    pub given_name: String,
    pub family_name: String,
    pub preferred_name: String,
    /// `YYYY-MM-DD`.
    pub birth_date: String,
    /// male, female, other or unknown.
    pub gender: String,
    pub birth_sex: String,
    pub email: String,
    pub phone: String,
    pub address: Option<AddressView>,
    pub active: bool,
    pub updated_at: Option<String>,
}

impl From<pb::Patient> for PatientView {
    fn from(p: pb::Patient) -> Self {
        Self {
            id: p.id,
            mrn: p.mrn,
            given_name: p.given_name,
            family_name: p.family_name,
            preferred_name: p.preferred_name,
            birth_date: p.birth_date,
            gender: gender(p.gender),
            birth_sex: birth_sex(p.birth_sex),
            email: p.email,
            phone: p.phone,
            address: p.address.map(Into::into),
            active: p.active,
            updated_at: time(p.updated_at),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnswerView {
    /// The question's stable id in the questionnaire.
    pub link_id: String,
    #[serde(default)]
    pub question: String,
    pub answers: Vec<String>,
}

impl From<pb::QuestionnaireAnswer> for AnswerView {
    fn from(a: pb::QuestionnaireAnswer) -> Self {
        Self {
            link_id: a.link_id,
            question: a.question,
            answers: a.answers,
        }
    }
}

impl From<AnswerView> for pb::QuestionnaireAnswer {
    fn from(a: AnswerView) -> Self {
        Self {
            link_id: a.link_id,
            question: a.question,
            answers: a.answers,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntakeSummaryView {
    pub record_id: String,
    pub submitted_at: Option<String>,
    pub medication: String,
    pub highlights: Vec<AnswerView>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskNoteView {
    pub text: String,
    pub author_practitioner_id: String,
    pub created_at: Option<String>,
}

pub fn task_status(s: i32) -> String {
    match pb::TaskStatus::try_from(s).unwrap_or_default() {
        pb::TaskStatus::Requested => "requested",
        pb::TaskStatus::Completed => "completed",
        pb::TaskStatus::Cancelled => "cancelled",
        pb::TaskStatus::Unspecified => "",
    }
    .into()
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RxTaskView {
    pub id: String,
    pub canvas_patient_id: String,
    /// requested (open), completed or cancelled.
    pub status: String,
    pub description: String,
    pub labels: Vec<String>,
    pub owner_practitioner_id: String,
    pub requester_practitioner_id: String,
    pub patient: Option<PatientView>,
    /// Medication id requested at intake.
    pub medication: String,
    pub intake_summary: Option<IntakeSummaryView>,
    pub notes: Vec<TaskNoteView>,
    pub permalink: String,
    pub authored_at: Option<String>,
    pub due_at: Option<String>,
    pub updated_at: Option<String>,
}

impl From<pb::RxReviewTask> for RxTaskView {
    fn from(t: pb::RxReviewTask) -> Self {
        Self {
            id: t.id,
            canvas_patient_id: t.canvas_patient_id,
            status: task_status(t.status),
            description: t.description,
            labels: t.labels,
            owner_practitioner_id: t.owner_practitioner_id,
            requester_practitioner_id: t.requester_practitioner_id,
            patient: t.patient.map(Into::into),
            medication: t.medication,
            intake_summary: t.intake_summary.map(|s| IntakeSummaryView {
                record_id: s.record_id,
                submitted_at: time(s.submitted_at),
                medication: s.medication,
                highlights: s.highlights.into_iter().map(Into::into).collect(),
            }),
            notes: t
                .notes
                .into_iter()
                .map(|n| TaskNoteView {
                    text: n.text,
                    author_practitioner_id: n.author_practitioner_id,
                    created_at: time(n.created_at),
                })
                .collect(),
            permalink: t.permalink,
            authored_at: time(t.authored_at),
            due_at: time(t.due_at),
            updated_at: time(t.updated_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PractitionerView {
    pub id: String,
    pub name: String,
    pub given_name: String,
    pub family_name: String,
    pub npi: String,
    pub email: String,
    pub active: bool,
    pub schedulable: bool,
}

impl From<pb::Practitioner> for PractitionerView {
    fn from(p: pb::Practitioner) -> Self {
        Self {
            id: p.id,
            name: p.name,
            given_name: p.given_name,
            family_name: p.family_name,
            npi: p.npi,
            email: p.email,
            active: p.active,
            schedulable: p.schedulable,
        }
    }
}

pub fn prescription_status(s: i32) -> String {
    use pb::PrescriptionStatus as S;
    match S::try_from(s).unwrap_or_default() {
        S::Active => "active",
        S::Cancelled => "cancelled",
        S::Stopped => "stopped",
        S::EnteredInError => "entered-in-error",
        S::Unknown => "unknown",
        S::Unspecified => "",
    }
    .into()
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrescriptionView {
    pub id: String,
    pub canvas_patient_id: String,
    pub status: String,
    pub refill: bool,
    pub medication_display: String,
    pub rxnorm_code: String,
    pub fdb_code: String,
    pub directions: String,
    pub dose: String,
    pub quantity: String,
    pub days_supply: i32,
    pub refills_allowed: i32,
    pub substitution_allowed: bool,
    pub requester_practitioner_id: String,
    pub requester_name: String,
    pub pharmacy: String,
    pub note: String,
    pub authored_at: Option<String>,
}

impl From<pb::Prescription> for PrescriptionView {
    fn from(p: pb::Prescription) -> Self {
        Self {
            id: p.id,
            canvas_patient_id: p.canvas_patient_id,
            status: prescription_status(p.status),
            refill: p.refill,
            medication_display: p.medication_display,
            rxnorm_code: p.rxnorm_code,
            fdb_code: p.fdb_code,
            directions: p.directions,
            dose: p.dose,
            quantity: p.quantity,
            days_supply: p.days_supply,
            refills_allowed: p.refills_allowed,
            substitution_allowed: p.substitution_allowed,
            requester_practitioner_id: p.requester_practitioner_id,
            requester_name: p.requester_name,
            pharmacy: p.pharmacy,
            note: p.note,
            authored_at: time(p.authored_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConditionView {
    pub id: String,
    pub code: String,
    pub code_system: String,
    pub display: String,
    pub clinical_status: String,
    pub onset: String,
    pub recorded_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObservationComponentView {
    pub code: String,
    pub display: String,
    pub value: String,
    pub unit: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObservationView {
    pub id: String,
    pub code: String,
    pub code_system: String,
    pub display: String,
    pub category: String,
    pub value: String,
    pub unit: String,
    pub components: Vec<ObservationComponentView>,
    pub effective_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuestionnaireResponseView {
    pub id: String,
    pub questionnaire_id: String,
    pub authored_at: Option<String>,
    pub answers: Vec<AnswerView>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DosageOptionView {
    pub medication: String,
    /// The value approval takes as the dose, e.g. "0.25 mg weekly".
    pub label: String,
    pub strength: String,
    pub directions: String,
    pub price_cents: i64,
    pub currency: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntakeDemographicsView {
    pub given_name: String,
    pub family_name: String,
    pub preferred_name: String,
    pub birth_date: String,
    pub gender: String,
    pub birth_sex: String,
    pub email: String,
    pub phone: String,
    pub address: Option<AddressView>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntakeSubmissionView {
    pub demographics: Option<IntakeDemographicsView>,
    pub medication: String,
    pub questionnaire_id: String,
    pub answers: Vec<AnswerView>,
    pub metadata: std::collections::BTreeMap<String, String>,
}

impl From<pb::IntakeSubmission> for IntakeSubmissionView {
    fn from(s: pb::IntakeSubmission) -> Self {
        Self {
            demographics: s.demographics.map(|d| IntakeDemographicsView {
                given_name: d.given_name,
                family_name: d.family_name,
                preferred_name: d.preferred_name,
                birth_date: d.birth_date,
                gender: gender(d.gender),
                birth_sex: birth_sex(d.birth_sex),
                email: d.email,
                phone: d.phone,
                address: d.address.map(Into::into),
            }),
            medication: s.medication,
            questionnaire_id: s.questionnaire_id,
            answers: s.answers.into_iter().map(Into::into).collect(),
            metadata: s.metadata.into_iter().collect(),
        }
    }
}

/// An immutable intake snapshot, decrypted.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntakeRecordView {
    pub id: String,
    pub canvas_patient_id: String,
    pub submission_id: String,
    pub submission: Option<IntakeSubmissionView>,
    /// The submission exactly as the client sent it, when kept.
    pub raw_json: String,
    pub submitted_at: Option<String>,
    pub created_at: Option<String>,
}

impl From<pb::IntakeRecord> for IntakeRecordView {
    fn from(r: pb::IntakeRecord) -> Self {
        Self {
            id: r.id,
            canvas_patient_id: r.canvas_patient_id,
            submission_id: r.submission_id,
            submission: r.submission.map(Into::into),
            raw_json: r.raw_json,
            submitted_at: time(r.submitted_at),
            created_at: time(r.created_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntakeRecordSummaryView {
    pub id: String,
    pub canvas_patient_id: String,
    pub submission_id: String,
    pub medication: String,
    pub submitted_at: Option<String>,
}

impl From<pb::IntakeRecordSummary> for IntakeRecordSummaryView {
    fn from(r: pb::IntakeRecordSummary) -> Self {
        Self {
            id: r.id,
            canvas_patient_id: r.canvas_patient_id,
            submission_id: r.submission_id,
            medication: r.medication,
            submitted_at: time(r.submitted_at),
        }
    }
}

/// The H&P package of one task.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskDetailView {
    pub task: Option<RxTaskView>,
    pub patient: Option<PatientView>,
    pub intake_record: Option<IntakeRecordView>,
    pub questionnaire_responses: Vec<QuestionnaireResponseView>,
    pub conditions: Vec<ConditionView>,
    pub observations: Vec<ObservationView>,
    pub assigned_practitioners: Vec<PractitionerView>,
    pub dosage_options: Vec<DosageOptionView>,
    pub prescriptions: Vec<PrescriptionView>,
}

impl From<pb::GetRxReviewTaskResponse> for TaskDetailView {
    fn from(d: pb::GetRxReviewTaskResponse) -> Self {
        Self {
            task: d.task.map(Into::into),
            patient: d.patient.map(Into::into),
            intake_record: d.intake_record.map(Into::into),
            questionnaire_responses: d
                .questionnaire_responses
                .into_iter()
                .map(|q| QuestionnaireResponseView {
                    id: q.id,
                    questionnaire_id: q.questionnaire_id,
                    authored_at: time(q.authored_at),
                    answers: q.answers.into_iter().map(Into::into).collect(),
                })
                .collect(),
            conditions: d
                .conditions
                .into_iter()
                .map(|c| ConditionView {
                    id: c.id,
                    code: c.code,
                    code_system: c.code_system,
                    display: c.display,
                    clinical_status: c.clinical_status,
                    onset: c.onset,
                    recorded_at: time(c.recorded_at),
                })
                .collect(),
            observations: d
                .observations
                .into_iter()
                .map(|o| ObservationView {
                    id: o.id,
                    code: o.code,
                    code_system: o.code_system,
                    display: o.display,
                    category: o.category,
                    value: o.value,
                    unit: o.unit,
                    components: o
                        .components
                        .into_iter()
                        .map(|c| ObservationComponentView {
                            code: c.code,
                            display: c.display,
                            value: c.value,
                            unit: c.unit,
                        })
                        .collect(),
                    effective_at: time(o.effective_at),
                })
                .collect(),
            assigned_practitioners: d.assigned_practitioners.into_iter().map(Into::into).collect(),
            dosage_options: d
                .dosage_options
                .into_iter()
                .map(|o| {
                    let price = o.price.unwrap_or_default();
                    DosageOptionView {
                        medication: o.medication,
                        label: o.label,
                        strength: o.strength,
                        directions: o.directions,
                        price_cents: price.amount_cents,
                        currency: price.currency,
                    }
                })
                .collect(),
            prescriptions: d.prescriptions.into_iter().map(Into::into).collect(),
        }
    }
}
