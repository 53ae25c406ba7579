//! The gRPC face of the router: requests parsed into domain input, answers built from the snapshot.

use chrono::Utc;
use era_kit::{auth::Caller, error::FieldViolation};
use era_proto::{
    common::v1::{Money, PageResponse},
    pharmacy_routing::v1::{self as pb, pharmacy_routing_service_server::PharmacyRoutingService},
};
use sqlx::PgPool;
use tonic::{Request, Response, Status};

use crate::{
    domain::{self, Reason},
    error::{Error, Result},
    store::{self, Matrix, RouteRow, Snapshot, StateUpdate},
};

const DEFAULT_PAGE_SIZE: i64 = 50;
const MAX_PAGE_SIZE: i64 = 200;
const MAX_NOTE_LEN: usize = 500;

#[derive(Debug)]
pub(crate) struct RoutingService {
    matrix: tokio::sync::OnceCell<Matrix>,
    pool: PgPool,
}

impl RoutingService {
    pub(crate) fn new(pool: PgPool) -> Self {
        Self {
            matrix: tokio::sync::OnceCell::new(),
            pool,
        }
    }

    /// Loaded on first use, so a slow database delays the first call, not the server's start.
    async fn matrix(&self) -> Result<&Matrix> {
        self.matrix.get_or_try_init(|| Matrix::start(self.pool.clone())).await
    }

    async fn snapshot(&self) -> Result<std::sync::Arc<Snapshot>> {
        Ok(self.matrix().await?.snapshot())
    }
}

type RpcResult<T> = std::result::Result<Response<T>, Status>;

fn later(issue: &'static str) -> Status {
    Status::from(Error::NotYetAvailable(issue))
}

#[tonic::async_trait]
impl PharmacyRoutingService for RoutingService {
    async fn decide_route(&self, request: Request<pb::DecideRouteRequest>) -> RpcResult<pb::DecideRouteResponse> {
        Caller::of(&request)?.require_staff()?;
        let req = request.into_inner();
        let snapshot = self.snapshot().await?;
        Ok(Response::new(decide(&snapshot, &req.state, &req.medication)?))
    }

    async fn get_routing_matrix(
        &self,
        request: Request<pb::GetRoutingMatrixRequest>,
    ) -> RpcResult<pb::GetRoutingMatrixResponse> {
        Caller::of(&request)?.require_staff()?;
        let s = self.snapshot().await?;
        Ok(Response::new(pb::GetRoutingMatrixResponse {
            states: s.states.keys().filter_map(|code| state_routing(&s, code)).collect(),
            pharmacies: s.pharmacies.values().map(pharmacy).collect(),
            prescribers: s.prescribers.keys().filter_map(|id| prescriber(&s, id)).collect(),
        }))
    }

    async fn get_state_routing(
        &self,
        request: Request<pb::GetStateRoutingRequest>,
    ) -> RpcResult<pb::GetStateRoutingResponse> {
        Caller::of(&request)?.require_staff()?;
        let s = self.snapshot().await?;
        let code = known_state(&s, &request.into_inner().state)?;
        Ok(Response::new(pb::GetStateRoutingResponse {
            routing: state_routing(&s, &code),
        }))
    }

    async fn update_state_routing(
        &self,
        request: Request<pb::UpdateStateRoutingRequest>,
    ) -> RpcResult<pb::UpdateStateRoutingResponse> {
        let caller = Caller::of(&request)?.clone();
        caller.require_staff()?;
        let req = request.into_inner();
        let matrix = self.matrix().await?;
        let update = parse_update(&matrix.snapshot(), &caller, req)?;
        let audit_id = store::update_state(matrix.pool(), &update).await?;
        tracing::info!(state = %update.state, audit_id, "state routing updated");
        // This replica answers with the change at once; the others reload on the notification. The
        // change is committed either way, so a failed reload is logged, not reported as a failure.
        let routing = match matrix.reload().await {
            Ok(s) => state_routing(&s, &update.state),
            Err(e) => {
                tracing::warn!(error = %e, "reload after a routing update failed; answering from the update");
                committed_routing(&matrix.snapshot(), &update)
            }
        };
        Ok(Response::new(pb::UpdateStateRoutingResponse { routing, audit_id }))
    }

    async fn list_routing_audit(
        &self,
        request: Request<pb::ListRoutingAuditRequest>,
    ) -> RpcResult<pb::ListRoutingAuditResponse> {
        Caller::of(&request)?.require_staff()?;
        let req = request.into_inner();
        let state = match req.state.trim() {
            "" => None,
            raw => Some(known_state(&*self.snapshot().await?, raw)?),
        };
        let (limit, before_id) = page(req.page.unwrap_or_default())?;
        let rows = store::audit(&self.pool, state.as_deref(), before_id, limit + 1)
            .await
            .map_err(Status::from)?;
        let next = if rows.len() as i64 > limit {
            rows.get(limit as usize - 1).map(|r| r.id.to_string())
        } else {
            None
        };
        Ok(Response::new(pb::ListRoutingAuditResponse {
            entries: rows
                .into_iter()
                .take(limit as usize)
                .map(|r| pb::RoutingAuditEntry {
                    id: r.id,
                    state: r.state,
                    changed_by: r.changed_by,
                    note: r.note,
                    before_json: r.before.0.to_string(),
                    after_json: r.after.0.to_string(),
                    changed_at: Some(timestamp(r.changed_at)),
                })
                .collect(),
            page: Some(PageResponse {
                next_page_token: next.unwrap_or_default(),
            }),
        }))
    }

    async fn list_pharmacies(
        &self,
        request: Request<pb::ListPharmaciesRequest>,
    ) -> RpcResult<pb::ListPharmaciesResponse> {
        Caller::of(&request)?.require_staff()?;
        let s = self.snapshot().await?;
        Ok(Response::new(pb::ListPharmaciesResponse {
            pharmacies: s.pharmacies.values().map(pharmacy).collect(),
        }))
    }

    async fn list_prescribers(
        &self,
        request: Request<pb::ListPrescribersRequest>,
    ) -> RpcResult<pb::ListPrescribersResponse> {
        Caller::of(&request)?.require_staff()?;
        let s = self.snapshot().await?;
        Ok(Response::new(pb::ListPrescribersResponse {
            prescribers: s.prescribers.keys().filter_map(|id| prescriber(&s, id)).collect(),
        }))
    }

    async fn list_medications(
        &self,
        request: Request<pb::ListMedicationsRequest>,
    ) -> RpcResult<pb::ListMedicationsResponse> {
        Caller::of(&request)?;
        let s = self.snapshot().await?;
        Ok(Response::new(pb::ListMedicationsResponse {
            medications: s.medications.values().map(medication).collect(),
        }))
    }

    async fn get_medication(&self, request: Request<pb::GetMedicationRequest>) -> RpcResult<pb::GetMedicationResponse> {
        Caller::of(&request)?;
        let s = self.snapshot().await?;
        let id = domain::normalise_medication("id", &request.into_inner().id)?
            .ok_or_else(|| Error::field("id", "is required"))?;
        let m = s
            .medications
            .get(&id)
            .ok_or(Error::NotFound { what: "medication", id })?;
        Ok(Response::new(pb::GetMedicationResponse {
            medication: Some(medication(m)),
        }))
    }

    async fn approve_task(&self, _: Request<pb::ApproveTaskRequest>) -> RpcResult<pb::ApproveTaskResponse> {
        Err(later("ApproveTask arrives with the approval pipeline (issue 6)"))
    }

    async fn deny_task(&self, _: Request<pb::DenyTaskRequest>) -> RpcResult<pb::DenyTaskResponse> {
        Err(later("DenyTask arrives with the approval pipeline (issue 6)"))
    }

    async fn get_orchestration_run(
        &self,
        _: Request<pb::GetOrchestrationRunRequest>,
    ) -> RpcResult<pb::GetOrchestrationRunResponse> {
        Err(later("orchestration runs arrive with the approval pipeline (issue 6)"))
    }

    async fn list_orchestration_runs(
        &self,
        _: Request<pb::ListOrchestrationRunsRequest>,
    ) -> RpcResult<pb::ListOrchestrationRunsResponse> {
        Err(later("orchestration runs arrive with the approval pipeline (issue 6)"))
    }

    async fn get_pharmacy_order(
        &self,
        _: Request<pb::GetPharmacyOrderRequest>,
    ) -> RpcResult<pb::GetPharmacyOrderResponse> {
        Err(later("pharmacy orders arrive with the approval pipeline (issue 6)"))
    }

    async fn list_pharmacy_orders(
        &self,
        _: Request<pb::ListPharmacyOrdersRequest>,
    ) -> RpcResult<pb::ListPharmacyOrdersResponse> {
        Err(later("pharmacy orders arrive with the approval pipeline (issue 6)"))
    }

    async fn list_sync_logs(&self, _: Request<pb::ListSyncLogsRequest>) -> RpcResult<pb::ListSyncLogsResponse> {
        Err(later("sync logs arrive with the approval pipeline (issue 6)"))
    }

    async fn list_shipments(&self, _: Request<pb::ListShipmentsRequest>) -> RpcResult<pb::ListShipmentsResponse> {
        Err(later("shipments arrive with the approval pipeline (issue 6)"))
    }

    async fn list_refills(&self, _: Request<pb::ListRefillsRequest>) -> RpcResult<pb::ListRefillsResponse> {
        Err(later("refills arrive with the approval pipeline (issue 6)"))
    }

    async fn handle_pharmacy_callback(
        &self,
        _: Request<pb::HandlePharmacyCallbackRequest>,
    ) -> RpcResult<pb::HandlePharmacyCallbackResponse> {
        Err(later("pharmacy callbacks arrive with the approval pipeline (issue 6)"))
    }
}

fn decide(s: &Snapshot, raw_state: &str, raw_medication: &str) -> Result<pb::DecideRouteResponse> {
    // Both fields are checked before either error is returned, so a caller sees every problem at once.
    let facts = domain::normalise_state("state", raw_state).and_then(|code| {
        s.state_facts(&code)
            .ok_or_else(|| domain::unknown_state("state", &code))
    });
    let medication = domain::normalise_medication("medication", raw_medication).and_then(|id| match id {
        None => Ok(None),
        Some(id) => s
            .medications
            .get(&id)
            .filter(|m| m.row.active)
            .map(Some)
            .ok_or_else(|| Error::field("medication", format!("{id} is not in the medication catalogue"))),
    });
    let (facts, medication) = match (facts, medication) {
        (Ok(f), Ok(m)) => (f, m),
        (Err(a), Err(b)) => return Err(merge(a, b)),
        (Err(e), _) | (_, Err(e)) => return Err(e),
    };
    let state = facts.code.clone();
    let fills = medication.map(|m| (m.row.id.as_str(), m.pharmacy_ids.as_slice()));
    let d = domain::decide(&facts, fills, Utc::now().date_naive())?;
    // Only the licence the decision rests on, not the prescriber's whole list.
    let prescriber = prescriber(s, &d.prescriber.id).map(|mut p| {
        p.licences.retain(|l| l.state == state);
        p
    });
    Ok(pb::DecideRouteResponse {
        state,
        pharmacy: s.pharmacies.get(&d.route.pharmacy_id).map(pharmacy),
        prescriber,
        reason: match d.reason {
            Reason::Primary => pb::DecisionReason::PrimaryRoute,
            Reason::FallbackPharmacy => pb::DecisionReason::FallbackPharmacy,
            Reason::FallbackPrescriber => pb::DecisionReason::FallbackPrescriber,
        } as i32,
        explanation: d.explanation,
        priority: d.route.priority,
    })
}

fn merge(a: Error, b: Error) -> Error {
    match (a, b) {
        (Error::InvalidArgument(mut x), Error::InvalidArgument(y)) => {
            x.extend(y);
            Error::InvalidArgument(x)
        }
        (a, _) => a,
    }
}

fn known_state(s: &Snapshot, raw: &str) -> Result<String> {
    let code = domain::normalise_state("state", raw)?;
    if s.states.contains_key(&code) {
        Ok(code)
    } else {
        Err(domain::unknown_state("state", &code))
    }
}

/// Checks an update against the matrix and collects every bad field before refusing it.
fn parse_update(s: &Snapshot, caller: &Caller, req: pb::UpdateStateRoutingRequest) -> Result<StateUpdate> {
    let state = known_state(s, &req.state)?;
    let mut bad = Vec::new();
    let note = req.note.trim().to_owned();
    if note.chars().count() > MAX_NOTE_LEN {
        bad.push(FieldViolation::new(
            "note",
            format!("must be at most {MAX_NOTE_LEN} characters"),
        ));
    }
    let mut routes = Vec::with_capacity(req.routes.len());
    for (i, r) in req.routes.iter().enumerate() {
        let pharmacy_id = r.pharmacy_id.trim().to_ascii_lowercase();
        let prescriber_id = r.prescriber_id.trim().to_ascii_lowercase();
        let field = |name: &str| format!("routes[{i}].{name}");
        if !s.pharmacies.contains_key(&pharmacy_id) {
            bad.push(FieldViolation::new(
                field("pharmacy_id"),
                format!("unknown pharmacy \"{pharmacy_id}\""),
            ));
        } else if routes.iter().any(|x: &RouteRow| x.pharmacy_id == pharmacy_id) {
            bad.push(FieldViolation::new(
                field("pharmacy_id"),
                format!("{pharmacy_id} is listed twice"),
            ));
        }
        if !s.prescribers.contains_key(&prescriber_id) {
            bad.push(FieldViolation::new(
                field("prescriber_id"),
                format!("unknown prescriber \"{prescriber_id}\""),
            ));
        } else if s.licence(&prescriber_id, &state).is_none() {
            bad.push(FieldViolation::new(
                field("prescriber_id"),
                format!("{prescriber_id} holds no licence in {state}"),
            ));
        }
        if !(1..=1000).contains(&r.priority) {
            bad.push(FieldViolation::new(field("priority"), "must be between 1 and 1000"));
        }
        routes.push(RouteRow {
            state: state.clone(),
            pharmacy_id,
            prescriber_id,
            active: r.active,
            priority: r.priority,
        });
    }
    if !req.excluded && !routes.iter().any(|r| r.active) {
        bad.push(FieldViolation::new(
            "routes",
            "at least one active route is required unless the state is excluded",
        ));
    }
    if !bad.is_empty() {
        return Err(Error::InvalidArgument(bad));
    }
    routes.sort_by(|a, b| (a.priority, &a.pharmacy_id).cmp(&(b.priority, &b.pharmacy_id)));
    // The authenticated identity is what the audit records; a service acting for someone may name them.
    let changed_by = match (&caller.role, req.actor) {
        (era_kit::auth::Role::Service, Some(actor)) if !actor.subject.trim().is_empty() => {
            format!("{} via {}", actor.subject.trim(), caller.subject)
        }
        _ => caller.subject.clone(),
    };
    Ok(StateUpdate {
        state,
        excluded: req.excluded,
        routes,
        note,
        changed_by,
    })
}

fn page(p: era_proto::common::v1::PageRequest) -> Result<(i64, Option<i64>)> {
    let size = match i64::from(p.page_size) {
        n if n < 0 => return Err(Error::field("page.page_size", "must not be negative")),
        0 => DEFAULT_PAGE_SIZE,
        n => n.min(MAX_PAGE_SIZE),
    };
    let before = match p.page_token.trim() {
        "" => None,
        t => Some(
            t.parse::<i64>()
                .map_err(|_| Error::field("page.page_token", "is not a token this list issued"))?,
        ),
    };
    Ok((size, before))
}

use era_kit::time::timestamp;

fn pharmacy(p: &store::PharmacyRow) -> pb::Pharmacy {
    pb::Pharmacy {
        id: p.id.clone(),
        name: p.name.clone(),
        system: match p.system.as_str() {
            "pioneerrx" => pb::PharmacySystem::Pioneerrx,
            "lifefile" => pb::PharmacySystem::Lifefile,
            _ => pb::PharmacySystem::Unspecified,
        } as i32,
        active: p.active,
    }
}

fn prescriber(s: &Snapshot, id: &str) -> Option<pb::Prescriber> {
    let p = s.prescribers.get(id)?;
    Some(pb::Prescriber {
        id: p.id.clone(),
        name: p.name.clone(),
        npi: p.npi.clone(),
        active: p.active,
        licences: s
            .licences
            .get(id)
            .into_iter()
            .flatten()
            .map(|l| pb::PrescriberLicence {
                state: l.state.clone(),
                licence_number: l.licence_number.clone(),
                expires_on: l.expires_on.to_string(),
            })
            .collect(),
    })
}

fn state_routing(s: &Snapshot, code: &str) -> Option<pb::StateRouting> {
    let st = s.states.get(code)?;
    Some(pb::StateRouting {
        state: st.code.clone(),
        state_name: st.name.clone(),
        excluded: st.excluded,
        routes: s.routes.get(code).into_iter().flatten().map(route).collect(),
        updated_at: Some(timestamp(st.updated_at)),
        updated_by: st.updated_by.clone(),
    })
}

/// A state's routing as `update` left it, for when the snapshot could not be reloaded.
fn committed_routing(s: &Snapshot, update: &StateUpdate) -> Option<pb::StateRouting> {
    let mut routing = state_routing(s, &update.state)?;
    routing.excluded = update.excluded;
    routing.routes = update.routes.iter().map(route).collect();
    routing.updated_by = update.changed_by.clone();
    routing.updated_at = Some(timestamp(Utc::now()));
    Some(routing)
}

fn route(r: &RouteRow) -> pb::Route {
    pb::Route {
        pharmacy_id: r.pharmacy_id.clone(),
        prescriber_id: r.prescriber_id.clone(),
        active: r.active,
        priority: r.priority,
    }
}

fn medication(m: &store::Medication) -> pb::Medication {
    pb::Medication {
        id: m.row.id.clone(),
        name: m.row.name.clone(),
        doses: m
            .doses
            .iter()
            .map(|d| pb::MedicationDose {
                label: d.label.clone(),
                strength: d.strength.clone(),
                directions: d.directions.clone(),
            })
            .collect(),
        quantity: m.row.quantity.clone(),
        days_supply: m.row.days_supply,
        refills: m.row.refills,
        price: Some(Money {
            amount_cents: m.row.price_cents,
            currency: m.row.currency.clone(),
        }),
        pharmacy_ids: m.pharmacy_ids.clone(),
        active: m.row.active,
    }
}
