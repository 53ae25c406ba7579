//! Admin routes whose services arrive with later issues. They are mounted now so `require_admin`
//! guards them from the start; an authorised call learns which issue delivers the route.

use axum::{http::StatusCode, routing::any, Router};

use crate::{auth::Admin, error::ApiError, AppState};

pub(super) fn router() -> Router<AppState> {
    let rx_queue = "the Rx queue arrives with issue 3 (canvas service)";
    let task_action = "approving and denying tasks arrive with issue 6 (approval pipeline)";
    Router::new()
        .route("/api/tasks", any(move |admin: Admin| pending(admin, rx_queue)))
        .route(
            "/api/rx-queue/{*rest}",
            any(move |admin: Admin| pending(admin, rx_queue)),
        )
        .route("/api/task-action", any(move |admin: Admin| pending(admin, task_action)))
}

async fn pending(_: Admin, what: &'static str) -> ApiError {
    ApiError::new(StatusCode::NOT_IMPLEMENTED, "not_implemented", what)
}
