//! `/api/admin/routing`: the routing matrix, one state's decision, and audited changes.

use axum::{
    extract::{
        rejection::{PathRejection, QueryRejection},
        Path, Query, State,
    },
    routing::get,
    Router,
};
use era_proto::pharmacy_routing::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::views::rfc3339;
use crate::{
    auth::Admin,
    error::{ApiError, ErrorBody},
    routes::{grpc, ApiJson},
    AppState,
};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/admin/routing", get(routing_matrix))
        .route(
            "/api/admin/routing/{state}",
            get(decide_route).put(update_state_routing),
        )
        .route("/api/admin/routing-audit", get(routing_audit))
        .route("/api/admin/medications", get(medications))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PharmacyView {
    pub id: String,
    pub name: String,
    /// `pioneerrx` or `lifefile`.
    pub system: String,
    pub active: bool,
}

impl From<pb::Pharmacy> for PharmacyView {
    fn from(p: pb::Pharmacy) -> Self {
        let system = match pb::PharmacySystem::try_from(p.system) {
            Ok(pb::PharmacySystem::Pioneerrx) => "pioneerrx",
            Ok(pb::PharmacySystem::Lifefile) => "lifefile",
            _ => "unspecified",
        };
        Self {
            id: p.id,
            name: p.name,
            system: system.into(),
            active: p.active,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LicenceView {
    pub state: String,
    pub licence_number: String,
    /// Last valid day, `YYYY-MM-DD`.
    pub expires_on: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrescriberView {
    pub id: String,
    pub name: String,
    pub npi: String,
    pub active: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub licences: Vec<LicenceView>,
}

impl PrescriberView {
    fn from_pb(p: pb::Prescriber, with_licences: bool) -> Self {
        let licences = if with_licences {
            p.licences
                .into_iter()
                .map(|l| LicenceView {
                    state: l.state,
                    licence_number: l.licence_number,
                    expires_on: l.expires_on,
                })
                .collect()
        } else {
            Vec::new()
        };
        Self {
            id: p.id,
            name: p.name,
            npi: p.npi,
            active: p.active,
            licences,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteView {
    pub pharmacy_id: String,
    pub prescriber_id: String,
    #[serde(default = "yes")]
    pub active: bool,
    /// Lower is tried first (1-1000).
    pub priority: i32,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StateRoutingView {
    pub state: String,
    pub state_name: String,
    pub excluded: bool,
    pub routes: Vec<RouteView>,
    pub updated_at: Option<String>,
    pub updated_by: String,
}

impl From<pb::StateRouting> for StateRoutingView {
    fn from(s: pb::StateRouting) -> Self {
        Self {
            state: s.state,
            state_name: s.state_name,
            excluded: s.excluded,
            routes: s
                .routes
                .into_iter()
                .map(|r| RouteView {
                    pharmacy_id: r.pharmacy_id,
                    prescriber_id: r.prescriber_id,
                    active: r.active,
                    priority: r.priority,
                })
                .collect(),
            updated_at: s.updated_at.map(rfc3339),
            updated_by: s.updated_by,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoutingMatrix {
    pub states: Vec<StateRoutingView>,
    pub pharmacies: Vec<PharmacyView>,
    pub prescribers: Vec<PrescriberView>,
}

/// The whole routing matrix: every state and DC, its routes, pharmacies and prescribers.
#[utoipa::path(
    get, path = "/api/admin/routing", tag = "routing",
    security(("admin_secret" = []), ("admin_jwt" = [])),
    responses((status = 200, body = RoutingMatrix), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
pub async fn routing_matrix(
    State(state): State<AppState>,
    Admin(caller): Admin,
) -> Result<ApiJson<RoutingMatrix>, ApiError> {
    let m = state
        .clients
        .routing
        .clone()
        .get_routing_matrix(grpc(&state, &caller, pb::GetRoutingMatrixRequest {}))
        .await?;
    let m = m.into_inner();
    Ok(ApiJson(RoutingMatrix {
        states: m.states.into_iter().map(Into::into).collect(),
        pharmacies: m.pharmacies.into_iter().map(Into::into).collect(),
        prescribers: m
            .prescribers
            .into_iter()
            .map(|p| PrescriberView::from_pb(p, true))
            .collect(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DecideQuery {
    /// A medication id from `/api/admin/medications`; routes to a pharmacy that fills it.
    pub medication: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteDecision {
    pub state: String,
    pub pharmacy: PharmacyView,
    pub prescriber: PrescriberView,
    /// `primary_route`, `fallback_pharmacy` or `fallback_prescriber`.
    pub reason: String,
    pub explanation: String,
    pub priority: i32,
}

/// Which pharmacy and prescriber serve a state (and medication).
#[utoipa::path(
    get, path = "/api/admin/routing/{state}", tag = "routing",
    security(("admin_secret" = []), ("admin_jwt" = [])),
    params(("state" = String, Path, description = "USPS code of a state or DC; case-insensitive", pattern = "^[A-Za-z]{2}$"), DecideQuery),
    responses(
        (status = 200, body = RouteDecision),
        (status = 400, description = "unknown code, territory or medication; `fields` names which", body = ErrorBody),
        (status = 422, description = "`state_excluded`, `no_active_route`, `medication_not_available` or `no_licensed_prescriber`", body = ErrorBody),
        (status = 401, body = ErrorBody),
    )
)]
pub async fn decide_route(
    State(state): State<AppState>,
    Admin(caller): Admin,
    code: Result<Path<String>, PathRejection>,
    query: Result<Query<DecideQuery>, QueryRejection>,
) -> Result<ApiJson<RouteDecision>, ApiError> {
    let (Path(code), Query(query)) = (code?, query?);
    let req = pb::DecideRouteRequest {
        state: code,
        medication: query.medication.unwrap_or_default(),
    };
    let d = state
        .clients
        .routing
        .clone()
        .decide_route(grpc(&state, &caller, req))
        .await?
        .into_inner();
    let reason = match pb::DecisionReason::try_from(d.reason) {
        Ok(pb::DecisionReason::PrimaryRoute) => "primary_route",
        Ok(pb::DecisionReason::FallbackPharmacy) => "fallback_pharmacy",
        Ok(pb::DecisionReason::FallbackPrescriber) => "fallback_prescriber",
        _ => "unspecified",
    };
    let (Some(pharmacy), Some(prescriber)) = (d.pharmacy, d.prescriber) else {
        return Err(ApiError::internal(&anyhow::anyhow!(
            "routing answered without a pharmacy or prescriber"
        )));
    };
    Ok(ApiJson(RouteDecision {
        state: d.state,
        pharmacy: pharmacy.into(),
        prescriber: PrescriberView::from_pb(prescriber, false),
        reason: reason.into(),
        explanation: d.explanation,
        priority: d.priority,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateStateRouting {
    #[serde(default)]
    pub excluded: bool,
    #[serde(default)]
    pub routes: Vec<RouteView>,
    /// Why; kept in the audit row (at most 500 characters).
    #[serde(default)]
    pub note: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdatedStateRouting {
    pub routing: StateRoutingView,
    pub audit_id: i64,
}

/// Replaces one state's routes (or excludes it). The change and who made it are audited.
#[utoipa::path(
    put, path = "/api/admin/routing/{state}", tag = "routing",
    security(("admin_secret" = []), ("admin_jwt" = [])),
    params(("state" = String, Path, description = "USPS code of a state or DC; case-insensitive", pattern = "^[A-Za-z]{2}$")),
    request_body = UpdateStateRouting,
    responses(
        (status = 200, body = UpdatedStateRouting),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
    )
)]
pub async fn update_state_routing(
    State(state): State<AppState>,
    Admin(caller): Admin,
    code: Result<Path<String>, PathRejection>,
    ApiJson(body): ApiJson<UpdateStateRouting>,
) -> Result<ApiJson<UpdatedStateRouting>, ApiError> {
    let Path(code) = code?;
    let req = pb::UpdateStateRoutingRequest {
        state: code,
        excluded: body.excluded,
        routes: body
            .routes
            .into_iter()
            .map(|r| pb::Route {
                pharmacy_id: r.pharmacy_id,
                prescriber_id: r.prescriber_id,
                active: r.active,
                priority: r.priority,
            })
            .collect(),
        note: body.note,
        actor: None,
    };
    let resp = state
        .clients
        .routing
        .clone()
        .update_state_routing(grpc(&state, &caller, req))
        .await?
        .into_inner();
    let routing = resp
        .routing
        .ok_or_else(|| ApiError::internal(&anyhow::anyhow!("update answered no routing")))?;
    Ok(ApiJson(UpdatedStateRouting {
        routing: routing.into(),
        audit_id: resp.audit_id,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditQuery {
    pub state: Option<String>,
    pub page_size: Option<i32>,
    pub page_token: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntryView {
    pub id: i64,
    pub state: String,
    pub changed_by: String,
    pub note: String,
    #[schema(value_type = Object)]
    pub before: serde_json::Value,
    #[schema(value_type = Object)]
    pub after: serde_json::Value,
    pub changed_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditPage {
    pub items: Vec<AuditEntryView>,
    pub next_page_token: String,
}

/// Routing changes, newest first.
#[utoipa::path(
    get, path = "/api/admin/routing-audit", tag = "routing",
    security(("admin_secret" = []), ("admin_jwt" = [])),
    params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody))
)]
pub async fn routing_audit(
    State(state): State<AppState>,
    Admin(caller): Admin,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<ApiJson<AuditPage>, ApiError> {
    let Query(q) = query?;
    let req = pb::ListRoutingAuditRequest {
        state: q.state.unwrap_or_default(),
        page: super::views::page(q.page_size, q.page_token),
    };
    let resp = state
        .clients
        .routing
        .clone()
        .list_routing_audit(grpc(&state, &caller, req))
        .await?
        .into_inner();
    let json = |s: &str| serde_json::from_str(s).unwrap_or(serde_json::Value::Null);
    Ok(ApiJson(AuditPage {
        items: resp
            .entries
            .into_iter()
            .map(|e| AuditEntryView {
                id: e.id,
                before: json(&e.before_json),
                after: json(&e.after_json),
                state: e.state,
                changed_by: e.changed_by,
                note: e.note,
                changed_at: e.changed_at.map(rfc3339),
            })
            .collect(),
        next_page_token: resp.page.map(|p| p.next_page_token).unwrap_or_default(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DoseView {
    pub label: String,
    pub strength: String,
    pub directions: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MedicationView {
    pub id: String,
    pub name: String,
    pub doses: Vec<DoseView>,
    pub quantity: String,
    pub days_supply: i32,
    pub refills: i32,
    pub price_cents: i64,
    pub currency: String,
    pub pharmacy_ids: Vec<String>,
    pub active: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MedicationList {
    pub items: Vec<MedicationView>,
}

/// The medication catalogue (doses, supply, refills, price in cents, which pharmacies fill it).
#[utoipa::path(
    get, path = "/api/admin/medications", tag = "routing",
    security(("admin_secret" = []), ("admin_jwt" = [])),
    responses((status = 200, body = MedicationList), (status = 401, body = ErrorBody))
)]
pub async fn medications(
    State(state): State<AppState>,
    Admin(caller): Admin,
) -> Result<ApiJson<MedicationList>, ApiError> {
    let resp = state
        .clients
        .routing
        .clone()
        .list_medications(grpc(&state, &caller, pb::ListMedicationsRequest {}))
        .await?;
    Ok(ApiJson(MedicationList {
        items: resp
            .into_inner()
            .medications
            .into_iter()
            .map(|m| {
                let price = m.price.unwrap_or_default();
                MedicationView {
                    id: m.id,
                    name: m.name,
                    doses: m
                        .doses
                        .into_iter()
                        .map(|d| DoseView {
                            label: d.label,
                            strength: d.strength,
                            directions: d.directions,
                        })
                        .collect(),
                    quantity: m.quantity,
                    days_supply: m.days_supply,
                    refills: m.refills,
                    price_cents: price.amount_cents,
                    currency: price.currency,
                    pharmacy_ids: m.pharmacy_ids,
                    active: m.active,
                }
            })
            .collect(),
    }))
}
