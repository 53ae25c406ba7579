//! The approval pipeline at the edge: approving or denying an "Rx Review" task (by route, or by the
//! Canvas plugin's generic `/api/task-action`), and the orchestration runs it leaves behind. The
//! pipeline itself lives in pharmacy-routing; these routes validate, forward the admin and map the
//! answer back.

use axum::{
    extract::{
        rejection::{PathRejection, QueryRejection},
        Path, Query, State,
    },
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use era_kit::auth::Caller;
use era_proto::{common::v1::Actor, pharmacy_routing::v1 as pb};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::views::{page, rfc3339, snake, status_filter};
use crate::{
    auth::Admin,
    error::{ApiError, ErrorBody, FieldError},
    routes::{grpc, idempotency_key, ApiJson},
    AppState,
};

/// The longest approval note (it goes into the H&P note written to Canvas).
pub const NOTE_MAX_CHARS: usize = 4000;
/// The longest denial reason (the patient is told it).
pub const DENIAL_REASON_MAX_CHARS: usize = 2000;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/rx-queue/tasks/{task_id}/approve", post(approve_task))
        .route("/api/rx-queue/tasks/{task_id}/deny", post(deny_task))
        .route("/api/task-action", post(task_action))
        .route("/api/rx-queue/runs/{run_id}", get(orchestration_run))
        .route("/api/admin/orchestration-runs", get(orchestration_runs))
}

/// What starts a run, as the API names it.
const RUN_KINDS: [pb::RunKind; 4] = [
    pb::RunKind::Approval,
    pb::RunKind::Denial,
    pb::RunKind::Prescription,
    pb::RunKind::PrescriptionStop,
];

/// The run statuses, in the order the API lists them.
const RUN_STATUSES: [pb::RunStatus; 5] = [
    pb::RunStatus::Pending,
    pb::RunStatus::Running,
    pb::RunStatus::Succeeded,
    pb::RunStatus::Failed,
    pb::RunStatus::Denied,
];

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunStepView {
    /// medication_config, patient_lookup, prescriber_routing, pharmacy_routing, pharmacy_sync,
    /// payment or notification.
    pub name: String,
    /// pending, done, failed, warning or skipped.
    pub status: String,
    pub detail: String,
    pub finished_at: Option<String>,
}

/// One orchestration run: what an approval, a denial, a prescription written in Canvas or its stop
/// did, step by step. Every run is kept.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunView {
    pub id: String,
    /// What started it (its source): approval or denial (the Rx Review queue), prescription (the
    /// Canvas plugin announced a prescription written in Canvas), prescription_stop (the plugin
    /// announced it was stopped).
    pub kind: String,
    /// The Rx Review task of an approval or denial; empty otherwise.
    pub task_id: String,
    /// The Canvas MedicationRequest the run fulfils or stops, when known.
    pub medication_request_id: String,
    /// For a prescription_stop: the fulfilment run it undoes.
    pub target_run_id: String,
    pub canvas_patient_id: String,
    pub medication: String,
    pub dose_label: String,
    /// pending, running, succeeded, failed or denied.
    pub status: String,
    /// Stable snake_case reason of a failed run, e.g. `payment_declined`; empty otherwise.
    pub failure_reason: String,
    pub steps: Vec<RunStepView>,
    pub warnings: Vec<String>,
    pub pharmacy_order_id: String,
    pub payment_id: String,
    pub approved_by: String,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

impl From<pb::OrchestrationRun> for RunView {
    fn from(r: pb::OrchestrationRun) -> Self {
        Self {
            status: pb::RunStatus::try_from(r.status).map(snake).unwrap_or_default(),
            kind: pb::RunKind::try_from(r.kind).map(snake).unwrap_or_default(),
            id: r.id,
            task_id: r.task_id,
            medication_request_id: r.medication_request_id,
            target_run_id: r.target_run_id,
            canvas_patient_id: r.canvas_patient_id,
            medication: r.medication,
            dose_label: r.dose_label,
            failure_reason: r.failure_reason,
            steps: r
                .steps
                .into_iter()
                .map(|s| RunStepView {
                    name: s.name,
                    status: s.status,
                    detail: s.detail,
                    finished_at: s.finished_at.map(rfc3339),
                })
                .collect(),
            warnings: r.warnings,
            pharmacy_order_id: r.pharmacy_order_id,
            payment_id: r.payment_id,
            approved_by: r.approved_by,
            created_at: r.created_at.map(rfc3339),
            updated_at: r.updated_at.map(rfc3339),
        }
    }
}

/// The run a call answered; its absence is the service's bug, not the caller's.
fn answered_run(run: Option<pb::OrchestrationRun>) -> Result<pb::OrchestrationRun, ApiError> {
    run.ok_or_else(|| ApiError::internal(&anyhow::anyhow!("pharmacy-routing answered no run")))
}

/// The admin, named to the service as the one who acts (the service also sees the caller itself).
fn actor(caller: &Caller) -> Option<Actor> {
    Some(Actor {
        subject: caller.subject.clone(),
        role: "admin".into(),
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApproveRequest {
    /// The dose chosen from the task's dosage options (`dosageOptions[].label` of the task), e.g.
    /// "0.25 mg weekly".
    #[serde(default)]
    #[schema(required = true)]
    pub dose_label: String,
    /// A medication id from the catalogue; absent takes the task's.
    #[serde(default)]
    pub medication: String,
    /// Absent takes the task's patient.
    #[serde(default)]
    pub canvas_patient_id: String,
    /// For the H&P note written to Canvas; at most 4000 characters.
    #[serde(default)]
    pub note: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DenyRequest {
    /// Why; the patient is told. At most 2000 characters.
    #[serde(default)]
    #[schema(required = true)]
    pub reason: String,
    /// Absent takes the task's patient.
    #[serde(default)]
    pub canvas_patient_id: String,
}

/// The Canvas plugin's form: the task, the action, and that action's fields as its own route takes
/// them (`doseLabel`, … to approve; `reason`, … to deny).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskActionRequest {
    #[serde(default)]
    pub task_id: String,
    #[serde(flatten)]
    pub action: TaskAction,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum TaskAction {
    Approve(ApproveRequest),
    Deny(DenyRequest),
}

/// Its schema is written out rather than derived: one object per action, each the fields of that
/// action's own route plus `taskId` and `action`, and nothing else (an approval field on a denial
/// is refused, as on `…/deny`). A derived `allOf` of the flattened parts could never be satisfied,
/// since each part refuses the other's fields.
impl utoipa::PartialSchema for TaskActionRequest {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::{
            schema::{ObjectBuilder, OneOfBuilder, Schema, Type},
            RefOr,
        };
        let variant = |action: &str, fields: RefOr<Schema>| {
            let mut object = match fields {
                RefOr::T(Schema::Object(object)) => object,
                _ => Default::default(),
            };
            object.properties.insert(
                "taskId".into(),
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some("Canvas task id"))
                    .into(),
            );
            object.properties.insert(
                "action".into(),
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some([action]))
                    .into(),
            );
            for field in ["action", "taskId"] {
                if !object.required.iter().any(|r| r == field) {
                    object.required.insert(0, field.into());
                }
            }
            object.title = Some(format!("{action} a task"));
            Schema::Object(object)
        };
        OneOfBuilder::new()
            .item(variant("approve", <ApproveRequest as utoipa::PartialSchema>::schema()))
            .item(variant("deny", <DenyRequest as utoipa::PartialSchema>::schema()))
            .description(Some(
                "`{\"taskId\", \"action\": \"approve\", \"doseLabel\", …}` or `{\"taskId\", \"action\": \"deny\", \"reason\", …}`",
            ))
            .into()
    }
}

impl ToSchema for TaskActionRequest {}

/// What `/api/task-action` answers with 200: an approval's result, or a denial's run.
pub struct TaskActionResult;

impl utoipa::PartialSchema for TaskActionResult {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::{schema::AnyOfBuilder, Ref};
        // anyOf, not oneOf: an approval's answer (`run`, `existing`) is also a valid `RunResult`.
        AnyOfBuilder::new()
            .item(Ref::from_schema_name("ApprovalResult"))
            .item(Ref::from_schema_name("RunResult"))
            .into()
    }
}

impl ToSchema for TaskActionResult {
    fn schemas(schemas: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)>) {
        schemas.push((
            "ApprovalResult".into(),
            <ApprovalResult as utoipa::PartialSchema>::schema(),
        ));
        <ApprovalResult as ToSchema>::schemas(schemas);
        schemas.push(("RunResult".into(), <RunResult as utoipa::PartialSchema>::schema()));
        <RunResult as ToSchema>::schemas(schemas);
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalResult {
    pub run: RunView,
    /// True when the task already had this run (a repeat, or another admin's approval).
    pub existing: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunResult {
    pub run: RunView,
}

/// A required text field: present, not blank, and at most `max` characters.
fn check_text(bad: &mut Vec<FieldError>, field: &str, value: &str, required: bool, max: usize) {
    let reason = if required && value.trim().is_empty() {
        "is required".to_owned()
    } else if value.chars().count() > max {
        format!("must be at most {max} characters")
    } else {
        return;
    };
    bad.push(FieldError {
        field: field.into(),
        reason,
    });
}

/// Every bad field of an approval at once.
fn check_approval(task_id: &str, body: &ApproveRequest) -> Result<(), ApiError> {
    let mut bad = Vec::new();
    check_text(&mut bad, "taskId", task_id, true, usize::MAX);
    check_text(&mut bad, "doseLabel", &body.dose_label, true, usize::MAX);
    check_text(&mut bad, "note", &body.note, false, NOTE_MAX_CHARS);
    if bad.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(bad))
    }
}

/// Every bad field of a denial at once.
fn check_denial(task_id: &str, body: &DenyRequest) -> Result<(), ApiError> {
    let mut bad = Vec::new();
    check_text(&mut bad, "taskId", task_id, true, usize::MAX);
    check_text(&mut bad, "reason", &body.reason, true, DENIAL_REASON_MAX_CHARS);
    if bad.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(bad))
    }
}

/// 202 with the run's `Location` while the pipeline is still at it, 200 once it ended.
fn approval_status(run: &pb::OrchestrationRun) -> (StatusCode, HeaderMap) {
    let mut headers = HeaderMap::new();
    match pb::RunStatus::try_from(run.status) {
        Ok(pb::RunStatus::Pending | pb::RunStatus::Running) => {
            if let Ok(location) = HeaderValue::from_str(&format!("/api/rx-queue/runs/{}", run.id)) {
                headers.insert(header::LOCATION, location);
            }
            (StatusCode::ACCEPTED, headers)
        }
        _ => (StatusCode::OK, headers),
    }
}

/// What both approval routes do.
async fn approve(
    state: &AppState,
    caller: &Caller,
    task_id: String,
    headers: &HeaderMap,
    body: ApproveRequest,
) -> Result<(StatusCode, HeaderMap, ApiJson<ApprovalResult>), ApiError> {
    check_approval(&task_id, &body)?;
    let req = pb::ApproveTaskRequest {
        task_id,
        canvas_patient_id: body.canvas_patient_id,
        medication: body.medication,
        dose_label: body.dose_label,
        note: body.note,
        idempotency_key: idempotency_key(headers)?,
        actor: actor(caller),
    };
    let r = state
        .clients
        .routing
        .clone()
        .approve_task(grpc(state, caller, req))
        .await?
        .into_inner();
    let run = answered_run(r.run)?;
    let (status, headers) = approval_status(&run);
    Ok((
        status,
        headers,
        ApiJson(ApprovalResult {
            run: run.into(),
            existing: r.existing,
        }),
    ))
}

/// What both denial routes do.
async fn deny(
    state: &AppState,
    caller: &Caller,
    task_id: String,
    body: DenyRequest,
) -> Result<ApiJson<RunResult>, ApiError> {
    check_denial(&task_id, &body)?;
    let req = pb::DenyTaskRequest {
        task_id,
        canvas_patient_id: body.canvas_patient_id,
        reason: body.reason,
        actor: actor(caller),
    };
    let r = state
        .clients
        .routing
        .clone()
        .deny_task(grpc(state, caller, req))
        .await?
        .into_inner();
    Ok(ApiJson(RunResult {
        run: answered_run(r.run)?.into(),
    }))
}

/// Approves a task: the pipeline checks the medication and dose, finds the patient, routes to a
/// pharmacy and prescriber, holds the card, orders, charges and tells the patient. One run per task:
/// a repeat (or a second admin) gets the same run with `existing: true`. The service waits a bounded
/// time for the run to end: 200 when it has (`succeeded`, `failed` with `failureReason`, `denied`),
/// 202 with `Location` of the run to poll while it is `pending` or `running`.
#[utoipa::path(
    post, path = "/api/rx-queue/tasks/{taskId}/approve", tag = "rx-queue",
    security(("admin_secret" = []), ("admin_jwt" = [])),
    params(
        ("taskId" = String, Path, description = "Canvas task id"),
        ("Idempotency-Key" = Option<String>, Header, description = "repeats return the first run"),
    ),
    request_body = ApproveRequest,
    responses(
        (status = 200, description = "the run ended", body = ApprovalResult),
        (status = 202, description = "the run is under way; poll `Location`", body = ApprovalResult,
            headers(("Location" = String, description = "/api/rx-queue/runs/{id}"))),
        (status = 400, description = "`fields` names every bad field", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "no such task", body = ErrorBody),
        (status = 409, description = "the task changed or is being approved; retry", body = ErrorBody),
        (status = 422, description = "the task cannot be approved (e.g. already denied); the reason is the code", body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
pub async fn approve_task(
    State(state): State<AppState>,
    Admin(caller): Admin,
    task_id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ApproveRequest>,
) -> Result<(StatusCode, HeaderMap, ApiJson<ApprovalResult>), ApiError> {
    let Path(task_id) = task_id?;
    approve(&state, &caller, task_id, &headers, body).await
}

/// Denies a task: the decision is recorded as a run (`denied`) and the patient told; nothing is
/// ordered or charged.
#[utoipa::path(
    post, path = "/api/rx-queue/tasks/{taskId}/deny", tag = "rx-queue",
    security(("admin_secret" = []), ("admin_jwt" = [])),
    params(("taskId" = String, Path, description = "Canvas task id")),
    request_body = DenyRequest,
    responses(
        (status = 200, body = RunResult),
        (status = 400, description = "`fields` names every bad field", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "no such task", body = ErrorBody),
        (status = 409, body = ErrorBody),
        (status = 422, description = "the task cannot be denied (e.g. already approved); the reason is the code", body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
pub async fn deny_task(
    State(state): State<AppState>,
    Admin(caller): Admin,
    task_id: Result<Path<String>, PathRejection>,
    ApiJson(body): ApiJson<DenyRequest>,
) -> Result<ApiJson<RunResult>, ApiError> {
    let Path(task_id) = task_id?;
    deny(&state, &caller, task_id, body).await
}

/// The Canvas plugin's form of the two routes above: `{"taskId", "action": "approve", "doseLabel", …}`
/// answers as `POST /api/rx-queue/tasks/{taskId}/approve` does (200 or 202), `{"taskId", "action":
/// "deny", "reason", …}` as `…/deny`.
#[utoipa::path(
    post, path = "/api/task-action", tag = "rx-queue",
    security(("admin_secret" = []), ("admin_jwt" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "approvals: repeats return the first run")),
    request_body = TaskActionRequest,
    responses(
        (status = 200, description = "an approval whose run ended (`ApprovalResult`), or a denial (`RunResult`)", body = TaskActionResult),
        (status = 202, description = "an approval under way; poll `Location`", body = ApprovalResult,
            headers(("Location" = String, description = "/api/rx-queue/runs/{id}"))),
        (status = 400, description = "`fields` names every bad field", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "no such task", body = ErrorBody),
        (status = 409, description = "the task changed or is being approved; retry", body = ErrorBody),
        (status = 422, description = "the task cannot take that action (e.g. already approved or denied); the reason is the code", body = ErrorBody),
    )
)]
pub async fn task_action(
    State(state): State<AppState>,
    Admin(caller): Admin,
    headers: HeaderMap,
    ApiJson(body): ApiJson<TaskActionRequest>,
) -> Result<Response, ApiError> {
    Ok(match body.action {
        TaskAction::Approve(approval) => approve(&state, &caller, body.task_id, &headers, approval)
            .await?
            .into_response(),
        TaskAction::Deny(denial) => deny(&state, &caller, body.task_id, denial).await?.into_response(),
    })
}

/// One orchestration run with its steps, warnings, order and payment.
#[utoipa::path(
    get, path = "/api/rx-queue/runs/{runId}", tag = "rx-queue",
    security(("admin_secret" = []), ("admin_jwt" = [])),
    params(("runId" = String, Path)),
    responses(
        (status = 200, body = RunResult),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn orchestration_run(
    State(state): State<AppState>,
    Admin(caller): Admin,
    id: Result<Path<String>, PathRejection>,
) -> Result<ApiJson<RunResult>, ApiError> {
    let Path(id) = id?;
    let r = state
        .clients
        .routing
        .clone()
        .get_orchestration_run(grpc(&state, &caller, pb::GetOrchestrationRunRequest { id }))
        .await?
        .into_inner();
    Ok(ApiJson(RunResult {
        run: answered_run(r.run)?.into(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunQuery {
    /// Only this Canvas task's runs.
    pub task_id: Option<String>,
    /// Only this Canvas patient's runs.
    pub patient_id: Option<String>,
    /// pending, running, succeeded, failed or denied.
    pub status: Option<String>,
    /// approval, denial, prescription or prescription_stop.
    pub kind: Option<String>,
    /// Only the runs of this Canvas prescription (MedicationRequest id).
    pub medication_request_id: Option<String>,
    pub page_size: Option<i32>,
    pub page_token: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunPage {
    pub items: Vec<RunView>,
    pub next_page_token: String,
}

/// Orchestration runs, newest first; every run is kept, success or failure.
#[utoipa::path(
    get, path = "/api/admin/orchestration-runs", tag = "rx-queue",
    security(("admin_secret" = []), ("admin_jwt" = [])),
    params(RunQuery),
    responses((status = 200, body = RunPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody))
)]
pub async fn orchestration_runs(
    State(state): State<AppState>,
    Admin(caller): Admin,
    query: Result<Query<RunQuery>, QueryRejection>,
) -> Result<ApiJson<RunPage>, ApiError> {
    let Query(q) = query?;
    let req = pb::ListOrchestrationRunsRequest {
        task_id: q.task_id.unwrap_or_default(),
        canvas_patient_id: q.patient_id.unwrap_or_default(),
        status: status_filter("status", q.status.as_deref(), &RUN_STATUSES)? as i32,
        kind: status_filter("kind", q.kind.as_deref(), &RUN_KINDS)? as i32,
        medication_request_id: q.medication_request_id.unwrap_or_default(),
        page: page(q.page_size, q.page_token),
    };
    let r = state
        .clients
        .routing
        .clone()
        .list_orchestration_runs(grpc(&state, &caller, req))
        .await?
        .into_inner();
    Ok(ApiJson(RunPage {
        items: r.runs.into_iter().map(Into::into).collect(),
        next_page_token: r.page.map(|p| p.next_page_token).unwrap_or_default(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(e: ApiError) -> Vec<(String, String)> {
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        e.detail.fields.into_iter().map(|f| (f.field, f.reason)).collect()
    }

    #[test]
    fn run_status_filters_are_lowercase_words() {
        assert_eq!(
            status_filter("status", None, &RUN_STATUSES).unwrap(),
            pb::RunStatus::Unspecified
        );
        assert_eq!(
            status_filter("status", Some(""), &RUN_STATUSES).unwrap(),
            pb::RunStatus::Unspecified
        );
        for (word, status) in [
            ("pending", pb::RunStatus::Pending),
            ("running", pb::RunStatus::Running),
            ("succeeded", pb::RunStatus::Succeeded),
            ("failed", pb::RunStatus::Failed),
            ("denied", pb::RunStatus::Denied),
        ] {
            assert_eq!(status_filter("status", Some(word), &RUN_STATUSES).unwrap(), status);
        }
        for bad in ["Pending", "RUN_STATUS_PENDING", "3", "unspecified", "done"] {
            let e = status_filter("status", Some(bad), &RUN_STATUSES).unwrap_err();
            assert_eq!(
                fields(e),
                [(
                    "status".to_owned(),
                    "must be pending, running, succeeded, failed or denied".to_owned()
                )],
                "{bad}"
            );
        }
    }

    #[test]
    fn approvals_name_every_bad_field() {
        let body = |dose: &str, note: &str| ApproveRequest {
            dose_label: dose.into(),
            medication: String::new(),
            canvas_patient_id: String::new(),
            note: note.into(),
        };
        assert!(check_approval("task-1", &body("0.25 mg weekly", "")).is_ok());
        assert!(check_approval("task-1", &body("0.25 mg weekly", &"é".repeat(NOTE_MAX_CHARS))).is_ok());
        let e = check_approval(" ", &body("  ", &"n".repeat(NOTE_MAX_CHARS + 1))).unwrap_err();
        let names: Vec<String> = fields(e).into_iter().map(|(f, _)| f).collect();
        assert_eq!(names, ["taskId", "doseLabel", "note"]);

        let denial = |reason: &str| DenyRequest {
            reason: reason.into(),
            canvas_patient_id: String::new(),
        };
        assert!(check_denial("task-1", &denial("Contraindicated: history of pancreatitis")).is_ok());
        assert_eq!(
            fields(check_denial("task-1", &denial("")).unwrap_err()),
            [("reason".to_owned(), "is required".to_owned())]
        );
        assert_eq!(
            fields(check_denial("task-1", &denial(&"r".repeat(DENIAL_REASON_MAX_CHARS + 1))).unwrap_err()),
            [("reason".to_owned(), "must be at most 2000 characters".to_owned())]
        );
    }

    #[test]
    fn task_action_bodies_take_the_fields_of_their_action_only() {
        let parse = |json: &str| serde_json::from_str::<TaskActionRequest>(json);
        let a = parse(r#"{"taskId":"t1","action":"approve","doseLabel":"0.25 mg weekly","note":"ok"}"#).unwrap();
        assert_eq!(a.task_id, "t1");
        assert!(matches!(a.action, TaskAction::Approve(ref b) if b.dose_label == "0.25 mg weekly" && b.note == "ok"));
        let d = parse(r#"{"action":"deny","reason":"no","taskId":"t2","canvasPatientId":"p1"}"#).unwrap();
        assert_eq!(d.task_id, "t2");
        assert!(matches!(d.action, TaskAction::Deny(ref b) if b.reason == "no" && b.canvas_patient_id == "p1"));
        // A field of the other action, an unknown field, an unknown or missing action: refused.
        assert!(parse(r#"{"taskId":"t1","action":"deny","reason":"no","doseLabel":"x"}"#).is_err());
        assert!(parse(r#"{"taskId":"t1","action":"approve","doseLabel":"x","extra":1}"#).is_err());
        assert!(parse(r#"{"taskId":"t1","action":"cancel"}"#).is_err());
        assert!(parse(r#"{"taskId":"t1","doseLabel":"x"}"#).is_err());
    }

    #[test]
    fn approvals_in_progress_answer_202_with_the_run_to_poll() {
        let run = |status: pb::RunStatus| pb::OrchestrationRun {
            id: "run-1".into(),
            status: status as i32,
            ..Default::default()
        };
        for status in [pb::RunStatus::Pending, pb::RunStatus::Running] {
            let (code, headers) = approval_status(&run(status));
            assert_eq!(code, StatusCode::ACCEPTED);
            assert_eq!(headers[header::LOCATION], "/api/rx-queue/runs/run-1");
        }
        for status in [pb::RunStatus::Succeeded, pb::RunStatus::Failed, pb::RunStatus::Denied] {
            let (code, headers) = approval_status(&run(status));
            assert_eq!(code, StatusCode::OK);
            assert!(headers.get(header::LOCATION).is_none());
        }
    }
}
