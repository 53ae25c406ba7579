//! The "Rx Review" queue: tasks enriched for the admin portal, the H&P package of one task, task
//! status changes and comments, and the H&P note.
//!
//! A queue page costs a fixed number of Canvas requests whatever its size: one Task search, then one
//! Patient search and one QuestionnaireResponse search batched over the page's patients (comma-
//! separated `_id` / `patient` values), run together. Intake records come from our own database.

use std::collections::{HashMap, HashSet};

use era_proto::canvas::v1 as pb;
use serde_json::{json, Value};

use crate::{
    app::{offset_from_token, offset_token, page_size, App},
    convert::{self, RX_REVIEW_LABEL},
    error::{Error, Result},
    fhir::{model, FhirError},
    pdf,
    store::WriteState,
};

/// The intake answers the queue shows at a glance.
pub(crate) const HIGHLIGHT_LINK_IDS: &[&str] = &[
    "height_in",
    "weight_lb",
    "goal_weight_lb",
    "glp1_history",
    "pregnancy",
    "pancreatitis_history",
    "thyroid_cancer_history",
];
/// The intake answer naming the medication requested.
pub(crate) const MEDICATION_LINK_ID: &str = "medication";
const DEFAULT_QUEUE_PAGE: i32 = 50;
/// LOINC "History and physical note" (Canvas's H&P document type).
pub(crate) const HP_LOINC: &str = "47039-3";
const DOC_EXT: &str = "http://schemas.canvasmedical.com/fhir/document-reference";

pub(crate) async fn list_tasks(app: &App, req: &pb::ListRxReviewTasksRequest) -> Result<pb::ListRxReviewTasksResponse> {
    let page = req.page.clone().unwrap_or_default();
    let size = page_size(page.page_size, DEFAULT_QUEUE_PAGE);
    let offset = offset_from_token(&page.page_token)?;
    let status = match pb::TaskStatus::try_from(req.status) {
        Ok(pb::TaskStatus::Unspecified) => "requested",
        Ok(s) => convert::task_status_code(s).unwrap_or("requested"),
        Err(_) => return Err(Error::field("status", "is not a task status")),
    };
    let mut params = vec![
        ("label", RX_REVIEW_LABEL.to_owned()),
        ("status", status.to_owned()),
        ("_count", size.to_string()),
        ("_offset", offset.to_string()),
    ];
    if !req.practitioner_id.is_empty() {
        check_id("practitioner_id", &req.practitioner_id)?;
        params.push(("owner", format!("Practitioner/{}", req.practitioner_id)));
    }
    if !req.canvas_patient_id.is_empty() {
        check_id("canvas_patient_id", &req.canvas_patient_id)?;
        params.push(("patient", format!("Patient/{}", req.canvas_patient_id)));
    }
    let tasks = app.fhir.search::<model::Task>("Task", &params).await?;
    let patient_ids = unique(tasks.items.iter().filter_map(|t| t.patient_id().map(str::to_owned)));
    let submission_ids = unique(tasks.items.iter().filter_map(|t| submission_of(t).map(str::to_owned)));
    let (patients, responses, latest, by_submission) = tokio::try_join!(
        patients_by_id(app, &patient_ids),
        latest_responses(app, &patient_ids),
        async { app.store.latest_records(&patient_ids).await },
        async { app.store.records_by_submission(&submission_ids).await },
    )?;
    let items = tasks
        .items
        .iter()
        .map(|t| {
            let mut task = convert::task(t);
            task.patient = patients.get(&task.canvas_patient_id).map(convert::patient);
            // The intake behind this task when it names one, else the patient's newest.
            // A description can be edited in Canvas: the record must also be this patient's.
            let record = submission_of(t)
                .and_then(|s| by_submission.get(s))
                .filter(|r| r.canvas_patient_id == task.canvas_patient_id)
                .or_else(|| latest.get(&task.canvas_patient_id));
            let summary = summary_of(record, responses.get(&task.canvas_patient_id));
            task.medication = summary.as_ref().map(|s| s.medication.clone()).unwrap_or_default();
            task.intake_summary = summary;
            task
        })
        .collect();
    Ok(pb::ListRxReviewTasksResponse {
        tasks: items,
        page: Some(era_proto::common::v1::PageResponse {
            next_page_token: tasks
                .next
                .map(|_| offset_token(offset.saturating_add(size as u32)))
                .unwrap_or_default(),
        }),
        total_size: tasks.total.map_or(0, |t| t as i32),
    })
}

pub(crate) async fn get_task(app: &App, task_id: &str) -> Result<pb::GetRxReviewTaskResponse> {
    check_id("task_id", task_id)?;
    let task: model::Task = read_or_not_found(app, "Task", task_id, "task").await?;
    let patient_id = task
        .patient_id()
        .ok_or_else(|| Error::Precondition("TASK_HAS_NO_PATIENT", format!("task {task_id} is not about a patient")))?
        .to_owned();
    let practitioner_ids = unique(
        [task.owner.as_ref(), task.requester.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(|r| r.id_of("Practitioner").map(str::to_owned)),
    );
    let by_patient = vec![
        ("patient", format!("Patient/{patient_id}")),
        ("_count", "100".to_owned()),
    ];
    let (patient, responses, conditions, observations, prescriptions, practitioners, records) = tokio::try_join!(
        async { Ok::<_, Error>(app.fhir.read::<model::Patient>("Patient", &patient_id).await?) },
        async {
            let mut p = by_patient.clone();
            p.push(("_sort", "-authored".into()));
            Ok::<_, Error>(
                app.fhir
                    .search_all::<model::QuestionnaireResponse>("QuestionnaireResponse", &p, 100)
                    .await?,
            )
        },
        async {
            Ok::<_, Error>(
                app.fhir
                    .search_all::<model::Condition>("Condition", &by_patient, 200)
                    .await?,
            )
        },
        async {
            Ok::<_, Error>(
                app.fhir
                    .search_all::<model::Observation>("Observation", &by_patient, 200)
                    .await?,
            )
        },
        async {
            Ok::<_, Error>(
                app.fhir
                    .search_all::<model::MedicationRequest>("MedicationRequest", &by_patient, 200)
                    .await?,
            )
        },
        async {
            if practitioner_ids.is_empty() {
                return Ok(Vec::new());
            }
            let params = [
                ("_id", practitioner_ids.join(",")),
                ("include-non-schedulable-practitioners", "true".to_owned()),
                ("_count", "100".to_owned()),
            ];
            Ok::<_, Error>(
                app.fhir
                    .search::<model::Practitioner>("Practitioner", &params)
                    .await?
                    .items,
            )
        },
        async { app.store.latest_records(std::slice::from_ref(&patient_id)).await },
    )?;
    let own = match submission_of(&task) {
        Some(s) => app.store.records_by_submission(&[s.to_owned()]).await?.remove(s),
        None => None,
    };
    let record = own
        .filter(|r| r.canvas_patient_id == patient_id)
        .or_else(|| records.get(&patient_id).cloned());
    let mut summary_task = convert::task(&task);
    summary_task.patient = Some(convert::patient(&patient));
    let summary = summary_of(record.as_ref(), responses.first());
    summary_task.medication = summary.as_ref().map(|s| s.medication.clone()).unwrap_or_default();
    summary_task.intake_summary = summary;
    let dosage_options = match summary_task.medication.as_str() {
        "" => Vec::new(),
        med => app
            .medication(med)
            .await?
            .map(|m| dosage_options(&m))
            .unwrap_or_default(),
    };
    let mut prescriptions: Vec<_> = prescriptions.iter().map(convert::prescription).collect();
    newest_first(&mut prescriptions, |p| p.authored_at);
    Ok(pb::GetRxReviewTaskResponse {
        patient: summary_task.patient.clone(),
        task: Some(summary_task),
        intake_record: record,
        questionnaire_responses: responses.iter().map(convert::questionnaire_response).collect(),
        conditions: conditions.iter().map(convert::condition).collect(),
        observations: observations.iter().map(convert::observation).collect(),
        assigned_practitioners: practitioners.iter().map(convert::practitioner).collect(),
        dosage_options,
        prescriptions,
    })
}

/// The submission an intake task was opened for: its description ends `intake <submission id>`.
pub(crate) fn submission_of(task: &model::Task) -> Option<&str> {
    let id = task.description.as_deref()?.rsplit_once("intake ")?.1.trim();
    (id.len() == 36 && uuid::Uuid::parse_str(id).is_ok()).then_some(id)
}

fn dosage_options(m: &era_proto::pharmacy_routing::v1::Medication) -> Vec<pb::DosageOption> {
    m.doses
        .iter()
        .map(|d| pb::DosageOption {
            medication: m.id.clone(),
            label: d.label.clone(),
            strength: d.strength.clone(),
            directions: d.directions.clone(),
            price: m.price.clone(),
        })
        .collect()
}

/// The queue's summary of a patient's intake: our own record when there is one (it is what the
/// patient submitted), else the newest questionnaire response in Canvas.
fn summary_of(
    record: Option<&pb::IntakeRecord>,
    response: Option<&model::QuestionnaireResponse>,
) -> Option<pb::IntakeSummary> {
    if let Some(r) = record {
        let submission = r.submission.clone().unwrap_or_default();
        return Some(pb::IntakeSummary {
            record_id: r.id.clone(),
            submitted_at: r.submitted_at,
            medication: submission.medication.clone(),
            highlights: submission
                .answers
                .into_iter()
                .filter(|a| HIGHLIGHT_LINK_IDS.contains(&a.link_id.as_str()))
                .collect(),
        });
    }
    let q = response?;
    let converted = convert::questionnaire_response(q);
    Some(pb::IntakeSummary {
        record_id: String::new(),
        submitted_at: converted.authored_at,
        medication: q.answer_code(MEDICATION_LINK_ID).unwrap_or_default(),
        highlights: converted
            .answers
            .into_iter()
            .filter(|a| HIGHLIGHT_LINK_IDS.contains(&a.link_id.as_str()))
            .collect(),
    })
}

async fn patients_by_id(app: &App, ids: &[String]) -> Result<HashMap<String, model::Patient>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let params = [("_id", ids.join(",")), ("_count", "100".to_owned())];
    let page = app.fhir.search::<model::Patient>("Patient", &params).await?;
    Ok(page.items.into_iter().map(|p| (p.id.clone(), p)).collect())
}

/// The newest questionnaire response of each patient, in one search.
async fn latest_responses(app: &App, ids: &[String]) -> Result<HashMap<String, model::QuestionnaireResponse>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let patients = ids
        .iter()
        .map(|id| format!("Patient/{id}"))
        .collect::<Vec<_>>()
        .join(",");
    let params = [
        ("patient", patients),
        ("_sort", "-authored".to_owned()),
        ("_count", "100".to_owned()),
    ];
    let page = app
        .fhir
        .search::<model::QuestionnaireResponse>("QuestionnaireResponse", &params)
        .await?;
    let mut out = HashMap::new();
    for q in page.items {
        if let Some(pid) = q.subject.as_ref().and_then(|s| s.id_of("Patient")).map(str::to_owned) {
            // Sorted newest first: keep the first seen per patient.
            out.entry(pid).or_insert(q);
        }
    }
    Ok(out)
}

pub(crate) async fn update_status(
    app: &App,
    req: &pb::UpdateTaskStatusRequest,
) -> Result<pb::UpdateTaskStatusResponse> {
    check_id("task_id", &req.task_id)?;
    let status = pb::TaskStatus::try_from(req.status)
        .ok()
        .and_then(convert::task_status_code)
        .ok_or_else(|| Error::field("status", "must be requested, completed or cancelled"))?;
    if req.note.len() > 4000 {
        return Err(Error::field("note", "must be at most 4000 characters"));
    }
    let mut resource: Value = read_or_not_found(app, "Task", &req.task_id, "task").await?;
    if resource["status"] == status {
        // Already there (a retry, or another reviewer): nothing to write, and the comment, which
        // belongs with the change, is not added twice.
        let task: model::Task = serde_json::from_value(resource)
            .map_err(|_| crate::fhir::FhirError::Protocol("a task Canvas returned is unreadable".into()))?;
        return Ok(pb::UpdateTaskStatusResponse {
            task: Some(convert::task(&task)),
        });
    }
    resource["status"] = json!(status);
    let note = (!req.note.trim().is_empty()).then(|| json!({ "text": req.note.trim(), "time": now() }));
    put_task(app, &req.task_id, resource, note).await?;
    let task: model::Task = app.fhir.read("Task", &req.task_id).await?;
    Ok(pb::UpdateTaskStatusResponse {
        task: Some(convert::task(&task)),
    })
}

/// PUTs a task read a moment ago. Canvas clears fields a PUT leaves out, so the whole resource goes
/// back; but it adds every `note` in the body as a new comment, so only the new one is sent.
async fn put_task(app: &App, id: &str, mut resource: Value, note: Option<Value>) -> crate::fhir::FhirResult<()> {
    // Conditional on the version read, so a colleague's change in between is not overwritten.
    let last_updated = resource["meta"]["lastUpdated"].as_str().map(str::to_owned);
    if let Some(obj) = resource.as_object_mut() {
        obj.remove("note");
        obj.remove("meta");
        obj.remove("lastModified");
        if let Some(note) = note {
            obj.insert("note".into(), json!([note]));
        }
    }
    app.fhir
        .update_unmodified_since("Task", id, &resource, last_updated.as_deref())
        .await
}

pub(crate) async fn add_note(app: &App, req: &pb::AddTaskNoteRequest) -> Result<pb::AddTaskNoteResponse> {
    check_id("task_id", &req.task_id)?;
    let text = req.text.trim();
    let mut bad = Vec::new();
    if text.is_empty() {
        bad.push(era_kit::error::FieldViolation::new("text", "is required"));
    } else if text.len() > 4000 {
        bad.push(era_kit::error::FieldViolation::new(
            "text",
            "must be at most 4000 characters",
        ));
    }
    if !crate::patients::valid_key(&req.idempotency_key) {
        bad.push(era_kit::error::FieldViolation::new(
            "idempotency_key",
            crate::patients::KEY_RULE,
        ));
    }
    if !req.practitioner_id.is_empty() && check_id("practitioner_id", &req.practitioner_id).is_err() {
        bad.push(era_kit::error::FieldViolation::new(
            "practitioner_id",
            "is not a Canvas id",
        ));
    }
    if !bad.is_empty() {
        return Err(Error::InvalidArgument(bad));
    }
    let key = format!("task-note:{}", req.idempotency_key);
    let mac = app.store.fingerprint(
        "task-note",
        format!("{}\n{}\n{}", req.task_id, req.practitioner_id, text).as_bytes(),
    );
    let _lock = app.store.lock_key(&key).await?;
    let note_of = |result: &Value| pb::TaskNote {
        text: text.to_owned(),
        author_practitioner_id: req.practitioner_id.clone(),
        created_at: convert::parse_time(result["time"].as_str()),
    };
    match app.store.begin_write(&key, "task-note", &mac).await? {
        WriteState::Done { result, .. } => {
            return Ok(pb::AddTaskNoteResponse {
                note: Some(note_of(&result)),
                existing: true,
            })
        }
        WriteState::Unfinished { started_at } => {
            // An earlier attempt may have added it before its answer was lost: look before adding,
            // for this text by this author, written after that attempt started.
            let task: model::Task = app.fhir.read("Task", &req.task_id).await?;
            let since = (started_at - chrono::Duration::minutes(1)).timestamp();
            let author = (!req.practitioner_id.is_empty()).then_some(req.practitioner_id.as_str());
            if let Some(n) = task.note.iter().rev().find(|n| {
                n.text == text
                    && n.author_reference.as_ref().and_then(|r| r.id_of("Practitioner")) == author
                    && convert::parse_time(n.time.as_deref()).is_some_and(|t| t.seconds >= since)
            }) {
                let result = json!({ "time": n.time });
                app.store.finish_write(&key, &req.task_id, &result).await?;
                return Ok(pb::AddTaskNoteResponse {
                    note: Some(note_of(&result)),
                    existing: true,
                });
            }
        }
        WriteState::New => {}
    }
    let resource: Value = read_or_not_found(app, "Task", &req.task_id, "task").await?;
    let time = now();
    let mut note = json!({ "text": text, "time": time });
    if !req.practitioner_id.is_empty() {
        note["authorReference"] = json!({ "reference": format!("Practitioner/{}", req.practitioner_id) });
    }
    app.guarded(&key, put_task(app, &req.task_id, resource, Some(note)))
        .await?;
    let result = json!({ "time": time });
    app.store.finish_write(&key, &req.task_id, &result).await?;
    Ok(pb::AddTaskNoteResponse {
        note: Some(note_of(&result)),
        existing: false,
    })
}

/// Writes the H&P note as a DocumentReference (LOINC 47039-3) carrying a PDF of the note: FHIR,
/// generally available, with the token and scopes the service already has (the Note API is beta,
/// needs scopes older OAuth apps lack, and takes no narrative body).
pub(crate) async fn create_hp_note(app: &App, req: &pb::CreateHpNoteRequest) -> Result<pb::CreateHpNoteResponse> {
    let mut bad = Vec::new();
    for (field, value) in [
        ("task_id", &req.task_id),
        ("canvas_patient_id", &req.canvas_patient_id),
        ("practitioner_id", &req.practitioner_id),
    ] {
        if check_id(field, value).is_err() {
            bad.push(era_kit::error::FieldViolation::new(
                field,
                "is required and must be a Canvas id",
            ));
        }
    }
    if !crate::patients::valid_key(&req.idempotency_key) {
        bad.push(era_kit::error::FieldViolation::new(
            "idempotency_key",
            crate::patients::KEY_RULE,
        ));
    }
    if req.body.len() > 100_000 {
        bad.push(era_kit::error::FieldViolation::new(
            "body",
            "must be at most 100000 characters",
        ));
    }
    if !bad.is_empty() {
        return Err(Error::InvalidArgument(bad));
    }
    let title = if req.title.trim().is_empty() {
        "History & Physical".to_owned()
    } else {
        req.title.trim().to_owned()
    };
    let key = format!("hp-note:{}", req.idempotency_key);
    let mac = app.store.fingerprint(
        "hp-note",
        format!(
            "{}\n{}\n{}\n{}\n{}\n{}\n{}",
            req.task_id, req.canvas_patient_id, req.practitioner_id, title, req.body, req.medication, req.dose_label
        )
        .as_bytes(),
    );
    let attachment_title = format!("hp-{}.pdf", req.idempotency_key);
    let _lock = app.store.lock_key(&key).await?;
    let note_of = |id: &str, result: &Value| pb::HpNote {
        id: id.to_owned(),
        task_id: req.task_id.clone(),
        canvas_patient_id: req.canvas_patient_id.clone(),
        practitioner_id: req.practitioner_id.clone(),
        title: title.clone(),
        created_at: convert::parse_time(result["createdAt"].as_str()),
    };
    match app.store.begin_write(&key, "hp-note", &mac).await? {
        WriteState::Done { resource_id, result } => {
            return Ok(pb::CreateHpNoteResponse {
                note: Some(note_of(&resource_id, &result)),
                existing: true,
            })
        }
        WriteState::Unfinished { .. } => {
            let params = [
                ("patient", format!("Patient/{}", req.canvas_patient_id)),
                ("type", format!("http://loinc.org|{HP_LOINC}")),
                ("_count", "100".to_owned()),
            ];
            let docs = app
                .fhir
                .search_all::<model::DocumentReference>("DocumentReference", &params, 500)
                .await?;
            if let Some(doc) = docs.iter().find(|d| {
                d.content
                    .first()
                    .and_then(|c| c.attachment.title.as_deref())
                    .is_some_and(|t| t == attachment_title)
            }) {
                let result = json!({ "createdAt": now() });
                app.store.finish_write(&key, &doc.id, &result).await?;
                return Ok(pb::CreateHpNoteResponse {
                    note: Some(note_of(&doc.id, &result)),
                    existing: true,
                });
            }
        }
        WriteState::New => {}
    }
    let mut lines = vec![format!("Task: {}", req.task_id)];
    if !req.medication.is_empty() {
        lines.push(format!("Medication: {} {}", req.medication, req.dose_label));
    }
    lines.push(String::new());
    lines.extend(req.body.lines().map(str::to_owned));
    let pdf = pdf::render(&title, &lines);
    let today = chrono::Utc::now().date_naive().to_string();
    let resource = json!({
        "resourceType": "DocumentReference",
        "extension": [
            { "url": format!("{DOC_EXT}-clinical-date"), "valueDate": today },
            { "url": format!("{DOC_EXT}-reviewer"), "valueReference": { "reference": format!("Practitioner/{}", req.practitioner_id) } },
            { "url": format!("{DOC_EXT}-requires-signature"), "valueBoolean": true },
            { "url": format!("{DOC_EXT}-review-mode"), "valueCode": "RN" },
        ],
        "status": "current",
        "type": { "coding": [{ "system": "http://loinc.org", "code": HP_LOINC, "display": "History and physical note" }] },
        "category": [{ "coding": [{ "system": "http://schemas.canvasmedical.com/fhir/document-reference-category", "code": "uncategorizedclinicaldocument" }] }],
        "subject": { "reference": format!("Patient/{}", req.canvas_patient_id) },
        "author": [{ "reference": format!("Practitioner/{}", req.practitioner_id) }],
        // Canvas wants the document type's standard title here.
        "description": "Hospital History & Physical",
        "content": [{ "attachment": {
            "contentType": "application/pdf",
            "title": attachment_title,
            "data": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, pdf),
        } }],
    });
    let id = app
        .guarded(&key, app.fhir.create("DocumentReference", &resource))
        .await?;
    let result = json!({ "createdAt": now() });
    app.store.finish_write(&key, &id, &result).await?;
    Ok(pb::CreateHpNoteResponse {
        note: Some(note_of(&id, &result)),
        existing: false,
    })
}

pub(crate) async fn list_practitioners(
    app: &App,
    req: &pb::ListPractitionersRequest,
) -> Result<pb::ListPractitionersResponse> {
    let page = req.page.clone().unwrap_or_default();
    let size = page_size(page.page_size, 100);
    let offset = offset_from_token(&page.page_token)?;
    let mut params = vec![("_count", size.to_string()), ("_offset", offset.to_string())];
    if req.include_non_schedulable {
        params.push(("include-non-schedulable-practitioners", "true".into()));
    }
    if req.include_inactive {
        params.push(("active", "false,true".into()));
    }
    let npi = req.npi.trim();
    if !npi.is_empty() {
        if npi.len() != 10 || !npi.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::field("npi", "must be 10 digits"));
        }
        params.push(("npi-number", npi.to_owned()));
    }
    if !req.name.trim().is_empty() {
        params.push(("name", req.name.trim().to_owned()));
    }
    let found = app.fhir.search::<model::Practitioner>("Practitioner", &params).await?;
    let practitioners = found
        .items
        .iter()
        .map(convert::practitioner)
        // Canvas has been seen to ignore the NPI filter; enforce it here.
        .filter(|p| npi.is_empty() || p.npi == npi)
        .collect();
    Ok(pb::ListPractitionersResponse {
        practitioners,
        page: Some(era_proto::common::v1::PageResponse {
            next_page_token: found
                .next
                .map(|_| offset_token(offset.saturating_add(size as u32)))
                .unwrap_or_default(),
        }),
    })
}

/// Reads a resource, answering NOT_FOUND naming `what` when Canvas does not know the id.
pub(crate) async fn read_or_not_found<T: serde::de::DeserializeOwned>(
    app: &App,
    ty: &str,
    id: &str,
    what: &'static str,
) -> Result<T> {
    match app.fhir.read::<T>(ty, id).await {
        Ok(t) => Ok(t),
        Err(FhirError::NotFound { .. }) => Err(Error::not_found(what, id)),
        Err(e) => Err(e.into()),
    }
}

/// Canvas ids are hex keys or short tokens; anything else is refused before it reaches a URL.
pub(crate) fn check_id(field: &str, id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && !id.contains("..")
        && id != "."
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(Error::field(field, "must be a Canvas id"))
    }
}

pub(crate) fn unique(ids: impl Iterator<Item = String>) -> Vec<String> {
    let mut seen = HashSet::new();
    ids.filter(|id| seen.insert(id.clone())).collect()
}

pub(crate) fn newest_first<T>(items: &mut [T], key: impl Fn(&T) -> Option<prost_types::Timestamp>) {
    items.sort_by_key(|i| std::cmp::Reverse(key(i).map(|t| (t.seconds, t.nanos))));
}

pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
