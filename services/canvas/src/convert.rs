//! Canvas's FHIR resources to the mesh's messages, and back for what the mesh writes.

use chrono::{DateTime, NaiveDate, Utc};
use era_proto::{canvas::v1 as pb, common::v1 as common};
use serde_json::{json, Value};

use crate::fhir::model::{self as fhir, extension};

pub const BIRTH_SEX_URL: &str = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex";
pub const NPI_SYSTEM: &str = "http://hl7.org/fhir/sid/us-npi";
pub const MRN_SYSTEM: &str = "http://canvasmedical.com";
pub const PERMALINK_URL: &str = "http://schemas.canvasmedical.com/fhir/extensions/task-permalink";
pub const NOTE_ID_URL: &str = "http://schemas.canvasmedical.com/fhir/extensions/note-id";
pub const RXNORM_SYSTEM: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";
pub const FDB_SYSTEM: &str = "http://www.fdbhealth.com/";
pub const LOINC_SYSTEM: &str = "http://loinc.org";
/// The identifier the mesh puts on patients it creates, so a retried intake finds the patient an
/// interrupted attempt created instead of creating a second one.
pub const SUBMISSION_SYSTEM: &str = "https://yourera.com/fhir/intake-submission";
/// The label of the prescription review queue's tasks.
pub const RX_REVIEW_LABEL: &str = "Rx Review";

pub use era_kit::time::{from_timestamp, timestamp};

/// An RFC 3339 date-time, or a bare date (midnight UTC), as Canvas writes them.
pub fn parse_time(s: Option<&str>) -> Option<prost_types::Timestamp> {
    let s = s?.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(timestamp(t.with_timezone(&Utc)));
    }
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    Some(timestamp(d.and_hms_opt(0, 0, 0)?.and_utc()))
}

pub fn gender_from(s: Option<&str>) -> pb::Gender {
    match s {
        Some("male") => pb::Gender::Male,
        Some("female") => pb::Gender::Female,
        Some("other") => pb::Gender::Other,
        Some("unknown") => pb::Gender::Unknown,
        _ => pb::Gender::Unspecified,
    }
}

pub fn gender_code(g: pb::Gender) -> &'static str {
    match g {
        pb::Gender::Male => "male",
        pb::Gender::Female => "female",
        pb::Gender::Other => "other",
        pb::Gender::Unknown | pb::Gender::Unspecified => "unknown",
    }
}

pub fn birth_sex_from(s: Option<&str>) -> pb::BirthSex {
    match s {
        Some("M") => pb::BirthSex::Male,
        Some("F") => pb::BirthSex::Female,
        Some("OTH") => pb::BirthSex::Other,
        Some("UNK") => pb::BirthSex::Unknown,
        _ => pb::BirthSex::Unspecified,
    }
}

pub fn birth_sex_code(b: pb::BirthSex) -> &'static str {
    match b {
        pb::BirthSex::Male => "M",
        pb::BirthSex::Female => "F",
        pb::BirthSex::Other => "OTH",
        pb::BirthSex::Unknown | pb::BirthSex::Unspecified => "UNK",
    }
}

fn official(names: &[fhir::HumanName]) -> Option<&fhir::HumanName> {
    names
        .iter()
        .find(|n| n.use_.as_deref() == Some("official"))
        .or_else(|| names.first())
}

fn telecom(points: &[fhir::ContactPoint], system: &str) -> String {
    points
        .iter()
        .find(|p| p.system.as_deref() == Some(system))
        .and_then(|p| p.value.clone())
        .unwrap_or_default()
}

pub fn patient(p: &fhir::Patient) -> pb::Patient {
    let name = official(&p.name);
    let nickname = p
        .name
        .iter()
        .find(|n| n.use_.as_deref() == Some("nickname"))
        .and_then(|n| n.given.first().cloned());
    let mrn = p
        .identifier
        .iter()
        .find(|i| {
            i.system.as_deref() == Some(MRN_SYSTEM)
                || i.kind.as_ref().and_then(|k| k.first()).and_then(|c| c.code.as_deref()) == Some("MR")
        })
        .and_then(|i| i.value.clone())
        .unwrap_or_default();
    pb::Patient {
        id: p.id.clone(),
        mrn,
        given_name: name.and_then(|n| n.given.first().cloned()).unwrap_or_default(),
        family_name: name.and_then(|n| n.family.clone()).unwrap_or_default(),
        preferred_name: nickname.unwrap_or_default(),
        birth_date: p.birth_date.clone().unwrap_or_default(),
        gender: gender_from(p.gender.as_deref()) as i32,
        birth_sex: birth_sex_from(extension(&p.extension, BIRTH_SEX_URL).and_then(|e| e.value_code.as_deref())) as i32,
        email: telecom(&p.telecom, "email"),
        phone: telecom(&p.telecom, "phone"),
        address: p.address.first().map(|a| common::Address {
            lines: a.line.clone(),
            city: a.city.clone().unwrap_or_default(),
            state: a.state.clone().unwrap_or_default(),
            postal_code: a.postal_code.clone().unwrap_or_default(),
            country: a.country.clone().unwrap_or_default(),
        }),
        active: p.active.unwrap_or(true),
        created_at: None,
        updated_at: parse_time(p.meta.last_updated.as_deref()),
    }
}

/// The Patient resource Canvas requires on create: official name, birth date, gender, birth sex,
/// email in telecom; plus the submission identifier when the mesh creates it for an intake.
pub fn patient_resource(d: &pb::IntakeDemographics, submission_id: Option<&str>) -> Value {
    let mut names = vec![json!({ "use": "official", "family": d.family_name, "given": [d.given_name] })];
    if !d.preferred_name.is_empty() && d.preferred_name != d.given_name {
        names.push(json!({ "use": "nickname", "given": [d.preferred_name] }));
    }
    let mut telecom = vec![json!({ "system": "email", "value": d.email, "use": "home", "rank": 1 })];
    if !d.phone.is_empty() {
        telecom.push(json!({ "system": "phone", "value": d.phone, "use": "mobile", "rank": 1 }));
    }
    let mut resource = json!({
        "resourceType": "Patient",
        "extension": [{ "url": BIRTH_SEX_URL, "valueCode": birth_sex_code(d.birth_sex()) }],
        "active": true,
        "name": names,
        "gender": gender_code(d.gender()),
        "birthDate": d.birth_date,
        "telecom": telecom,
    });
    if let Some(a) = &d.address {
        resource["address"] = json!([{
            "use": "home", "type": "both", "line": a.lines, "city": a.city,
            "state": a.state, "postalCode": a.postal_code, "country": if a.country.is_empty() { "US" } else { &a.country },
        }]);
    }
    if let Some(id) = submission_id {
        resource["identifier"] = json!([{ "use": "secondary", "system": SUBMISSION_SYSTEM, "value": id }]);
    }
    resource
}

pub fn practitioner(p: &fhir::Practitioner) -> pb::Practitioner {
    let name = p.name.first();
    let given = name.and_then(|n| n.given.first().cloned()).unwrap_or_default();
    let family = name.and_then(|n| n.family.clone()).unwrap_or_default();
    let full = name.and_then(|n| n.text.clone()).unwrap_or_else(|| {
        let mut parts = vec![given.clone(), family.clone()];
        parts.extend(name.map(|n| n.suffix.clone()).unwrap_or_default());
        parts.retain(|s| !s.is_empty());
        parts.join(" ")
    });
    pb::Practitioner {
        id: p.id.clone(),
        name: full,
        given_name: given,
        family_name: family,
        npi: p
            .identifier
            .iter()
            .find(|i| i.system.as_deref() == Some(NPI_SYSTEM))
            .and_then(|i| i.value.clone())
            .unwrap_or_default(),
        email: telecom(&p.telecom, "email"),
        active: p.active.unwrap_or(true),
        // Canvas marks schedulability in its own extension; the search hides the others unless asked.
        schedulable: p
            .extension
            .iter()
            .find(|e| e.url.ends_with("/schedulable"))
            .and_then(|e| e.value_boolean)
            .unwrap_or(true),
    }
}

pub fn task_status_from(s: &str) -> pb::TaskStatus {
    match s {
        "requested" => pb::TaskStatus::Requested,
        "completed" => pb::TaskStatus::Completed,
        "cancelled" => pb::TaskStatus::Cancelled,
        _ => pb::TaskStatus::Unspecified,
    }
}

pub fn task_status_code(s: pb::TaskStatus) -> Option<&'static str> {
    match s {
        pb::TaskStatus::Requested => Some("requested"),
        pb::TaskStatus::Completed => Some("completed"),
        pb::TaskStatus::Cancelled => Some("cancelled"),
        pb::TaskStatus::Unspecified => None,
    }
}

pub fn task_note(n: &fhir::Annotation) -> pb::TaskNote {
    pb::TaskNote {
        text: n.text.clone(),
        author_practitioner_id: n
            .author_reference
            .as_ref()
            .and_then(|r| r.id_of("Practitioner"))
            .unwrap_or_default()
            .to_owned(),
        created_at: parse_time(n.time.as_deref()),
    }
}

/// A task without its enrichment (patient, medication, intake summary).
pub fn task(t: &fhir::Task) -> pb::RxReviewTask {
    pb::RxReviewTask {
        id: t.id.clone(),
        canvas_patient_id: t.patient_id().unwrap_or_default().to_owned(),
        status: task_status_from(&t.status) as i32,
        description: t.description.clone().unwrap_or_default(),
        labels: t.labels(),
        owner_practitioner_id: t
            .owner
            .as_ref()
            .and_then(|r| r.id_of("Practitioner"))
            .unwrap_or_default()
            .to_owned(),
        requester_practitioner_id: t
            .requester
            .as_ref()
            .and_then(|r| r.id_of("Practitioner"))
            .unwrap_or_default()
            .to_owned(),
        patient: None,
        medication: String::new(),
        intake_summary: None,
        notes: t.note.iter().map(task_note).collect(),
        permalink: extension(&t.extension, PERMALINK_URL)
            .and_then(|e| e.value_string.clone())
            .unwrap_or_default(),
        authored_at: parse_time(t.authored_on.as_deref()),
        due_at: parse_time(
            t.restriction
                .as_ref()
                .and_then(|r| r.period.as_ref())
                .and_then(|p| p.end.as_deref()),
        ),
        updated_at: parse_time(t.last_modified.as_deref()),
    }
}

pub fn prescription_status_from(s: &str) -> pb::PrescriptionStatus {
    match s {
        "active" => pb::PrescriptionStatus::Active,
        "cancelled" => pb::PrescriptionStatus::Cancelled,
        "stopped" => pb::PrescriptionStatus::Stopped,
        "entered-in-error" => pb::PrescriptionStatus::EnteredInError,
        "unknown" => pb::PrescriptionStatus::Unknown,
        _ => pb::PrescriptionStatus::Unspecified,
    }
}

pub fn prescription_status_code(s: pb::PrescriptionStatus) -> Option<&'static str> {
    match s {
        pb::PrescriptionStatus::Active => Some("active"),
        pb::PrescriptionStatus::Cancelled => Some("cancelled"),
        pb::PrescriptionStatus::Stopped => Some("stopped"),
        pb::PrescriptionStatus::EnteredInError => Some("entered-in-error"),
        pb::PrescriptionStatus::Unknown => Some("unknown"),
        pb::PrescriptionStatus::Unspecified => None,
    }
}

pub fn prescription(m: &fhir::MedicationRequest) -> pb::Prescription {
    let med = m.medication_codeable_concept.clone().unwrap_or_default();
    let dosage = m.dosage_instruction.first();
    let dispense = m.dispense_request.clone().unwrap_or_default();
    pb::Prescription {
        id: m.id.clone(),
        canvas_patient_id: m
            .subject
            .as_ref()
            .and_then(|r| r.id_of("Patient"))
            .unwrap_or_default()
            .to_owned(),
        status: prescription_status_from(&m.status) as i32,
        refill: m.intent == "filler-order",
        medication_display: med.label(),
        rxnorm_code: med.code_in(RXNORM_SYSTEM).unwrap_or_default().to_owned(),
        fdb_code: med.code_in(FDB_SYSTEM).unwrap_or_default().to_owned(),
        directions: dosage.and_then(|d| d.text.clone()).unwrap_or_default(),
        dose: dosage
            .and_then(|d| d.dose_and_rate.first())
            .and_then(|r| r.dose_quantity.as_ref())
            .map(fhir::Quantity::show)
            .unwrap_or_default(),
        quantity: dispense.quantity.as_ref().map(fhir::Quantity::show).unwrap_or_default(),
        days_supply: dispense
            .expected_supply_duration
            .as_ref()
            .and_then(|q| q.value.as_ref())
            .and_then(|v| v.as_f64())
            .map_or(0, |v| v as i32),
        refills_allowed: dispense.number_of_repeats_allowed.unwrap_or(0),
        substitution_allowed: m.substitution.as_ref().and_then(|s| s.allowed_boolean).unwrap_or(false),
        requester_practitioner_id: m
            .requester
            .as_ref()
            .and_then(|r| r.id_of("Practitioner"))
            .unwrap_or_default()
            .to_owned(),
        requester_name: m.requester.as_ref().and_then(|r| r.display.clone()).unwrap_or_default(),
        pharmacy: dispense.performer.and_then(|p| p.display).unwrap_or_default(),
        note: m.note.iter().map(|n| n.text.as_str()).collect::<Vec<_>>().join("\n"),
        authored_at: parse_time(m.authored_on.as_deref()),
    }
}

pub fn condition(c: &fhir::Condition) -> pb::Condition {
    let code = c.code.clone().unwrap_or_default();
    let first = code.first().cloned().unwrap_or_default();
    pb::Condition {
        id: c.id.clone(),
        code: first.code.unwrap_or_default(),
        code_system: first.system.unwrap_or_default(),
        display: first.display.or(code.text).unwrap_or_default(),
        clinical_status: c
            .clinical_status
            .as_ref()
            .and_then(|s| s.first())
            .and_then(|c| c.code.clone())
            .unwrap_or_default(),
        onset: c.onset_date_time.clone().unwrap_or_default(),
        recorded_at: parse_time(c.recorded_date.as_deref()),
    }
}

pub fn observation(o: &fhir::Observation) -> pb::Observation {
    let code = o.code.clone().unwrap_or_default();
    let first = code.first().cloned().unwrap_or_default();
    let (value, unit) = match (&o.value_quantity, &o.value_string) {
        (Some(q), _) => (
            q.value.as_ref().map(|v| v.to_string()).unwrap_or_default(),
            q.unit.clone().unwrap_or_default(),
        ),
        (None, Some(s)) => (s.clone(), String::new()),
        (None, None) => (String::new(), String::new()),
    };
    pb::Observation {
        id: o.id.clone(),
        code: first.code.unwrap_or_default(),
        code_system: first.system.unwrap_or_default(),
        display: first.display.or(code.text).unwrap_or_default(),
        category: o
            .category
            .first()
            .and_then(|c| c.first())
            .and_then(|c| c.code.clone())
            .unwrap_or_default(),
        value,
        unit,
        components: o
            .component
            .iter()
            .map(|c| {
                let code = c.code.clone().unwrap_or_default();
                let first = code.first().cloned().unwrap_or_default();
                pb::ObservationComponent {
                    code: first.code.unwrap_or_default(),
                    display: first.display.or(code.text).unwrap_or_default(),
                    value: c
                        .value_quantity
                        .as_ref()
                        .and_then(|q| q.value.as_ref().map(|v| v.to_string()))
                        .or_else(|| c.value_string.clone())
                        .unwrap_or_default(),
                    unit: c
                        .value_quantity
                        .as_ref()
                        .and_then(|q| q.unit.clone())
                        .unwrap_or_default(),
                }
            })
            .collect(),
        effective_at: parse_time(o.effective_date_time.as_deref()),
    }
}

pub fn questionnaire_response(q: &fhir::QuestionnaireResponse) -> pb::QuestionnaireResponse {
    pb::QuestionnaireResponse {
        id: q.id.clone(),
        questionnaire_id: q
            .questionnaire
            .as_deref()
            .map(|s| s.strip_prefix("Questionnaire/").unwrap_or(s).to_owned())
            .unwrap_or_default(),
        authored_at: parse_time(q.authored.as_deref()),
        answers: q
            .item
            .iter()
            .map(|i| pb::QuestionnaireAnswer {
                link_id: i.link_id.clone(),
                question: i.text.clone().unwrap_or_default(),
                answers: i.answer.iter().map(fhir::AnswerValue::show).collect(),
            })
            .collect(),
    }
}

pub fn communication(c: &fhir::Communication) -> pb::Communication {
    let sender_practitioner = c.sender.as_ref().and_then(|r| r.id_of("Practitioner"));
    let (direction, practitioner, patient) = match sender_practitioner {
        Some(p) => (
            pb::CommunicationDirection::PractitionerToPatient,
            p.to_owned(),
            c.recipient
                .iter()
                .find_map(|r| r.id_of("Patient"))
                .unwrap_or_default()
                .to_owned(),
        ),
        None => (
            pb::CommunicationDirection::PatientToPractitioner,
            c.recipient
                .iter()
                .find_map(|r| r.id_of("Practitioner"))
                .unwrap_or_default()
                .to_owned(),
            c.sender
                .as_ref()
                .and_then(|r| r.id_of("Patient"))
                .unwrap_or_default()
                .to_owned(),
        ),
    };
    pb::Communication {
        id: c.id.clone(),
        canvas_patient_id: patient,
        practitioner_id: practitioner,
        direction: direction as i32,
        body: c
            .payload
            .iter()
            .filter_map(|p| p.content_string.clone())
            .collect::<Vec<_>>()
            .join("\n"),
        status: c.status.clone(),
        sent_at: parse_time(c.sent.as_deref()),
        received_at: parse_time(c.received.as_deref()),
    }
}

pub fn schedule(s: &fhir::Schedule) -> pb::Schedule {
    let actor = s.actor.first();
    pb::Schedule {
        id: s.id.clone(),
        practitioner_id: actor
            .and_then(|r| r.id_of("Practitioner"))
            .unwrap_or_default()
            .to_owned(),
        practitioner_name: actor.and_then(|r| r.display.clone()).unwrap_or_default(),
        // Canvas schedule ids are "Location.<n>-Staff.<key>".
        location_id: s
            .id
            .strip_prefix("Location.")
            .and_then(|r| r.split('-').next())
            .unwrap_or_default()
            .to_owned(),
        comment: s.comment.clone().unwrap_or_default(),
    }
}

pub fn appointment_status_from(s: &str) -> pb::AppointmentStatus {
    use pb::AppointmentStatus as S;
    match s {
        "proposed" => S::Proposed,
        "pending" => S::Pending,
        "booked" => S::Booked,
        "arrived" => S::Arrived,
        "checked-in" => S::CheckedIn,
        "fulfilled" => S::Fulfilled,
        "noshow" => S::Noshow,
        "cancelled" => S::Cancelled,
        _ => S::Unspecified,
    }
}

pub fn appointment_status_code(s: pb::AppointmentStatus) -> Option<&'static str> {
    use pb::AppointmentStatus as S;
    Some(match s {
        S::Proposed => "proposed",
        S::Pending => "pending",
        S::Booked => "booked",
        S::Arrived => "arrived",
        S::CheckedIn => "checked-in",
        S::Fulfilled => "fulfilled",
        S::Noshow => "noshow",
        S::Cancelled => "cancelled",
        S::Unspecified => return None,
    })
}

pub fn appointment(a: &fhir::Appointment) -> pb::Appointment {
    let actor = |ty: &str| {
        a.participant
            .iter()
            .find_map(|p| p.actor.as_ref().and_then(|r| r.id_of(ty)))
            .unwrap_or_default()
            .to_owned()
    };
    let appointment_type = a
        .appointment_type
        .as_ref()
        .and_then(|t| t.first())
        .map(|c| {
            format!(
                "{}|{}",
                c.system.clone().unwrap_or_default(),
                c.code.clone().unwrap_or_default()
            )
        })
        .unwrap_or_default();
    pb::Appointment {
        id: a.id.clone(),
        canvas_patient_id: actor("Patient"),
        practitioner_id: actor("Practitioner"),
        location_id: a
            .supporting_information
            .iter()
            .find_map(|r| r.id_of("Location"))
            .unwrap_or_default()
            .to_owned(),
        status: appointment_status_from(&a.status) as i32,
        start_time: parse_time(a.start.as_deref()),
        end_time: parse_time(a.end.as_deref()),
        meeting_url: a
            .contained
            .iter()
            .find(|c| c.resource_type == "Endpoint")
            .and_then(|c| c.address.clone())
            .unwrap_or_default(),
        appointment_type,
        reason: a
            .reason_code
            .first()
            .map(fhir::CodeableConcept::label)
            .unwrap_or_default(),
        description: a.description.clone().unwrap_or_default(),
        note_id: extension(&a.extension, NOTE_ID_URL)
            .and_then(|e| e.value_id.clone())
            .unwrap_or_default(),
    }
}

/// RFC 3339 with seconds, as Canvas takes date-times.
pub fn rfc3339(t: &prost_types::Timestamp) -> Option<String> {
    from_timestamp(t).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}
