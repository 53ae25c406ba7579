//! Admin routes whose services arrive with later issues. They are mounted now so `require_admin`
//! guards them from the start; an authorised call learns which issue delivers the route.

use axum::{http::StatusCode, routing::any, Router};

use crate::{auth::Admin, error::ApiError, AppState};

pub(super) fn router() -> Router<AppState> {
    let task_action = "approving and denying tasks arrive with issue 6 (approval pipeline)";
    Router::new()
        // The queue's read routes are in rx_queue.rs; what remains under it (approve, deny, runs)
        // is the approval pipeline's.
        .route(
            "/api/rx-queue/{*rest}",
            any(move |admin: Admin| pending(admin, task_action)),
        )
        .route("/api/task-action", any(move |admin: Admin| pending(admin, task_action)))
}

async fn pending(_: Admin, what: &'static str) -> ApiError {
    ApiError::new(StatusCode::NOT_IMPLEMENTED, "not_implemented", what)
}
