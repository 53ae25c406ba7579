//! The CanvasService RPCs: who may call what, then the work in the modules named for it.
//!
//! Clinic staff (admins, services) may call everything. A patient caller may read their own
//! patient, intake records, prescriptions, messages and appointments, and write to their own
//! practitioner; asking about another patient answers NOT_FOUND, so existence does not leak.

use era_kit::auth::{Caller, Role};
use era_proto::canvas::v1::{self as pb, canvas_service_server::CanvasService};
use tonic::{Request, Response, Status};

use crate::{
    app::{page_size, Shared},
    chart,
    error::Error,
    patients, queue,
    store::RecordFilter,
};

#[derive(Debug, Clone)]
pub(crate) struct Service {
    pub(crate) app: Shared,
}

type Reply<T> = Result<Response<T>, Status>;

fn caller<T>(req: &Request<T>) -> Result<Caller, Status> {
    Caller::of(req).cloned()
}

fn staff<T>(req: &Request<T>) -> Result<(), Status> {
    caller(req)?.require_staff()
}

/// An admin (a person, or ADMIN_SECRET): identity decisions are not a service's to make.
fn admin<T>(req: &Request<T>) -> Result<Caller, Status> {
    let caller = caller(req)?;
    if caller.role == Role::Admin {
        Ok(caller)
    } else {
        Err(Error::Forbidden("identity reviews are for admins").into())
    }
}

/// Staff, or the patient themselves; another patient gets NOT_FOUND.
fn staff_or_own<T>(req: &Request<T>, patient_id: &str) -> Result<Caller, Status> {
    let caller = caller(req)?;
    match caller.role {
        Role::Admin | Role::Service => Ok(caller),
        Role::Patient if caller.patient_id.as_deref() == Some(patient_id) && !patient_id.is_empty() => Ok(caller),
        Role::Patient => Err(Error::Hidden.into()),
    }
}

/// An optional time filter; present but invalid is the caller's error, not "no filter".
fn time_filter(
    field: &str,
    t: Option<&prost_types::Timestamp>,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, Status> {
    match t {
        None => Ok(None),
        Some(t) => crate::convert::from_timestamp(t)
            .map(Some)
            .ok_or_else(|| Error::field(field, "is not a valid time").into()),
    }
}

/// For a patient caller every miss reads the same, whether the thing is absent or someone else's.
fn hide_for_patient(who: &Caller, status: Status) -> Status {
    if who.role == Role::Patient && status.code() == tonic::Code::NotFound {
        Error::Hidden.into()
    } else {
        status
    }
}

fn ok<T>(result: crate::error::Result<T>) -> Reply<T> {
    result.map(Response::new).map_err(Status::from)
}

impl Service {
    /// Records who read which patients' data before the answer leaves; a read that cannot be
    /// recorded is not answered.
    async fn audit(&self, who: &Caller, rpc: &str, reads: Vec<(String, Option<uuid::Uuid>)>) -> Result<(), Status> {
        self.app.store.audit_read(who, rpc, &reads).await.map_err(Status::from)
    }
}

fn record_read(patient: &str, record_id: &str) -> (String, Option<uuid::Uuid>) {
    (patient.to_owned(), uuid::Uuid::parse_str(record_id).ok())
}

#[tonic::async_trait]
impl CanvasService for Service {
    async fn create_patient(&self, req: Request<pb::CreatePatientRequest>) -> Reply<pb::CreatePatientResponse> {
        staff(&req)?;
        let resp = patients::create_patient(&self.app, req.get_ref())
            .await
            .map_err(Status::from)?;
        if let (true, Some(p)) = (resp.existing, &resp.patient) {
            self.audit(&caller(&req)?, "CreatePatient", vec![(p.id.clone(), None)])
                .await?;
        }
        Ok(Response::new(resp))
    }

    async fn get_patient(&self, req: Request<pb::GetPatientRequest>) -> Reply<pb::GetPatientResponse> {
        let who = staff_or_own(&req, &req.get_ref().canvas_patient_id)?;
        let resp = patients::get_patient(&self.app, req.get_ref())
            .await
            .map_err(Status::from)?;
        self.audit(
            &who,
            "GetPatient",
            vec![(req.get_ref().canvas_patient_id.clone(), None)],
        )
        .await?;
        Ok(Response::new(resp))
    }

    async fn search_patients(&self, req: Request<pb::SearchPatientsRequest>) -> Reply<pb::SearchPatientsResponse> {
        staff(&req)?;
        let resp = patients::search(&self.app, req.get_ref()).await.map_err(Status::from)?;
        let reads = resp.patients.iter().map(|p| (p.id.clone(), None)).collect();
        self.audit(&caller(&req)?, "SearchPatients", reads).await?;
        Ok(Response::new(resp))
    }

    async fn submit_intake(&self, req: Request<pb::SubmitIntakeRequest>) -> Reply<pb::SubmitIntakeResponse> {
        // The public intake route reaches here as the edge's service identity.
        staff(&req)?;
        ok(patients::submit_intake(&self.app, req.into_inner()).await)
    }

    async fn list_identity_reviews(
        &self,
        req: Request<pb::ListIdentityReviewsRequest>,
    ) -> Reply<pb::ListIdentityReviewsResponse> {
        let who = admin(&req)?;
        let resp = patients::list_identity_reviews(&self.app, req.get_ref())
            .await
            .map_err(Status::from)?;
        // The held intakes' demographics are PHI: every review shown is a read.
        let reads = resp
            .reviews
            .iter()
            .map(|r| (format!("review:{}", r.id), None))
            .collect();
        self.audit(&who, "ListIdentityReviews", reads).await?;
        Ok(Response::new(resp))
    }

    async fn resolve_identity_review(
        &self,
        req: Request<pb::ResolveIdentityReviewRequest>,
    ) -> Reply<pb::ResolveIdentityReviewResponse> {
        let who = admin(&req)?;
        ok(patients::resolve_identity_review(&self.app, req.get_ref(), &who.subject).await)
    }

    async fn store_intake_record(
        &self,
        req: Request<pb::StoreIntakeRecordRequest>,
    ) -> Reply<pb::StoreIntakeRecordResponse> {
        staff(&req)?;
        let resp = patients::store_record(&self.app, req.get_ref())
            .await
            .map_err(Status::from)?;
        if let (true, Some(r)) = (resp.existing, &resp.record) {
            // A repeat hands back the stored record: that is a read.
            self.audit(
                &caller(&req)?,
                "StoreIntakeRecord",
                vec![record_read(&r.canvas_patient_id, &r.id)],
            )
            .await?;
        }
        Ok(Response::new(resp))
    }

    async fn get_intake_record(&self, req: Request<pb::GetIntakeRecordRequest>) -> Reply<pb::GetIntakeRecordResponse> {
        let who = caller(&req)?;
        let id = patients::parse_record_id(&req.get_ref().id).map_err(Status::from)?;
        let record = self
            .app
            .store
            .get_record(id)
            .await
            .map_err(Status::from)?
            .ok_or_else(|| hide_for_patient(&who, Error::not_found("intake record", id.to_string()).into()))?;
        if who.role == Role::Patient && who.patient_id.as_deref() != Some(record.canvas_patient_id.as_str()) {
            return Err(Error::Hidden.into());
        }
        self.audit(
            &who,
            "GetIntakeRecord",
            vec![record_read(&record.canvas_patient_id, &record.id)],
        )
        .await?;
        Ok(Response::new(pb::GetIntakeRecordResponse { record: Some(record) }))
    }

    async fn list_intake_records(
        &self,
        req: Request<pb::ListIntakeRecordsRequest>,
    ) -> Reply<pb::ListIntakeRecordsResponse> {
        let who = caller(&req)?;
        let r = req.get_ref();
        if who.role == Role::Patient {
            // A patient lists their own records only, and must say so.
            staff_or_own(&req, &r.canvas_patient_id)?;
        }
        if r.canvas_patient_id.is_empty()
            && r.email.trim().is_empty()
            && r.submitted_from.is_none()
            && r.submitted_to.is_none()
        {
            return Err(Error::field("canvas_patient_id", "give a patient id, an email or a date range").into());
        }
        let page = r.page.clone().unwrap_or_default();
        let limit = page_size(page.page_size, 20);
        let filter = RecordFilter {
            canvas_patient_id: (!r.canvas_patient_id.is_empty()).then(|| r.canvas_patient_id.clone()),
            email: (!r.email.trim().is_empty()).then(|| r.email.clone()),
            from: time_filter("submitted_from", r.submitted_from.as_ref())?,
            to: time_filter("submitted_to", r.submitted_to.as_ref())?,
            before: patients::record_cursor(&page.page_token).map_err(Status::from)?,
            limit: i64::from(limit),
        };
        let page = self.app.store.list_records(&filter).await.map_err(Status::from)?;
        let records = page.records;
        let next = page.next.map(era_kit::time::keyset_token).unwrap_or_default();
        let reads = records
            .iter()
            .map(|r| record_read(&r.canvas_patient_id, &r.id))
            .collect();
        self.audit(&who, "ListIntakeRecords", reads).await?;
        Ok(Response::new(pb::ListIntakeRecordsResponse {
            records,
            page: Some(era_proto::common::v1::PageResponse { next_page_token: next }),
        }))
    }

    async fn list_rx_review_tasks(
        &self,
        req: Request<pb::ListRxReviewTasksRequest>,
    ) -> Reply<pb::ListRxReviewTasksResponse> {
        staff(&req)?;
        let resp = queue::list_tasks(&self.app, req.get_ref())
            .await
            .map_err(Status::from)?;
        let reads = resp
            .tasks
            .iter()
            .filter(|t| !t.canvas_patient_id.is_empty())
            .map(|t| {
                let record = t
                    .intake_summary
                    .as_ref()
                    .map(|s| s.record_id.as_str())
                    .unwrap_or_default();
                record_read(&t.canvas_patient_id, record)
            })
            .collect();
        self.audit(&caller(&req)?, "ListRxReviewTasks", reads).await?;
        Ok(Response::new(resp))
    }

    async fn get_rx_review_task(&self, req: Request<pb::GetRxReviewTaskRequest>) -> Reply<pb::GetRxReviewTaskResponse> {
        staff(&req)?;
        let resp = queue::get_task(&self.app, &req.get_ref().task_id)
            .await
            .map_err(Status::from)?;
        let patient = resp
            .task
            .as_ref()
            .map(|t| t.canvas_patient_id.as_str())
            .unwrap_or_default();
        let record = resp.intake_record.as_ref().map(|r| r.id.as_str()).unwrap_or_default();
        self.audit(&caller(&req)?, "GetRxReviewTask", vec![record_read(patient, record)])
            .await?;
        Ok(Response::new(resp))
    }

    async fn update_task_status(
        &self,
        req: Request<pb::UpdateTaskStatusRequest>,
    ) -> Reply<pb::UpdateTaskStatusResponse> {
        staff(&req)?;
        ok(queue::update_status(&self.app, req.get_ref()).await)
    }

    async fn add_task_note(&self, req: Request<pb::AddTaskNoteRequest>) -> Reply<pb::AddTaskNoteResponse> {
        staff(&req)?;
        ok(queue::add_note(&self.app, req.get_ref()).await)
    }

    async fn create_hp_note(&self, req: Request<pb::CreateHpNoteRequest>) -> Reply<pb::CreateHpNoteResponse> {
        staff(&req)?;
        ok(queue::create_hp_note(&self.app, req.get_ref()).await)
    }

    async fn list_practitioners(
        &self,
        req: Request<pb::ListPractitionersRequest>,
    ) -> Reply<pb::ListPractitionersResponse> {
        staff(&req)?;
        ok(queue::list_practitioners(&self.app, req.get_ref()).await)
    }

    async fn list_prescriptions(
        &self,
        req: Request<pb::ListPrescriptionsRequest>,
    ) -> Reply<pb::ListPrescriptionsResponse> {
        let who = staff_or_own(&req, &req.get_ref().canvas_patient_id)?;
        let resp = patients::list_prescriptions(&self.app, req.get_ref())
            .await
            .map_err(Status::from)?;
        self.audit(
            &who,
            "ListPrescriptions",
            vec![(req.get_ref().canvas_patient_id.clone(), None)],
        )
        .await?;
        Ok(Response::new(resp))
    }

    async fn get_prescription(&self, req: Request<pb::GetPrescriptionRequest>) -> Reply<pb::GetPrescriptionResponse> {
        staff(&req)?;
        let resp = patients::get_prescription(&self.app, req.get_ref())
            .await
            .map_err(Status::from)?;
        let patient = resp
            .prescription
            .as_ref()
            .map(|p| p.canvas_patient_id.clone())
            .unwrap_or_default();
        self.audit(&caller(&req)?, "GetPrescription", vec![(patient, None)])
            .await?;
        Ok(Response::new(resp))
    }

    async fn list_communications(
        &self,
        req: Request<pb::ListCommunicationsRequest>,
    ) -> Reply<pb::ListCommunicationsResponse> {
        let who = staff_or_own(&req, &req.get_ref().canvas_patient_id)?;
        let resp = chart::list_communications(&self.app, req.get_ref())
            .await
            .map_err(Status::from)?;
        self.audit(
            &who,
            "ListCommunications",
            vec![(req.get_ref().canvas_patient_id.clone(), None)],
        )
        .await?;
        Ok(Response::new(resp))
    }

    async fn create_communication(
        &self,
        req: Request<pb::CreateCommunicationRequest>,
    ) -> Reply<pb::CreateCommunicationResponse> {
        let who = staff_or_own(&req, &req.get_ref().canvas_patient_id)?;
        if who.role == Role::Patient
            && req.get_ref().direction != pb::CommunicationDirection::PatientToPractitioner as i32
        {
            return Err(Status::permission_denied(
                "a patient may only write to their practitioner",
            ));
        }
        ok(chart::create_communication(&self.app, &who, req.get_ref()).await)
    }

    async fn list_schedules(&self, req: Request<pb::ListSchedulesRequest>) -> Reply<pb::ListSchedulesResponse> {
        staff(&req)?;
        ok(chart::list_schedules(&self.app, req.get_ref()).await)
    }

    async fn list_slots(&self, req: Request<pb::ListSlotsRequest>) -> Reply<pb::ListSlotsResponse> {
        staff(&req)?;
        ok(chart::list_slots(&self.app, req.get_ref()).await)
    }

    async fn create_appointment(
        &self,
        req: Request<pb::CreateAppointmentRequest>,
    ) -> Reply<pb::CreateAppointmentResponse> {
        staff(&req)?;
        ok(chart::create_appointment(&self.app, req.get_ref()).await)
    }

    async fn get_appointment(&self, req: Request<pb::GetAppointmentRequest>) -> Reply<pb::GetAppointmentResponse> {
        let who = caller(&req)?;
        let appointment = chart::get_appointment(&self.app, &req.get_ref().id)
            .await
            .map_err(|e| hide_for_patient(&who, e.into()))?;
        if who.role == Role::Patient
            && (appointment.canvas_patient_id.is_empty()
                || who.patient_id.as_deref() != Some(appointment.canvas_patient_id.as_str()))
        {
            return Err(Error::Hidden.into());
        }
        self.audit(
            &who,
            "GetAppointment",
            vec![(appointment.canvas_patient_id.clone(), None)],
        )
        .await?;
        Ok(Response::new(pb::GetAppointmentResponse {
            appointment: Some(appointment),
        }))
    }

    async fn update_appointment(
        &self,
        req: Request<pb::UpdateAppointmentRequest>,
    ) -> Reply<pb::UpdateAppointmentResponse> {
        staff(&req)?;
        let appointment = chart::update_appointment(&self.app, req.get_ref())
            .await
            .map_err(Status::from)?;
        Ok(Response::new(pb::UpdateAppointmentResponse {
            appointment: Some(appointment),
        }))
    }

    async fn cancel_appointment(
        &self,
        req: Request<pb::CancelAppointmentRequest>,
    ) -> Reply<pb::CancelAppointmentResponse> {
        staff(&req)?;
        let appointment = chart::cancel_appointment(&self.app, req.get_ref())
            .await
            .map_err(Status::from)?;
        Ok(Response::new(pb::CancelAppointmentResponse {
            appointment: Some(appointment),
        }))
    }
}
