//! The SchedulingService RPCs: who may call what, and the conversion to the contract's messages.

use era_kit::{
    auth::{Caller, Role},
    error::FieldViolation,
    time::{next_page, page_cursor, page_size, timestamp},
};
use era_proto::{
    common::v1::Actor,
    scheduling::v1::{self as pb, scheduling_service_server::SchedulingService},
};
use tonic::{Request, Response, Status};

use crate::{
    app::Shared,
    availability, booking,
    error::Error,
    store::{Appointment, Filter},
};

pub(crate) struct Service(pub Shared);

type Reply<T> = Result<Response<T>, Status>;

/// The contract's view of a row. The join link and passcode go to the patient and staff who may
/// see the appointment; they never reach a log.
pub(crate) fn to_pb(a: &Appointment) -> pb::Appointment {
    let status = match a.status.as_str() {
        "pending" => pb::AppointmentStatus::Pending,
        "booked" => pb::AppointmentStatus::Booked,
        "cancelled" => pb::AppointmentStatus::Cancelled,
        "completed" => pb::AppointmentStatus::Completed,
        "no_show" => pb::AppointmentStatus::NoShow,
        "failed" => pb::AppointmentStatus::Failed,
        _ => pb::AppointmentStatus::Unspecified,
    };
    pb::Appointment {
        id: a.id.to_string(),
        canvas_patient_id: a.canvas_patient_id.clone(),
        canvas_appointment_id: a.canvas_appointment_id.clone().unwrap_or_default(),
        practitioner_id: a.practitioner_id.clone(),
        practitioner_name: a.practitioner_name.clone(),
        status: status as i32,
        start_time: Some(timestamp(a.start_time)),
        end_time: Some(timestamp(a.end_time)),
        duration_minutes: a.duration_minutes() as i32,
        time_zone: a.time_zone.clone(),
        zoom_meeting_id: a.zoom_meeting_id.map(|m| m.to_string()).unwrap_or_default(),
        // A deleted meeting's link leads nowhere: it is not shown.
        zoom_join_url: a.zoom_join_url.clone().filter(|_| !a.zoom_deleted).unwrap_or_default(),
        zoom_password: a.zoom_password.clone().filter(|_| !a.zoom_deleted).unwrap_or_default(),
        reminder_scheduled_at: a.reminder_at.map(timestamp),
        cancellation_reason: a.cancellation_reason.clone().unwrap_or_default(),
        cancelled_at: a.cancelled_at.map(timestamp),
        created_by: Some(Actor {
            subject: a.created_by_subject.clone(),
            role: a.created_by_role.clone(),
        }),
        created_at: Some(timestamp(a.created_at)),
        updated_at: Some(timestamp(a.updated_at)),
        failure_reason: a.failure_reason.clone().unwrap_or_default(),
        practitioner_time_zone: a.practitioner_time_zone.clone(),
    }
}

fn status_filter(status: i32) -> Result<Option<&'static str>, Error> {
    Ok(match pb::AppointmentStatus::try_from(status) {
        Ok(pb::AppointmentStatus::Unspecified) => None,
        Ok(pb::AppointmentStatus::Pending) => Some("pending"),
        Ok(pb::AppointmentStatus::Booked) => Some("booked"),
        Ok(pb::AppointmentStatus::Cancelled) => Some("cancelled"),
        Ok(pb::AppointmentStatus::Completed) => Some("completed"),
        Ok(pb::AppointmentStatus::NoShow) => Some("no_show"),
        Ok(pb::AppointmentStatus::Failed) => Some("failed"),
        Err(_) => return Err(Error::field("status", "is not an appointment status")),
    })
}

/// A patient acts only for themselves. An empty id is left to the request's own checks, which
/// name the field.
fn for_patient(caller: &Caller, patient: &str) -> Result<(), Status> {
    if caller.role == Role::Patient && !patient.is_empty() && caller.patient_id.as_deref() != Some(patient) {
        return Err(Error::Hidden.into());
    }
    Ok(())
}

#[tonic::async_trait]
impl SchedulingService for Service {
    async fn get_availability(&self, req: Request<pb::GetAvailabilityRequest>) -> Reply<pb::GetAvailabilityResponse> {
        for_patient(Caller::of(&req)?, &req.get_ref().canvas_patient_id)?;
        Ok(Response::new(availability::get(&self.0, req.get_ref()).await?))
    }

    async fn book_appointment(&self, req: Request<pb::BookAppointmentRequest>) -> Reply<pb::BookAppointmentResponse> {
        let caller = Caller::of(&req)?;
        for_patient(caller, &req.get_ref().canvas_patient_id)?;
        let (a, existing) = booking::book(&self.0, caller, req.get_ref()).await?;
        Ok(Response::new(pb::BookAppointmentResponse {
            appointment: Some(to_pb(&a)),
            existing,
        }))
    }

    async fn cancel_appointment(
        &self,
        req: Request<pb::CancelAppointmentRequest>,
    ) -> Reply<pb::CancelAppointmentResponse> {
        let a = booking::cancel(&self.0, Caller::of(&req)?, req.get_ref()).await?;
        Ok(Response::new(pb::CancelAppointmentResponse {
            appointment: Some(to_pb(&a)),
        }))
    }

    async fn reschedule_appointment(
        &self,
        req: Request<pb::RescheduleAppointmentRequest>,
    ) -> Reply<pb::RescheduleAppointmentResponse> {
        let a = booking::reschedule(&self.0, Caller::of(&req)?, req.get_ref()).await?;
        Ok(Response::new(pb::RescheduleAppointmentResponse {
            appointment: Some(to_pb(&a)),
        }))
    }

    async fn get_appointment(&self, req: Request<pb::GetAppointmentRequest>) -> Reply<pb::GetAppointmentResponse> {
        let a = booking::visible(&self.0, Caller::of(&req)?, &req.get_ref().id).await?;
        Ok(Response::new(pb::GetAppointmentResponse {
            appointment: Some(to_pb(&a)),
        }))
    }

    async fn list_appointments(
        &self,
        req: Request<pb::ListAppointmentsRequest>,
    ) -> Reply<pb::ListAppointmentsResponse> {
        let caller = Caller::of(&req)?;
        let r = req.get_ref();
        // A patient lists only their own, and must say so.
        if caller.role == Role::Patient {
            if r.canvas_patient_id.is_empty() {
                return Err(Error::field("canvas_patient_id", "is required for a patient").into());
            }
            for_patient(caller, &r.canvas_patient_id)?;
        }
        let mut bad = Vec::new();
        let time = |t: &Option<prost_types::Timestamp>, field: &str, bad: &mut Vec<FieldViolation>| {
            let t = t.as_ref()?;
            let parsed = era_kit::time::from_timestamp(t);
            if parsed.is_none() {
                bad.push(FieldViolation::new(field, "is not a valid time"));
            }
            parsed
        };
        let start_from = time(&r.start_from, "start_from", &mut bad);
        let start_to = time(&r.start_to, "start_to", &mut bad);
        let page = r.page.clone().unwrap_or_default();
        let after = page_cursor(&page.page_token).map_err(|v| {
            bad.push(v);
        });
        let status = status_filter(r.status).map_err(|e| {
            if let Error::InvalidArgument(v) = e {
                bad.extend(v);
            }
        });
        let (Ok(after), Ok(status), true) = (after, status, bad.is_empty()) else {
            return Err(Error::InvalidArgument(bad).into());
        };
        let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        let filter = Filter {
            canvas_patient_id: non_empty(&r.canvas_patient_id),
            practitioner_id: non_empty(&r.practitioner_id),
            status,
            start_from,
            start_to,
        };
        let limit = page_size(page.page_size);
        let mut rows = self.0.store.list(&filter, after, limit + 1).await?;
        let next = (rows.len() as i64 > limit).then(|| {
            rows.truncate(limit as usize);
            rows.last().map(|a| (a.start_time, a.id))
        });
        Ok(Response::new(pb::ListAppointmentsResponse {
            appointments: rows.iter().map(to_pb).collect(),
            page: Some(next_page(next.flatten())),
        }))
    }
}
