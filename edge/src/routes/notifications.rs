//! Notifications: a patient's portal notifications (and marking them read); for admins, the outbox
//! (messages with their attempts, replaying a dead letter) and the HubSpot conversation inbox.

use axum::{
    extract::{
        rejection::{PathRejection, QueryRejection},
        Path, Query, State,
    },
    routing::{get, post},
    Router,
};
use era_proto::notifications::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::views::{page, rfc3339, snake};
use crate::{
    auth::{Admin, Patient},
    error::{ApiError, ErrorBody},
    routes::{grpc, ApiJson},
    AppState,
};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/patient-notifications/{patient_id}", get(patient_notifications))
        .route(
            "/api/patient-notifications/{patient_id}/{notification_id}/read",
            post(mark_read),
        )
        .route("/api/admin/outbox", get(outbox))
        .route("/api/admin/outbox/{id}", get(outbox_message))
        .route("/api/admin/outbox/{id}/replay", post(replay))
        .route("/api/admin/conversations", get(conversations))
        .route("/api/admin/conversations/{id}", get(conversation))
        .route("/api/admin/conversations/{id}/messages", get(conversation_messages))
        .route("/api/admin/conversations/{id}/reply", post(reply_to_conversation))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationView {
    pub id: String,
    /// e.g. prescription_approved, shipment_created.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub body: String,
    /// A portal path to open.
    pub link: String,
    pub reference: String,
    pub read: bool,
    pub read_at: Option<String>,
    pub created_at: Option<String>,
}

impl From<pb::PatientNotification> for NotificationView {
    fn from(n: pb::PatientNotification) -> Self {
        Self {
            kind: pb::NotificationType::try_from(n.notification_type)
                .map(snake)
                .unwrap_or_default(),
            id: n.id,
            title: n.title,
            body: n.body,
            link: n.link,
            reference: n.reference,
            read: n.read,
            read_at: n.read_at.map(rfc3339),
            created_at: n.created_at.map(rfc3339),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotificationQuery {
    #[serde(default)]
    pub unread_only: bool,
    pub page_size: Option<i32>,
    pub page_token: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationPage {
    pub items: Vec<NotificationView>,
    pub unread_count: i32,
    pub next_page_token: String,
}

/// A patient's notifications, newest first, with how many are unread.
#[utoipa::path(
    get, path = "/api/patient-notifications/{patientId}", tag = "notifications",
    security(("patient_jwt" = []), ("admin_secret" = [])),
    params(("patientId" = String, Path), NotificationQuery),
    responses((status = 200, body = NotificationPage), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
pub async fn patient_notifications(
    State(state): State<AppState>,
    Patient(caller): Patient,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<NotificationQuery>, QueryRejection>,
) -> Result<ApiJson<NotificationPage>, ApiError> {
    let (Path(id), Query(q)) = (id?, query?);
    Patient(caller.clone()).require(&id)?;
    let req = pb::ListPatientNotificationsRequest {
        canvas_patient_id: id,
        unread_only: q.unread_only,
        page: page(q.page_size, q.page_token),
    };
    let r = state
        .clients
        .notifications
        .clone()
        .list_patient_notifications(grpc(&state, &caller, req))
        .await?
        .into_inner();
    Ok(ApiJson(NotificationPage {
        items: r.notifications.into_iter().map(Into::into).collect(),
        unread_count: r.unread_count,
        next_page_token: r.page.map(|p| p.next_page_token).unwrap_or_default(),
    }))
}

/// Marks one of the patient's notifications read (again changes nothing).
#[utoipa::path(
    post, path = "/api/patient-notifications/{patientId}/{notificationId}/read", tag = "notifications",
    security(("patient_jwt" = []), ("admin_secret" = [])),
    params(("patientId" = String, Path), ("notificationId" = String, Path)),
    responses((status = 200, body = NotificationView), (status = 404, body = ErrorBody), (status = 403, body = ErrorBody))
)]
pub async fn mark_read(
    State(state): State<AppState>,
    Patient(caller): Patient,
    ids: Result<Path<(String, String)>, PathRejection>,
) -> Result<ApiJson<NotificationView>, ApiError> {
    let Path((patient, notification)) = ids?;
    Patient(caller.clone()).require(&patient)?;
    let req = pb::MarkNotificationReadRequest {
        canvas_patient_id: patient,
        notification_id: notification,
    };
    let r = state
        .clients
        .notifications
        .clone()
        .mark_notification_read(grpc(&state, &caller, req))
        .await?
        .into_inner();
    r.notification
        .map(|n| ApiJson(n.into()))
        .ok_or_else(|| ApiError::new(axum::http::StatusCode::NOT_FOUND, "not_found", "no such notification"))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutboxMessageView {
    pub id: String,
    pub notification_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// email, sms or portal.
    pub channel: String,
    /// pending, sending, sent, dead_lettered, cancelled or skipped.
    pub status: String,
    pub canvas_patient_id: String,
    /// The address, masked.
    pub masked_to: String,
    pub attempt_count: i32,
    pub vendor_message_id: String,
    /// The last failure: vendor codes and field names only.
    pub last_error: String,
    pub send_at: Option<String>,
    pub next_attempt_at: Option<String>,
    pub sent_at: Option<String>,
    pub created_at: Option<String>,
}

impl From<pb::OutboxMessage> for OutboxMessageView {
    fn from(m: pb::OutboxMessage) -> Self {
        Self {
            kind: pb::NotificationType::try_from(m.notification_type)
                .map(snake)
                .unwrap_or_default(),
            channel: pb::Channel::try_from(m.channel).map(snake).unwrap_or_default(),
            status: pb::MessageStatus::try_from(m.status).map(snake).unwrap_or_default(),
            id: m.id,
            notification_id: m.notification_id,
            canvas_patient_id: m.canvas_patient_id,
            masked_to: m.masked_to,
            attempt_count: m.attempt_count,
            vendor_message_id: m.vendor_message_id,
            last_error: m.last_error,
            send_at: m.send_at.map(rfc3339),
            next_attempt_at: m.next_attempt_at.map(rfc3339),
            sent_at: m.sent_at.map(rfc3339),
            created_at: m.created_at.map(rfc3339),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutboxQuery {
    /// pending, sending, sent, dead_lettered, cancelled or skipped.
    pub status: Option<String>,
    /// email, sms or portal.
    pub channel: Option<String>,
    pub canvas_patient_id: Option<String>,
    pub page_size: Option<i32>,
    pub page_token: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutboxPage {
    pub items: Vec<OutboxMessageView>,
    pub next_page_token: String,
}

/// The value of a proto enum named in snake_case, or a field error listing the choices.
fn enum_value<E: std::fmt::Debug + Copy + Into<i32>>(
    field: &str,
    given: Option<&str>,
    all: &[E],
) -> Result<i32, ApiError> {
    let Some(given) = given.filter(|g| !g.is_empty()) else {
        return Ok(0);
    };
    all.iter()
        .find(|e| snake(**e) == given)
        .map(|e| (*e).into())
        .ok_or_else(|| {
            let names: Vec<String> = all.iter().map(|e| snake(*e)).filter(|n| !n.is_empty()).collect();
            ApiError::field(field, format!("must be one of {}", names.join(", ")))
        })
}

/// Outbox messages, newest first, by status, channel or patient: where dead letters are found.
#[utoipa::path(
    get, path = "/api/admin/outbox", tag = "notifications",
    security(("admin_secret" = []), ("admin_jwt" = [])),
    params(OutboxQuery),
    responses((status = 200, body = OutboxPage), (status = 400, body = ErrorBody))
)]
pub async fn outbox(
    State(state): State<AppState>,
    Admin(caller): Admin,
    query: Result<Query<OutboxQuery>, QueryRejection>,
) -> Result<ApiJson<OutboxPage>, ApiError> {
    let Query(q) = query?;
    use pb::{Channel as C, MessageStatus as S};
    let status = enum_value(
        "status",
        q.status.as_deref(),
        &[
            S::Pending,
            S::Sending,
            S::Sent,
            S::DeadLettered,
            S::Cancelled,
            S::Skipped,
        ],
    )?;
    let channel = enum_value("channel", q.channel.as_deref(), &[C::Email, C::Sms, C::Portal])?;
    let req = pb::ListOutboxMessagesRequest {
        status,
        channel,
        notification_type: 0,
        canvas_patient_id: q.canvas_patient_id.unwrap_or_default(),
        page: page(q.page_size, q.page_token),
    };
    let r = state
        .clients
        .notifications
        .clone()
        .list_outbox_messages(grpc(&state, &caller, req))
        .await?
        .into_inner();
    Ok(ApiJson(OutboxPage {
        items: r.messages.into_iter().map(Into::into).collect(),
        next_page_token: r.page.map(|p| p.next_page_token).unwrap_or_default(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptView {
    pub number: i32,
    pub attempted_at: Option<String>,
    /// sent, retryable_error, permanent_error, timeout, found_sent or abandoned.
    pub outcome: String,
    pub http_status: i32,
    pub error: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutboxMessageDetail {
    pub message: Option<OutboxMessageView>,
    pub attempts: Vec<AttemptView>,
}

/// One outbox message with every delivery attempt.
#[utoipa::path(
    get, path = "/api/admin/outbox/{id}", tag = "notifications",
    security(("admin_secret" = []), ("admin_jwt" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = OutboxMessageDetail), (status = 404, body = ErrorBody))
)]
pub async fn outbox_message(
    State(state): State<AppState>,
    Admin(caller): Admin,
    id: Result<Path<String>, PathRejection>,
) -> Result<ApiJson<OutboxMessageDetail>, ApiError> {
    let Path(id) = id?;
    let r = state
        .clients
        .notifications
        .clone()
        .get_outbox_message(grpc(&state, &caller, pb::GetOutboxMessageRequest { id }))
        .await?
        .into_inner();
    Ok(ApiJson(OutboxMessageDetail {
        message: r.message.map(Into::into),
        attempts: r
            .attempts
            .into_iter()
            .map(|a| AttemptView {
                number: a.number,
                attempted_at: a.attempted_at.map(rfc3339),
                outcome: a.outcome,
                http_status: a.http_status,
                error: a.error,
            })
            .collect(),
    }))
}

/// Puts a dead-lettered message back for a fresh round of attempts.
#[utoipa::path(
    post, path = "/api/admin/outbox/{id}/replay", tag = "notifications",
    security(("admin_secret" = []), ("admin_jwt" = [])),
    params(("id" = String, Path)),
    responses(
        (status = 200, body = OutboxMessageView),
        (status = 404, body = ErrorBody),
        (status = 422, description = "`not_dead_lettered`", body = ErrorBody),
    )
)]
pub async fn replay(
    State(state): State<AppState>,
    Admin(caller): Admin,
    id: Result<Path<String>, PathRejection>,
) -> Result<ApiJson<OutboxMessageView>, ApiError> {
    let Path(id) = id?;
    let req = pb::ReplayDeadLetterRequest { id, actor: None };
    let r = state
        .clients
        .notifications
        .clone()
        .replay_dead_letter(grpc(&state, &caller, req))
        .await?
        .into_inner();
    r.message
        .map(|m| ApiJson(m.into()))
        .ok_or_else(|| ApiError::new(axum::http::StatusCode::NOT_FOUND, "not_found", "no such message"))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConversationView {
    pub id: String,
    /// open or closed.
    pub status: String,
    pub inbox_id: String,
    pub contact_id: String,
    pub assigned_to: String,
    pub archived: bool,
    pub latest_message_at: Option<String>,
    pub created_at: Option<String>,
    pub closed_at: Option<String>,
}

impl From<pb::Conversation> for ConversationView {
    fn from(c: pb::Conversation) -> Self {
        Self {
            status: pb::ConversationStatus::try_from(c.status)
                .map(snake)
                .unwrap_or_default(),
            id: c.id,
            inbox_id: c.inbox_id,
            contact_id: c.contact_id,
            assigned_to: c.assigned_to,
            archived: c.archived,
            latest_message_at: c.latest_message_at.map(rfc3339),
            created_at: c.created_at.map(rfc3339),
            closed_at: c.closed_at.map(rfc3339),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConversationMessageView {
    pub id: String,
    /// message, comment or event.
    pub kind: String,
    /// incoming, outgoing, or empty for comments and events.
    pub direction: String,
    pub text: String,
    pub rich_text: String,
    pub subject: String,
    pub sender_actor_id: String,
    pub sender_name: String,
    /// SENT, RECEIVED, READ or FAILED.
    pub status: String,
    pub created_at: Option<String>,
}

impl From<pb::ConversationMessage> for ConversationMessageView {
    fn from(m: pb::ConversationMessage) -> Self {
        Self {
            kind: pb::ConversationMessageKind::try_from(m.kind)
                .map(snake)
                .unwrap_or_default(),
            direction: pb::ConversationMessageDirection::try_from(m.direction)
                .map(snake)
                .unwrap_or_default(),
            id: m.id,
            text: m.text,
            rich_text: m.rich_text,
            subject: m.subject,
            sender_actor_id: m.sender_actor_id,
            sender_name: m.sender_name,
            status: m.status,
            created_at: m.created_at.map(rfc3339),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConversationQuery {
    /// open or closed.
    pub status: Option<String>,
    pub inbox_id: Option<String>,
    pub page_size: Option<i32>,
    pub page_token: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConversationPage {
    pub items: Vec<ConversationView>,
    pub next_page_token: String,
}

/// HubSpot conversation threads, in HubSpot's order, by status or inbox.
#[utoipa::path(
    get, path = "/api/admin/conversations", tag = "notifications",
    security(("admin_secret" = []), ("admin_jwt" = [])),
    params(ConversationQuery),
    responses((status = 200, body = ConversationPage), (status = 400, body = ErrorBody), (status = 503, description = "`hubspot_unavailable`", body = ErrorBody))
)]
pub async fn conversations(
    State(state): State<AppState>,
    Admin(caller): Admin,
    query: Result<Query<ConversationQuery>, QueryRejection>,
) -> Result<ApiJson<ConversationPage>, ApiError> {
    let Query(q) = query?;
    use pb::ConversationStatus as S;
    let req = pb::ListConversationsRequest {
        status: enum_value("status", q.status.as_deref(), &[S::Open, S::Closed])?,
        inbox_id: q.inbox_id.unwrap_or_default(),
        page: page(q.page_size, q.page_token),
    };
    let r = state
        .clients
        .notifications
        .clone()
        .list_conversations(grpc(&state, &caller, req))
        .await?
        .into_inner();
    Ok(ApiJson(ConversationPage {
        items: r.conversations.into_iter().map(Into::into).collect(),
        next_page_token: r.page.map(|p| p.next_page_token).unwrap_or_default(),
    }))
}

/// One conversation thread.
#[utoipa::path(
    get, path = "/api/admin/conversations/{id}", tag = "notifications",
    security(("admin_secret" = []), ("admin_jwt" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = ConversationView), (status = 404, body = ErrorBody))
)]
pub async fn conversation(
    State(state): State<AppState>,
    Admin(caller): Admin,
    id: Result<Path<String>, PathRejection>,
) -> Result<ApiJson<ConversationView>, ApiError> {
    let Path(id) = id?;
    let r = state
        .clients
        .notifications
        .clone()
        .get_conversation(grpc(&state, &caller, pb::GetConversationRequest { id }))
        .await?
        .into_inner();
    r.conversation
        .map(|c| ApiJson(c.into()))
        .ok_or_else(|| ApiError::new(axum::http::StatusCode::NOT_FOUND, "not_found", "no such conversation"))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConversationMessagePage {
    pub items: Vec<ConversationMessageView>,
    pub next_page_token: String,
}

/// A thread's messages, comments and events, oldest first.
#[utoipa::path(
    get, path = "/api/admin/conversations/{id}/messages", tag = "notifications",
    security(("admin_secret" = []), ("admin_jwt" = [])),
    params(("id" = String, Path), super::patients::ListQuery),
    responses((status = 200, body = ConversationMessagePage), (status = 404, body = ErrorBody))
)]
pub async fn conversation_messages(
    State(state): State<AppState>,
    Admin(caller): Admin,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<super::patients::ListQuery>, QueryRejection>,
) -> Result<ApiJson<ConversationMessagePage>, ApiError> {
    let (Path(id), Query(q)) = (id?, query?);
    let req = pb::ListConversationMessagesRequest {
        conversation_id: id,
        page: page(q.page_size, q.page_token),
    };
    let r = state
        .clients
        .notifications
        .clone()
        .list_conversation_messages(grpc(&state, &caller, req))
        .await?
        .into_inner();
    Ok(ApiJson(ConversationMessagePage {
        items: r.messages.into_iter().map(Into::into).collect(),
        next_page_token: r.page.map(|p| p.next_page_token).unwrap_or_default(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplyRequest {
    pub text: String,
    /// Optional HTML version.
    #[serde(default)]
    pub rich_text: String,
    /// An internal note the contact does not see.
    #[serde(default)]
    pub internal_comment: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplyResult {
    pub message: Option<ConversationMessageView>,
    /// True when the Idempotency-Key had already posted this reply.
    pub existing: bool,
}

/// Replies on the thread's channel, or adds an internal comment; once per `Idempotency-Key`.
#[utoipa::path(
    post, path = "/api/admin/conversations/{id}/reply", tag = "notifications",
    security(("admin_secret" = []), ("admin_jwt" = [])),
    params(("id" = String, Path), ("Idempotency-Key" = String, Header, description = "required: a repeat posts nothing more")),
    request_body = ReplyRequest,
    responses(
        (status = 200, body = ReplyResult),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, description = "`conversation_closed`, `no_contact_message`, `idempotency_key_reused`", body = ErrorBody),
        (status = 503, description = "`hubspot_unavailable`: retry with the same key", body = ErrorBody),
    )
)]
pub async fn reply_to_conversation(
    State(state): State<AppState>,
    Admin(caller): Admin,
    id: Result<Path<String>, PathRejection>,
    headers: axum::http::HeaderMap,
    ApiJson(body): ApiJson<ReplyRequest>,
) -> Result<ApiJson<ReplyResult>, ApiError> {
    let Path(id) = id?;
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ApiError::field("Idempotency-Key", "is required, so a retried reply is posted once"))?
        .to_owned();
    let req = pb::ReplyToConversationRequest {
        conversation_id: id,
        text: body.text,
        rich_text: body.rich_text,
        internal_comment: body.internal_comment,
        idempotency_key: key,
        actor: None,
    };
    let r = state
        .clients
        .notifications
        .clone()
        .reply_to_conversation(grpc(&state, &caller, req))
        .await?
        .into_inner();
    Ok(ApiJson(ReplyResult {
        message: r.message.map(Into::into),
        existing: r.existing,
    }))
}
