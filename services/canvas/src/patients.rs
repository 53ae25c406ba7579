//! Patients and the public intake flow: creating Canvas patients exactly once, finding them across
//! Canvas and our own index, and the submission that creates the patient, stores the encrypted
//! snapshot, writes the answers and opens the "Rx Review" task.

use chrono::{Datelike, NaiveDate, Utc};
use era_kit::error::FieldViolation;
use era_proto::{canvas::v1 as pb, common::v1::PageResponse};
use serde_json::json;

use crate::{
    app::{offset_from_token, offset_token, page_size, App},
    convert::{self, RX_REVIEW_LABEL, SUBMISSION_SYSTEM},
    error::{Error, Result},
    fhir::{model, FhirError},
    identity,
    queue::{check_id, newest_first, now, read_or_not_found},
    store::{canonical_submission, NewRecord, RecordFilter, Submission, WriteState},
};

// ---- validation ----

fn require(bad: &mut Vec<FieldViolation>, field: &str, value: &str, max: usize) {
    if value.trim().is_empty() {
        bad.push(FieldViolation::new(field, "is required"));
    } else if value.chars().count() > max {
        bad.push(FieldViolation::new(field, format!("must be at most {max} characters")));
    }
}

fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && !domain.contains('@')
}

/// `YYYY-MM-DD`, a real date, in the past, not before 1900.
pub(crate) fn parse_birth_date(s: &str) -> Option<NaiveDate> {
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    (s.len() == 10 && d.year() >= 1900 && d < Utc::now().date_naive()).then_some(d)
}

/// Every problem with the demographics, each naming its field under `prefix`.
pub(crate) fn validate_demographics(prefix: &str, d: &pb::IntakeDemographics, bad: &mut Vec<FieldViolation>) {
    let f = |name: &str| format!("{prefix}{name}");
    require(bad, &f("given_name"), &d.given_name, 100);
    require(bad, &f("family_name"), &d.family_name, 100);
    if d.preferred_name.chars().count() > 100 {
        bad.push(FieldViolation::new(
            f("preferred_name"),
            "must be at most 100 characters",
        ));
    }
    match parse_birth_date(&d.birth_date) {
        _ if d.birth_date.is_empty() => bad.push(FieldViolation::new(f("birth_date"), "is required")),
        None => bad.push(FieldViolation::new(
            f("birth_date"),
            "must be a past date written YYYY-MM-DD, not before 1900",
        )),
        Some(date) => {
            let today = Utc::now().date_naive();
            let age = today.years_since(date).unwrap_or(0);
            if age < 18 {
                bad.push(FieldViolation::new(f("birth_date"), "the patient must be at least 18"));
            }
        }
    }
    if matches!(pb::Gender::try_from(d.gender), Err(_) | Ok(pb::Gender::Unspecified)) {
        bad.push(FieldViolation::new(
            f("gender"),
            "is required (male, female, other or unknown)",
        ));
    }
    if matches!(
        pb::BirthSex::try_from(d.birth_sex),
        Err(_) | Ok(pb::BirthSex::Unspecified)
    ) {
        bad.push(FieldViolation::new(
            f("birth_sex"),
            "is required: Canvas records sex assigned at birth",
        ));
    }
    if d.email.trim().is_empty() {
        bad.push(FieldViolation::new(f("email"), "is required"));
    } else if !valid_email(d.email.trim()) {
        bad.push(FieldViolation::new(f("email"), "is not an email address"));
    }
    let phone_ok = d.phone.is_empty()
        || (d.phone.starts_with('+')
            && (8..=16).contains(&d.phone.len())
            && d.phone[1..].bytes().all(|b| b.is_ascii_digit()));
    if !phone_ok {
        bad.push(FieldViolation::new(f("phone"), "must be E.164, e.g. +15555550100"));
    }
    match &d.address {
        None => bad.push(FieldViolation::new(
            f("address"),
            "is required: the state decides routing",
        )),
        Some(a) => {
            if a.lines.is_empty() || a.lines.iter().all(|l| l.trim().is_empty()) {
                bad.push(FieldViolation::new(f("address.lines"), "is required"));
            } else if a.lines.len() > 3 || a.lines.iter().any(|l| l.chars().count() > 200) {
                bad.push(FieldViolation::new(
                    f("address.lines"),
                    "at most 3 lines of 200 characters",
                ));
            }
            require(bad, &f("address.city"), &a.city, 100);
            let state = a.state.trim();
            if state.len() != 2 || !state.bytes().all(|b| b.is_ascii_alphabetic()) {
                bad.push(FieldViolation::new(
                    f("address.state"),
                    "must be a two-letter state code",
                ));
            }
            let zip = a.postal_code.trim();
            let zip_ok = (zip.len() == 5 && zip.bytes().all(|b| b.is_ascii_digit()))
                || (zip.len() == 10
                    && zip.as_bytes()[5] == b'-'
                    && zip.bytes().enumerate().all(|(i, b)| i == 5 || b.is_ascii_digit()));
            if !zip_ok {
                bad.push(FieldViolation::new(
                    f("address.postal_code"),
                    "must be a US ZIP code (12345 or 12345-6789)",
                ));
            }
            if !a.country.is_empty() && a.country != "US" {
                bad.push(FieldViolation::new(f("address.country"), "must be US"));
            }
        }
    }
}

/// Trims what the patient typed and uppercases the state, so equal submissions compare equal.
fn normalise(d: &mut pb::IntakeDemographics) {
    for s in [
        &mut d.given_name,
        &mut d.family_name,
        &mut d.preferred_name,
        &mut d.email,
        &mut d.phone,
        &mut d.birth_date,
    ] {
        *s = s.trim().to_owned();
    }
    if let Some(a) = d.address.as_mut() {
        a.state = a.state.trim().to_ascii_uppercase();
        a.city = a.city.trim().to_owned();
        a.postal_code = a.postal_code.trim().to_owned();
        if a.country.is_empty() {
            a.country = "US".into();
        }
    }
}

/// What an idempotency key may hold: it ends up in Canvas searches, where `,` `|` `$` mean something.
pub(crate) const KEY_RULE: &str = "is required: 1-200 characters of letters, digits, '.', '_', ':' or '-'";

pub(crate) fn valid_key(key: &str) -> bool {
    (1..=200).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

fn valid_uuid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok() && s.len() == 36
}

fn validate_submission(req: &mut pb::SubmitIntakeRequest) -> Result<()> {
    let mut bad = Vec::new();
    if !valid_uuid(&req.submission_id) {
        bad.push(FieldViolation::new(
            "submission_id",
            "must be a UUID chosen by the client",
        ));
    }
    let Some(s) = req.submission.as_mut() else {
        bad.push(FieldViolation::new("submission", "is required"));
        return Err(Error::InvalidArgument(bad));
    };
    match s.demographics.as_mut() {
        None => bad.push(FieldViolation::new("submission.demographics", "is required")),
        Some(d) => {
            normalise(d);
            validate_demographics("submission.demographics.", d, &mut bad);
        }
    }
    s.medication = s.medication.trim().to_ascii_lowercase();
    if s.medication.is_empty() {
        bad.push(FieldViolation::new("submission.medication", "is required"));
    } else if s.medication.len() > 64 || !s.medication.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        bad.push(FieldViolation::new(
            "submission.medication",
            "must be a catalogue id such as semaglutide",
        ));
    }
    if s.answers.is_empty() {
        bad.push(FieldViolation::new(
            "submission.answers",
            "at least one answered question is required",
        ));
    }
    if s.answers.len() > 200 {
        bad.push(FieldViolation::new("submission.answers", "at most 200 answers"));
    }
    for (i, a) in s.answers.iter().enumerate() {
        if a.link_id.trim().is_empty() || a.link_id.len() > 100 {
            bad.push(FieldViolation::new(
                format!("submission.answers[{i}].link_id"),
                "is required (at most 100 characters)",
            ));
        }
        if a.answers.is_empty() {
            bad.push(FieldViolation::new(
                format!("submission.answers[{i}].answers"),
                "needs at least one answer",
            ));
        }
        if a.question.len() > 1000 || a.answers.iter().any(|x| x.len() > 4000) {
            bad.push(FieldViolation::new(
                format!("submission.answers[{i}]"),
                "question or answer too long",
            ));
        }
    }
    if s.metadata.len() > 50 || s.metadata.iter().any(|(k, v)| k.len() > 100 || v.len() > 1000) {
        bad.push(FieldViolation::new(
            "submission.metadata",
            "at most 50 entries of short text",
        ));
    }
    if req.raw_json.len() > 256 * 1024 {
        bad.push(FieldViolation::new("raw_json", "must be at most 256 KiB"));
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(Error::InvalidArgument(bad))
    }
}

// ---- patients ----

pub(crate) async fn create_patient(app: &App, req: &pb::CreatePatientRequest) -> Result<pb::CreatePatientResponse> {
    let mut d = pb::IntakeDemographics {
        given_name: req.given_name.clone(),
        family_name: req.family_name.clone(),
        preferred_name: req.preferred_name.clone(),
        birth_date: req.birth_date.clone(),
        gender: req.gender,
        birth_sex: req.birth_sex,
        email: req.email.clone(),
        phone: req.phone.clone(),
        address: req.address.clone(),
    };
    normalise(&mut d);
    let mut bad = Vec::new();
    validate_demographics("", &d, &mut bad);
    if !valid_key(&req.idempotency_key) {
        bad.push(FieldViolation::new("idempotency_key", KEY_RULE));
    }
    if !bad.is_empty() {
        return Err(Error::InvalidArgument(bad));
    }
    let key = format!("patient:{}", req.idempotency_key);
    let mac = app.store.fingerprint(
        "patient",
        &canonical_submission(
            "",
            &pb::IntakeSubmission {
                demographics: Some(d.clone()),
                ..Default::default()
            },
        ),
    );
    let _lock = app.store.lock_key(&key).await?;
    let existing = match app.store.begin_write(&key, "patient", &mac).await? {
        WriteState::Done { resource_id, .. } => Some(resource_id),
        WriteState::Unfinished { .. } => find_by_identifier(app, &key).await?,
        WriteState::New => None,
    };
    let (id, was_existing) = match existing {
        Some(id) => (id, true),
        None => (
            app.guarded(
                &key,
                app.fhir.create("Patient", &convert::patient_resource(&d, Some(&key))),
            )
            .await?,
            false,
        ),
    };
    app.store.finish_write(&key, &id, &json!({})).await?;
    let patient: model::Patient = app.fhir.read("Patient", &id).await?;
    Ok(pb::CreatePatientResponse {
        patient: Some(convert::patient(&patient)),
        existing: was_existing,
    })
}

/// The patient an earlier attempt created under this key, if Canvas has it.
async fn find_by_identifier(app: &App, key: &str) -> Result<Option<String>> {
    let page = app
        .fhir
        .search::<model::Patient>("Patient", &[("identifier", format!("{SUBMISSION_SYSTEM}|{key}"))])
        .await?;
    // Canvas has been seen to ignore some filters: check the identifier ourselves.
    Ok(page
        .items
        .into_iter()
        .find(|p| {
            p.identifier
                .iter()
                .any(|i| i.system.as_deref() == Some(SUBMISSION_SYSTEM) && i.value.as_deref() == Some(key))
        })
        .map(|p| p.id))
}

pub(crate) async fn get_patient(app: &App, req: &pb::GetPatientRequest) -> Result<pb::GetPatientResponse> {
    check_id("canvas_patient_id", &req.canvas_patient_id)?;
    let full = pb::PatientView::try_from(req.view) == Ok(pb::PatientView::Full);
    let patient: model::Patient = read_or_not_found(app, "Patient", &req.canvas_patient_id, "patient").await?;
    let mut out = pb::GetPatientResponse {
        patient: Some(convert::patient(&patient)),
        ..Default::default()
    };
    if full {
        let filter = RecordFilter {
            canvas_patient_id: Some(req.canvas_patient_id.clone()),
            limit: 100,
            ..Default::default()
        };
        let (page, prescriptions) = tokio::try_join!(
            app.store.list_records(&filter),
            prescriptions_of(app, &req.canvas_patient_id, None),
        )?;
        out.intake_records = page.records.iter().map(summary).collect();
        out.prescriptions = prescriptions;
    }
    Ok(out)
}

pub(crate) fn summary(r: &pb::IntakeRecord) -> pb::IntakeRecordSummary {
    pb::IntakeRecordSummary {
        id: r.id.clone(),
        canvas_patient_id: r.canvas_patient_id.clone(),
        submission_id: r.submission_id.clone(),
        medication: r.submission.as_ref().map(|s| s.medication.clone()).unwrap_or_default(),
        submitted_at: r.submitted_at,
    }
}

pub(crate) async fn prescriptions_of(
    app: &App,
    patient_id: &str,
    status: Option<&str>,
) -> Result<Vec<pb::Prescription>> {
    let mut params = vec![
        ("patient", format!("Patient/{patient_id}")),
        ("_count", "100".to_owned()),
    ];
    if let Some(s) = status {
        params.push(("status", s.to_owned()));
    }
    let found = app
        .fhir
        .search_all::<model::MedicationRequest>("MedicationRequest", &params, 500)
        .await?;
    let mut out: Vec<_> = found.iter().map(convert::prescription).collect();
    newest_first(&mut out, |p| p.authored_at);
    Ok(out)
}

/// One prescription as Canvas holds it now: the plugin's events name one, and only Canvas is believed.
pub(crate) async fn get_prescription(
    app: &App,
    req: &pb::GetPrescriptionRequest,
) -> Result<pb::GetPrescriptionResponse> {
    check_id("id", &req.id)?;
    let found: model::MedicationRequest = app.fhir.read("MedicationRequest", &req.id).await?;
    Ok(pb::GetPrescriptionResponse {
        prescription: Some(convert::prescription(&found)),
    })
}

pub(crate) async fn list_prescriptions(
    app: &App,
    req: &pb::ListPrescriptionsRequest,
) -> Result<pb::ListPrescriptionsResponse> {
    check_id("canvas_patient_id", &req.canvas_patient_id)?;
    let status = match pb::PrescriptionStatus::try_from(req.status) {
        Ok(s) => convert::prescription_status_code(s),
        Err(_) => return Err(Error::field("status", "is not a prescription status")),
    };
    let page = req.page.clone().unwrap_or_default();
    let size = page_size(page.page_size, 50) as usize;
    let offset = offset_from_token(&page.page_token)? as usize;
    let all = prescriptions_of(app, &req.canvas_patient_id, status).await?;
    let next = (all.len() > offset.saturating_add(size)).then(|| offset_token(offset.saturating_add(size) as u32));
    Ok(pb::ListPrescriptionsResponse {
        prescriptions: all.into_iter().skip(offset).take(size).collect(),
        page: Some(PageResponse {
            next_page_token: next.unwrap_or_default(),
        }),
    })
}

/// Finds patients by name, email or date of birth in Canvas, and by email or date of birth in our
/// intake index (patients whose Canvas contact details changed since intake still turn up).
pub(crate) async fn search(app: &App, req: &pb::SearchPatientsRequest) -> Result<pb::SearchPatientsResponse> {
    let (mut name, mut email, mut birth_date) = (
        req.name.trim().to_owned(),
        req.email.trim().to_owned(),
        req.birth_date.trim().to_owned(),
    );
    let query = req.query.trim();
    if !query.is_empty() {
        if query.contains('@') {
            email = query.to_owned();
        } else if NaiveDate::parse_from_str(query, "%Y-%m-%d").is_ok() {
            birth_date = query.to_owned();
        } else {
            name = query.to_owned();
        }
    }
    if name.is_empty() && email.is_empty() && birth_date.is_empty() {
        return Err(Error::field("query", "give a name, an email or a date of birth"));
    }
    if !birth_date.is_empty() {
        // Re-written from the parsed date, so `1984-3-9` finds what `1984-03-09` indexed.
        birth_date = NaiveDate::parse_from_str(&birth_date, "%Y-%m-%d")
            .map_err(|_| Error::field("birth_date", "must be written YYYY-MM-DD"))?
            .to_string();
    }
    if name.chars().count() > 100 || email.len() > 254 {
        return Err(Error::field("query", "is too long"));
    }
    let page = req.page.clone().unwrap_or_default();
    let size = page_size(page.page_size, 25);
    let offset = offset_from_token(&page.page_token)?;
    let mut params = vec![("_count", size.to_string()), ("_offset", offset.to_string())];
    if !name.is_empty() {
        params.push(("name", name.clone()));
    }
    if !email.is_empty() {
        params.push(("email", email.clone()));
    }
    if !birth_date.is_empty() {
        params.push(("birthdate", birth_date.clone()));
    }
    let found = app.fhir.search::<model::Patient>("Patient", &params).await?;
    let mut patients: Vec<pb::Patient> = found.items.iter().map(convert::patient).collect();
    // Our index can only match email and date of birth (names are not indexed), and only adds to the
    // first page.
    if offset == 0 && name.is_empty() {
        let ours = app
            .store
            .patients_matching(
                (!email.is_empty()).then_some(email.as_str()),
                (!birth_date.is_empty()).then_some(birth_date.as_str()),
            )
            .await?;
        let missing: Vec<String> = ours
            .into_iter()
            .filter(|id| !patients.iter().any(|p| &p.id == id))
            .collect();
        if !missing.is_empty() {
            let params = [("_id", missing.join(",")), ("_count", "100".to_owned())];
            let extra = app.fhir.search::<model::Patient>("Patient", &params).await?;
            patients.extend(extra.items.iter().map(convert::patient));
        }
    }
    Ok(pb::SearchPatientsResponse {
        patients,
        page: Some(PageResponse {
            next_page_token: found
                .next
                .map(|_| offset_token(offset.saturating_add(size as u32)))
                .unwrap_or_default(),
        }),
    })
}

// ---- intake ----

pub(crate) async fn submit_intake(app: &App, mut req: pb::SubmitIntakeRequest) -> Result<pb::SubmitIntakeResponse> {
    validate_submission(&mut req)?;
    let submission = req.submission.clone().unwrap_or_default();
    let demographics = submission.demographics.clone().unwrap_or_default();
    let state = demographics
        .address
        .as_ref()
        .map(|a| a.state.clone())
        .unwrap_or_default();
    let given_time = match &req.submitted_at {
        Some(t) => Some(convert::from_timestamp(t).ok_or_else(|| Error::field("submitted_at", "is not a valid time"))?),
        None => None,
    };
    // A given time is part of the submission; without one, each attempt reuses the first's.
    let time_context = given_time.map(|t| t.timestamp_micros().to_string()).unwrap_or_default();
    let key = format!("intake:{}", req.submission_id);
    let mac = app
        .store
        .fingerprint("intake", &canonical_submission(&time_context, &submission));
    // A finished submission answers with its first result, whatever routing or the questionnaire
    // say today.
    if let Some(finished) = app.store.finished_submission(&req.submission_id, &mac).await? {
        return Ok(done(&finished, true));
    }

    // Refuse a state the clinic does not serve before anything is written anywhere (our own
    // progress row included, so a corrected address can reuse the submission id).
    let route = app.route(&state, &submission.medication).await?;
    let prescriber_npi = route.prescriber.map(|p| p.npi).unwrap_or_default();
    let practitioner_id = app.practitioner_for_npi(&prescriber_npi).await?;

    // The answers as Canvas's questionnaire wants them, checked before anything is written.
    let questionnaire = if submission.questionnaire_id.is_empty() {
        app.intake_questionnaire_id.clone()
    } else {
        check_id("submission.questionnaire_id", &submission.questionnaire_id)?;
        submission.questionnaire_id.clone()
    };
    let response_items = if questionnaire.is_empty() {
        None
    } else {
        let q = app.questionnaire(&questionnaire, "submission.questionnaire_id").await?;
        Some((questionnaire, response_items(&q, &submission.answers)?))
    };

    // One lock per person, not per submission: it serialises repeats of this submission and the
    // same person's other intakes alike (so the second sees the chart the first made), and each call
    // holds one connection while it waits.
    let mut lock = app
        .store
        .lock_key(&format!("person:{}", app.store.email_index(&demographics.email)))
        .await?;
    let mut progress = app.store.submission(&req.submission_id, &mac).await?;
    if progress.completed {
        return Ok(done(&progress, true));
    }
    if progress.canvas_patient_id.is_none() {
        if let Some(review) = app.store.review_of_submission(&req.submission_id).await? {
            // Held: until a person decides, the same submission gets the same answer.
            return Ok(held(review.id));
        }
    }
    let resumed = progress.canvas_patient_id.is_some();
    let submitted_at = given_time.unwrap_or(progress.first_seen);

    let patient_id = match progress.canvas_patient_id.clone() {
        Some(id) => id,
        None => {
            let id = match find_by_identifier(app, &key).await? {
                Some(id) => id,
                None => match identity::match_intake(app, &demographics).await? {
                    identity::Match::Existing(id) => {
                        tracing::info!("intake matched an existing chart");
                        id
                    }
                    identity::Match::Review { reason, candidates } => {
                        let review = app
                            .store
                            .hold_for_review(&req.submission_id, reason, &candidates, &req)
                            .await?;
                        tracing::info!(reason, candidates = candidates.len(), "intake held for identity review");
                        return Ok(held(review));
                    }
                    identity::Match::New => {
                        lock.check().await?;
                        app.fhir
                            .create("Patient", &convert::patient_resource(&demographics, Some(&key)))
                            .await?
                    }
                },
            };
            progress.canvas_patient_id = Some(id.clone());
            app.store.save_submission(&req.submission_id, &progress).await?;
            id
        }
    };

    if progress.record_id.is_none() {
        let (record, _) = app
            .store
            .insert_record(NewRecord {
                submission_id: &req.submission_id,
                canvas_patient_id: &patient_id,
                submission: &submission,
                raw_json: &req.raw_json,
                submitted_at,
            })
            .await?;
        progress.record_id = record.id.parse().ok();
        app.store.save_submission(&req.submission_id, &progress).await?;
    }

    if let (Some((questionnaire, items)), None) = (&response_items, &progress.questionnaire_response_id) {
        let authored = submitted_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let existing = if resumed {
            find_response(app, &patient_id, questionnaire, &authored).await?
        } else {
            None
        };
        let id = match existing {
            Some(id) => id,
            None => {
                lock.check().await?;
                let resource = json!({
                    "resourceType": "QuestionnaireResponse",
                    "questionnaire": format!("Questionnaire/{questionnaire}"),
                    "status": "completed",
                    "subject": { "reference": format!("Patient/{patient_id}"), "type": "Patient" },
                    "author": { "reference": format!("Patient/{patient_id}"), "type": "Patient" },
                    "authored": authored,
                    "item": items,
                });
                match app.fhir.create("QuestionnaireResponse", &resource).await {
                    Ok(id) => id,
                    // The answers are checked against the questionnaire first, so Canvas refusing
                    // them is unexpected; they are safe in the intake record, and the review must
                    // not be held back for them. An empty id records "not written".
                    Err(FhirError::Rejected {
                        status: status @ (400 | 422),
                        code,
                        ..
                    }) => {
                        tracing::warn!(
                            status,
                            code,
                            "Canvas refused the intake answers; the task opens without them"
                        );
                        String::new()
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };
        progress.questionnaire_response_id = Some(id);
        app.store.save_submission(&req.submission_id, &progress).await?;
    }

    if progress.task_id.is_none() {
        let description = format!("{RX_REVIEW_LABEL}: intake {}", req.submission_id);
        let existing = if resumed {
            find_task(app, &patient_id, &req.submission_id).await?
        } else {
            None
        };
        let id = match existing {
            Some(id) => id,
            None => {
                lock.check().await?;
                let resource = json!({
                    "resourceType": "Task",
                    "status": "requested",
                    "intent": "unknown",
                    "description": description,
                    "for": { "reference": format!("Patient/{patient_id}") },
                    "requester": { "reference": format!("Practitioner/{practitioner_id}") },
                    "owner": { "reference": format!("Practitioner/{practitioner_id}") },
                    "authoredOn": now(),
                    "priority": "routine",
                    "input": [{ "type": { "text": "label" }, "valueString": RX_REVIEW_LABEL }],
                });
                let mut resource = resource;
                if progress.questionnaire_response_id.as_deref() == Some("") {
                    // The reviewer must know the answers are only in the intake record.
                    resource["note"] = json!([{
                        "text": "Canvas refused the intake answers; read them in the intake record.",
                        "time": now(),
                    }]);
                }
                app.fhir.create("Task", &resource).await?
            }
        };
        progress.task_id = Some(id);
    }
    progress.completed = true;
    app.store.save_submission(&req.submission_id, &progress).await?;
    tracing::info!(
        task_id = progress.task_id.as_deref().unwrap_or_default(),
        "intake submitted"
    );
    Ok(done(&progress, false))
}

/// The QuestionnaireResponse items for `answers`: every link id must be a question of `q`, a
/// single-answer question gets one answer, and each answer takes the question's type (a choice
/// becomes the option's coding, matched by code or display).
fn response_items(q: &model::Questionnaire, answers: &[pb::QuestionnaireAnswer]) -> Result<Vec<serde_json::Value>> {
    let mut bad = Vec::new();
    let mut items = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, a) in answers.iter().enumerate() {
        let field = format!("submission.answers[{i}]");
        if !seen.insert(a.link_id.as_str()) {
            bad.push(FieldViolation::new(
                format!("{field}.link_id"),
                "answers a question answered earlier in the list",
            ));
            continue;
        }
        let Some(question) = q.question(&a.link_id) else {
            bad.push(FieldViolation::new(
                format!("{field}.link_id"),
                "is not a question of the intake questionnaire",
            ));
            continue;
        };
        if a.answers.len() > 1 && question.repeats != Some(true) {
            bad.push(FieldViolation::new(
                format!("{field}.answers"),
                "this question takes one answer",
            ));
            continue;
        }
        let mut values = Vec::new();
        for v in &a.answers {
            let v = v.trim();
            let value = match question.kind.as_deref().unwrap_or("string") {
                "choice" | "open-choice" => question
                    .answer_option
                    .iter()
                    .filter_map(|o| o.value_coding.as_ref())
                    .find(|c| {
                        [c.code.as_deref(), c.display.as_deref()]
                            .into_iter()
                            .flatten()
                            .any(|x| x.eq_ignore_ascii_case(v))
                    })
                    .map(|c| json!({ "valueCoding": { "system": c.system, "code": c.code, "display": c.display } }))
                    .or_else(|| (question.kind.as_deref() == Some("open-choice")).then(|| json!({ "valueString": v }))),
                "integer" => v.parse::<i64>().ok().map(|n| json!({ "valueInteger": n })),
                "decimal" => v
                    .parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite())
                    .map(|n| json!({ "valueDecimal": n })),
                "boolean" => match v.to_ascii_lowercase().as_str() {
                    "yes" | "true" => Some(json!({ "valueBoolean": true })),
                    "no" | "false" => Some(json!({ "valueBoolean": false })),
                    _ => None,
                },
                "date" => NaiveDate::parse_from_str(v, "%Y-%m-%d")
                    .ok()
                    .map(|_| json!({ "valueDate": v })),
                _ => Some(json!({ "valueString": v })),
            };
            match value {
                Some(value) => values.push(value),
                None => {
                    let expected = match question.kind.as_deref() {
                        Some("choice") => "one of the question's options",
                        Some("integer") => "a whole number",
                        Some("decimal") => "a number",
                        Some("boolean") => "yes or no",
                        Some("date") => "a date written YYYY-MM-DD",
                        _ => "text",
                    };
                    bad.push(FieldViolation::new(
                        format!("{field}.answers"),
                        format!("must be {expected}"),
                    ));
                }
            }
        }
        items.push(json!({ "linkId": a.link_id, "text": question.text.clone().unwrap_or_else(|| a.question.clone()), "answer": values }));
    }
    for q in q
        .questions()
        .filter(|q| q.required == Some(true) && q.kind.as_deref() != Some("group"))
    {
        if !seen.contains(q.link_id.as_str()) {
            bad.push(FieldViolation::new(
                "submission.answers",
                format!("question {} is required", q.link_id),
            ));
        }
    }
    if bad.is_empty() {
        Ok(items)
    } else {
        Err(Error::InvalidArgument(bad))
    }
}

fn done(p: &Submission, existing: bool) -> pb::SubmitIntakeResponse {
    pb::SubmitIntakeResponse {
        canvas_patient_id: p.canvas_patient_id.clone().unwrap_or_default(),
        record_id: p.record_id.map(|r| r.to_string()).unwrap_or_default(),
        task_id: p.task_id.clone().unwrap_or_default(),
        existing,
        pending_review: false,
        review_id: String::new(),
    }
}

fn held(review: uuid::Uuid) -> pb::SubmitIntakeResponse {
    pb::SubmitIntakeResponse {
        pending_review: true,
        review_id: review.to_string(),
        ..Default::default()
    }
}

// ---- identity reviews ----

fn review_view(r: &crate::store::Review) -> pb::IdentityReview {
    pb::IdentityReview {
        id: r.id.to_string(),
        submission_id: r.submission_id.clone(),
        reason: r.reason.clone(),
        candidate_patient_ids: r.candidates.clone(),
        demographics: r.request.submission.as_ref().and_then(|s| s.demographics.clone()),
        created_at: Some(convert::timestamp(r.created_at)),
        resolved_at: r.resolved_at.map(convert::timestamp),
        resolved_by: r.resolved_by.clone().unwrap_or_default(),
        canvas_patient_id: r.canvas_patient_id.clone().unwrap_or_default(),
    }
}

pub(crate) async fn list_identity_reviews(
    app: &App,
    req: &pb::ListIdentityReviewsRequest,
) -> Result<pb::ListIdentityReviewsResponse> {
    let page = req.page.clone().unwrap_or_default();
    let size = page_size(page.page_size, 25);
    let offset = offset_from_token(&page.page_token)?;
    let mut reviews = app
        .store
        .reviews(req.include_resolved, i64::from(offset), i64::from(size) + 1)
        .await?;
    let more = reviews.len() > size as usize;
    reviews.truncate(size as usize);
    Ok(pb::ListIdentityReviewsResponse {
        reviews: reviews.iter().map(review_view).collect(),
        page: Some(PageResponse {
            next_page_token: if more {
                offset_token(offset + size as u32)
            } else {
                String::new()
            },
        }),
    })
}

/// Decides a held intake, then completes it as SubmitIntake would have.
pub(crate) async fn resolve_identity_review(
    app: &App,
    req: &pb::ResolveIdentityReviewRequest,
    by: &str,
) -> Result<pb::ResolveIdentityReviewResponse> {
    let id = uuid::Uuid::parse_str(req.review_id.trim()).map_err(|_| Error::field("review_id", "must be a UUID"))?;
    let review = app.store.review(id).await?.ok_or_else(|| Error::NotFound {
        what: "identity review",
        id: req.review_id.clone(),
    })?;
    if review.resolved_at.is_some() {
        return Err(Error::Precondition(
            "REVIEW_RESOLVED",
            "this review was already decided".into(),
        ));
    }
    let submission = review.request.submission.clone().unwrap_or_default();
    let demographics = submission.demographics.clone().unwrap_or_default();
    let patient_id = match &req.decision {
        Some(pb::resolve_identity_review_request::Decision::AttachToPatientId(patient)) => {
            check_id("attach_to_patient_id", patient)?;
            let chart: model::Patient = read_or_not_found(app, "Patient", patient, "patient").await?;
            if !chart.active.unwrap_or(true) {
                return Err(Error::field("attach_to_patient_id", "is not an active patient"));
            }
            chart.id
        }
        Some(pb::resolve_identity_review_request::Decision::CreateNewPatient(true)) => {
            let key = format!("intake:{}", review.submission_id);
            // Released before the intake is completed below, which takes the same lock.
            let _person = app
                .store
                .lock_key(&format!("person:{}", app.store.email_index(&demographics.email)))
                .await?;
            match find_by_identifier(app, &key).await? {
                Some(id) => id,
                None => {
                    app.fhir
                        .create("Patient", &convert::patient_resource(&demographics, Some(&key)))
                        .await?
                }
            }
        }
        _ => {
            return Err(Error::field(
                "decision",
                "give attach_to_patient_id or create_new_patient: true",
            ))
        }
    };
    // The decision is recorded first, so the intake can only ever join this chart.
    if !app.store.resolve_review(id, &patient_id, by).await? {
        return Err(Error::Precondition(
            "REVIEW_RESOLVED",
            "this review was already decided".into(),
        ));
    }
    let mac = app.store.fingerprint(
        "intake",
        &canonical_submission(
            &review
                .request
                .submitted_at
                .as_ref()
                .and_then(convert::from_timestamp)
                .map(|t| t.timestamp_micros().to_string())
                .unwrap_or_default(),
            &submission,
        ),
    );
    let mut progress = app.store.submission(&review.submission_id, &mac).await?;
    if progress.canvas_patient_id.is_none() {
        progress.canvas_patient_id = Some(patient_id);
        app.store.save_submission(&review.submission_id, &progress).await?;
    }
    let intake = submit_intake(app, review.request.clone()).await?;
    let review = app.store.review(id).await?.ok_or_else(|| Error::NotFound {
        what: "identity review",
        id: req.review_id.clone(),
    })?;
    tracing::info!(review = %id, "identity review decided");
    Ok(pb::ResolveIdentityReviewResponse {
        review: Some(review_view(&review)),
        intake: Some(intake),
    })
}

/// After a crash between Canvas creating the answers and us recording it: the response an earlier
/// attempt wrote has this patient, questionnaire and authored time.
async fn find_response(app: &App, patient: &str, questionnaire: &str, authored: &str) -> Result<Option<String>> {
    let params = [
        ("patient", format!("Patient/{patient}")),
        ("questionnaire", format!("Questionnaire/{questionnaire}")),
        ("_count", "100".to_owned()),
    ];
    let found = app
        .fhir
        .search_all::<model::QuestionnaireResponse>("QuestionnaireResponse", &params, 500)
        .await?;
    let wanted = convert::parse_time(Some(authored));
    Ok(found
        .into_iter()
        .find(|q| wanted.is_some() && convert::parse_time(q.authored.as_deref()) == wanted)
        .map(|q| q.id))
}

/// The task an earlier attempt opened names the submission in its description.
async fn find_task(app: &App, patient: &str, submission_id: &str) -> Result<Option<String>> {
    let params = [
        ("patient", format!("Patient/{patient}")),
        ("label", RX_REVIEW_LABEL.to_owned()),
        ("_count", "100".to_owned()),
    ];
    let found = app.fhir.search_all::<model::Task>("Task", &params, 500).await?;
    Ok(found
        .into_iter()
        .find(|t| t.description.as_deref().is_some_and(|d| d.contains(submission_id)))
        .map(|t| t.id))
}

// ---- intake records ----

pub(crate) async fn store_record(
    app: &App,
    req: &pb::StoreIntakeRecordRequest,
) -> Result<pb::StoreIntakeRecordResponse> {
    let mut bad = Vec::new();
    if check_id("canvas_patient_id", &req.canvas_patient_id).is_err() {
        bad.push(FieldViolation::new(
            "canvas_patient_id",
            "is required and must be a Canvas id",
        ));
    }
    if req.submission_id.trim().is_empty() || req.submission_id.len() > 200 {
        bad.push(FieldViolation::new(
            "submission_id",
            "is required (at most 200 characters)",
        ));
    }
    let mut submission = req.submission.clone().unwrap_or_default();
    match submission.demographics.as_mut() {
        None => bad.push(FieldViolation::new("submission.demographics", "is required")),
        Some(d) => normalise(d),
    }
    if !bad.is_empty() {
        return Err(Error::InvalidArgument(bad));
    }
    let submitted_at = match &req.submitted_at {
        Some(t) => convert::from_timestamp(t).ok_or_else(|| Error::field("submitted_at", "is not a valid time"))?,
        None => Utc::now(),
    };
    let (record, existing) = app
        .store
        .insert_record(NewRecord {
            submission_id: &req.submission_id,
            canvas_patient_id: &req.canvas_patient_id,
            submission: &submission,
            raw_json: &req.raw_json,
            submitted_at,
        })
        .await?;
    Ok(pb::StoreIntakeRecordResponse {
        record: Some(record),
        existing,
    })
}

pub(crate) fn parse_record_id(id: &str) -> Result<uuid::Uuid> {
    uuid::Uuid::parse_str(id).map_err(|_| Error::field("id", "must be a record id (UUID)"))
}

/// The keyset position a page token names.
pub(crate) fn record_cursor(token: &str) -> Result<Option<era_kit::time::Keyset>> {
    era_kit::time::parse_keyset(token).map_err(|_| Error::field("page.page_token", "is not a token this list issued"))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![".{0,80}", "[0-9-]{0,12}", "[a-z@.]{0,30}", Just(String::new())]
    }

    proptest! {
        /// Whatever a caller sends, the intake's checks answer (a list of named fields, or fine)
        /// without panicking, and what they accept is a date of birth and an email that parse.
        #[test]
        fn intake_checks_answer_any_submission(
            given in text(), family in text(), birth in text(), email in text(), phone in text(),
            state in text(), postal in text(), medication in text(), link in text(),
            id in prop_oneof![text(), Just("3f1c2a9e-5b7d-4c1e-9a2b-6d8e0f1a2b3c".to_owned())],
            answers in proptest::collection::vec(".{0,20}", 0..4),
            gender in any::<i32>(),
        ) {
            let mut req = pb::SubmitIntakeRequest {
                submission_id: id,
                submission: Some(pb::IntakeSubmission {
                    demographics: Some(pb::IntakeDemographics {
                        given_name: given,
                        family_name: family,
                        birth_date: birth,
                        email,
                        phone,
                        gender,
                        address: Some(era_proto::common::v1::Address {
                            lines: vec!["1 Main St".into()],
                            city: "Columbus".into(),
                            state,
                            postal_code: postal,
                            country: "US".into(),
                        }),
                        ..Default::default()
                    }),
                    medication,
                    answers: vec![pb::QuestionnaireAnswer { link_id: link, question: String::new(), answers }],
                    ..Default::default()
                }),
                ..Default::default()
            };
            if validate_submission(&mut req).is_ok() {
                let d = req.submission.unwrap().demographics.unwrap();
                prop_assert!(parse_birth_date(&d.birth_date).is_some());
                prop_assert!(valid_email(&d.email));
            }
        }
    }
}
