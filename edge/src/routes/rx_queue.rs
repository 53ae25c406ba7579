//! `/api/rx-queue`: the prescription review queue (read side), its H&P package and the practitioner
//! filter; `/api/tasks` is the Canvas plugin's name for the same list.

use axum::{
    extract::{
        rejection::{PathRejection, QueryRejection},
        Path, Query, State,
    },
    routing::get,
    Router,
};
use era_proto::canvas::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::views::{PractitionerView, RxTaskView, TaskDetailView};
use crate::{
    auth::Admin,
    error::{ApiError, ErrorBody},
    routes::{grpc, ApiJson},
    AppState,
};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/rx-queue/tasks", get(list_tasks))
        .route("/api/tasks", get(list_tasks))
        .route("/api/rx-queue/tasks/{task_id}", get(get_task))
        .route("/api/rx-queue/practitioners", get(practitioners))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskQuery {
    /// Only tasks assigned to this Canvas practitioner.
    pub practitioner_id: Option<String>,
    /// Only this patient's tasks.
    pub canvas_patient_id: Option<String>,
    /// `requested` (open, the default), `completed` or `cancelled`.
    pub status: Option<String>,
    /// At most 100; default 50.
    pub page_size: Option<i32>,
    pub page_token: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskPage {
    pub items: Vec<RxTaskView>,
    pub next_page_token: String,
    /// How many tasks match in all, as Canvas counts them.
    pub total_size: i32,
}

/// "Rx Review" tasks, each with the patient's demographics, the medication requested and an intake
/// summary.
#[utoipa::path(
    get, path = "/api/rx-queue/tasks", tag = "rx-queue",
    security(("admin_secret" = []), ("admin_jwt" = [])),
    params(TaskQuery),
    responses(
        (status = 200, body = TaskPage),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 503, description = "`canvas_unavailable`: Canvas cannot be reached", body = ErrorBody),
    )
)]
pub async fn list_tasks(
    State(state): State<AppState>,
    Admin(caller): Admin,
    query: Result<Query<TaskQuery>, QueryRejection>,
) -> Result<ApiJson<TaskPage>, ApiError> {
    let Query(q) = query?;
    let status = match q.status.as_deref() {
        None | Some("") | Some("requested") => pb::TaskStatus::Requested,
        Some("completed") => pb::TaskStatus::Completed,
        Some("cancelled") => pb::TaskStatus::Cancelled,
        Some(_) => return Err(ApiError::field("status", "must be requested, completed or cancelled")),
    };
    let req = pb::ListRxReviewTasksRequest {
        practitioner_id: q.practitioner_id.unwrap_or_default(),
        canvas_patient_id: q.canvas_patient_id.unwrap_or_default(),
        status: status as i32,
        page: super::views::page(q.page_size, q.page_token),
    };
    let resp = state
        .clients
        .canvas
        .clone()
        .list_rx_review_tasks(grpc(&state, &caller, req))
        .await?
        .into_inner();
    Ok(ApiJson(TaskPage {
        items: resp.tasks.into_iter().map(Into::into).collect(),
        next_page_token: resp.page.map(|p| p.next_page_token).unwrap_or_default(),
        total_size: resp.total_size,
    }))
}

/// The whole H&P package of one task: demographics, intake, questionnaire responses, conditions,
/// observations, assigned practitioners, dosage options and prescriptions.
#[utoipa::path(
    get, path = "/api/rx-queue/tasks/{taskId}", tag = "rx-queue",
    security(("admin_secret" = []), ("admin_jwt" = [])),
    params(("taskId" = String, Path, description = "Canvas task id")),
    responses(
        (status = 200, body = TaskDetailView),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
pub async fn get_task(
    State(state): State<AppState>,
    Admin(caller): Admin,
    task_id: Result<Path<String>, PathRejection>,
) -> Result<ApiJson<TaskDetailView>, ApiError> {
    let Path(task_id) = task_id?;
    let resp = state
        .clients
        .canvas
        .clone()
        .get_rx_review_task(grpc(&state, &caller, pb::GetRxReviewTaskRequest { task_id }))
        .await?
        .into_inner();
    Ok(ApiJson(resp.into()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PractitionerQuery {
    /// Also staff who cannot be scheduled (Canvas hides them by default).
    #[serde(default)]
    pub include_non_schedulable: bool,
    #[serde(default)]
    pub include_inactive: bool,
    /// Exact 10-digit NPI.
    pub npi: Option<String>,
    /// Partial name.
    pub name: Option<String>,
    pub page_size: Option<i32>,
    pub page_token: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PractitionerPage {
    pub items: Vec<PractitionerView>,
    pub next_page_token: String,
}

/// Canvas practitioners, for the queue's filter.
#[utoipa::path(
    get, path = "/api/rx-queue/practitioners", tag = "rx-queue",
    security(("admin_secret" = []), ("admin_jwt" = [])),
    params(PractitionerQuery),
    responses((status = 200, body = PractitionerPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody))
)]
pub async fn practitioners(
    State(state): State<AppState>,
    Admin(caller): Admin,
    query: Result<Query<PractitionerQuery>, QueryRejection>,
) -> Result<ApiJson<PractitionerPage>, ApiError> {
    let Query(q) = query?;
    let req = pb::ListPractitionersRequest {
        include_inactive: q.include_inactive,
        include_non_schedulable: q.include_non_schedulable,
        npi: q.npi.unwrap_or_default(),
        name: q.name.unwrap_or_default(),
        page: super::views::page(q.page_size, q.page_token),
    };
    let resp = state
        .clients
        .canvas
        .clone()
        .list_practitioners(grpc(&state, &caller, req))
        .await?
        .into_inner();
    Ok(ApiJson(PractitionerPage {
        items: resp.practitioners.into_iter().map(Into::into).collect(),
        next_page_token: resp.page.map(|p| p.next_page_token).unwrap_or_default(),
    }))
}
