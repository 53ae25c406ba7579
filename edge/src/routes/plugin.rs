//! The Canvas plugin's events: signed as its login is (`X-Timestamp`, `X-Signature`), stored as they
//! arrive before anything is checked, verified, and processed once per event id. An event is a notice,
//! not the truth: what it names is read from Canvas before anything is done.

use axum::{
    body::Bytes,
    extract::{rejection::BytesRejection, State},
    http::{HeaderMap, StatusCode},
    routing::post,
    Router,
};
use era_kit::auth::Caller;
use era_proto::{canvas::v1 as canvas, notifications::v1 as notifications};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    auth::verify_canvas_signature,
    error::{ApiError, ErrorBody},
    routes::{grpc, ApiJson},
    AppState,
};

/// A plugin event is a few ids: anything larger is not one.
const MAX_EVENT_BYTES: usize = 16 * 1024;

pub(super) fn router() -> Router<AppState> {
    Router::new().route(
        "/api/webhooks/canvas/patient-created",
        post(patient_created).layer(axum::extract::DefaultBodyLimit::max(MAX_EVENT_BYTES)),
    )
}

/// What the plugin sends (the plugin is the clinic's own, so this shape is ours).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PluginEvent {
    /// The plugin's id for the event: deliveries of one id are processed once.
    pub id: String,
    /// `PATIENT_CREATED` on this route.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The Canvas patient the event is about.
    pub patient_id: String,
    /// When it happened in Canvas (RFC 3339); informational.
    #[serde(default)]
    pub occurred_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PluginEventAck {
    pub received: bool,
    /// False when an earlier delivery of this event id was already processed.
    pub processed: bool,
}

fn plugin() -> Caller {
    Caller::service("era-edge/canvas-plugin")
}

fn db(e: sqlx::Error) -> ApiError {
    ApiError::internal(&anyhow::Error::new(e).context("edge database"))
}

/// Ids the plugin and Canvas use: letters, digits, `-` and `_`.
fn plain_id(field: &str, value: &str) -> Result<String, ApiError> {
    let v = value.trim();
    if v.is_empty() || v.len() > 128 || !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(ApiError::field(field, "must be 1-128 letters, digits, '-' or '_'"));
    }
    Ok(v.to_owned())
}

/// A new patient in Canvas (the plugin's PATIENT_CREATED): the patient is read from Canvas, then
/// gets the welcome email, once per patient however many events name them.
#[utoipa::path(
    post, path = "/api/webhooks/canvas/patient-created", tag = "webhooks",
    params(
        ("X-Timestamp" = String, Header, description = "Unix seconds or RFC 3339; within ±300 s"),
        ("X-Signature" = String, Header, description = "hex HMAC-SHA256(CANVAS_AUTH_SECRET, timestamp + \".\" + raw body)"),
    ),
    request_body = PluginEvent,
    responses(
        (status = 200, body = PluginEventAck),
        (status = 400, description = "signed but not a PATIENT_CREATED event (stored)", body = ErrorBody),
        (status = 401, description = "missing, stale, wrong or replayed signature: nothing is processed", body = ErrorBody),
        (status = 404, description = "Canvas has no such patient: nothing is processed", body = ErrorBody),
    )
)]
pub async fn patient_created(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<ApiJson<PluginEventAck>, ApiError> {
    let body = body?;
    // Kept as it came, before anything is believed.
    let delivery: i64 =
        sqlx::query_scalar("insert into plugin_deliveries (route, body) values ('patient-created', $1) returning id")
            .bind(body.as_ref())
            .fetch_one(&state.pool)
            .await
            .map_err(db)?;
    let outcome = |outcome: &'static str, event: Option<String>| {
        let pool = state.pool.clone();
        async move {
            sqlx::query("update plugin_deliveries set outcome = $2, event_id = $3 where id = $1")
                .bind(delivery)
                .bind(outcome)
                .bind(event)
                .execute(&pool)
                .await
                .map_err(db)
        }
    };
    if let Err(e) = verify_canvas_signature(&state, &headers, &body).await {
        outcome("bad_signature", None).await?;
        return Err(e);
    }
    let parsed = serde_json::from_slice::<PluginEvent>(&body)
        .map_err(|_| {
            ApiError::field(
                "body",
                "must be a JSON event {\"id\", \"type\", \"patientId\", \"occurredAt\"}",
            )
        })
        .and_then(|e| {
            if e.event_type != "PATIENT_CREATED" {
                return Err(ApiError::field("type", "must be PATIENT_CREATED on this route"));
            }
            Ok((plain_id("id", &e.id)?, plain_id("patientId", &e.patient_id)?))
        });
    let (event, patient) = match parsed {
        Ok(ids) => ids,
        Err(e) => {
            outcome("malformed", None).await?;
            return Err(e);
        }
    };

    sqlx::query(
        "insert into plugin_events (event_id, event_type, canvas_patient_id) values ($1, 'PATIENT_CREATED', $2) \
         on conflict (event_id) do nothing",
    )
    .bind(&event)
    .bind(&patient)
    .execute(&state.pool)
    .await
    .map_err(db)?;
    let done: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("select processed_at from plugin_events where event_id = $1")
            .bind(&event)
            .fetch_one(&state.pool)
            .await
            .map_err(db)?;
    if done.is_some() {
        outcome("repeat", Some(event)).await?;
        return Ok(ApiJson(PluginEventAck {
            received: true,
            processed: false,
        }));
    }

    // The notice is not the truth: the patient must exist in Canvas.
    let read = state
        .clients
        .canvas
        .clone()
        .get_patient(grpc(
            &state,
            &plugin(),
            canvas::GetPatientRequest {
                canvas_patient_id: patient.clone(),
                ..Default::default()
            },
        ))
        .await;
    match read {
        Ok(_) => {}
        Err(s) if s.code() == tonic::Code::NotFound => {
            outcome("unknown_patient", Some(event)).await?;
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "Canvas has no such patient",
            ));
        }
        Err(s) => return Err(s.into()),
    }
    // Once per patient, whatever the number of events: the key is the patient's.
    state
        .clients
        .notifications
        .clone()
        .send_notification(grpc(
            &state,
            &plugin(),
            notifications::SendNotificationRequest {
                notification_type: notifications::NotificationType::Welcome as i32,
                canvas_patient_id: patient.clone(),
                reference: event.clone(),
                dedupe_key: format!("welcome:{patient}"),
                ..Default::default()
            },
        ))
        .await?;
    sqlx::query("update plugin_events set processed_at = now() where event_id = $1 and processed_at is null")
        .bind(&event)
        .execute(&state.pool)
        .await
        .map_err(db)?;
    outcome("processed", Some(event)).await?;
    tracing::info!("Canvas plugin: patient created, welcome sent");
    Ok(ApiJson(PluginEventAck {
        received: true,
        processed: true,
    }))
}
