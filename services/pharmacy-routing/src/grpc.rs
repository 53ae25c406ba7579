//! The gRPC face of the router: requests parsed into domain input, answers built from the snapshot.

use chrono::Utc;
use era_kit::{auth::Caller, error::FieldViolation};
use era_proto::{
    common::v1::{Money, PageResponse},
    pharmacy_routing::v1::{self as pb, pharmacy_routing_service_server::PharmacyRoutingService},
};
use sqlx::PgPool;
use tonic::{Request, Response, Status};

use std::sync::Arc;

use crate::{
    domain::{self, Reason},
    error::{Error, Result},
    pipeline::{
        orders,
        prescriptions::{Handled, PrescriptionEvent},
        refills::{self, Action as RefillAction, ActionRequest as RefillActionRequest},
        runs, Approval, Denial, Pipeline,
    },
    store::{self, Matrix, RouteRow, Snapshot, StateUpdate},
};

const DEFAULT_PAGE_SIZE: i64 = 50;
const MAX_PAGE_SIZE: i64 = 200;
const MAX_NOTE_LEN: usize = 500;

/// Longest approval note (the H&P note's body) and denial reason (the task's comment), in characters.
const MAX_NOTE: usize = 4000;
const MAX_REASON: usize = 2000;

#[derive(Debug)]
pub(crate) struct RoutingService {
    matrix: Arc<tokio::sync::OnceCell<Matrix>>,
    pool: PgPool,
    pipeline: Arc<Pipeline>,
}

impl RoutingService {
    pub(crate) fn new(pool: PgPool, matrix: Arc<tokio::sync::OnceCell<Matrix>>, pipeline: Arc<Pipeline>) -> Self {
        Self { matrix, pool, pipeline }
    }

    /// Orders as the API shows them, each with its shipment once it shipped.
    async fn orders_view(&self, rows: Vec<orders::Order>) -> Result<Vec<pb::PharmacyOrder>> {
        let ids: Vec<uuid::Uuid> = rows.iter().map(|o| o.id).collect();
        let shipments = orders::shipments_of(self.pipeline.pool(), &ids).await?;
        let mut shipments = self.shipments_view(shipments).await?;
        Ok(rows
            .into_iter()
            .map(|o| {
                let id = o.id.to_string();
                let mut view = order_view(o);
                view.shipment = shipments
                    .iter()
                    .position(|s| s.order_id == id)
                    .map(|i| shipments.swap_remove(i));
                view
            })
            .collect())
    }

    /// Shipments as the API shows them, with their tracking events.
    async fn shipments_view(&self, rows: Vec<orders::ShipmentRow>) -> Result<Vec<pb::Shipment>> {
        let ids: Vec<uuid::Uuid> = rows.iter().map(|s| s.id).collect();
        let fedex: Vec<String> = rows
            .iter()
            .filter(|s| s.carrier.eq_ignore_ascii_case("fedex") && !s.tracking_number.is_empty())
            .map(|s| s.tracking_number.clone())
            .collect();
        let tracking = self.pipeline.tracking(&fedex).await?;
        // Read after tracking: a status FedEx just moved shows here too.
        let rows = orders::shipments_by_id(self.pipeline.pool(), &ids).await?;
        let events = orders::events_of(self.pipeline.pool(), &ids).await?;
        Ok(rows
            .into_iter()
            .map(|s| pb::Shipment {
                id: s.id.to_string(),
                order_id: s.order_id.to_string(),
                canvas_patient_id: s.canvas_patient_id,
                pharmacy_id: s.pharmacy_id,
                carrier: s.carrier,
                tracking_number: s.tracking_number.clone(),
                status: s.status,
                events: events
                    .iter()
                    .filter(|e| e.shipment_id == s.id)
                    .map(|e| pb::ShipmentEvent {
                        status: e.status.clone(),
                        description: e.description.clone(),
                        occurred_at: Some(timestamp(e.occurred_at)),
                    })
                    .collect(),
                shipped_at: s.shipped_at.map(timestamp),
                delivered_at: s.delivered_at.map(timestamp),
                tracking: tracking.get(s.tracking_number.as_str()).map(|t| pb::Tracking {
                    url: crate::carriers::fedex::tracking_url(&t.tracking_number),
                    found: t.found,
                    status_code: t.status_code.clone(),
                    description: t.description.clone(),
                    estimated_delivery_begins: t.estimated_begins.map(timestamp),
                    estimated_delivery_ends: t.estimated_ends.map(timestamp),
                    delivered_at: t.delivered_at.map(timestamp),
                    scans: t
                        .scans
                        .iter()
                        .map(|scan| pb::TrackingScan {
                            at: scan.at.map(timestamp),
                            status_code: scan.code.clone(),
                            description: scan.description.clone(),
                            location: scan.location.clone(),
                        })
                        .collect(),
                    tracked_at: Some(timestamp(t.fetched_at)),
                }),
            })
            .collect())
    }

    /// Refills as the API shows them, each with its history (runs and admin actions); the admins'
    /// names only for staff.
    async fn refills_view(&self, rows: Vec<orders::RefillRow>, staff: bool) -> Result<Vec<pb::Refill>> {
        let ids: Vec<uuid::Uuid> = rows.iter().map(|r| r.id).collect();
        let history = refills::history(self.pipeline.pool(), &ids).await?;
        Ok(rows
            .into_iter()
            .map(|r| pb::Refill {
                history: history
                    .iter()
                    .filter(|h| h.refill_id == r.id)
                    .map(|h| pb::RefillHistoryEntry {
                        at: Some(timestamp(h.at)),
                        kind: h.kind.clone(),
                        run_id: h.run_id.map(|id| id.to_string()).unwrap_or_default(),
                        run_status: h.run_status.clone(),
                        failure_reason: h.failure_reason.clone(),
                        actor: if staff { h.actor.clone() } else { String::new() },
                        detail: h.detail.clone(),
                    })
                    .collect(),
                id: r.id.to_string(),
                order_id: r.order_id.to_string(),
                canvas_patient_id: r.canvas_patient_id,
                medication: r.medication,
                sequence: r.sequence,
                status: r.status,
                due_at: Some(timestamp(r.due_at)),
                run_id: r.run_id.map(|u| u.to_string()).unwrap_or_default(),
                dose_label: r.dose_label,
                reminded_at: r.reminded_at.map(timestamp),
                attempts: r.attempts,
                next_attempt_at: r.next_attempt_at.map(timestamp),
            })
            .collect())
    }

    /// A run as the API shows it, with its steps.
    /// Runs as the API shows them, with their steps and orders (two queries for a whole page).
    async fn runs_view(&self, rows: Vec<runs::Run>) -> Result<Vec<pb::OrchestrationRun>> {
        let ids: Vec<uuid::Uuid> = rows.iter().map(|r| r.id).collect();
        let steps = runs::steps_of(self.pipeline.pool(), &ids).await?;
        let orders = orders::for_runs(self.pipeline.pool(), &ids).await?;
        Ok(rows
            .into_iter()
            .map(|run| {
                let status = match run.status.as_str() {
                    "pending" => pb::RunStatus::Pending,
                    "running" => pb::RunStatus::Running,
                    "succeeded" => pb::RunStatus::Succeeded,
                    "failed" => pb::RunStatus::Failed,
                    "denied" => pb::RunStatus::Denied,
                    _ => pb::RunStatus::Unspecified,
                };
                pb::OrchestrationRun {
                    id: run.id.to_string(),
                    kind: run_kind(&run.kind) as i32,
                    medication_request_id: run.medication_request_id.unwrap_or_default(),
                    target_run_id: run.target_run_id.map(|id| id.to_string()).unwrap_or_default(),
                    task_id: run.task_id.unwrap_or_default(),
                    canvas_patient_id: run.canvas_patient_id,
                    medication: run.medication,
                    dose_label: run.dose_label,
                    status: status as i32,
                    failure_reason: run.failure_reason,
                    steps: steps
                        .iter()
                        .filter(|st| st.run_id == run.id)
                        .map(|st| pb::RunStep {
                            name: st.name.clone(),
                            status: st.status.clone(),
                            detail: st.detail.clone(),
                            finished_at: st.finished_at.map(timestamp),
                        })
                        .collect(),
                    warnings: run.warnings,
                    pharmacy_order_id: orders
                        .iter()
                        .find(|o| o.run_id == run.id)
                        .map(|o| o.id.to_string())
                        .unwrap_or_default(),
                    payment_id: run.charge_id,
                    approved_by: run.approved_by,
                    created_at: Some(timestamp(run.created_at)),
                    updated_at: Some(timestamp(run.updated_at)),
                }
            })
            .collect())
    }

    async fn run_view(&self, run: runs::Run) -> Result<pb::OrchestrationRun> {
        self.runs_view(vec![run])
            .await?
            .pop()
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("a run view was lost")))
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

    async fn approve_task(&self, request: Request<pb::ApproveTaskRequest>) -> RpcResult<pb::ApproveTaskResponse> {
        let deadline = self.pipeline.answer_by(tokio::time::Instant::now());
        let caller = Caller::of(&request)?.clone();
        caller.require_staff()?;
        let req = request.into_inner();
        let mut bad = Vec::new();
        check_task_id(&req.task_id, &mut bad);
        optional_id("canvas_patient_id", &req.canvas_patient_id, &mut bad);
        if req.dose_label.trim().is_empty() {
            bad.push(FieldViolation::new(
                "dose_label",
                "is required: one of the task's dosage options",
            ));
        }
        if !req.medication.is_empty() {
            if let Err(Error::InvalidArgument(v)) = domain::normalise_medication("medication", &req.medication) {
                bad.extend(v);
            }
        }
        if req.note.chars().count() > MAX_NOTE {
            bad.push(FieldViolation::new(
                "note",
                format!("must be at most {MAX_NOTE} characters"),
            ));
        }
        if req.idempotency_key.len() > 200 {
            bad.push(FieldViolation::new("idempotency_key", "must be at most 200 characters"));
        }
        if !bad.is_empty() {
            return Err(Error::InvalidArgument(bad).into());
        }
        let (run, existing) = self
            .pipeline
            .approve(
                Approval {
                    task_id: req.task_id,
                    canvas_patient_id: req.canvas_patient_id,
                    medication: req.medication.trim().to_lowercase(),
                    dose_label: req.dose_label.trim().to_owned(),
                    note: req.note,
                    idempotency_key: req.idempotency_key,
                    approved_by: actor_of(&caller, req.actor),
                },
                deadline,
            )
            .await?;
        Ok(Response::new(pb::ApproveTaskResponse {
            run: Some(self.run_view(run).await?),
            existing,
        }))
    }

    async fn deny_task(&self, request: Request<pb::DenyTaskRequest>) -> RpcResult<pb::DenyTaskResponse> {
        let deadline = self.pipeline.answer_by(tokio::time::Instant::now());
        let caller = Caller::of(&request)?.clone();
        caller.require_staff()?;
        let req = request.into_inner();
        let mut bad = Vec::new();
        check_task_id(&req.task_id, &mut bad);
        optional_id("canvas_patient_id", &req.canvas_patient_id, &mut bad);
        if req.reason.trim().is_empty() {
            bad.push(FieldViolation::new("reason", "is required"));
        } else if req.reason.chars().count() > MAX_REASON {
            bad.push(FieldViolation::new(
                "reason",
                format!("must be at most {MAX_REASON} characters"),
            ));
        }
        if !bad.is_empty() {
            return Err(Error::InvalidArgument(bad).into());
        }
        let run = self
            .pipeline
            .deny(
                Denial {
                    task_id: req.task_id,
                    canvas_patient_id: req.canvas_patient_id,
                    reason: req.reason,
                    denied_by: actor_of(&caller, req.actor),
                },
                deadline,
            )
            .await?;
        Ok(Response::new(pb::DenyTaskResponse {
            run: Some(self.run_view(run).await?),
        }))
    }

    async fn get_orchestration_run(
        &self,
        request: Request<pb::GetOrchestrationRunRequest>,
    ) -> RpcResult<pb::GetOrchestrationRunResponse> {
        Caller::of(&request)?.require_staff()?;
        let id = uuid_field("id", &request.get_ref().id)?;
        let run = runs::get(self.pipeline.pool(), id)
            .await?
            .ok_or_else(|| Error::NotFound {
                what: "orchestration run",
                id: id.to_string(),
            })?;
        Ok(Response::new(pb::GetOrchestrationRunResponse {
            run: Some(self.run_view(run).await?),
        }))
    }

    async fn list_orchestration_runs(
        &self,
        request: Request<pb::ListOrchestrationRunsRequest>,
    ) -> RpcResult<pb::ListOrchestrationRunsResponse> {
        Caller::of(&request)?.require_staff()?;
        let req = request.into_inner();
        let page = req.page.unwrap_or_default();
        let status = match pb::RunStatus::try_from(req.status) {
            Ok(pb::RunStatus::Unspecified) => None,
            Ok(s) => Some(run_status_word(s).to_owned()),
            Err(_) => return Err(Error::field("status", "is not a run status").into()),
        };
        let kind = match pb::RunKind::try_from(req.kind) {
            Ok(pb::RunKind::Unspecified) => None,
            Ok(k) => Some(run_kind_word(k).to_owned()),
            Err(_) => return Err(Error::field("kind", "is not a run kind").into()),
        };
        let (q, limit) = newest(
            page,
            vec![
                ("task_id", nonempty(req.task_id)),
                ("canvas_patient_id", nonempty(req.canvas_patient_id)),
                ("status", status),
                ("kind", kind),
                ("medication_request_id", nonempty(req.medication_request_id)),
            ],
        )?;
        let mut rows: Vec<runs::Run> = runs::newest_first(self.pipeline.pool(), "orchestration_runs", &q).await?;
        let next = more(&mut rows, limit).map(|r| (r.created_at, r.id));
        Ok(Response::new(pb::ListOrchestrationRunsResponse {
            runs: self.runs_view(rows).await?,
            page: Some(era_kit::time::next_page(next)),
        }))
    }

    async fn get_pharmacy_order(
        &self,
        request: Request<pb::GetPharmacyOrderRequest>,
    ) -> RpcResult<pb::GetPharmacyOrderResponse> {
        Caller::of(&request)?.require_staff()?;
        let id = uuid_field("id", &request.get_ref().id)?;
        let order = orders::get(self.pipeline.pool(), id)
            .await?
            .ok_or_else(|| Error::NotFound {
                what: "pharmacy order",
                id: id.to_string(),
            })?;
        Ok(Response::new(pb::GetPharmacyOrderResponse {
            order: self.orders_view(vec![order]).await?.pop(),
        }))
    }

    async fn list_pharmacy_orders(
        &self,
        request: Request<pb::ListPharmacyOrdersRequest>,
    ) -> RpcResult<pb::ListPharmacyOrdersResponse> {
        Caller::of(&request)?.require_staff()?;
        let req = request.into_inner();
        if !req.run_ids.is_empty() {
            if req.run_ids.len() > 100 {
                return Err(Error::field("run_ids", "must name at most 100 runs").into());
            }
            let ids = req
                .run_ids
                .iter()
                .map(|id| uuid_field("run_ids", id))
                .collect::<Result<Vec<_>>>()?;
            let rows = orders::for_runs(self.pipeline.pool(), &ids).await?;
            return Ok(Response::new(pb::ListPharmacyOrdersResponse {
                orders: self.orders_view(rows).await?,
                page: Some(PageResponse::default()),
            }));
        }
        let page = req.page.unwrap_or_default();
        let status = match pb::OrderStatus::try_from(req.status) {
            Ok(pb::OrderStatus::Unspecified) => None,
            Ok(s) => Some(order_status_word(s).to_owned()),
            Err(_) => return Err(Error::field("status", "is not an order status").into()),
        };
        let (q, limit) = newest(
            page,
            vec![
                ("canvas_patient_id", nonempty(req.canvas_patient_id)),
                ("pharmacy_id", nonempty(req.pharmacy_id)),
                ("status", status),
            ],
        )?;
        let mut rows: Vec<orders::Order> = runs::newest_first(self.pipeline.pool(), "pharmacy_orders", &q).await?;
        let next = more(&mut rows, limit).map(|o| (o.created_at, o.id));
        Ok(Response::new(pb::ListPharmacyOrdersResponse {
            orders: self.orders_view(rows).await?,
            page: Some(era_kit::time::next_page(next)),
        }))
    }

    async fn list_sync_logs(&self, request: Request<pb::ListSyncLogsRequest>) -> RpcResult<pb::ListSyncLogsResponse> {
        Caller::of(&request)?.require_staff()?;
        let req = request.into_inner();
        let (limit, before_id) = page(req.page.unwrap_or_default())?;
        let time = |field: &str, t: Option<prost_types::Timestamp>| -> Result<Option<chrono::DateTime<Utc>>> {
            t.map(|t| era_kit::time::from_timestamp(&t).ok_or_else(|| Error::field(field, "is not a valid time")))
                .transpose()
        };
        let status = nonempty(req.status);
        if status
            .as_deref()
            .is_some_and(|s| !matches!(s, "success" | "failure" | "retry"))
        {
            return Err(Error::field("status", "must be success, failure or retry").into());
        }
        let filter = orders::LogFilter {
            canvas_patient_id: nonempty(req.canvas_patient_id),
            pharmacy_id: nonempty(req.pharmacy_id),
            status,
            from: time("from", req.from)?,
            to: time("to", req.to)?,
            before_id,
            limit: limit + 1,
        };
        let mut rows = orders::logs(self.pipeline.pool(), &filter).await?;
        let next = more(&mut rows, limit).map(|r| r.id.to_string());
        Ok(Response::new(pb::ListSyncLogsResponse {
            logs: rows
                .into_iter()
                .map(|r| pb::SyncLog {
                    id: r.id,
                    pharmacy_id: r.pharmacy_id,
                    canvas_patient_id: r.canvas_patient_id,
                    order_id: r.order_id,
                    operation: r.operation,
                    status: r.status,
                    http_status: r.http_status,
                    detail: r.detail,
                    created_at: Some(timestamp(r.created_at)),
                })
                .collect(),
            page: Some(PageResponse {
                next_page_token: next.unwrap_or_default(),
            }),
        }))
    }

    async fn list_shipments(&self, request: Request<pb::ListShipmentsRequest>) -> RpcResult<pb::ListShipmentsResponse> {
        let caller = Caller::of(&request)?.clone();
        let req = request.into_inner();
        required_id("canvas_patient_id", &req.canvas_patient_id)?;
        caller.require_patient_access(&req.canvas_patient_id)?;
        let (q, limit) = newest(
            req.page.unwrap_or_default(),
            vec![("canvas_patient_id", Some(req.canvas_patient_id))],
        )?;
        let mut rows: Vec<orders::ShipmentRow> = runs::newest_first(self.pipeline.pool(), "shipments", &q).await?;
        let next = more(&mut rows, limit).map(|s| (s.created_at, s.id));
        Ok(Response::new(pb::ListShipmentsResponse {
            shipments: self.shipments_view(rows).await?,
            page: Some(era_kit::time::next_page(next)),
        }))
    }

    async fn list_refills(&self, request: Request<pb::ListRefillsRequest>) -> RpcResult<pb::ListRefillsResponse> {
        let caller = Caller::of(&request)?.clone();
        let req = request.into_inner();
        required_id("canvas_patient_id", &req.canvas_patient_id)?;
        caller.require_patient_access(&req.canvas_patient_id)?;
        let page = req.page.unwrap_or_default();
        let limit = era_kit::time::page_size(page.page_size);
        // Soonest first: the token is the last refill shown.
        let after = era_kit::time::page_cursor(&page.page_token).map_err(|v| Error::InvalidArgument(vec![v]))?;
        let mut rows = orders::refills(self.pipeline.pool(), &req.canvas_patient_id, after, limit + 1).await?;
        let next = more(&mut rows, limit).map(|r| (r.due_at, r.id));
        // A patient reading their own schedule sees what happened, not which admin did it.
        let staff = caller.require_staff().is_ok();
        Ok(Response::new(pb::ListRefillsResponse {
            refills: self.refills_view(rows, staff).await?,
            page: Some(era_kit::time::next_page(next)),
        }))
    }

    async fn refill_action(&self, request: Request<pb::RefillActionRequest>) -> RpcResult<pb::RefillActionResponse> {
        let caller = Caller::of(&request)?.clone();
        caller.require_staff()?;
        let req = request.into_inner();
        let mut bad = Vec::new();
        let refill_id = uuid::Uuid::parse_str(req.refill_id.trim()).ok();
        if refill_id.is_none() {
            bad.push(FieldViolation::new(
                "refill_id",
                "is not a refill id this service issued",
            ));
        }
        let action = match pb::RefillActionKind::try_from(req.action) {
            Ok(pb::RefillActionKind::Skip) => Some(RefillAction::Skip),
            Ok(pb::RefillActionKind::Pause) => Some(RefillAction::Pause),
            Ok(pb::RefillActionKind::Resume) => Some(RefillAction::Resume),
            Ok(pb::RefillActionKind::Cancel) => Some(RefillAction::Cancel),
            Ok(pb::RefillActionKind::ProcessNow) => Some(RefillAction::ProcessNow),
            Ok(pb::RefillActionKind::Dose) => Some(RefillAction::Dose),
            Ok(pb::RefillActionKind::Unspecified) | Err(_) => None,
        };
        if action.is_none() {
            bad.push(FieldViolation::new(
                "action",
                "must be skip, pause, resume, cancel, process_now or dose",
            ));
        }
        if action == Some(RefillAction::Dose) && req.dose_label.trim().is_empty() {
            bad.push(FieldViolation::new("dose_label", "is required to change the dose"));
        }
        if req.idempotency_key.len() > 200 {
            bad.push(FieldViolation::new("idempotency_key", "must be at most 200 characters"));
        }
        let (Some(refill_id), Some(action), true) = (refill_id, action, bad.is_empty()) else {
            return Err(Error::InvalidArgument(bad).into());
        };
        let done = self
            .pipeline
            .refill_action(RefillActionRequest {
                refill_id,
                action,
                dose_label: req.dose_label.trim().to_owned(),
                idempotency_key: req.idempotency_key,
                actor: actor_of(&caller, req.actor),
            })
            .await?;
        Ok(Response::new(pb::RefillActionResponse {
            refill: self.refills_view(vec![done.refill], true).await?.pop(),
            changed_refill_ids: done.changed.iter().map(ToString::to_string).collect(),
            run: match done.run {
                Some(run) => self.runs_view(vec![run]).await?.pop(),
                None => None,
            },
            existing: done.existing,
        }))
    }

    async fn handle_prescription_event(
        &self,
        request: Request<pb::HandlePrescriptionEventRequest>,
    ) -> RpcResult<pb::HandlePrescriptionEventResponse> {
        Caller::of(&request)?.require_staff()?;
        let event = prescription_event(request.into_inner())?;
        let (outcome, run, processed) = self.pipeline.prescription_event(event).await?;
        Ok(Response::new(pb::HandlePrescriptionEventResponse {
            outcome: outcome_of(outcome) as i32,
            run: self.runs_view(run.into_iter().collect()).await?.pop(),
            processed,
        }))
    }

    async fn list_refund_reviews(
        &self,
        request: Request<pb::ListRefundReviewsRequest>,
    ) -> RpcResult<pb::ListRefundReviewsResponse> {
        Caller::of(&request)?.require_staff()?;
        let req = request.into_inner();
        if !req.canvas_patient_id.is_empty() {
            required_id("canvas_patient_id", &req.canvas_patient_id)?;
        }
        let (q, limit) = newest(
            req.page.unwrap_or_default(),
            vec![("canvas_patient_id", nonempty(req.canvas_patient_id))],
        )?;
        let mut rows: Vec<RefundReviewRow> = runs::newest_first(self.pipeline.pool(), "refund_reviews", &q).await?;
        let next = more(&mut rows, limit).map(|r| (r.created_at, r.id));
        Ok(Response::new(pb::ListRefundReviewsResponse {
            reviews: rows
                .into_iter()
                .map(|r| pb::RefundReview {
                    id: r.id.to_string(),
                    canvas_patient_id: r.canvas_patient_id,
                    medication_request_id: r.medication_request_id,
                    stop_run_id: r.stop_run_id.to_string(),
                    fulfilment_run_id: r.fulfilment_run_id.to_string(),
                    charge_id: r.charge_id,
                    amount_cents: r.amount_cents,
                    currency: r.currency,
                    order_outcome: r.order_outcome,
                    created_at: Some(timestamp(r.created_at)),
                })
                .collect(),
            page: Some(era_kit::time::next_page(next)),
        }))
    }

    async fn handle_pharmacy_callback(
        &self,
        request: Request<pb::HandlePharmacyCallbackRequest>,
    ) -> RpcResult<pb::HandlePharmacyCallbackResponse> {
        Caller::of(&request)?.require_staff()?;
        let req = request.into_inner();
        let processed = self
            .pipeline
            .pharmacy_callback(&req.pharmacy_id, &req.callback_id, &req.body)
            .await?;
        Ok(Response::new(pb::HandlePharmacyCallbackResponse { processed }))
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

fn run_status_word(s: pb::RunStatus) -> &'static str {
    match s {
        pb::RunStatus::Unspecified => "",
        pb::RunStatus::Pending => "pending",
        pb::RunStatus::Running => "running",
        pb::RunStatus::Succeeded => "succeeded",
        pb::RunStatus::Failed => "failed",
        pb::RunStatus::Denied => "denied",
    }
}

fn run_kind(word: &str) -> pb::RunKind {
    match word {
        "approve" => pb::RunKind::Approval,
        "deny" => pb::RunKind::Denial,
        "prescription" => pb::RunKind::Prescription,
        "stop" => pb::RunKind::PrescriptionStop,
        "refill" => pb::RunKind::Refill,
        _ => pb::RunKind::Unspecified,
    }
}

fn run_kind_word(k: pb::RunKind) -> &'static str {
    match k {
        pb::RunKind::Approval => "approve",
        pb::RunKind::Denial => "deny",
        pb::RunKind::Prescription => "prescription",
        pb::RunKind::PrescriptionStop => "stop",
        pb::RunKind::Refill => "refill",
        pb::RunKind::Unspecified => "",
    }
}

fn outcome_of(h: Handled) -> pb::PrescriptionOutcome {
    use pb::PrescriptionOutcome as O;
    match h {
        Handled::Started => O::Started,
        Handled::AlreadyFulfilling => O::AlreadyFulfilling,
        Handled::FulfilledByApproval => O::FulfilledByApproval,
        Handled::NotActive => O::NotActive,
        Handled::RefillIgnored => O::RefillIgnored,
        Handled::NotInCatalogue => O::NotInCatalogue,
        Handled::Stopping => O::Stopping,
        Handled::NothingToStop => O::NothingToStop,
        Handled::DoseChanged => O::DoseChanged,
        Handled::NoChange => O::NoChange,
    }
}

/// A plugin event, checked: every bad field is named.
fn prescription_event(req: pb::HandlePrescriptionEventRequest) -> Result<PrescriptionEvent> {
    let mut bad = Vec::new();
    let event_ok = (1..=128).contains(&req.event_id.len())
        && req
            .event_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if !event_ok {
        bad.push(FieldViolation::new(
            "event_id",
            "is required: 1-128 letters, digits, '-', '_', '.' or ':'",
        ));
    }
    let created = match pb::PrescriptionEventType::try_from(req.event_type) {
        Ok(pb::PrescriptionEventType::Created) => true,
        Ok(pb::PrescriptionEventType::Updated) => false,
        _ => {
            bad.push(FieldViolation::new("event_type", "must be CREATED or UPDATED"));
            false
        }
    };
    if !is_id(&req.medication_request_id) {
        bad.push(FieldViolation::new(
            "medication_request_id",
            "is required (a Canvas id)",
        ));
    }
    if !is_id(&req.canvas_patient_id) {
        bad.push(FieldViolation::new("canvas_patient_id", "is required (a Canvas id)"));
    }
    if !bad.is_empty() {
        return Err(Error::InvalidArgument(bad));
    }
    Ok(PrescriptionEvent {
        event_id: req.event_id,
        medication_request_id: req.medication_request_id,
        canvas_patient_id: req.canvas_patient_id,
        created,
    })
}

/// A refund review as its table holds it.
#[derive(Debug, sqlx::FromRow)]
struct RefundReviewRow {
    id: uuid::Uuid,
    stop_run_id: uuid::Uuid,
    fulfilment_run_id: uuid::Uuid,
    canvas_patient_id: String,
    medication_request_id: String,
    charge_id: String,
    amount_cents: i64,
    currency: String,
    order_outcome: String,
    created_at: chrono::DateTime<Utc>,
}

fn order_status_word(s: pb::OrderStatus) -> &'static str {
    match s {
        pb::OrderStatus::Unspecified => "",
        pb::OrderStatus::Pending => "pending",
        pb::OrderStatus::Submitted => "submitted",
        pb::OrderStatus::Accepted => "accepted",
        pb::OrderStatus::Rejected => "rejected",
        pb::OrderStatus::Cancelled => "cancelled",
        pb::OrderStatus::Shipped => "shipped",
        pb::OrderStatus::Delivered => "delivered",
    }
}

fn order_view(o: orders::Order) -> pb::PharmacyOrder {
    let status = [
        pb::OrderStatus::Pending,
        pb::OrderStatus::Submitted,
        pb::OrderStatus::Accepted,
        pb::OrderStatus::Rejected,
        pb::OrderStatus::Cancelled,
        pb::OrderStatus::Shipped,
        pb::OrderStatus::Delivered,
    ]
    .into_iter()
    .find(|s| order_status_word(*s) == o.status)
    .unwrap_or(pb::OrderStatus::Unspecified);
    pb::PharmacyOrder {
        id: o.id.to_string(),
        run_id: o.run_id.to_string(),
        canvas_patient_id: o.canvas_patient_id,
        pharmacy_id: o.pharmacy_id,
        prescriber_id: o.prescriber_id,
        medication: o.medication,
        dose_label: o.dose_label,
        status: status as i32,
        external_order_id: o.external_order_id,
        rejection_reason: o.rejection_reason,
        created_at: Some(timestamp(o.created_at)),
        updated_at: Some(timestamp(o.updated_at)),
        shipment: None,
    }
}

/// A newest-first query for `page` with `filters`, reading one row more than the page to know
/// whether another follows; answers it with the page's size.
fn newest(
    page: era_proto::common::v1::PageRequest,
    filters: Vec<(&'static str, Option<String>)>,
) -> Result<(runs::Newest, i64)> {
    let limit = era_kit::time::page_size(page.page_size);
    let after = era_kit::time::page_cursor(&page.page_token).map_err(|v| Error::InvalidArgument(vec![v]))?;
    Ok((
        runs::Newest {
            filters,
            after,
            limit: limit + 1,
        },
        limit,
    ))
}

/// Keeps `limit` rows of the `limit + 1` read; answers the last kept when there were more.
fn more<T>(rows: &mut Vec<T>, limit: i64) -> Option<&T> {
    if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last()
    } else {
        None
    }
}

fn nonempty(s: String) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

/// Canvas ids: letters, digits and dashes, at most 100.
fn is_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 100 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

fn check_task_id(id: &str, bad: &mut Vec<FieldViolation>) {
    if id.is_empty() {
        bad.push(FieldViolation::new("task_id", "is required"));
    } else if !is_id(id) {
        bad.push(FieldViolation::new("task_id", "is not a Canvas id"));
    }
}

fn optional_id(field: &str, id: &str, bad: &mut Vec<FieldViolation>) {
    if !id.is_empty() && !is_id(id) {
        bad.push(FieldViolation::new(field, "is not a Canvas id"));
    }
}

fn required_id(field: &str, id: &str) -> Result<()> {
    if !is_id(id) {
        return Err(Error::field(field, "is required (a Canvas id)"));
    }
    Ok(())
}

fn uuid_field(field: &str, raw: &str) -> Result<uuid::Uuid> {
    uuid::Uuid::parse_str(raw.trim()).map_err(|_| Error::field(field, "is not an id this service issued"))
}

/// Who decided: the authenticated admin; a service caller may name the admin it acts for.
fn actor_of(caller: &Caller, given: Option<era_proto::common::v1::Actor>) -> era_proto::common::v1::Actor {
    match (caller.role, given) {
        (era_kit::auth::Role::Service, Some(a)) if !a.subject.is_empty() => a,
        _ => era_proto::common::v1::Actor {
            subject: caller.subject.clone(),
            role: "admin".into(),
        },
    }
}
