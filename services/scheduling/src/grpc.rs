//! The SchedulingService RPCs. Every one answers UNIMPLEMENTED, naming the issue that delivers it,
//! until that issue replaces it with the real implementation.

use era_proto::scheduling::v1::{self as pb, scheduling_service_server::SchedulingService};
use tonic::{Request, Response, Status};

const PENDING: &str = "is not built yet: scheduling (Canvas Schedule/Slot, Zoom) awaits its issue";

#[derive(Debug, Default)]
pub(crate) struct Service;

fn pending(rpc: &str) -> Status {
    Status::unimplemented(format!("{rpc} {PENDING}"))
}

#[tonic::async_trait]
impl SchedulingService for Service {
    async fn get_availability(
        &self,
        _: Request<pb::GetAvailabilityRequest>,
    ) -> Result<Response<pb::GetAvailabilityResponse>, Status> {
        Err(pending("GetAvailability"))
    }

    async fn book_appointment(
        &self,
        _: Request<pb::BookAppointmentRequest>,
    ) -> Result<Response<pb::BookAppointmentResponse>, Status> {
        Err(pending("BookAppointment"))
    }

    async fn cancel_appointment(
        &self,
        _: Request<pb::CancelAppointmentRequest>,
    ) -> Result<Response<pb::CancelAppointmentResponse>, Status> {
        Err(pending("CancelAppointment"))
    }

    async fn get_appointment(
        &self,
        _: Request<pb::GetAppointmentRequest>,
    ) -> Result<Response<pb::GetAppointmentResponse>, Status> {
        Err(pending("GetAppointment"))
    }

    async fn list_appointments(
        &self,
        _: Request<pb::ListAppointmentsRequest>,
    ) -> Result<Response<pb::ListAppointmentsResponse>, Status> {
        Err(pending("ListAppointments"))
    }
}
