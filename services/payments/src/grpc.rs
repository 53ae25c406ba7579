//! The PaymentsService RPCs: who may call what, then the work in the modules named for it.
//!
//! Staff (admins, services, `ADMIN_SECRET`) may call every RPC. A patient may save their own card
//! and read their own holds and payments; another patient's answers NOT_FOUND.

use era_kit::auth::{Caller, Role};
use era_proto::payments::v1::{self as pb, payments_service_server::PaymentsService};
use tonic::{Request, Response, Status};

use crate::{app::App, charges, discounts, error::Error, holds, webhooks};

#[derive(Debug, Clone)]
pub(crate) struct Service {
    pub(crate) app: std::sync::Arc<App>,
}

type Reply<T> = Result<Response<T>, Status>;

fn caller<T>(req: &Request<T>) -> Result<Caller, Status> {
    Caller::of(req).cloned()
}

fn staff<T>(req: &Request<T>) -> Result<Caller, Status> {
    let who = caller(req)?;
    who.require_staff()?;
    Ok(who)
}

/// Staff, or the patient themselves; another patient gets NOT_FOUND.
fn staff_or_own<T>(req: &Request<T>, patient: &str) -> Result<Caller, Status> {
    let who = caller(req)?;
    match who.role {
        Role::Admin | Role::Service => Ok(who),
        Role::Patient if !patient.is_empty() && who.patient_id.as_deref() == Some(patient) => Ok(who),
        Role::Patient => Err(Error::Hidden.into()),
    }
}

/// What a patient sees of a charge: not the admins' notes or identities.
fn for_patient(mut charge: pb::Charge) -> pb::Charge {
    charge.created_by = None;
    charge.on_behalf_of = None;
    for r in &mut charge.refunds {
        r.note.clear();
        r.requested_by = None;
        r.on_behalf_of = None;
    }
    charge
}

fn ok<T>(result: crate::error::Result<T>) -> Reply<T> {
    result.map(Response::new).map_err(Status::from)
}

#[tonic::async_trait]
impl PaymentsService for Service {
    async fn create_setup_intent(
        &self,
        req: Request<pb::CreateSetupIntentRequest>,
    ) -> Reply<pb::CreateSetupIntentResponse> {
        staff_or_own(&req, &req.get_ref().canvas_patient_id)?;
        ok(holds::create_setup_intent(&self.app, req.get_ref()).await)
    }

    async fn save_payment_method(
        &self,
        req: Request<pb::SavePaymentMethodRequest>,
    ) -> Reply<pb::SavePaymentMethodResponse> {
        staff_or_own(&req, &req.get_ref().canvas_patient_id)?;
        ok(holds::save_payment_method(&self.app, req.get_ref()).await)
    }

    async fn get_payment_hold(&self, req: Request<pb::GetPaymentHoldRequest>) -> Reply<pb::GetPaymentHoldResponse> {
        let who = caller(&req)?;
        let r = req.get_ref();
        let id = match r.id.as_str() {
            "" => None,
            id => Some(
                id.parse()
                    .map_err(|_| Status::from(Error::field("id", "must be a hold id (UUID)")))?,
            ),
        };
        if id.is_none() && r.canvas_patient_id.is_empty() {
            return Err(Error::field("canvas_patient_id", "give a hold id or a patient").into());
        }
        let patient = (!r.canvas_patient_id.is_empty()).then_some(r.canvas_patient_id.as_str());
        let hold = self.app.store.hold(id, patient).await.map_err(Status::from)?;
        let hold = hold.ok_or_else(|| Status::from(Error::not_found("payment hold", r.canvas_patient_id.clone())))?;
        if who.role == Role::Patient && who.patient_id.as_deref() != Some(hold.canvas_patient_id.as_str()) {
            return Err(Error::Hidden.into());
        }
        Ok(Response::new(pb::GetPaymentHoldResponse { hold: Some(hold) }))
    }

    async fn charge_hold(&self, req: Request<pb::ChargeHoldRequest>) -> Reply<pb::ChargeHoldResponse> {
        let who = staff(&req)?;
        ok(charges::charge_hold(&self.app, &who, req.get_ref(), false).await)
    }

    async fn authorize_hold(&self, req: Request<pb::AuthorizeHoldRequest>) -> Reply<pb::AuthorizeHoldResponse> {
        let who = staff(&req)?;
        let r = req.into_inner();
        let as_charge = pb::ChargeHoldRequest {
            canvas_patient_id: r.canvas_patient_id,
            amount_cents: r.amount_cents,
            currency: r.currency,
            reference: r.reference,
            description: r.description,
            idempotency_key: r.idempotency_key,
            actor: r.actor,
        };
        let held = charges::charge_hold(&self.app, &who, &as_charge, true).await;
        ok(held.map(|h| pb::AuthorizeHoldResponse {
            charge: h.charge,
            existing: h.existing,
        }))
    }

    async fn capture_charge(&self, req: Request<pb::CaptureChargeRequest>) -> Reply<pb::CaptureChargeResponse> {
        staff(&req)?;
        let charge = charges::settle_authorization(&self.app, &req.get_ref().charge_id, true).await;
        ok(charge.map(|c| pb::CaptureChargeResponse { charge: Some(c) }))
    }

    async fn cancel_authorization(
        &self,
        req: Request<pb::CancelAuthorizationRequest>,
    ) -> Reply<pb::CancelAuthorizationResponse> {
        staff(&req)?;
        let charge = charges::settle_authorization(&self.app, &req.get_ref().charge_id, false).await;
        ok(charge.map(|c| pb::CancelAuthorizationResponse { charge: Some(c) }))
    }

    async fn get_charge(&self, req: Request<pb::GetChargeRequest>) -> Reply<pb::GetChargeResponse> {
        let who = caller(&req)?;
        let row = charges::get_charge(&self.app, req.get_ref())
            .await
            .map_err(Status::from)?;
        if who.role == Role::Patient && who.patient_id.as_deref() != Some(row.charge.canvas_patient_id.as_str()) {
            return Err(Error::Hidden.into());
        }
        let charge = if who.role == Role::Patient {
            for_patient(row.charge)
        } else {
            row.charge
        };
        Ok(Response::new(pb::GetChargeResponse { charge: Some(charge) }))
    }

    async fn refund_payment(&self, req: Request<pb::RefundPaymentRequest>) -> Reply<pb::RefundPaymentResponse> {
        let who = staff(&req)?;
        ok(charges::refund(&self.app, &who, req.get_ref()).await)
    }

    async fn validate_discount_code(
        &self,
        req: Request<pb::ValidateDiscountCodeRequest>,
    ) -> Reply<pb::ValidateDiscountCodeResponse> {
        // The intake form checks codes before the patient exists: any authenticated caller may.
        caller(&req)?;
        ok(discounts::validate(&self.app, req.get_ref()).await)
    }

    async fn list_patient_payments(
        &self,
        req: Request<pb::ListPatientPaymentsRequest>,
    ) -> Reply<pb::ListPatientPaymentsResponse> {
        let r = req.get_ref();
        let who = staff_or_own(&req, &r.canvas_patient_id)?;
        let page = r.page.clone().unwrap_or_default();
        let before = era_kit::time::page_cursor(&page.page_token)
            .map_err(|v| Status::from(crate::Error::InvalidArgument(vec![v])))?;
        let size = era_kit::time::page_size(page.page_size);
        let (charges, next) = self
            .app
            .store
            .list_charges(Some(&r.canvas_patient_id), None, None, None, before, size)
            .await
            .map_err(Status::from)?;
        let holds = if before.is_none() {
            self.app
                .store
                .holds_of(&r.canvas_patient_id)
                .await
                .map_err(Status::from)?
        } else {
            Vec::new()
        };
        let charges = if who.role == Role::Patient {
            charges.into_iter().map(for_patient).collect()
        } else {
            charges
        };
        Ok(Response::new(pb::ListPatientPaymentsResponse {
            charges,
            holds,
            page: Some(era_kit::time::next_page(next)),
        }))
    }

    async fn list_payments(&self, req: Request<pb::ListPaymentsRequest>) -> Reply<pb::ListPaymentsResponse> {
        staff(&req)?;
        let r = req.get_ref();
        let page = r.page.clone().unwrap_or_default();
        let before = era_kit::time::page_cursor(&page.page_token)
            .map_err(|v| Status::from(crate::Error::InvalidArgument(vec![v])))?;
        let size = era_kit::time::page_size(page.page_size);
        let status = match pb::ChargeStatus::try_from(r.status) {
            Ok(pb::ChargeStatus::Unspecified) => None,
            Ok(s) => Some(crate::store::charge_status_code(s)),
            Err(_) => return Err(Error::field("status", "is not a charge status").into()),
        };
        let time = |field: &str, t: Option<&prost_types::Timestamp>| match t {
            None => Ok(None),
            Some(t) => chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32)
                .map(Some)
                .ok_or_else(|| Status::from(Error::field(field, "is not a valid time"))),
        };
        let patient = (!r.canvas_patient_id.is_empty()).then_some(r.canvas_patient_id.as_str());
        let (charges, next) = self
            .app
            .store
            .list_charges(
                patient,
                status,
                time("created_from", r.created_from.as_ref())?,
                time("created_to", r.created_to.as_ref())?,
                before,
                size,
            )
            .await
            .map_err(Status::from)?;
        Ok(Response::new(pb::ListPaymentsResponse {
            charges,
            page: Some(era_kit::time::next_page(next)),
        }))
    }

    async fn get_payment_stats(&self, req: Request<pb::GetPaymentStatsRequest>) -> Reply<pb::GetPaymentStatsResponse> {
        staff(&req)?;
        let r = req.get_ref();
        let time = |t: Option<&prost_types::Timestamp>| {
            t.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        };
        ok(self.app.store.stats(time(r.from.as_ref()), time(r.to.as_ref())).await)
    }

    async fn ingest_stripe_event(
        &self,
        req: Request<pb::IngestStripeEventRequest>,
    ) -> Reply<pb::IngestStripeEventResponse> {
        staff(&req)?;
        ok(webhooks::ingest(&self.app, req.get_ref()).await)
    }
}
