//! Fulfilment after approval, from pharmacy-routing: the orders placed with pharmacies, the audit trail
//! of every exchange with them (sync logs), and a patient's shipments and refill schedule. All
//! admin-only except `/api/patient-shipments/{patientId}`, which the patient reads too.

use axum::{
    extract::{
        rejection::{PathRejection, QueryRejection},
        Path, Query, State,
    },
    http::HeaderMap,
    routing::{get, post},
    Router,
};
use era_proto::{common::v1::Actor, pharmacy_routing::v1 as pb};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    patients::ListQuery,
    views::{page, parse_time, rfc3339, snake, status_filter},
};
use crate::{
    auth::{Admin, Patient},
    error::{ApiError, ErrorBody},
    routes::{approvals::RunView, grpc, idempotency_key, ApiJson},
    AppState,
};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/admin/pharmacy-orders", get(pharmacy_orders))
        .route("/api/admin/pharmacy-orders/{order_id}", get(pharmacy_order))
        .route("/api/admin/sync-logs", get(sync_logs))
        .route("/api/admin/shipments/{patient_id}", get(shipments))
        .route("/api/admin/refills/{patient_id}", get(refills))
        .route("/api/admin/refills/{patient_id}/{action}", post(refill_action))
        .route("/api/patient-refills/{patient_id}", get(patient_refills))
        .route("/api/admin/refund-reviews", get(refund_reviews))
        .route("/api/patient-shipments/{patient_id}", get(patient_shipments))
}

/// The order statuses, in the order the API lists them.
const ORDER_STATUSES: [pb::OrderStatus; 7] = [
    pb::OrderStatus::Pending,
    pb::OrderStatus::Submitted,
    pb::OrderStatus::Accepted,
    pb::OrderStatus::Rejected,
    pb::OrderStatus::Cancelled,
    pb::OrderStatus::Shipped,
    pb::OrderStatus::Delivered,
];

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PharmacyOrderView {
    pub id: String,
    /// The orchestration run that placed it.
    pub run_id: String,
    pub canvas_patient_id: String,
    /// gmp, boothwyn or strive.
    pub pharmacy_id: String,
    pub prescriber_id: String,
    pub medication: String,
    pub dose_label: String,
    /// pending, submitted, accepted, rejected, cancelled, shipped or delivered.
    pub status: String,
    /// The pharmacy's own order id once it accepted.
    pub external_order_id: String,
    pub rejection_reason: String,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    /// Once the pharmacy reported it shipped.
    pub shipment: Option<ShipmentView>,
}

impl From<pb::PharmacyOrder> for PharmacyOrderView {
    fn from(o: pb::PharmacyOrder) -> Self {
        Self {
            status: pb::OrderStatus::try_from(o.status).map(snake).unwrap_or_default(),
            id: o.id,
            run_id: o.run_id,
            canvas_patient_id: o.canvas_patient_id,
            pharmacy_id: o.pharmacy_id,
            prescriber_id: o.prescriber_id,
            medication: o.medication,
            dose_label: o.dose_label,
            external_order_id: o.external_order_id,
            rejection_reason: o.rejection_reason,
            created_at: o.created_at.map(rfc3339),
            updated_at: o.updated_at.map(rfc3339),
            shipment: o.shipment.map(Into::into),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PharmacyOrderQuery {
    /// Only this Canvas patient's orders.
    pub patient_id: Option<String>,
    /// A pharmacy id: gmp, boothwyn or strive.
    pub pharmacy: Option<String>,
    /// pending, submitted, accepted, rejected, cancelled, shipped or delivered.
    pub status: Option<String>,
    pub page_size: Option<i32>,
    pub page_token: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PharmacyOrderPage {
    pub items: Vec<PharmacyOrderView>,
    pub next_page_token: String,
}

/// Orders placed with pharmacies, newest first.
#[utoipa::path(
    get, path = "/api/admin/pharmacy-orders", tag = "fulfilment",
    security(("admin_secret" = []), ("admin_jwt" = [])),
    params(PharmacyOrderQuery),
    responses((status = 200, body = PharmacyOrderPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody))
)]
pub async fn pharmacy_orders(
    State(state): State<AppState>,
    Admin(caller): Admin,
    query: Result<Query<PharmacyOrderQuery>, QueryRejection>,
) -> Result<ApiJson<PharmacyOrderPage>, ApiError> {
    let Query(q) = query?;
    let req = pb::ListPharmacyOrdersRequest {
        canvas_patient_id: q.patient_id.unwrap_or_default(),
        pharmacy_id: pharmacy_filter(q.pharmacy.as_deref())?,
        status: status_filter("status", q.status.as_deref(), &ORDER_STATUSES)? as i32,
        page: page(q.page_size, q.page_token),
        run_ids: Vec::new(),
    };
    let r = state
        .clients
        .routing
        .clone()
        .list_pharmacy_orders(grpc(&state, &caller, req))
        .await?
        .into_inner();
    Ok(ApiJson(PharmacyOrderPage {
        items: r.orders.into_iter().map(Into::into).collect(),
        next_page_token: r.page.map(|p| p.next_page_token).unwrap_or_default(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PharmacyOrderResult {
    pub order: PharmacyOrderView,
}

/// One pharmacy order.
#[utoipa::path(
    get, path = "/api/admin/pharmacy-orders/{orderId}", tag = "fulfilment",
    security(("admin_secret" = []), ("admin_jwt" = [])),
    params(("orderId" = String, Path)),
    responses(
        (status = 200, body = PharmacyOrderResult),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn pharmacy_order(
    State(state): State<AppState>,
    Admin(caller): Admin,
    id: Result<Path<String>, PathRejection>,
) -> Result<ApiJson<PharmacyOrderResult>, ApiError> {
    let Path(id) = id?;
    let r = state
        .clients
        .routing
        .clone()
        .get_pharmacy_order(grpc(&state, &caller, pb::GetPharmacyOrderRequest { id }))
        .await?
        .into_inner();
    let order = r
        .order
        .ok_or_else(|| ApiError::internal(&anyhow::anyhow!("pharmacy-routing answered no order")))?;
    Ok(ApiJson(PharmacyOrderResult { order: order.into() }))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncLogView {
    pub id: i64,
    pub pharmacy_id: String,
    pub canvas_patient_id: String,
    pub order_id: String,
    /// submit, cancel, callback, …
    pub operation: String,
    /// success, failure or retry.
    pub status: String,
    /// The pharmacy's HTTP status; 0 when it was not reached.
    pub http_status: i32,
    /// A summary without PHI.
    pub detail: String,
    pub created_at: Option<String>,
}

impl From<pb::SyncLog> for SyncLogView {
    fn from(l: pb::SyncLog) -> Self {
        Self {
            id: l.id,
            pharmacy_id: l.pharmacy_id,
            canvas_patient_id: l.canvas_patient_id,
            order_id: l.order_id,
            operation: l.operation,
            status: l.status,
            http_status: l.http_status,
            detail: l.detail,
            created_at: l.created_at.map(rfc3339),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SyncLogQuery {
    pub patient_id: Option<String>,
    /// A pharmacy id: gmp, boothwyn or strive.
    pub pharmacy: Option<String>,
    /// success, failure or retry.
    pub status: Option<String>,
    /// RFC 3339, the start of the window (write `+` in an offset as `%2B`, or use `Z`).
    pub from: Option<String>,
    /// RFC 3339, the end of the window; not before `from`.
    pub to: Option<String>,
    pub page_size: Option<i32>,
    pub page_token: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncLogPage {
    pub items: Vec<SyncLogView>,
    pub next_page_token: String,
}

/// The audit trail of every exchange with a pharmacy (submissions, cancellations, callbacks), newest
/// first.
#[utoipa::path(
    get, path = "/api/admin/sync-logs", tag = "fulfilment",
    security(("admin_secret" = []), ("admin_jwt" = [])),
    params(SyncLogQuery),
    responses(
        (status = 200, body = SyncLogPage),
        (status = 400, description = "`from` or `to` not RFC 3339, or `to` before `from`", body = ErrorBody),
        (status = 401, body = ErrorBody),
    )
)]
pub async fn sync_logs(
    State(state): State<AppState>,
    Admin(caller): Admin,
    query: Result<Query<SyncLogQuery>, QueryRejection>,
) -> Result<ApiJson<SyncLogPage>, ApiError> {
    let Query(q) = query?;
    let from = parse_time("from", q.from.as_deref())?;
    let to = parse_time("to", q.to.as_deref())?;
    if let (Some(from), Some(to)) = (&from, &to) {
        if (to.seconds, to.nanos) < (from.seconds, from.nanos) {
            return Err(ApiError::field("to", "must not be before from"));
        }
    }
    let req = pb::ListSyncLogsRequest {
        canvas_patient_id: q.patient_id.unwrap_or_default(),
        pharmacy_id: pharmacy_filter(q.pharmacy.as_deref())?,
        status: match q.status.as_deref().map(str::trim) {
            None | Some("") => String::new(),
            Some(s @ ("success" | "failure" | "retry")) => s.to_owned(),
            Some(_) => return Err(ApiError::field("status", "must be success, failure or retry")),
        },
        from,
        to,
        page: page(q.page_size, q.page_token),
    };
    let r = state
        .clients
        .routing
        .clone()
        .list_sync_logs(grpc(&state, &caller, req))
        .await?
        .into_inner();
    Ok(ApiJson(SyncLogPage {
        items: r.logs.into_iter().map(Into::into).collect(),
        next_page_token: r.page.map(|p| p.next_page_token).unwrap_or_default(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShipmentEventView {
    pub status: String,
    pub description: String,
    pub occurred_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShipmentView {
    pub id: String,
    pub order_id: String,
    pub canvas_patient_id: String,
    pub pharmacy_id: String,
    /// e.g. fedex.
    pub carrier: String,
    pub tracking_number: String,
    /// shipped, out_for_delivery, delivered or exception.
    pub status: String,
    /// Tracking events, as the pharmacy and carrier reported them.
    pub events: Vec<ShipmentEventView>,
    pub shipped_at: Option<String>,
    pub delivered_at: Option<String>,
    /// The carrier's own tracking (FedEx), at most 30 minutes old while FedEx answers; older, with
    /// its `trackedAt`, when it does not.
    pub tracking: Option<TrackingView>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrackingView {
    /// FedEx's tracking page for the number.
    pub url: String,
    /// False while FedEx does not know the number yet.
    pub found: bool,
    /// FedEx's code (OC, PU, IT, OD, DL, DE) and its words.
    pub status_code: String,
    pub description: String,
    pub estimated_delivery_begins: Option<String>,
    pub estimated_delivery_ends: Option<String>,
    pub delivered_at: Option<String>,
    /// The carrier's scans, newest first ("City, ST" only).
    pub scans: Vec<TrackingScanView>,
    /// When FedEx was last asked.
    pub tracked_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrackingScanView {
    pub at: Option<String>,
    pub status_code: String,
    pub description: String,
    pub location: String,
}

impl From<pb::Shipment> for ShipmentView {
    fn from(s: pb::Shipment) -> Self {
        Self {
            id: s.id,
            order_id: s.order_id,
            canvas_patient_id: s.canvas_patient_id,
            pharmacy_id: s.pharmacy_id,
            carrier: s.carrier,
            tracking_number: s.tracking_number,
            status: s.status,
            events: s
                .events
                .into_iter()
                .map(|e| ShipmentEventView {
                    status: e.status,
                    description: e.description,
                    occurred_at: e.occurred_at.map(rfc3339),
                })
                .collect(),
            shipped_at: s.shipped_at.map(rfc3339),
            delivered_at: s.delivered_at.map(rfc3339),
            tracking: s.tracking.map(|t| TrackingView {
                url: t.url,
                found: t.found,
                status_code: t.status_code,
                description: t.description,
                estimated_delivery_begins: t.estimated_delivery_begins.map(rfc3339),
                estimated_delivery_ends: t.estimated_delivery_ends.map(rfc3339),
                delivered_at: t.delivered_at.map(rfc3339),
                scans: t
                    .scans
                    .into_iter()
                    .map(|scan| TrackingScanView {
                        at: scan.at.map(rfc3339),
                        status_code: scan.status_code,
                        description: scan.description,
                        location: scan.location,
                    })
                    .collect(),
                tracked_at: t.tracked_at.map(rfc3339),
            }),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShipmentPage {
    pub items: Vec<ShipmentView>,
    pub next_page_token: String,
}

/// What both shipment routes do, for whoever `caller` is.
async fn list_shipments(
    state: &AppState,
    caller: &era_kit::auth::Caller,
    canvas_patient_id: String,
    q: ListQuery,
) -> Result<ApiJson<ShipmentPage>, ApiError> {
    let req = pb::ListShipmentsRequest {
        canvas_patient_id,
        page: page(q.page_size, q.page_token),
    };
    let r = state
        .clients
        .routing
        .clone()
        .list_shipments(grpc(state, caller, req))
        .await?
        .into_inner();
    Ok(ApiJson(ShipmentPage {
        items: r.shipments.into_iter().map(Into::into).collect(),
        next_page_token: r.page.map(|p| p.next_page_token).unwrap_or_default(),
    }))
}

/// A patient's shipments with their tracking, newest first.
#[utoipa::path(
    get, path = "/api/admin/shipments/{patientId}", tag = "fulfilment",
    security(("admin_secret" = []), ("admin_jwt" = [])),
    params(("patientId" = String, Path, description = "Canvas patient id"), ListQuery),
    responses((status = 200, body = ShipmentPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody))
)]
pub async fn shipments(
    State(state): State<AppState>,
    Admin(caller): Admin,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<ApiJson<ShipmentPage>, ApiError> {
    let (Path(id), Query(q)) = (id?, query?);
    list_shipments(&state, &caller, id, q).await
}

/// The patient's own shipments with their tracking, newest first: the patient's token, or
/// `ADMIN_SECRET`.
#[utoipa::path(
    get, path = "/api/patient-shipments/{patientId}", tag = "fulfilment",
    security(("patient_jwt" = []), ("admin_secret" = [])),
    params(("patientId" = String, Path, description = "Canvas patient id"), ListQuery),
    responses(
        (status = 200, body = ShipmentPage),
        (status = 401, body = ErrorBody),
        (status = 403, description = "another patient's shipments, or an admin session", body = ErrorBody),
    )
)]
pub async fn patient_shipments(
    State(state): State<AppState>,
    patient: Patient,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<ApiJson<ShipmentPage>, ApiError> {
    let (Path(id), Query(q)) = (id?, query?);
    patient.require(&id)?;
    list_shipments(&state, &patient.0, id, q).await
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefillView {
    pub id: String,
    pub order_id: String,
    pub canvas_patient_id: String,
    pub medication: String,
    /// The dose it will be made with (a dose changed in Canvas or by an admin applies to the
    /// refills to come).
    pub dose_label: String,
    /// 1 for the first refill after the original fill.
    pub sequence: i32,
    /// scheduled, due (its run under way), ordered, skipped, cancelled, paused, payment_failed (the
    /// card was declined; tried again at nextAttemptAt), overdue (declined on every retry) or failed
    /// (for another reason: an admin decides).
    pub status: String,
    pub due_at: Option<String>,
    /// The latest run for it.
    pub run_id: String,
    /// When the refill_due reminder went out.
    pub reminded_at: Option<String>,
    /// Runs started for it.
    pub attempts: i32,
    pub next_attempt_at: Option<String>,
    /// Oldest first: each run and each admin action.
    pub history: Vec<RefillHistoryView>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefillHistoryView {
    pub at: Option<String>,
    /// run, or the admin action: skip, pause, resume, cancel, process_now, dose.
    pub kind: String,
    pub run_id: String,
    pub run_status: String,
    pub failure_reason: String,
    /// The admin who acted (shown to admins only).
    pub actor: String,
    pub detail: String,
}

impl From<pb::Refill> for RefillView {
    fn from(r: pb::Refill) -> Self {
        Self {
            id: r.id,
            order_id: r.order_id,
            canvas_patient_id: r.canvas_patient_id,
            medication: r.medication,
            dose_label: r.dose_label,
            sequence: r.sequence,
            status: r.status,
            due_at: r.due_at.map(rfc3339),
            run_id: r.run_id,
            reminded_at: r.reminded_at.map(rfc3339),
            attempts: r.attempts,
            next_attempt_at: r.next_attempt_at.map(rfc3339),
            history: r
                .history
                .into_iter()
                .map(|h| RefillHistoryView {
                    at: h.at.map(rfc3339),
                    kind: h.kind,
                    run_id: h.run_id,
                    run_status: h.run_status,
                    failure_reason: h.failure_reason,
                    actor: h.actor,
                    detail: h.detail,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefillPage {
    pub items: Vec<RefillView>,
    pub next_page_token: String,
}

/// A patient's refill schedule and history, soonest first.
#[utoipa::path(
    get, path = "/api/admin/refills/{patientId}", tag = "fulfilment",
    security(("admin_secret" = []), ("admin_jwt" = [])),
    params(("patientId" = String, Path, description = "Canvas patient id"), ListQuery),
    responses((status = 200, body = RefillPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody))
)]
pub async fn refills(
    State(state): State<AppState>,
    Admin(caller): Admin,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<ApiJson<RefillPage>, ApiError> {
    let (Path(id), Query(q)) = (id?, query?);
    list_refills(&state, &caller, id, q).await
}

/// The patient's own refills (schedule and what happened to each), soonest first: the patient's
/// token, or `ADMIN_SECRET`.
#[utoipa::path(
    get, path = "/api/patient-refills/{patientId}", tag = "fulfilment",
    security(("patient_jwt" = []), ("admin_secret" = [])),
    params(("patientId" = String, Path, description = "Canvas patient id"), ListQuery),
    responses(
        (status = 200, body = RefillPage),
        (status = 401, body = ErrorBody),
        (status = 403, description = "another patient's refills, or an admin session", body = ErrorBody),
    )
)]
pub async fn patient_refills(
    State(state): State<AppState>,
    patient: Patient,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<ApiJson<RefillPage>, ApiError> {
    let (Path(id), Query(q)) = (id?, query?);
    patient.require(&id)?;
    list_refills(&state, &patient.0, id, q).await
}

async fn list_refills(
    state: &AppState,
    caller: &era_kit::auth::Caller,
    patient: String,
    q: ListQuery,
) -> Result<ApiJson<RefillPage>, ApiError> {
    let req = pb::ListRefillsRequest {
        canvas_patient_id: patient,
        page: page(q.page_size, q.page_token),
    };
    let r = state
        .clients
        .routing
        .clone()
        .list_refills(grpc(state, caller, req))
        .await?
        .into_inner();
    Ok(ApiJson(RefillPage {
        items: r.refills.into_iter().map(Into::into).collect(),
        next_page_token: r.page.map(|p| p.next_page_token).unwrap_or_default(),
    }))
}

/// A dose change's body.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RefillActionBody {
    /// For `dose`: one of the medication's catalogue doses.
    pub dose_label: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefillActionAnswer {
    /// The refill as the action left it.
    pub refill: Option<RefillView>,
    /// Every refill the action changed (pause, resume, cancel and dose reach the later ones too).
    pub changed_refill_ids: Vec<String>,
    /// `process-now`: the refill's run.
    pub run: Option<RunView>,
    /// True when this Idempotency-Key's action was already done, or the refill was already under
    /// way or ordered (processing it again is the same refill).
    pub existing: bool,
}

/// An admin's action on a refill: `skip` it; `pause`, `resume` or `cancel` it and the refills after
/// it; `process-now` (charge and order it now, e.g. when the patient asks early: twice is one
/// refill); `dose` (body `{"doseLabel"}`: it and the later refills take another catalogue dose).
/// Audited with the admin's identity; a repeated `Idempotency-Key` answers the first result.
#[utoipa::path(
    post, path = "/api/admin/refills/{refillId}/{action}", tag = "fulfilment",
    security(("admin_secret" = []), ("admin_jwt" = [])),
    params(
        ("refillId" = String, Path, description = "the refill's id"),
        ("action" = String, Path, description = "skip, pause, resume, cancel, process-now or dose"),
        ("Idempotency-Key" = Option<String>, Header, description = "a repeat answers the first result"),
    ),
    request_body(content = Option<RefillActionBody>, description = "`{\"doseLabel\"}` for dose; nothing otherwise"),
    responses(
        (status = 200, body = RefillActionAnswer),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "no such refill", body = ErrorBody),
        (status = 422, description = "the refill's status does not allow the action (`refill_not_actionable`)", body = ErrorBody),
    )
)]
pub async fn refill_action(
    State(state): State<AppState>,
    Admin(caller): Admin,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
    body: axum::body::Bytes,
) -> Result<ApiJson<RefillActionAnswer>, ApiError> {
    let Path((refill_id, action)) = path?;
    let action = match action.as_str() {
        "skip" => pb::RefillActionKind::Skip,
        "pause" => pb::RefillActionKind::Pause,
        "resume" => pb::RefillActionKind::Resume,
        "cancel" => pb::RefillActionKind::Cancel,
        "process-now" => pb::RefillActionKind::ProcessNow,
        "dose" => pb::RefillActionKind::Dose,
        _ => {
            return Err(ApiError::field(
                "action",
                "must be skip, pause, resume, cancel, process-now or dose",
            ))
        }
    };
    let body: RefillActionBody = if body.iter().all(u8::is_ascii_whitespace) {
        RefillActionBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|_| ApiError::field("body", "must be {\"doseLabel\": \"...\"} or empty"))?
    };
    let req = pb::RefillActionRequest {
        refill_id,
        action: action as i32,
        dose_label: body.dose_label.unwrap_or_default(),
        idempotency_key: idempotency_key(&headers)?,
        actor: Some(Actor {
            subject: caller.subject.clone(),
            role: "admin".into(),
        }),
    };
    let r = state
        .clients
        .routing
        .clone()
        .refill_action(grpc(&state, &caller, req))
        .await?
        .into_inner();
    Ok(ApiJson(RefillActionAnswer {
        refill: r.refill.map(Into::into),
        changed_refill_ids: r.changed_refill_ids,
        run: r.run.map(Into::into),
        existing: r.existing,
    }))
}

/// A charge captured for a prescription that was stopped in Canvas afterwards: whether to refund it
/// is an admin's decision (`POST /api/admin/refund` with the charge id).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefundReviewView {
    pub id: String,
    pub canvas_patient_id: String,
    /// The Canvas MedicationRequest that was stopped.
    pub medication_request_id: String,
    /// The prescription_stop run that listed it, and the run that captured the charge.
    pub stop_run_id: String,
    pub fulfilment_run_id: String,
    pub charge_id: String,
    /// Integer cents.
    pub amount_cents: i64,
    pub currency: String,
    /// The pharmacy order's status once the stop was handled: cancelled, shipped (too late to
    /// cancel), delivered, none, ...
    pub order_outcome: String,
    pub created_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefundReviewPage {
    pub items: Vec<RefundReviewView>,
    pub next_page_token: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RefundReviewQuery {
    /// Only this Canvas patient's.
    pub patient_id: Option<String>,
    pub page_size: Option<i32>,
    pub page_token: Option<String>,
}

/// Captured charges of prescriptions stopped in Canvas, newest first, for an admin to refund.
#[utoipa::path(
    get, path = "/api/admin/refund-reviews", tag = "fulfilment",
    security(("admin_secret" = []), ("admin_jwt" = [])),
    params(RefundReviewQuery),
    responses((status = 200, body = RefundReviewPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody))
)]
pub async fn refund_reviews(
    State(state): State<AppState>,
    Admin(caller): Admin,
    query: Result<Query<RefundReviewQuery>, QueryRejection>,
) -> Result<ApiJson<RefundReviewPage>, ApiError> {
    let Query(q) = query?;
    let req = pb::ListRefundReviewsRequest {
        canvas_patient_id: q.patient_id.unwrap_or_default(),
        page: page(q.page_size, q.page_token),
    };
    let r = state
        .clients
        .routing
        .clone()
        .list_refund_reviews(grpc(&state, &caller, req))
        .await?
        .into_inner();
    Ok(ApiJson(RefundReviewPage {
        items: r
            .reviews
            .into_iter()
            .map(|r| RefundReviewView {
                id: r.id,
                canvas_patient_id: r.canvas_patient_id,
                medication_request_id: r.medication_request_id,
                stop_run_id: r.stop_run_id,
                fulfilment_run_id: r.fulfilment_run_id,
                charge_id: r.charge_id,
                amount_cents: r.amount_cents,
                currency: r.currency,
                order_outcome: r.order_outcome,
                created_at: r.created_at.map(rfc3339),
            })
            .collect(),
        next_page_token: r.page.map(|p| p.next_page_token).unwrap_or_default(),
    }))
}

/// A pharmacy filter: the routing matrix's ids (GMP also by its system's name, as in the webhook path).
fn pharmacy_filter(raw: Option<&str>) -> Result<String, ApiError> {
    match raw.map(str::trim) {
        None | Some("") => Ok(String::new()),
        Some(slug) => super::webhooks::pharmacy_of_slug(&slug.to_ascii_lowercase())
            .map(str::to_owned)
            .ok_or_else(|| ApiError::field("pharmacy", "must be gmp, boothwyn or strive")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_status_filters_are_lowercase_words() {
        assert_eq!(
            status_filter("status", None, &ORDER_STATUSES).unwrap(),
            pb::OrderStatus::Unspecified
        );
        assert_eq!(
            status_filter("status", Some("cancelled"), &ORDER_STATUSES).unwrap(),
            pb::OrderStatus::Cancelled
        );
        assert_eq!(
            status_filter("status", Some("delivered"), &ORDER_STATUSES).unwrap(),
            pb::OrderStatus::Delivered
        );
        let e = status_filter("status", Some("canceled"), &ORDER_STATUSES).unwrap_err();
        assert_eq!(e.detail.fields[0].field, "status");
        assert_eq!(
            e.detail.fields[0].reason,
            "must be pending, submitted, accepted, rejected, cancelled, shipped or delivered"
        );
    }

    #[test]
    fn sync_log_times_are_rfc3339() {
        let t = parse_time("from", Some("2025-01-31T12:00:00.5Z")).unwrap().unwrap();
        assert_eq!((t.seconds, t.nanos), (1_738_324_800, 500_000_000));
        let t = parse_time("to", Some("2025-01-31T07:00:00-05:00")).unwrap().unwrap();
        assert_eq!(t.seconds, 1_738_324_800);
        assert_eq!(parse_time("from", None).unwrap(), None);
        assert_eq!(parse_time("from", Some("")).unwrap(), None);
        for bad in ["2025-01-31", "yesterday", "1738324800", "2025-01-31 12:00:00 00:00"] {
            let e = parse_time("to", Some(bad)).unwrap_err();
            assert_eq!(e.detail.fields[0].field, "to", "{bad}");
        }
    }
}
