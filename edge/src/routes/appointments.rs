//! Telehealth appointments, from scheduling: availability, booking, cancelling and moving a visit.
//! Admins act for any patient under `/api/admin/...`; a signed-in patient acts only for themselves
//! under `/api/patient/...` and `/api/patient-appointments/{patientId}` (another patient's id or
//! appointment is 403, and nothing is read or changed).

use axum::{
    extract::{
        rejection::{PathRejection, QueryRejection},
        Path, Query, State,
    },
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use era_kit::auth::{Caller, Role};
use era_proto::scheduling::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::views::{page, parse_time, rfc3339, snake, status_filter};
use crate::{
    auth::{Admin, Patient},
    error::{ApiError, ErrorBody},
    routes::{grpc, idempotency_key, ApiJson},
    AppState,
};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/admin/appointments", get(admin_appointments).post(admin_book))
        .route("/api/admin/appointments/{id}", get(admin_appointment))
        .route("/api/admin/appointments/{id}/cancel", post(admin_cancel))
        .route("/api/admin/appointments/{id}/reschedule", post(admin_reschedule))
        .route("/api/admin/availability", get(admin_availability))
        .route("/api/patient/availability", get(patient_availability))
        .route("/api/patient/appointments", post(patient_book))
        .route("/api/patient/appointments/{id}/cancel", post(patient_cancel))
        .route("/api/patient/appointments/{id}/reschedule", post(patient_reschedule))
        .route("/api/patient-appointments/{patient_id}", get(patient_appointments))
}

const STATUSES: [pb::AppointmentStatus; 6] = [
    pb::AppointmentStatus::Pending,
    pb::AppointmentStatus::Booked,
    pb::AppointmentStatus::Cancelled,
    pb::AppointmentStatus::Completed,
    pb::AppointmentStatus::NoShow,
    pb::AppointmentStatus::Failed,
];

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppointmentView {
    pub id: String,
    pub canvas_patient_id: String,
    pub canvas_appointment_id: String,
    pub practitioner_id: String,
    pub practitioner_name: String,
    /// pending, booked, cancelled, completed, no_show or failed.
    pub status: String,
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    pub duration_minutes: i32,
    /// The patient's IANA time zone, for display.
    pub time_zone: String,
    /// The practitioners' IANA time zone, for display.
    pub practitioner_time_zone: String,
    /// The Zoom link patient and practitioner join with.
    pub join_url: String,
    pub zoom_meeting_id: String,
    pub reminder_scheduled_at: Option<String>,
    pub cancellation_reason: String,
    pub cancelled_at: Option<String>,
    /// Why a booking failed (`canvas_refused`, `zoom_refused`).
    pub failure_reason: String,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

impl From<pb::Appointment> for AppointmentView {
    fn from(a: pb::Appointment) -> Self {
        Self {
            status: pb::AppointmentStatus::try_from(a.status).map(snake).unwrap_or_default(),
            id: a.id,
            canvas_patient_id: a.canvas_patient_id,
            canvas_appointment_id: a.canvas_appointment_id,
            practitioner_id: a.practitioner_id,
            practitioner_name: a.practitioner_name,
            start_time: a.start_time.map(rfc3339),
            end_time: a.end_time.map(rfc3339),
            duration_minutes: a.duration_minutes,
            time_zone: a.time_zone,
            practitioner_time_zone: a.practitioner_time_zone,
            join_url: a.zoom_join_url,
            zoom_meeting_id: a.zoom_meeting_id,
            reminder_scheduled_at: a.reminder_scheduled_at.map(rfc3339),
            cancellation_reason: a.cancellation_reason,
            cancelled_at: a.cancelled_at.map(rfc3339),
            failure_reason: a.failure_reason,
            created_at: a.created_at.map(rfc3339),
            updated_at: a.updated_at.map(rfc3339),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SlotView {
    pub practitioner_id: String,
    pub practitioner_name: String,
    pub start_time: Option<String>,
    pub end_time: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Availability {
    /// Free slots, earliest first; times in UTC.
    pub items: Vec<SlotView>,
    /// For display: the patient's zone (from their state) and the practitioners'.
    pub patient_time_zone: String,
    pub practitioner_time_zone: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AvailabilityQuery {
    /// The patient (admins: required; patients: their own, may be left out).
    pub canvas_patient_id: Option<String>,
    /// Only this practitioner; left out: everyone licensed in the patient's state.
    pub practitioner_id: Option<String>,
    /// RFC 3339; default now.
    pub from: Option<String>,
    /// RFC 3339; default seven days after `from`; at most 31 days after it.
    pub to: Option<String>,
    /// Visit length; default the clinic's.
    pub duration_minutes: Option<i32>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppointmentQuery {
    pub patient_id: Option<String>,
    pub practitioner_id: Option<String>,
    /// pending, booked, cancelled, completed, no_show or failed.
    pub status: Option<String>,
    /// Starts from this time (RFC 3339, inclusive).
    pub from: Option<String>,
    /// Starts before this time (RFC 3339, exclusive).
    pub to: Option<String>,
    pub page_size: Option<i32>,
    pub page_token: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppointmentPage {
    /// Latest start first.
    pub items: Vec<AppointmentView>,
    pub next_page_token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BookRequest {
    /// Admins: required. Patients: their own id, or left out.
    pub canvas_patient_id: Option<String>,
    pub practitioner_id: String,
    /// A slot's `startTime` from the availability (RFC 3339).
    pub start_time: String,
    pub duration_minutes: Option<i32>,
    /// IANA zone for the patient's messages; default the zone of their state.
    pub time_zone: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CancelRequest {
    /// Kept with the appointment; at most 500 characters.
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RescheduleRequest {
    /// A slot's `startTime` from the availability, same practitioner (RFC 3339).
    pub start_time: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppointmentResult {
    pub appointment: AppointmentView,
    /// True when the Idempotency-Key had booked it already.
    pub existing: bool,
}

/// The patient a request is for: a patient's own id (naming another is 403), or the id an admin
/// (or `ADMIN_SECRET` on a patient route) gives.
fn patient_for(caller: &Caller, given: Option<String>) -> Result<String, ApiError> {
    let given = given.filter(|g| !g.trim().is_empty());
    match (caller.role, caller.patient_id.as_deref(), given) {
        (Role::Patient, Some(own), None) => Ok(own.to_owned()),
        (Role::Patient, Some(own), Some(g)) if g == own => Ok(g),
        (Role::Patient, _, _) => Err(ApiError::forbidden("a patient may only act for themselves")),
        (_, _, Some(g)) => Ok(g),
        (_, _, None) => Err(ApiError::field("canvasPatientId", "is required")),
    }
}

fn required_time(field: &str, value: &str) -> Result<era_proto::Timestamp, ApiError> {
    parse_time(field, Some(value))?.ok_or_else(|| ApiError::field(field, "is required"))
}

fn view(a: Option<pb::Appointment>) -> Result<AppointmentView, ApiError> {
    a.map(Into::into)
        .ok_or_else(|| ApiError::internal(&anyhow::anyhow!("scheduling answered no appointment")))
}

async fn availability(
    state: &AppState,
    caller: &Caller,
    q: AvailabilityQuery,
) -> Result<ApiJson<Availability>, ApiError> {
    let req = pb::GetAvailabilityRequest {
        canvas_patient_id: patient_for(caller, q.canvas_patient_id)?,
        practitioner_id: q.practitioner_id.unwrap_or_default(),
        start_time: parse_time("from", q.from.as_deref())?,
        end_time: parse_time("to", q.to.as_deref())?,
        duration_minutes: q.duration_minutes.unwrap_or_default(),
    };
    let r = state
        .clients
        .scheduling
        .clone()
        .get_availability(grpc(state, caller, req))
        .await?
        .into_inner();
    Ok(ApiJson(Availability {
        items: r
            .slots
            .into_iter()
            .map(|s| SlotView {
                practitioner_id: s.practitioner_id,
                practitioner_name: s.practitioner_name,
                start_time: s.start_time.map(rfc3339),
                end_time: s.end_time.map(rfc3339),
            })
            .collect(),
        patient_time_zone: r.patient_time_zone,
        practitioner_time_zone: r.practitioner_time_zone,
    }))
}

/// 201 with the new appointment; 200 when the Idempotency-Key had booked it already.
async fn book(state: &AppState, caller: &Caller, headers: &HeaderMap, body: BookRequest) -> Result<Response, ApiError> {
    let req = pb::BookAppointmentRequest {
        canvas_patient_id: patient_for(caller, body.canvas_patient_id)?,
        practitioner_id: body.practitioner_id,
        start_time: Some(required_time("startTime", &body.start_time)?),
        duration_minutes: body.duration_minutes.unwrap_or_default(),
        time_zone: body.time_zone.unwrap_or_default(),
        idempotency_key: idempotency_key(headers)?,
        actor: None,
    };
    let r = state
        .clients
        .scheduling
        .clone()
        .book_appointment(grpc(state, caller, req))
        .await?
        .into_inner();
    let status = if r.existing {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let result = AppointmentResult {
        appointment: view(r.appointment)?,
        existing: r.existing,
    };
    Ok((status, ApiJson(result)).into_response())
}

async fn cancel(
    state: &AppState,
    caller: &Caller,
    id: String,
    body: CancelRequest,
) -> Result<ApiJson<AppointmentView>, ApiError> {
    let req = pb::CancelAppointmentRequest {
        id,
        reason: body.reason.unwrap_or_default(),
        actor: None,
    };
    let r = state
        .clients
        .scheduling
        .clone()
        .cancel_appointment(grpc(state, caller, req))
        .await?
        .into_inner();
    Ok(ApiJson(view(r.appointment)?))
}

async fn reschedule(
    state: &AppState,
    caller: &Caller,
    id: String,
    body: RescheduleRequest,
) -> Result<ApiJson<AppointmentView>, ApiError> {
    let req = pb::RescheduleAppointmentRequest {
        id,
        start_time: Some(required_time("startTime", &body.start_time)?),
        actor: None,
    };
    let r = state
        .clients
        .scheduling
        .clone()
        .reschedule_appointment(grpc(state, caller, req))
        .await?
        .into_inner();
    Ok(ApiJson(view(r.appointment)?))
}

pub(crate) async fn list(
    state: &AppState,
    caller: &Caller,
    q: AppointmentQuery,
) -> Result<ApiJson<AppointmentPage>, ApiError> {
    let req = pb::ListAppointmentsRequest {
        canvas_patient_id: q.patient_id.unwrap_or_default(),
        practitioner_id: q.practitioner_id.unwrap_or_default(),
        status: status_filter("status", q.status.as_deref(), &STATUSES)? as i32,
        start_from: parse_time("from", q.from.as_deref())?,
        start_to: parse_time("to", q.to.as_deref())?,
        page: page(q.page_size, q.page_token),
    };
    let r = state
        .clients
        .scheduling
        .clone()
        .list_appointments(grpc(state, caller, req))
        .await?
        .into_inner();
    Ok(ApiJson(AppointmentPage {
        items: r.appointments.into_iter().map(Into::into).collect(),
        next_page_token: r.page.map(|p| p.next_page_token).unwrap_or_default(),
    }))
}

/// Telehealth appointments with their Zoom links, latest start first.
#[utoipa::path(
    get, path = "/api/admin/appointments", tag = "appointments",
    security(("admin_secret" = []), ("admin_jwt" = [])),
    params(AppointmentQuery),
    responses((status = 200, body = AppointmentPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody))
)]
pub async fn admin_appointments(
    State(state): State<AppState>,
    Admin(caller): Admin,
    query: Result<Query<AppointmentQuery>, QueryRejection>,
) -> Result<ApiJson<AppointmentPage>, ApiError> {
    let Query(q) = query?;
    list(&state, &caller, q).await
}

/// One appointment.
#[utoipa::path(
    get, path = "/api/admin/appointments/{id}", tag = "appointments",
    security(("admin_secret" = []), ("admin_jwt" = [])),
    params(("id" = String, Path, description = "appointment id")),
    responses((status = 200, body = AppointmentView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn admin_appointment(
    State(state): State<AppState>,
    Admin(caller): Admin,
    id: Result<Path<String>, PathRejection>,
) -> Result<ApiJson<AppointmentView>, ApiError> {
    let Path(id) = id?;
    let r = state
        .clients
        .scheduling
        .clone()
        .get_appointment(grpc(&state, &caller, pb::GetAppointmentRequest { id }))
        .await?
        .into_inner();
    Ok(ApiJson(view(r.appointment)?))
}

/// Free slots for a patient: every practitioner licensed in their state, or one.
#[utoipa::path(
    get, path = "/api/admin/availability", tag = "appointments",
    security(("admin_secret" = []), ("admin_jwt" = [])),
    params(AvailabilityQuery),
    responses((status = 200, body = Availability), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, description = "no such patient", body = ErrorBody),
        (status = 422, description = "`patient_state_unknown`, `practitioner_not_licensed`", body = ErrorBody))
)]
pub async fn admin_availability(
    State(state): State<AppState>,
    Admin(caller): Admin,
    query: Result<Query<AvailabilityQuery>, QueryRejection>,
) -> Result<ApiJson<Availability>, ApiError> {
    let Query(q) = query?;
    availability(&state, &caller, q).await
}

/// Books a visit for a patient: a Zoom meeting, the Canvas Appointment, the confirmation and the
/// reminder. 201 when booked (or still `pending` after the wait); 200 with `existing` for a repeated
/// Idempotency-Key.
#[utoipa::path(
    post, path = "/api/admin/appointments", tag = "appointments",
    security(("admin_secret" = []), ("admin_jwt" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "repeats return the first booking")),
    request_body = BookRequest,
    responses((status = 201, body = AppointmentResult), (status = 200, body = AppointmentResult),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, description = "no such patient", body = ErrorBody),
        (status = 422, description = "`slot_unavailable`, `idempotency_key_reused`, `practitioner_not_licensed`, `patient_state_unknown`", body = ErrorBody),
        (status = 503, description = "`canvas_unavailable`, `routing_unavailable`", body = ErrorBody))
)]
pub async fn admin_book(
    State(state): State<AppState>,
    Admin(caller): Admin,
    headers: HeaderMap,
    ApiJson(body): ApiJson<BookRequest>,
) -> Result<Response, ApiError> {
    book(&state, &caller, &headers, body).await
}

/// Cancels a visit: Canvas, Zoom, the reminder, and a notice to the patient.
#[utoipa::path(
    post, path = "/api/admin/appointments/{id}/cancel", tag = "appointments",
    security(("admin_secret" = []), ("admin_jwt" = [])),
    params(("id" = String, Path, description = "appointment id")),
    request_body = CancelRequest,
    responses((status = 200, body = AppointmentView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, description = "`appointment_finished`, `appointment_failed`", body = ErrorBody))
)]
pub async fn admin_cancel(
    State(state): State<AppState>,
    Admin(caller): Admin,
    id: Result<Path<String>, PathRejection>,
    ApiJson(body): ApiJson<CancelRequest>,
) -> Result<ApiJson<AppointmentView>, ApiError> {
    let Path(id) = id?;
    cancel(&state, &caller, id, body).await
}

/// Moves a visit to another free slot of the same practitioner.
#[utoipa::path(
    post, path = "/api/admin/appointments/{id}/reschedule", tag = "appointments",
    security(("admin_secret" = []), ("admin_jwt" = [])),
    params(("id" = String, Path, description = "appointment id")),
    request_body = RescheduleRequest,
    responses((status = 200, body = AppointmentView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, description = "`slot_unavailable`, `appointment_finished`, `appointment_cancelled`, `appointment_changed`", body = ErrorBody))
)]
pub async fn admin_reschedule(
    State(state): State<AppState>,
    Admin(caller): Admin,
    id: Result<Path<String>, PathRejection>,
    ApiJson(body): ApiJson<RescheduleRequest>,
) -> Result<ApiJson<AppointmentView>, ApiError> {
    let Path(id) = id?;
    reschedule(&state, &caller, id, body).await
}

/// The signed-in patient's free slots.
#[utoipa::path(
    get, path = "/api/patient/availability", tag = "appointments",
    security(("patient_jwt" = []), ("admin_secret" = [])),
    params(AvailabilityQuery),
    responses((status = 200, body = Availability), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, description = "`patient_state_unknown`", body = ErrorBody), (status = 503, body = ErrorBody))
)]
pub async fn patient_availability(
    State(state): State<AppState>,
    Patient(caller): Patient,
    query: Result<Query<AvailabilityQuery>, QueryRejection>,
) -> Result<ApiJson<Availability>, ApiError> {
    let Query(q) = query?;
    availability(&state, &caller, q).await
}

/// The signed-in patient books a visit for themselves.
#[utoipa::path(
    post, path = "/api/patient/appointments", tag = "appointments",
    security(("patient_jwt" = []), ("admin_secret" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "repeats return the first booking")),
    request_body = BookRequest,
    responses((status = 201, body = AppointmentResult), (status = 200, body = AppointmentResult),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, description = "`slot_unavailable`, `idempotency_key_reused`", body = ErrorBody),
        (status = 503, body = ErrorBody))
)]
pub async fn patient_book(
    State(state): State<AppState>,
    Patient(caller): Patient,
    headers: HeaderMap,
    ApiJson(body): ApiJson<BookRequest>,
) -> Result<Response, ApiError> {
    book(&state, &caller, &headers, body).await
}

/// The patient cancels one of their visits.
#[utoipa::path(
    post, path = "/api/patient/appointments/{id}/cancel", tag = "appointments",
    security(("patient_jwt" = []), ("admin_secret" = [])),
    params(("id" = String, Path, description = "appointment id")),
    request_body = CancelRequest,
    responses((status = 200, body = AppointmentView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody))
)]
pub async fn patient_cancel(
    State(state): State<AppState>,
    Patient(caller): Patient,
    id: Result<Path<String>, PathRejection>,
    ApiJson(body): ApiJson<CancelRequest>,
) -> Result<ApiJson<AppointmentView>, ApiError> {
    let Path(id) = id?;
    cancel(&state, &caller, id, body).await
}

/// The patient moves one of their visits.
#[utoipa::path(
    post, path = "/api/patient/appointments/{id}/reschedule", tag = "appointments",
    security(("patient_jwt" = []), ("admin_secret" = [])),
    params(("id" = String, Path, description = "appointment id")),
    request_body = RescheduleRequest,
    responses((status = 200, body = AppointmentView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody))
)]
pub async fn patient_reschedule(
    State(state): State<AppState>,
    Patient(caller): Patient,
    id: Result<Path<String>, PathRejection>,
    ApiJson(body): ApiJson<RescheduleRequest>,
) -> Result<ApiJson<AppointmentView>, ApiError> {
    let Path(id) = id?;
    reschedule(&state, &caller, id, body).await
}

/// A patient's own appointments, latest start first.
#[utoipa::path(
    get, path = "/api/patient-appointments/{patientId}", tag = "appointments",
    security(("patient_jwt" = []), ("admin_secret" = [])),
    params(("patientId" = String, Path, description = "Canvas patient id"), super::patients::ListQuery),
    responses((status = 200, body = AppointmentPage), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
pub async fn patient_appointments(
    State(state): State<AppState>,
    patient: Patient,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<super::patients::ListQuery>, QueryRejection>,
) -> Result<ApiJson<AppointmentPage>, ApiError> {
    let (Path(id), Query(q)) = (id?, query?);
    patient.require(&id)?;
    let q = AppointmentQuery {
        patient_id: Some(id),
        practitioner_id: None,
        status: None,
        from: None,
        to: None,
        page_size: q.page_size,
        page_token: q.page_token,
    };
    list(&state, &patient.0, q).await
}
