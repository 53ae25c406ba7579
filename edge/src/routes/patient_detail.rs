//! The admin's whole view of one patient: every tab from the service that owns it, asked
//! concurrently. A tab whose owner does not answer is named in `unavailable` and the others are
//! still shown; only the chart itself (Canvas) decides whether the patient exists.

use axum::{
    extract::{rejection::PathRejection, Path, State},
    routing::get,
    Router,
};
use era_kit::auth::Caller;
use era_proto::{
    canvas::v1 as canvas, notifications::v1 as notifications, payments::v1 as payments,
    pharmacy_routing::v1 as routing, scheduling::v1 as scheduling,
};
use serde::Serialize;
use tonic::{Code, Status};
use utoipa::ToSchema;

use super::{
    appointments::AppointmentView,
    approvals::RunView,
    fulfilment::{PharmacyOrderView, RefillView, ShipmentView},
    notifications::NotificationView,
    payments::{ChargeView, HoldView},
    views::{IntakeRecordSummaryView, PatientView, PrescriptionView},
};
use crate::{
    auth::Admin,
    error::{ApiError, ErrorBody},
    routes::{grpc, ApiJson},
    AppState,
};

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/api/admin/patients/{id}", get(patient_detail))
}

/// One patient, every tab. Each list is its owner's first page, newest (or soonest) first.
#[derive(Debug, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PatientDetail {
    /// Demographics (canvas).
    pub patient: Option<PatientView>,
    /// Intake records (canvas).
    pub intake_records: Vec<IntakeRecordSummaryView>,
    /// Prescriptions as Canvas records them (canvas).
    pub prescriptions: Vec<PrescriptionView>,
    /// Charges with their refunds (payments).
    pub charges: Vec<ChargeView>,
    /// The saved card charged now: the active hold's brand and last four (payments).
    pub card: Option<HoldView>,
    /// Approval, prescription, stop and refill runs (pharmacy-routing).
    pub fulfilment_runs: Vec<RunView>,
    /// Orders placed with pharmacies (pharmacy-routing).
    pub pharmacy_orders: Vec<PharmacyOrderView>,
    /// Shipments with their tracking events (pharmacy-routing).
    pub shipments: Vec<ShipmentView>,
    /// The refill schedule with each refill's history (pharmacy-routing).
    pub refills: Vec<RefillView>,
    /// What the patient was told in the portal (notifications).
    pub notifications: Vec<NotificationView>,
    /// Telehealth appointments (scheduling).
    pub appointments: Vec<AppointmentView>,
    /// The services that did not answer, whose tabs are empty here: canvas, payments,
    /// pharmacy-routing, notifications or scheduling.
    pub unavailable: Vec<String>,
}

/// One patient with every tab: demographics, intake records and prescriptions (canvas); charges,
/// refunds and the active card (payments); fulfilment runs, pharmacy orders, shipments and refills
/// (pharmacy-routing); portal notifications (notifications); appointments (scheduling). The owners
/// are asked concurrently; one that is down is named in `unavailable` and the rest still answer.
#[utoipa::path(
    get, path = "/api/admin/patients/{id}", tag = "patients",
    security(("admin_secret" = []), ("admin_jwt" = [])),
    params(("id" = String, Path, description = "Canvas patient id")),
    responses(
        (status = 200, body = PatientDetail),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "Canvas has no such patient", body = ErrorBody),
    )
)]
pub async fn patient_detail(
    State(state): State<AppState>,
    Admin(caller): Admin,
    id: Result<Path<String>, PathRejection>,
) -> Result<ApiJson<PatientDetail>, ApiError> {
    let Path(id) = id?;
    let ask = Ask {
        state: &state,
        caller: &caller,
        patient: &id,
    };
    let (chart, paid, runs, orders, shipments, refills, told, visits) = tokio::join!(
        ask.chart(),
        ask.payments(),
        ask.runs(),
        ask.orders(),
        ask.shipments(),
        ask.refills(),
        ask.notifications(),
        ask.appointments(),
    );
    let mut detail = PatientDetail::default();
    let mut unavailable = Vec::new();
    if let Some(c) = tab(chart, "canvas", &mut unavailable)? {
        detail.patient = c.patient.map(Into::into);
        detail.intake_records = c.intake_records.into_iter().map(Into::into).collect();
        detail.prescriptions = c.prescriptions.into_iter().map(Into::into).collect();
    }
    if let Some(p) = tab(paid, "payments", &mut unavailable)? {
        detail.charges = p.charges.into_iter().map(Into::into).collect();
        detail.card = p
            .holds
            .into_iter()
            .find(|h| h.status == payments::PaymentHoldStatus::Active as i32)
            .map(Into::into);
    }
    let routing = "pharmacy-routing";
    if let Some(r) = tab(runs, routing, &mut unavailable)? {
        detail.fulfilment_runs = r.runs.into_iter().map(Into::into).collect();
    }
    if let Some(r) = tab(orders, routing, &mut unavailable)? {
        detail.pharmacy_orders = r.orders.into_iter().map(Into::into).collect();
    }
    if let Some(r) = tab(shipments, routing, &mut unavailable)? {
        detail.shipments = r.shipments.into_iter().map(Into::into).collect();
    }
    if let Some(r) = tab(refills, routing, &mut unavailable)? {
        detail.refills = r.refills.into_iter().map(Into::into).collect();
    }
    if let Some(n) = tab(told, "notifications", &mut unavailable)? {
        detail.notifications = n.notifications.into_iter().map(Into::into).collect();
    }
    if let Some(a) = tab(visits, "scheduling", &mut unavailable)? {
        detail.appointments = a.appointments.into_iter().map(Into::into).collect();
    }
    detail.unavailable = unavailable;
    Ok(ApiJson(detail))
}

/// A tab's answer: its content, or `None` with its owner named when the owner did not answer. A
/// refusal (an unknown patient, a malformed id) is the whole request's answer.
fn tab<T>(answer: Result<T, Status>, owner: &str, unavailable: &mut Vec<String>) -> Result<Option<T>, ApiError> {
    match answer {
        Ok(t) => Ok(Some(t)),
        Err(s)
            if matches!(
                s.code(),
                Code::Unavailable | Code::DeadlineExceeded | Code::Unknown | Code::Internal | Code::Cancelled
            ) =>
        {
            tracing::warn!(owner, code = ?s.code(), "a patient detail tab is unavailable");
            if !unavailable.iter().any(|u| u == owner) {
                unavailable.push(owner.to_owned());
            }
            Ok(None)
        }
        Err(s) => Err(s.into()),
    }
}

/// The calls for one patient, as the admin.
struct Ask<'a> {
    state: &'a AppState,
    caller: &'a Caller,
    patient: &'a str,
}

impl Ask<'_> {
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        grpc(self.state, self.caller, message)
    }

    async fn chart(&self) -> Result<canvas::GetPatientResponse, Status> {
        let req = self.request(canvas::GetPatientRequest {
            canvas_patient_id: self.patient.to_owned(),
            view: canvas::PatientView::Full as i32,
        });
        Ok(self.state.clients.canvas.clone().get_patient(req).await?.into_inner())
    }

    async fn payments(&self) -> Result<payments::ListPatientPaymentsResponse, Status> {
        let req = self.request(payments::ListPatientPaymentsRequest {
            canvas_patient_id: self.patient.to_owned(),
            page: None,
        });
        Ok(self
            .state
            .clients
            .payments
            .clone()
            .list_patient_payments(req)
            .await?
            .into_inner())
    }

    async fn runs(&self) -> Result<routing::ListOrchestrationRunsResponse, Status> {
        let req = self.request(routing::ListOrchestrationRunsRequest {
            canvas_patient_id: self.patient.to_owned(),
            ..Default::default()
        });
        Ok(self
            .state
            .clients
            .routing
            .clone()
            .list_orchestration_runs(req)
            .await?
            .into_inner())
    }

    async fn orders(&self) -> Result<routing::ListPharmacyOrdersResponse, Status> {
        let req = self.request(routing::ListPharmacyOrdersRequest {
            canvas_patient_id: self.patient.to_owned(),
            ..Default::default()
        });
        Ok(self
            .state
            .clients
            .routing
            .clone()
            .list_pharmacy_orders(req)
            .await?
            .into_inner())
    }

    async fn shipments(&self) -> Result<routing::ListShipmentsResponse, Status> {
        let req = self.request(routing::ListShipmentsRequest {
            canvas_patient_id: self.patient.to_owned(),
            page: None,
        });
        Ok(self
            .state
            .clients
            .routing
            .clone()
            .list_shipments(req)
            .await?
            .into_inner())
    }

    async fn refills(&self) -> Result<routing::ListRefillsResponse, Status> {
        let req = self.request(routing::ListRefillsRequest {
            canvas_patient_id: self.patient.to_owned(),
            page: None,
        });
        Ok(self.state.clients.routing.clone().list_refills(req).await?.into_inner())
    }

    async fn notifications(&self) -> Result<notifications::ListPatientNotificationsResponse, Status> {
        let req = self.request(notifications::ListPatientNotificationsRequest {
            canvas_patient_id: self.patient.to_owned(),
            ..Default::default()
        });
        Ok(self
            .state
            .clients
            .notifications
            .clone()
            .list_patient_notifications(req)
            .await?
            .into_inner())
    }

    async fn appointments(&self) -> Result<scheduling::ListAppointmentsResponse, Status> {
        let req = self.request(scheduling::ListAppointmentsRequest {
            canvas_patient_id: self.patient.to_owned(),
            ..Default::default()
        });
        Ok(self
            .state
            .clients
            .scheduling
            .clone()
            .list_appointments(req)
            .await?
            .into_inner())
    }
}
