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
use era_proto::{canvas::v1 as canvas, notifications::v1 as notifications, pharmacy_routing::v1 as routing};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    auth::verify_canvas_signature,
    error::{ApiError, ErrorBody},
    routes::{grpc, views::snake, ApiJson},
    AppState,
};

/// A plugin event is a few ids: anything larger is not one.
const MAX_EVENT_BYTES: usize = 16 * 1024;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/webhooks/canvas/patient-created",
            post(patient_created).layer(axum::extract::DefaultBodyLimit::max(MAX_EVENT_BYTES)),
        )
        .route(
            "/api/webhooks/canvas/prescription",
            post(prescription).layer(axum::extract::DefaultBodyLimit::max(MAX_EVENT_BYTES)),
        )
}

/// What the plugin sends (the plugin is the clinic's own, so this shape is ours).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PluginEvent {
    /// The plugin's id for the event: deliveries of one id are processed once.
    pub id: String,
    /// `PATIENT_CREATED`, `PRESCRIPTION_CREATED` or `PRESCRIPTION_UPDATED` (each on its route).
    #[serde(rename = "type")]
    pub event_type: String,
    /// The Canvas patient the event is about.
    pub patient_id: String,
    /// The Canvas MedicationRequest of a prescription event.
    #[serde(default)]
    pub medication_request_id: Option<String>,
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
    /// What became of a prescription event: started, already_fulfilling, fulfilled_by_approval,
    /// not_active, refill_ignored, not_in_catalogue, stopping, nothing_to_stop, dose_changed or
    /// no_change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// The run that fulfils or stops the prescription (see `GET /api/rx-queue/runs/{runId}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
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

/// One delivery to a plugin route, stored before anything is believed.
struct Delivery {
    id: i64,
    pool: sqlx::PgPool,
}

impl Delivery {
    async fn store(state: &AppState, route: &str, body: &[u8]) -> Result<Self, ApiError> {
        let id: i64 = sqlx::query_scalar("insert into plugin_deliveries (route, body) values ($1, $2) returning id")
            .bind(route)
            .bind(body)
            .fetch_one(&state.pool)
            .await
            .map_err(db)?;
        Ok(Self {
            id,
            pool: state.pool.clone(),
        })
    }

    /// What became of the delivery (received, bad_signature, malformed, unknown_patient,
    /// unknown_prescription, processed, repeat).
    async fn mark(&self, outcome: &'static str, event: Option<&str>) -> Result<(), ApiError> {
        sqlx::query("update plugin_deliveries set outcome = $2, event_id = $3 where id = $1")
            .bind(self.id)
            .bind(outcome)
            .bind(event)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }
}

/// A verified event, its ids checked.
struct Verified {
    delivery: Delivery,
    event: String,
    event_type: &'static str,
    patient: String,
    prescription: Option<String>,
}

/// Stores the delivery, verifies its signature and reads the event: one of `types`, with a
/// `medicationRequestId` when `prescription`. A bad signature is 401, a malformed event 400; both
/// are marked on the stored delivery.
async fn receive(
    state: &AppState,
    route: &str,
    headers: &HeaderMap,
    body: &[u8],
    types: &[&'static str],
    prescription: bool,
) -> Result<Verified, ApiError> {
    // Kept as it came, before anything is believed.
    let delivery = Delivery::store(state, route, body).await?;
    if let Err(e) = verify_canvas_signature(state, headers, body).await {
        delivery.mark("bad_signature", None).await?;
        return Err(e);
    }
    let shape = if prescription {
        "must be a JSON event {\"id\", \"type\", \"medicationRequestId\", \"patientId\", \"occurredAt\"}"
    } else {
        "must be a JSON event {\"id\", \"type\", \"patientId\", \"occurredAt\"}"
    };
    let parsed = serde_json::from_slice::<PluginEvent>(body)
        .map_err(|_| ApiError::field("body", shape))
        .and_then(|e| {
            let Some(event_type) = types.iter().copied().find(|t| *t == e.event_type) else {
                return Err(ApiError::field(
                    "type",
                    format!("must be {} on this route", types.join(" or ")),
                ));
            };
            let medication_request = if prescription {
                Some(plain_id(
                    "medicationRequestId",
                    e.medication_request_id.as_deref().unwrap_or_default(),
                )?)
            } else {
                None
            };
            Ok((
                plain_id("id", &e.id)?,
                event_type,
                plain_id("patientId", &e.patient_id)?,
                medication_request,
            ))
        });
    match parsed {
        Ok((event, event_type, patient, prescription)) => Ok(Verified {
            delivery,
            event,
            event_type,
            patient,
            prescription,
        }),
        Err(e) => {
            delivery.mark("malformed", None).await?;
            Err(e)
        }
    }
}

impl Verified {
    /// Records the event; false when an earlier delivery of it was processed (this one is marked
    /// a repeat).
    async fn first_time(&self, state: &AppState) -> Result<bool, ApiError> {
        sqlx::query(
            "insert into plugin_events (event_id, event_type, canvas_patient_id) values ($1, $2, $3) \
             on conflict (event_id) do nothing",
        )
        .bind(&self.event)
        .bind(self.event_type)
        .bind(&self.patient)
        .execute(&state.pool)
        .await
        .map_err(db)?;
        let done: Option<chrono::DateTime<chrono::Utc>> =
            sqlx::query_scalar("select processed_at from plugin_events where event_id = $1")
                .bind(&self.event)
                .fetch_one(&state.pool)
                .await
                .map_err(db)?;
        if done.is_some() {
            self.delivery.mark("repeat", Some(&self.event)).await?;
            return Ok(false);
        }
        Ok(true)
    }

    async fn processed(&self, state: &AppState) -> Result<(), ApiError> {
        sqlx::query("update plugin_events set processed_at = now() where event_id = $1 and processed_at is null")
            .bind(&self.event)
            .execute(&state.pool)
            .await
            .map_err(db)?;
        self.delivery.mark("processed", Some(&self.event)).await
    }
}

fn repeat() -> ApiJson<PluginEventAck> {
    ApiJson(PluginEventAck {
        received: true,
        processed: false,
        outcome: None,
        run_id: None,
    })
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
    let v = receive(&state, "patient-created", &headers, &body, &["PATIENT_CREATED"], false).await?;
    if !v.first_time(&state).await? {
        return Ok(repeat());
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
                canvas_patient_id: v.patient.clone(),
                ..Default::default()
            },
        ))
        .await;
    match read {
        Ok(_) => {}
        Err(s) if s.code() == tonic::Code::NotFound => {
            v.delivery.mark("unknown_patient", Some(&v.event)).await?;
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
                canvas_patient_id: v.patient.clone(),
                reference: v.event.clone(),
                dedupe_key: format!("welcome:{}", v.patient),
                ..Default::default()
            },
        ))
        .await?;
    v.processed(&state).await?;
    tracing::info!("Canvas plugin: patient created, welcome sent");
    Ok(ApiJson(PluginEventAck {
        received: true,
        processed: true,
        outcome: None,
        run_id: None,
    }))
}

/// A prescription written or changed in Canvas (the plugin's PRESCRIPTION_CREATED and
/// PRESCRIPTION_UPDATED): pharmacy-routing reads it from Canvas and starts its fulfilment, or stops
/// it, once per prescription.
#[utoipa::path(
    post, path = "/api/webhooks/canvas/prescription", tag = "webhooks",
    params(
        ("X-Timestamp" = String, Header, description = "Unix seconds or RFC 3339; within ±300 s"),
        ("X-Signature" = String, Header, description = "hex HMAC-SHA256(CANVAS_AUTH_SECRET, timestamp + \".\" + raw body)"),
    ),
    request_body = PluginEvent,
    responses(
        (status = 200, body = PluginEventAck),
        (status = 400, description = "signed but not a prescription event, or the patient is not the prescription's (stored)", body = ErrorBody),
        (status = 401, description = "missing, stale, wrong or replayed signature: nothing is processed", body = ErrorBody),
        (status = 404, description = "Canvas has no such prescription: nothing is processed", body = ErrorBody),
    )
)]
pub async fn prescription(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<ApiJson<PluginEventAck>, ApiError> {
    let body = body?;
    let v = receive(
        &state,
        "prescription",
        &headers,
        &body,
        &["PRESCRIPTION_CREATED", "PRESCRIPTION_UPDATED"],
        true,
    )
    .await?;
    if !v.first_time(&state).await? {
        return Ok(repeat());
    }
    let event_type = if v.event_type == "PRESCRIPTION_CREATED" {
        routing::PrescriptionEventType::Created
    } else {
        routing::PrescriptionEventType::Updated
    };
    let answer = state
        .clients
        .routing
        .clone()
        .handle_prescription_event(grpc(
            &state,
            &plugin(),
            routing::HandlePrescriptionEventRequest {
                event_id: v.event.clone(),
                event_type: event_type as i32,
                medication_request_id: v.prescription.clone().unwrap_or_default(),
                canvas_patient_id: v.patient.clone(),
            },
        ))
        .await
        .map(|r| {
            let r = r.into_inner();
            (r.outcome, r.run)
        });
    let (outcome, run) = match answer {
        Ok(answer) => answer,
        Err(s) if s.code() == tonic::Code::NotFound => {
            v.delivery.mark("unknown_prescription", Some(&v.event)).await?;
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "Canvas has no such prescription",
            ));
        }
        Err(s) if s.code() == tonic::Code::InvalidArgument => {
            v.delivery.mark("malformed", Some(&v.event)).await?;
            return Err(s.into());
        }
        // Unprocessed: the plugin's redelivery completes it.
        Err(s) => return Err(s.into()),
    };
    v.processed(&state).await?;
    let outcome = routing::PrescriptionOutcome::try_from(outcome)
        .map(snake)
        .unwrap_or_default();
    tracing::info!(outcome = %outcome, "Canvas plugin: prescription event handled");
    Ok(ApiJson(PluginEventAck {
        received: true,
        processed: true,
        outcome: Some(outcome),
        run_id: run.map(|r| r.id),
    }))
}
