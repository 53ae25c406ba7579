//! Patients: the admin search and detail, prescriptions from Canvas, a patient's own intake records,
//! and the public intake submission.

use axum::{
    body::Bytes,
    extract::{
        rejection::{BytesRejection, PathRejection, QueryRejection},
        Path, Query, State,
    },
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use era_kit::auth::Caller;
use era_proto::canvas::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::views::{AddressView, AnswerView, IntakeRecordView, PatientView, PrescriptionView};
use crate::{
    auth::{Admin, Patient},
    error::{ApiError, ErrorBody, FieldError},
    routes::{grpc, ApiJson},
    AppState,
};

/// The largest intake body the public route takes.
pub const INTAKE_MAX_BYTES: usize = 256 * 1024;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/admin/patients", get(search_patients))
        .route("/api/admin/prescriptions/{patient_id}", get(prescriptions))
        .route("/api/patient-records/{patient_id}", get(patient_records))
        // An intake is a form: a quarter of a megabyte is ample, and the public route should not
        // take the edge's general limit.
        .route(
            "/api/intake/submit",
            post(submit_intake).layer(axum::extract::DefaultBodyLimit::max(INTAKE_MAX_BYTES)),
        )
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PatientQuery {
    /// Free text: an email, a date of birth (`YYYY-MM-DD`) or a name.
    pub q: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    /// `YYYY-MM-DD`.
    pub birth_date: Option<String>,
    pub page_size: Option<i32>,
    pub page_token: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PatientPage {
    pub items: Vec<PatientView>,
    pub next_page_token: String,
}

/// Patients by name, email or date of birth, across Canvas and the intake index.
#[utoipa::path(
    get, path = "/api/admin/patients", tag = "patients",
    security(("admin_secret" = []), ("admin_jwt" = [])),
    params(PatientQuery),
    responses((status = 200, body = PatientPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody))
)]
pub async fn search_patients(
    State(state): State<AppState>,
    Admin(caller): Admin,
    query: Result<Query<PatientQuery>, QueryRejection>,
) -> Result<ApiJson<PatientPage>, ApiError> {
    let Query(q) = query?;
    let req = pb::SearchPatientsRequest {
        query: q.q.unwrap_or_default(),
        name: q.name.unwrap_or_default(),
        email: q.email.unwrap_or_default(),
        birth_date: q.birth_date.unwrap_or_default(),
        page: super::views::page(q.page_size, q.page_token),
    };
    let resp = state
        .clients
        .canvas
        .clone()
        .search_patients(grpc(&state, &caller, req))
        .await?
        .into_inner();
    Ok(ApiJson(PatientPage {
        items: resp.patients.into_iter().map(Into::into).collect(),
        next_page_token: resp.page.map(|p| p.next_page_token).unwrap_or_default(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListQuery {
    pub page_size: Option<i32>,
    pub page_token: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrescriptionPage {
    pub items: Vec<PrescriptionView>,
    pub next_page_token: String,
}

/// A patient's prescriptions (Canvas MedicationRequest), newest first.
#[utoipa::path(
    get, path = "/api/admin/prescriptions/{patientId}", tag = "patients",
    security(("admin_secret" = []), ("admin_jwt" = [])),
    params(("patientId" = String, Path, description = "Canvas patient id"), ListQuery),
    responses((status = 200, body = PrescriptionPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody))
)]
pub async fn prescriptions(
    State(state): State<AppState>,
    Admin(caller): Admin,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<ApiJson<PrescriptionPage>, ApiError> {
    let (Path(id), Query(q)) = (id?, query?);
    let req = pb::ListPrescriptionsRequest {
        canvas_patient_id: id,
        status: 0,
        page: super::views::page(q.page_size, q.page_token),
    };
    let resp = state
        .clients
        .canvas
        .clone()
        .list_prescriptions(grpc(&state, &caller, req))
        .await?
        .into_inner();
    Ok(ApiJson(PrescriptionPage {
        items: resp.prescriptions.into_iter().map(Into::into).collect(),
        next_page_token: resp.page.map(|p| p.next_page_token).unwrap_or_default(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordPage {
    pub items: Vec<IntakeRecordView>,
    pub next_page_token: String,
}

/// A patient's immutable intake snapshots, newest first: the patient's own token, or `ADMIN_SECRET`.
#[utoipa::path(
    get, path = "/api/patient-records/{patientId}", tag = "patients",
    security(("patient_jwt" = []), ("admin_secret" = [])),
    params(("patientId" = String, Path, description = "Canvas patient id"), ListQuery),
    responses(
        (status = 200, body = RecordPage),
        (status = 401, body = ErrorBody),
        (status = 403, description = "another patient's records", body = ErrorBody),
    )
)]
pub async fn patient_records(
    State(state): State<AppState>,
    patient: Patient,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<ApiJson<RecordPage>, ApiError> {
    let (Path(id), Query(q)) = (id?, query?);
    patient.require(&id)?;
    let req = pb::ListIntakeRecordsRequest {
        canvas_patient_id: id,
        page: super::views::page(q.page_size, q.page_token),
        ..Default::default()
    };
    let resp = state
        .clients
        .canvas
        .clone()
        .list_intake_records(grpc(&state, &patient.0, req))
        .await?
        .into_inner();
    Ok(ApiJson(RecordPage {
        items: resp.records.into_iter().map(Into::into).collect(),
        next_page_token: resp.page.map(|p| p.next_page_token).unwrap_or_default(),
    }))
}

/// The patient's details as typed at intake.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DemographicsInput {
    pub given_name: String,
    pub family_name: String,
    #[serde(default)]
    pub preferred_name: String,
    /// `YYYY-MM-DD`.
    pub birth_date: String,
    /// male, female, other or unknown.
    pub gender: String,
    /// Sex assigned at birth: male, female, other or unknown.
    pub birth_sex: String,
    pub email: String,
    /// E.164, e.g. "+15555550100".
    #[serde(default)]
    pub phone: String,
    /// The shipping address; its state decides routing.
    pub address: AddressView,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubmissionInput {
    pub demographics: DemographicsInput,
    /// Medication id from the catalogue, e.g. "semaglutide".
    pub medication: String,
    /// Answers to the configured intake questionnaire (`CANVAS_INTAKE_QUESTIONNAIRE_ID`), each
    /// `linkId` one of its questions. The clinic's intake (as the sandbox seeds it) asks `medication`
    /// (a choice: `semaglutide` or `tirzepatide`); `height_in`, `weight_lb`, `goal_weight_lb`
    /// (integers); `glp1_history`, `conditions`, `medications_current`, `allergies`, `pregnancy`,
    /// `pancreatitis_history`, `thyroid_cancer_history`, `consent_telehealth` (text). An unknown id,
    /// a second answer to a single-answer question or a value of the wrong type is a 400 naming it.
    pub answers: Vec<AnswerView>,
    /// Non-clinical metadata: plan, source, discount code, consent versions.
    #[serde(default)]
    pub metadata: std::collections::BTreeMap<String, String>,
}

/// An intake held for an identity review.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntakePending {
    /// Always true.
    pub pending_review: bool,
    pub submission_id: String,
    /// Words for the patient.
    pub message: String,
}

/// The metadata key the client's own `submittedAt` is kept under.
pub const CLAIMED_SUBMITTED_AT: &str = "claimedSubmittedAt";

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IntakeSubmitRequest {
    /// The client's UUID for this submission: submitting it again returns the first result.
    pub submission_id: String,
    pub submission: SubmissionInput,
    /// When the client says the patient submitted (RFC 3339). A claim only: the record's time is
    /// the server's, and this value is kept beside it as `submission.metadata.claimedSubmittedAt`.
    #[serde(default)]
    pub submitted_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntakeSubmitResponse {
    pub canvas_patient_id: String,
    pub record_id: String,
    /// The "Rx Review" task opened for the submission.
    pub task_id: String,
    /// True when an earlier call with this submission id did the work.
    pub existing: bool,
    /// Lets this browser save the patient's card (`/api/intake/setup-intent`,
    /// `/api/intake/payment-method`) and nothing else; keep it in the page only.
    pub intake_token: String,
    /// RFC 3339.
    pub intake_token_expires_at: String,
}

/// A sex or gender as the form writes it.
fn sex_or_gender<T: Into<i32>>(
    field: &str,
    value: &str,
    [male, female, other, unknown]: [T; 4],
) -> Result<i32, FieldError> {
    Ok(match value {
        "male" => male,
        "female" => female,
        "other" => other,
        "unknown" => unknown,
        _ => {
            return Err(FieldError {
                field: field.into(),
                reason: "must be male, female, other or unknown".into(),
            })
        }
    }
    .into())
}

/// The public intake form: creates the Canvas patient, stores the encrypted snapshot and opens the
/// "Rx Review" task, once per `submissionId`.
#[utoipa::path(
    post, path = "/api/intake/submit", tag = "intake",
    request_body = IntakeSubmitRequest,
    responses(
        (status = 201, description = "submitted", body = IntakeSubmitResponse),
        (status = 200, description = "this submission id was submitted before; the first result", body = IntakeSubmitResponse),
        (status = 202, description = "held for an identity review (it could not be matched to one chart safely): no chart, task or token yet", body = IntakePending),
        (status = 400, description = "`fields` names every bad field", body = ErrorBody),
        (status = 422, description = "`state_excluded` and other routing refusals; `idempotency_key_reused`", body = ErrorBody),
        (status = 503, description = "`canvas_unavailable`", body = ErrorBody),
    )
)]
pub async fn submit_intake(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        });
    if !json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as application/json",
        ));
    }
    let body = body?;
    // Parsed from the bytes so the snapshot keeps exactly what the client sent.
    let axum::Json(input) = axum::Json::<IntakeSubmitRequest>::from_bytes(&body)?;
    let d = input.submission.demographics;
    // Both enums are checked before either error is returned, so the form learns of both at once.
    let gender = sex_or_gender(
        "submission.demographics.gender",
        &d.gender,
        [
            pb::Gender::Male,
            pb::Gender::Female,
            pb::Gender::Other,
            pb::Gender::Unknown,
        ],
    );
    let birth_sex = sex_or_gender(
        "submission.demographics.birthSex",
        &d.birth_sex,
        [
            pb::BirthSex::Male,
            pb::BirthSex::Female,
            pb::BirthSex::Other,
            pb::BirthSex::Unknown,
        ],
    );
    let (gender, birth_sex) = match (gender, birth_sex) {
        (Ok(g), Ok(b)) => (g, b),
        (g, b) => return Err(ApiError::invalid([g.err(), b.err()].into_iter().flatten().collect())),
    };
    // Anyone can call this route, so the time a record carries is ours; the client's is kept,
    // labelled as its claim (checked, so it is at least a time).
    let input_submission_id = input.submission_id.clone();
    let mut metadata: std::collections::BTreeMap<String, String> = input.submission.metadata;
    if let Some(claimed) = super::views::parse_time("submittedAt", input.submitted_at.as_deref())? {
        let claimed = era_kit::time::from_timestamp(&claimed)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
            .ok_or_else(|| ApiError::field("submittedAt", "is not a valid time"))?;
        metadata.insert(CLAIMED_SUBMITTED_AT.to_owned(), claimed);
    }
    let req = pb::SubmitIntakeRequest {
        submission_id: input.submission_id,
        submission: Some(pb::IntakeSubmission {
            demographics: Some(pb::IntakeDemographics {
                gender,
                birth_sex,
                given_name: d.given_name,
                family_name: d.family_name,
                preferred_name: d.preferred_name,
                birth_date: d.birth_date,
                email: d.email,
                phone: d.phone,
                address: Some(d.address.into()),
            }),
            medication: input.submission.medication,
            // The public form answers the configured questionnaire only.
            questionnaire_id: String::new(),
            answers: input.submission.answers.into_iter().map(Into::into).collect(),
            metadata: metadata.into_iter().collect(),
        }),
        raw_json: String::from_utf8_lossy(&body).into_owned(),
        submitted_at: None,
    };
    // The form is public: the edge calls canvas as itself.
    let caller = Caller::service("era-edge/intake");
    let resp = state
        .clients
        .canvas
        .clone()
        .submit_intake(grpc(&state, &caller, req))
        .await?
        .into_inner();
    if resp.pending_review {
        // Nothing was written to Canvas; the clinic will be in touch. No token: no chart yet to
        // save a card for.
        return Ok((
            StatusCode::ACCEPTED,
            ApiJson(IntakePending {
                pending_review: true,
                submission_id: input_submission_id,
                message:
                    "Thank you. We need to confirm a few details before your visit; our care team will contact you."
                        .into(),
            }),
        )
            .into_response());
    }
    let status = if resp.existing {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    // Only whoever holds the whole submission gets here (a repeat must match it), and the patient is
    // the one this submission created: the token proves the card belongs with it. Its id comes from
    // the submission's record, so a replayed submission's token opens the same one SetupIntent, not
    // another.
    let token = state
        .intake_tokens
        .issue_as(&resp.canvas_patient_id, &format!("intake-{}", resp.record_id));
    Ok((
        status,
        ApiJson(IntakeSubmitResponse {
            intake_token_expires_at: token.expires_at().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            intake_token: token.token,
            canvas_patient_id: resp.canvas_patient_id,
            record_id: resp.record_id,
            task_id: resp.task_id,
            existing: resp.existing,
        }),
    )
        .into_response())
}
