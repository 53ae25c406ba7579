//! Identity reviews: intakes that could not be matched to one chart safely, held until an admin
//! attaches them to an existing chart or opens a new one.

use axum::{
    extract::{rejection::QueryRejection, Path, Query, State},
    routing::{get, post},
    Router,
};
use era_proto::canvas::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::views::{IntakeDemographicsView, IntakeSubmissionView};
use crate::{
    auth::Admin,
    error::{ApiError, ErrorBody},
    routes::{grpc, ApiJson},
    AppState,
};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/admin/identity-reviews", get(identity_reviews))
        .route(
            "/api/admin/identity-reviews/{id}/resolve",
            post(resolve_identity_review),
        )
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReviewQuery {
    /// Decided reviews too.
    pub include_resolved: Option<bool>,
    pub page_size: Option<i32>,
    pub page_token: Option<String>,
}

/// An intake held because it could not be matched to one chart safely.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentityReviewView {
    pub id: String,
    pub submission_id: String,
    /// `email_belongs_to_another_chart`, `same_person_other_email` or `several_charts_match`.
    pub reason: String,
    /// Canvas patients the intake might belong to.
    pub candidate_patient_ids: Vec<String>,
    /// Who the intake says they are.
    pub demographics: Option<IntakeDemographicsView>,
    pub created_at: Option<String>,
    pub resolved_at: Option<String>,
    pub resolved_by: String,
    /// The chart it was attached to or opened, once decided.
    pub canvas_patient_id: String,
}

impl From<pb::IdentityReview> for IdentityReviewView {
    fn from(r: pb::IdentityReview) -> Self {
        let demographics = IntakeSubmissionView::from(pb::IntakeSubmission {
            demographics: r.demographics,
            ..Default::default()
        })
        .demographics;
        Self {
            id: r.id,
            submission_id: r.submission_id,
            reason: r.reason,
            candidate_patient_ids: r.candidate_patient_ids,
            demographics,
            created_at: super::views::time(r.created_at),
            resolved_at: super::views::time(r.resolved_at),
            resolved_by: r.resolved_by,
            canvas_patient_id: r.canvas_patient_id,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentityReviewPage {
    pub items: Vec<IdentityReviewView>,
    pub next_page_token: String,
}

/// Intakes held for an identity review, oldest first.
#[utoipa::path(
    get, path = "/api/admin/identity-reviews", tag = "patients",
    security(("admin_secret" = []), ("admin_jwt" = [])),
    params(ReviewQuery),
    responses(
        (status = 200, body = IdentityReviewPage),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    )
)]
pub async fn identity_reviews(
    State(state): State<AppState>,
    Admin(caller): Admin,
    query: Result<Query<ReviewQuery>, QueryRejection>,
) -> Result<ApiJson<IdentityReviewPage>, ApiError> {
    let Query(q) = query?;
    let req = pb::ListIdentityReviewsRequest {
        page: super::views::page(q.page_size, q.page_token),
        include_resolved: q.include_resolved.unwrap_or(false),
    };
    let resp = state
        .clients
        .canvas
        .clone()
        .list_identity_reviews(grpc(&state, &caller, req))
        .await?
        .into_inner();
    Ok(ApiJson(IdentityReviewPage {
        items: resp.reviews.into_iter().map(Into::into).collect(),
        next_page_token: resp.page.map(|p| p.next_page_token).unwrap_or_default(),
    }))
}

/// The decision: one of the two.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResolveReviewRequest {
    /// The existing chart this person's intake belongs to.
    pub attach_to_patient_id: Option<String>,
    /// A different person: open a new chart.
    pub create_new_patient: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedReview {
    pub review: Option<IdentityReviewView>,
    /// The completed intake: its chart, record and Rx Review task.
    pub canvas_patient_id: String,
    pub record_id: String,
    pub task_id: String,
}

/// Decides a held intake (once), then completes it: the record, the answers and the Rx Review task
/// on the chosen chart.
#[utoipa::path(
    post, path = "/api/admin/identity-reviews/{id}/resolve", tag = "patients",
    security(("admin_secret" = []), ("admin_jwt" = [])),
    params(("id" = String, Path, description = "the review's id")),
    request_body = ResolveReviewRequest,
    responses(
        (status = 200, body = ResolvedReview),
        (status = 400, description = "neither or both decisions, or a bad id", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "no such review or patient", body = ErrorBody),
        (status = 422, description = "`review_resolved`: already decided", body = ErrorBody),
    )
)]
pub async fn resolve_identity_review(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ResolveReviewRequest>,
) -> Result<ApiJson<ResolvedReview>, ApiError> {
    use pb::resolve_identity_review_request::Decision;
    let decision = match (body.attach_to_patient_id, body.create_new_patient) {
        (Some(patient), None | Some(false)) => Decision::AttachToPatientId(patient),
        (None, Some(true)) => Decision::CreateNewPatient(true),
        _ => {
            return Err(ApiError::field(
                "attachToPatientId",
                "give either attachToPatientId or createNewPatient: true",
            ))
        }
    };
    let req = pb::ResolveIdentityReviewRequest {
        review_id: id,
        decision: Some(decision),
    };
    let resp = state
        .clients
        .canvas
        .clone()
        .resolve_identity_review(grpc(&state, &caller, req))
        .await?
        .into_inner();
    let intake = resp.intake.unwrap_or_default();
    Ok(ApiJson(ResolvedReview {
        review: resp.review.map(Into::into),
        canvas_patient_id: intake.canvas_patient_id,
        record_id: intake.record_id,
        task_id: intake.task_id,
    }))
}
