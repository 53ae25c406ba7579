//! The CanvasService RPCs. Every one answers UNIMPLEMENTED, naming the issue that delivers it,
//! until that issue replaces it with the real implementation.

use era_proto::canvas::v1::{self as pb, canvas_service_server::CanvasService};
use tonic::{Request, Response, Status};

const PENDING: &str = "arrives with issue 3 (canvas service)";

#[derive(Debug, Default)]
pub(crate) struct Service;

fn pending(rpc: &str) -> Status {
    Status::unimplemented(format!("{rpc} {PENDING}"))
}

#[tonic::async_trait]
impl CanvasService for Service {
    async fn create_patient(
        &self,
        _: Request<pb::CreatePatientRequest>,
    ) -> Result<Response<pb::CreatePatientResponse>, Status> {
        Err(pending("CreatePatient"))
    }

    async fn get_patient(&self, _: Request<pb::GetPatientRequest>) -> Result<Response<pb::GetPatientResponse>, Status> {
        Err(pending("GetPatient"))
    }

    async fn search_patients(
        &self,
        _: Request<pb::SearchPatientsRequest>,
    ) -> Result<Response<pb::SearchPatientsResponse>, Status> {
        Err(pending("SearchPatients"))
    }

    async fn submit_intake(
        &self,
        _: Request<pb::SubmitIntakeRequest>,
    ) -> Result<Response<pb::SubmitIntakeResponse>, Status> {
        Err(pending("SubmitIntake"))
    }

    async fn store_intake_record(
        &self,
        _: Request<pb::StoreIntakeRecordRequest>,
    ) -> Result<Response<pb::StoreIntakeRecordResponse>, Status> {
        Err(pending("StoreIntakeRecord"))
    }

    async fn get_intake_record(
        &self,
        _: Request<pb::GetIntakeRecordRequest>,
    ) -> Result<Response<pb::GetIntakeRecordResponse>, Status> {
        Err(pending("GetIntakeRecord"))
    }

    async fn list_intake_records(
        &self,
        _: Request<pb::ListIntakeRecordsRequest>,
    ) -> Result<Response<pb::ListIntakeRecordsResponse>, Status> {
        Err(pending("ListIntakeRecords"))
    }

    async fn list_rx_review_tasks(
        &self,
        _: Request<pb::ListRxReviewTasksRequest>,
    ) -> Result<Response<pb::ListRxReviewTasksResponse>, Status> {
        Err(pending("ListRxReviewTasks"))
    }

    async fn get_rx_review_task(
        &self,
        _: Request<pb::GetRxReviewTaskRequest>,
    ) -> Result<Response<pb::GetRxReviewTaskResponse>, Status> {
        Err(pending("GetRxReviewTask"))
    }

    async fn update_task_status(
        &self,
        _: Request<pb::UpdateTaskStatusRequest>,
    ) -> Result<Response<pb::UpdateTaskStatusResponse>, Status> {
        Err(pending("UpdateTaskStatus"))
    }

    async fn add_task_note(
        &self,
        _: Request<pb::AddTaskNoteRequest>,
    ) -> Result<Response<pb::AddTaskNoteResponse>, Status> {
        Err(pending("AddTaskNote"))
    }

    async fn create_hp_note(
        &self,
        _: Request<pb::CreateHpNoteRequest>,
    ) -> Result<Response<pb::CreateHpNoteResponse>, Status> {
        Err(pending("CreateHpNote"))
    }

    async fn list_practitioners(
        &self,
        _: Request<pb::ListPractitionersRequest>,
    ) -> Result<Response<pb::ListPractitionersResponse>, Status> {
        Err(pending("ListPractitioners"))
    }

    async fn list_prescriptions(
        &self,
        _: Request<pb::ListPrescriptionsRequest>,
    ) -> Result<Response<pb::ListPrescriptionsResponse>, Status> {
        Err(pending("ListPrescriptions"))
    }

    async fn list_communications(
        &self,
        _: Request<pb::ListCommunicationsRequest>,
    ) -> Result<Response<pb::ListCommunicationsResponse>, Status> {
        Err(pending("ListCommunications"))
    }

    async fn create_communication(
        &self,
        _: Request<pb::CreateCommunicationRequest>,
    ) -> Result<Response<pb::CreateCommunicationResponse>, Status> {
        Err(pending("CreateCommunication"))
    }

    async fn list_schedules(
        &self,
        _: Request<pb::ListSchedulesRequest>,
    ) -> Result<Response<pb::ListSchedulesResponse>, Status> {
        Err(pending("ListSchedules"))
    }

    async fn list_slots(&self, _: Request<pb::ListSlotsRequest>) -> Result<Response<pb::ListSlotsResponse>, Status> {
        Err(pending("ListSlots"))
    }

    async fn create_appointment(
        &self,
        _: Request<pb::CreateAppointmentRequest>,
    ) -> Result<Response<pb::CreateAppointmentResponse>, Status> {
        Err(pending("CreateAppointment"))
    }

    async fn get_appointment(
        &self,
        _: Request<pb::GetAppointmentRequest>,
    ) -> Result<Response<pb::GetAppointmentResponse>, Status> {
        Err(pending("GetAppointment"))
    }

    async fn update_appointment(
        &self,
        _: Request<pb::UpdateAppointmentRequest>,
    ) -> Result<Response<pb::UpdateAppointmentResponse>, Status> {
        Err(pending("UpdateAppointment"))
    }

    async fn cancel_appointment(
        &self,
        _: Request<pb::CancelAppointmentRequest>,
    ) -> Result<Response<pb::CancelAppointmentResponse>, Status> {
        Err(pending("CancelAppointment"))
    }
}
