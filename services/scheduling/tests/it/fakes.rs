//! In-process fakes of the three peers scheduling calls (canvas, pharmacy-routing, notifications),
//! built on the generated server traits and served over loopback gRPC. Each answers the RPCs
//! scheduling uses from fixed data, records what it was sent, and can be told to fail; every other
//! RPC answers UNIMPLEMENTED.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
};

use chrono::{Duration, NaiveDate};
use era_kit::{error::with_reason, time::timestamp};
use era_proto::{
    canvas::v1::{
        self as cv,
        canvas_service_server::{CanvasService, CanvasServiceServer},
    },
    common::v1::{Address, PageResponse},
    notifications::v1::{
        self as nv,
        notifications_service_server::{NotificationsService, NotificationsServiceServer},
    },
    pharmacy_routing::v1::{
        self as rv,
        pharmacy_routing_service_server::{PharmacyRoutingService, PharmacyRoutingServiceServer},
    },
};
use tokio::sync::oneshot;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{service::Routes, Code, Request, Response, Status};

/// A patient living in Georgia.
pub(crate) const PATIENT_GA: &str = "patient-ga";
/// Another patient in Georgia.
pub(crate) const PATIENT_GA_2: &str = "patient-ga-2";
/// A patient whose chart has no address.
pub(crate) const PATIENT_NO_STATE: &str = "patient-stateless";

/// Ali Nolan: schedulable, licensed in Georgia.
pub(crate) const NOLAN: &str = "prac-nolan";
pub(crate) const NOLAN_NPI: &str = "1982609764";
pub(crate) const NOLAN_EMAIL: &str = "ali.nolan@era-demo.test";
pub(crate) const NOLAN_NAME: &str = "Ali Nolan FNP-C";
/// Neelima Singh: schedulable, licensed in California and New York only.
pub(crate) const SINGH: &str = "prac-singh";
/// Schedulable, but the Georgia licence has expired.
pub(crate) const LAPSED: &str = "prac-lapsed";
/// Licensed in Georgia but takes no appointments.
pub(crate) const DESK: &str = "prac-desk";

/// The schedule Canvas names for a practitioner at location 1.
pub(crate) fn schedule_of(practitioner: &str) -> String {
    format!("Location.1-Staff.{practitioner}")
}

/// The fake's slots: every `duration` minutes from 14:00 to 22:00 UTC on each day asked for.
pub(crate) const OPEN_HOUR: u32 = 14;
pub(crate) const CLOSE_HOUR: u32 = 22;

/// Builds an `impl` of a generated server trait: the RPCs given, and UNIMPLEMENTED for the rest.
macro_rules! fake_service {
    (
        impl $trait:ident for $ty:ident { $($body:tt)* }
        unimplemented { $($name:ident($req:ty) -> $resp:ty;)* }
    ) => {
        #[tonic::async_trait]
        impl $trait for $ty {
            $($body)*
            $(
                async fn $name(&self, _request: Request<$req>) -> Result<Response<$resp>, Status> {
                    Err(Status::unimplemented(concat!(stringify!($name), " is not faked")))
                }
            )*
        }
    };
}

/// Serves `routes` on a loopback port until the sender is dropped; answers the peer's URL.
pub(crate) async fn serve(routes: Routes) -> (String, oneshot::Sender<()>) {
    let (listener, addr) = era_kit::testing::listener().await;
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_routes(routes)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = stopped.await;
            })
            .await
            .expect("a fake peer serves");
    });
    (format!("http://{addr}"), stop)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// ---- canvas ----

/// How the fake canvas answers a CreateAppointment it is told to fail.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Failure {
    /// UNAVAILABLE: an outage.
    Unavailable,
    /// FAILED_PRECONDITION with reason SLOT_UNAVAILABLE: the time is taken in Canvas.
    SlotUnavailable,
    /// FAILED_PRECONDITION with reason WRITE_OUTCOME_UNKNOWN: an earlier create under the key was
    /// never answered and canvas's search found nothing it made.
    OutcomeUnknown,
}

impl Failure {
    fn status(self) -> Status {
        match self {
            Failure::Unavailable => Status::unavailable("canvas is down (fake)"),
            Failure::OutcomeUnknown => with_reason(
                Code::FailedPrecondition,
                "WRITE_OUTCOME_UNKNOWN",
                "an earlier attempt with this key may have created the appointment (fake)",
            ),
            Failure::SlotUnavailable => with_reason(
                Code::FailedPrecondition,
                "SLOT_UNAVAILABLE",
                "the time is no longer free (fake)",
            ),
        }
    }
}

/// What the fake canvas holds and was sent.
#[derive(Debug, Default)]
pub(crate) struct CanvasState {
    /// Patient id → the state on their address (`None`: no address at all).
    pub(crate) patients: HashMap<String, Option<String>>,
    /// Every RPC received, by name, in order.
    pub(crate) calls: Vec<&'static str>,
    pub(crate) get_patient: Vec<cv::GetPatientRequest>,
    pub(crate) list_slots: Vec<cv::ListSlotsRequest>,
    pub(crate) creates: Vec<cv::CreateAppointmentRequest>,
    /// How the next CreateAppointment calls fail, in order, before they succeed again.
    pub(crate) create_failures: VecDeque<Failure>,
    /// The appointments made, by id.
    pub(crate) appointments: BTreeMap<String, cv::Appointment>,
    by_key: HashMap<String, String>,
    pub(crate) get_appointment: Vec<String>,
    pub(crate) updates: Vec<cv::UpdateAppointmentRequest>,
    pub(crate) cancels: Vec<cv::CancelAppointmentRequest>,
}

#[derive(Clone, Debug)]
pub(crate) struct Canvas(Arc<Mutex<CanvasState>>);

impl Canvas {
    pub(crate) fn new() -> Self {
        let patients = HashMap::from([
            (PATIENT_GA.to_owned(), Some("GA".to_owned())),
            (PATIENT_GA_2.to_owned(), Some("ga".to_owned())),
            (PATIENT_NO_STATE.to_owned(), None),
        ]);
        Self(Arc::new(Mutex::new(CanvasState {
            patients,
            ..Default::default()
        })))
    }

    pub(crate) fn routes(&self) -> Routes {
        Routes::new(CanvasServiceServer::new(self.clone()))
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, CanvasState> {
        lock(&self.0)
    }

    /// How many times `rpc` (e.g. "ListSlots") was called.
    pub(crate) fn count(&self, rpc: &str) -> usize {
        self.state().calls.iter().filter(|c| **c == rpc).count()
    }

    /// The next `times` CreateAppointment calls fail as `failure`.
    pub(crate) fn fail_creates(&self, failure: Failure, times: usize) {
        self.state().create_failures.extend(std::iter::repeat_n(failure, times));
    }

    /// The status the practitioner gave the appointment in Canvas (fulfilled, no-show...).
    pub(crate) fn set_status(&self, id: &str, status: cv::AppointmentStatus) {
        let mut s = self.state();
        let a = s.appointments.get_mut(id).expect("a canvas appointment");
        a.status = status as i32;
    }

    fn called(&self, rpc: &'static str) -> MutexGuard<'_, CanvasState> {
        let mut s = self.state();
        s.calls.push(rpc);
        s
    }
}

fn practitioner(
    id: &str,
    given: &str,
    family: &str,
    credentials: &str,
    npi: &str,
    schedulable: bool,
) -> cv::Practitioner {
    cv::Practitioner {
        id: id.into(),
        name: format!("{given} {family} {credentials}"),
        given_name: given.into(),
        family_name: family.into(),
        npi: npi.into(),
        email: format!("{}.{}@era-demo.test", given.to_lowercase(), family.to_lowercase()),
        active: true,
        schedulable,
    }
}

/// Canvas's practitioners: each with a schedule at location 1.
pub(crate) fn practitioners() -> Vec<cv::Practitioner> {
    vec![
        practitioner(NOLAN, "Ali", "Nolan", "FNP-C", NOLAN_NPI, true),
        practitioner(SINGH, "Neelima", "Singh", "MD", "1164633533", true),
        practitioner(LAPSED, "Pat", "Lapsed", "NP", "1000000004", true),
        practitioner(DESK, "Dana", "Desk", "RN", "1000000012", false),
    ]
}

/// The practitioners' page size: small, so scheduling must follow the page tokens.
const PAGE: usize = 2;

fn parse_date(field: &str, value: &str) -> Result<NaiveDate, Status> {
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .map_err(|_| Status::invalid_argument(format!("{field} must be a full date")))
}

fake_service! {
    impl CanvasService for Canvas {
        async fn get_patient(
            &self,
            request: Request<cv::GetPatientRequest>,
        ) -> Result<Response<cv::GetPatientResponse>, Status> {
            let req = request.into_inner();
            let mut s = self.called("GetPatient");
            s.get_patient.push(req.clone());
            let Some(state) = s.patients.get(&req.canvas_patient_id) else {
                return Err(Status::not_found("no such patient"));
            };
            let patient = cv::Patient {
                id: req.canvas_patient_id.clone(),
                given_name: "Ada".into(),
                family_name: "Example".into(),
                address: state.as_ref().map(|st| Address {
                    lines: vec!["1 Peachtree St".into()],
                    city: "Atlanta".into(),
                    state: st.clone(),
                    postal_code: "30303".into(),
                    country: "US".into(),
                }),
                active: true,
                ..Default::default()
            };
            Ok(Response::new(cv::GetPatientResponse {
                patient: Some(patient),
                ..Default::default()
            }))
        }

        async fn list_practitioners(
            &self,
            request: Request<cv::ListPractitionersRequest>,
        ) -> Result<Response<cv::ListPractitionersResponse>, Status> {
            let _s = self.called("ListPractitioners");
            let token = request.into_inner().page.map(|p| p.page_token).unwrap_or_default();
            let from: usize = if token.is_empty() {
                0
            } else {
                token.parse().map_err(|_| Status::invalid_argument("bad page token"))?
            };
            let all = practitioners();
            let to = (from + PAGE).min(all.len());
            let next = if to < all.len() { to.to_string() } else { String::new() };
            Ok(Response::new(cv::ListPractitionersResponse {
                practitioners: all[from..to].to_vec(),
                page: Some(PageResponse { next_page_token: next }),
            }))
        }

        async fn list_schedules(
            &self,
            request: Request<cv::ListSchedulesRequest>,
        ) -> Result<Response<cv::ListSchedulesResponse>, Status> {
            let _s = self.called("ListSchedules");
            let only = request.into_inner().practitioner_id;
            let schedules = practitioners()
                .into_iter()
                .filter(|p| only.is_empty() || p.id == only)
                .map(|p| cv::Schedule {
                    id: schedule_of(&p.id),
                    practitioner_id: p.id.clone(),
                    practitioner_name: p.name.clone(),
                    location_id: "1".into(),
                    comment: String::new(),
                })
                .collect();
            Ok(Response::new(cv::ListSchedulesResponse { schedules }))
        }

        async fn list_slots(
            &self,
            request: Request<cv::ListSlotsRequest>,
        ) -> Result<Response<cv::ListSlotsResponse>, Status> {
            let req = request.into_inner();
            self.called("ListSlots").list_slots.push(req.clone());
            let Some(p) = practitioners().into_iter().find(|p| schedule_of(&p.id) == req.schedule_id) else {
                return Err(Status::not_found("no such schedule"));
            };
            let start = parse_date("start_date", &req.start_date)?;
            let end = parse_date("end_date", &req.end_date)?;
            if end < start || (end - start).num_days() > 62 {
                return Err(Status::invalid_argument("end_date must be within 62 days after start_date"));
            }
            let minutes = Duration::minutes(if req.duration_minutes == 0 { 20 } else { i64::from(req.duration_minutes) });
            let mut slots = Vec::new();
            for day in start.iter_days().take_while(|d| *d <= end) {
                let mut at = day.and_hms_opt(OPEN_HOUR, 0, 0).unwrap().and_utc();
                let close = day.and_hms_opt(CLOSE_HOUR, 0, 0).unwrap().and_utc();
                while at + minutes <= close {
                    slots.push(cv::Slot {
                        schedule_id: req.schedule_id.clone(),
                        practitioner_id: p.id.clone(),
                        start_time: Some(timestamp(at)),
                        end_time: Some(timestamp(at + minutes)),
                    });
                    at += minutes;
                }
            }
            Ok(Response::new(cv::ListSlotsResponse { slots }))
        }

        async fn create_appointment(
            &self,
            request: Request<cv::CreateAppointmentRequest>,
        ) -> Result<Response<cv::CreateAppointmentResponse>, Status> {
            let req = request.into_inner();
            let mut s = self.called("CreateAppointment");
            s.creates.push(req.clone());
            if let Some(failure) = s.create_failures.pop_front() {
                return Err(failure.status());
            }
            // Canvas's idempotency: a repeated key answers the appointment made the first time.
            if let Some(id) = s.by_key.get(&req.idempotency_key).filter(|_| !req.idempotency_key.is_empty()) {
                return Ok(Response::new(cv::CreateAppointmentResponse {
                    appointment: s.appointments.get(id).cloned(),
                    existing: true,
                }));
            }
            let id = format!("canvas-appt-{}", s.appointments.len() + 1);
            let made = cv::Appointment {
                id: id.clone(),
                canvas_patient_id: req.canvas_patient_id,
                practitioner_id: req.practitioner_id,
                location_id: req.location_id,
                status: cv::AppointmentStatus::Booked as i32,
                start_time: req.start_time,
                end_time: req.end_time,
                meeting_url: req.meeting_url,
                appointment_type: req.appointment_type,
                reason: req.reason,
                description: req.description,
                note_id: format!("note-{id}"),
            };
            s.appointments.insert(id.clone(), made.clone());
            if !req.idempotency_key.is_empty() {
                s.by_key.insert(req.idempotency_key, id);
            }
            Ok(Response::new(cv::CreateAppointmentResponse {
                appointment: Some(made),
                existing: false,
            }))
        }

        async fn get_appointment(
            &self,
            request: Request<cv::GetAppointmentRequest>,
        ) -> Result<Response<cv::GetAppointmentResponse>, Status> {
            let id = request.into_inner().id;
            let mut s = self.called("GetAppointment");
            s.get_appointment.push(id.clone());
            match s.appointments.get(&id) {
                Some(a) => Ok(Response::new(cv::GetAppointmentResponse {
                    appointment: Some(a.clone()),
                })),
                None => Err(Status::not_found("no such appointment")),
            }
        }

        async fn update_appointment(
            &self,
            request: Request<cv::UpdateAppointmentRequest>,
        ) -> Result<Response<cv::UpdateAppointmentResponse>, Status> {
            let req = request.into_inner();
            let mut s = self.called("UpdateAppointment");
            s.updates.push(req.clone());
            let Some(a) = s.appointments.get_mut(&req.id) else {
                return Err(Status::not_found("no such appointment"));
            };
            if a.status == cv::AppointmentStatus::Cancelled as i32 {
                return Err(with_reason(Code::FailedPrecondition, "APPOINTMENT_CANCELLED", "cancelled"));
            }
            if req.start_time.is_some() {
                a.start_time = req.start_time;
            }
            if req.end_time.is_some() {
                a.end_time = req.end_time;
            }
            if !req.meeting_url.is_empty() {
                a.meeting_url = req.meeting_url;
            }
            if req.status != 0 {
                a.status = req.status;
            }
            Ok(Response::new(cv::UpdateAppointmentResponse {
                appointment: Some(a.clone()),
            }))
        }

        async fn cancel_appointment(
            &self,
            request: Request<cv::CancelAppointmentRequest>,
        ) -> Result<Response<cv::CancelAppointmentResponse>, Status> {
            let req = request.into_inner();
            let mut s = self.called("CancelAppointment");
            s.cancels.push(req.clone());
            let Some(a) = s.appointments.get_mut(&req.id) else {
                return Err(Status::not_found("no such appointment"));
            };
            a.status = cv::AppointmentStatus::Cancelled as i32;
            Ok(Response::new(cv::CancelAppointmentResponse {
                appointment: Some(a.clone()),
            }))
        }
    }
    unimplemented {
        create_patient(cv::CreatePatientRequest) -> cv::CreatePatientResponse;
        search_patients(cv::SearchPatientsRequest) -> cv::SearchPatientsResponse;
        submit_intake(cv::SubmitIntakeRequest) -> cv::SubmitIntakeResponse;
        list_identity_reviews(cv::ListIdentityReviewsRequest) -> cv::ListIdentityReviewsResponse;
        resolve_identity_review(cv::ResolveIdentityReviewRequest) -> cv::ResolveIdentityReviewResponse;
        store_intake_record(cv::StoreIntakeRecordRequest) -> cv::StoreIntakeRecordResponse;
        get_intake_record(cv::GetIntakeRecordRequest) -> cv::GetIntakeRecordResponse;
        list_intake_records(cv::ListIntakeRecordsRequest) -> cv::ListIntakeRecordsResponse;
        list_rx_review_tasks(cv::ListRxReviewTasksRequest) -> cv::ListRxReviewTasksResponse;
        get_rx_review_task(cv::GetRxReviewTaskRequest) -> cv::GetRxReviewTaskResponse;
        update_task_status(cv::UpdateTaskStatusRequest) -> cv::UpdateTaskStatusResponse;
        add_task_note(cv::AddTaskNoteRequest) -> cv::AddTaskNoteResponse;
        create_hp_note(cv::CreateHpNoteRequest) -> cv::CreateHpNoteResponse;
        list_prescriptions(cv::ListPrescriptionsRequest) -> cv::ListPrescriptionsResponse;
        get_prescription(cv::GetPrescriptionRequest) -> cv::GetPrescriptionResponse;
        list_communications(cv::ListCommunicationsRequest) -> cv::ListCommunicationsResponse;
        create_communication(cv::CreateCommunicationRequest) -> cv::CreateCommunicationResponse;
    }
}

// ---- pharmacy-routing ----

#[derive(Clone, Debug, Default)]
pub(crate) struct Routing(Arc<Mutex<usize>>);

impl Routing {
    pub(crate) fn routes(&self) -> Routes {
        Routes::new(PharmacyRoutingServiceServer::new(self.clone()))
    }

    /// How many times ListPrescribers was called.
    pub(crate) fn list_prescribers_calls(&self) -> usize {
        *lock(&self.0)
    }
}

fn prescriber(id: &str, name: &str, npi: &str, licences: &[(&str, &str)]) -> rv::Prescriber {
    rv::Prescriber {
        id: id.into(),
        name: name.into(),
        npi: npi.into(),
        active: true,
        licences: licences
            .iter()
            .map(|(state, expires_on)| rv::PrescriberLicence {
                state: (*state).into(),
                licence_number: format!("{state}-{npi}"),
                expires_on: (*expires_on).into(),
            })
            .collect(),
    }
}

fake_service! {
    impl PharmacyRoutingService for Routing {
        async fn list_prescribers(
            &self,
            _request: Request<rv::ListPrescribersRequest>,
        ) -> Result<Response<rv::ListPrescribersResponse>, Status> {
            *lock(&self.0) += 1;
            Ok(Response::new(rv::ListPrescribersResponse {
                prescribers: vec![
                    prescriber("ali-nolan", NOLAN_NAME, NOLAN_NPI, &[("GA", "2099-12-31"), ("FL", "2099-12-31")]),
                    prescriber(
                        "neelima-singh",
                        "Neelima Singh MD",
                        "1164633533",
                        &[("CA", "2099-12-31"), ("NY", "2099-12-31")],
                    ),
                    prescriber("pat-lapsed", "Pat Lapsed NP", "1000000004", &[("GA", "2020-01-01")]),
                    prescriber("dana-desk", "Dana Desk RN", "1000000012", &[("GA", "2099-12-31")]),
                ],
            }))
        }
    }
    unimplemented {
        decide_route(rv::DecideRouteRequest) -> rv::DecideRouteResponse;
        get_routing_matrix(rv::GetRoutingMatrixRequest) -> rv::GetRoutingMatrixResponse;
        get_state_routing(rv::GetStateRoutingRequest) -> rv::GetStateRoutingResponse;
        update_state_routing(rv::UpdateStateRoutingRequest) -> rv::UpdateStateRoutingResponse;
        list_routing_audit(rv::ListRoutingAuditRequest) -> rv::ListRoutingAuditResponse;
        list_pharmacies(rv::ListPharmaciesRequest) -> rv::ListPharmaciesResponse;
        list_medications(rv::ListMedicationsRequest) -> rv::ListMedicationsResponse;
        get_medication(rv::GetMedicationRequest) -> rv::GetMedicationResponse;
        approve_task(rv::ApproveTaskRequest) -> rv::ApproveTaskResponse;
        deny_task(rv::DenyTaskRequest) -> rv::DenyTaskResponse;
        get_orchestration_run(rv::GetOrchestrationRunRequest) -> rv::GetOrchestrationRunResponse;
        list_orchestration_runs(rv::ListOrchestrationRunsRequest) -> rv::ListOrchestrationRunsResponse;
        get_pharmacy_order(rv::GetPharmacyOrderRequest) -> rv::GetPharmacyOrderResponse;
        list_pharmacy_orders(rv::ListPharmacyOrdersRequest) -> rv::ListPharmacyOrdersResponse;
        list_sync_logs(rv::ListSyncLogsRequest) -> rv::ListSyncLogsResponse;
        list_shipments(rv::ListShipmentsRequest) -> rv::ListShipmentsResponse;
        list_refills(rv::ListRefillsRequest) -> rv::ListRefillsResponse;
        refill_action(rv::RefillActionRequest) -> rv::RefillActionResponse;
        handle_pharmacy_callback(rv::HandlePharmacyCallbackRequest) -> rv::HandlePharmacyCallbackResponse;
        handle_prescription_event(rv::HandlePrescriptionEventRequest) -> rv::HandlePrescriptionEventResponse;
        list_refund_reviews(rv::ListRefundReviewsRequest) -> rv::ListRefundReviewsResponse;
    }
}

// ---- notifications ----

/// What the fake notifications service was sent.
#[derive(Debug, Default)]
pub(crate) struct NotificationsState {
    pub(crate) sent: Vec<nv::SendNotificationRequest>,
    pub(crate) cancelled: Vec<nv::CancelNotificationRequest>,
    /// Dedupe key → notification id.
    by_key: HashMap<String, String>,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Notifications(Arc<Mutex<NotificationsState>>);

impl Notifications {
    pub(crate) fn routes(&self) -> Routes {
        Routes::new(NotificationsServiceServer::new(self.clone()))
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, NotificationsState> {
        lock(&self.0)
    }

    /// The notifications sent, as `(type, request)`.
    pub(crate) fn sent(&self) -> Vec<(nv::NotificationType, nv::SendNotificationRequest)> {
        self.state()
            .sent
            .iter()
            .map(|r| (nv::NotificationType::try_from(r.notification_type).unwrap(), r.clone()))
            .collect()
    }
}

fake_service! {
    impl NotificationsService for Notifications {
        async fn send_notification(
            &self,
            request: Request<nv::SendNotificationRequest>,
        ) -> Result<Response<nv::SendNotificationResponse>, Status> {
            let req = request.into_inner();
            let mut s = self.state();
            s.sent.push(req.clone());
            let fresh = format!("notification-{}", s.sent.len());
            let (id, existing) = match s.by_key.get(&req.dedupe_key) {
                Some(id) if !req.dedupe_key.is_empty() => (id.clone(), true),
                _ => {
                    s.by_key.insert(req.dedupe_key.clone(), fresh.clone());
                    (fresh, false)
                }
            };
            Ok(Response::new(nv::SendNotificationResponse {
                notification_id: id,
                messages: Vec::new(),
                existing,
            }))
        }

        async fn cancel_notification(
            &self,
            request: Request<nv::CancelNotificationRequest>,
        ) -> Result<Response<nv::CancelNotificationResponse>, Status> {
            let req = request.into_inner();
            let mut s = self.state();
            s.cancelled.push(req.clone());
            if !s.by_key.contains_key(&req.dedupe_key) {
                return Err(Status::not_found("no such notification"));
            }
            Ok(Response::new(nv::CancelNotificationResponse { messages: Vec::new() }))
        }
    }
    unimplemented {
        get_outbox_message(nv::GetOutboxMessageRequest) -> nv::GetOutboxMessageResponse;
        list_outbox_messages(nv::ListOutboxMessagesRequest) -> nv::ListOutboxMessagesResponse;
        replay_dead_letter(nv::ReplayDeadLetterRequest) -> nv::ReplayDeadLetterResponse;
        list_patient_notifications(nv::ListPatientNotificationsRequest) -> nv::ListPatientNotificationsResponse;
        mark_notification_read(nv::MarkNotificationReadRequest) -> nv::MarkNotificationReadResponse;
        list_conversations(nv::ListConversationsRequest) -> nv::ListConversationsResponse;
        get_conversation(nv::GetConversationRequest) -> nv::GetConversationResponse;
        list_conversation_messages(nv::ListConversationMessagesRequest) -> nv::ListConversationMessagesResponse;
        reply_to_conversation(nv::ReplyToConversationRequest) -> nv::ReplyToConversationResponse;
        send_admin_otp(nv::SendAdminOtpRequest) -> nv::SendAdminOtpResponse;
        verify_admin_otp(nv::VerifyAdminOtpRequest) -> nv::VerifyAdminOtpResponse;
        send_magic_link(nv::SendMagicLinkRequest) -> nv::SendMagicLinkResponse;
        consume_magic_link(nv::ConsumeMagicLinkRequest) -> nv::ConsumeMagicLinkResponse;
        check_magic_link(nv::CheckMagicLinkRequest) -> nv::CheckMagicLinkResponse;
        send_patient_otp(nv::SendPatientOtpRequest) -> nv::SendPatientOtpResponse;
        verify_patient_otp(nv::VerifyPatientOtpRequest) -> nv::VerifyPatientOtpResponse;
    }
}
