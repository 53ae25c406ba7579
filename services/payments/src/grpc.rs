//! The PaymentsService RPCs. Every one answers UNIMPLEMENTED, naming the issue that delivers it,
//! until that issue replaces it with the real implementation.

use era_proto::payments::v1::{self as pb, payments_service_server::PaymentsService};
use tonic::{Request, Response, Status};

const PENDING: &str = "arrives with issue 4 (payments service)";

#[derive(Debug, Default)]
pub(crate) struct Service;

fn pending(rpc: &str) -> Status {
    Status::unimplemented(format!("{rpc} {PENDING}"))
}

#[tonic::async_trait]
impl PaymentsService for Service {
    async fn create_setup_intent(
        &self,
        _: Request<pb::CreateSetupIntentRequest>,
    ) -> Result<Response<pb::CreateSetupIntentResponse>, Status> {
        Err(pending("CreateSetupIntent"))
    }

    async fn save_payment_method(
        &self,
        _: Request<pb::SavePaymentMethodRequest>,
    ) -> Result<Response<pb::SavePaymentMethodResponse>, Status> {
        Err(pending("SavePaymentMethod"))
    }

    async fn get_payment_hold(
        &self,
        _: Request<pb::GetPaymentHoldRequest>,
    ) -> Result<Response<pb::GetPaymentHoldResponse>, Status> {
        Err(pending("GetPaymentHold"))
    }

    async fn charge_hold(&self, _: Request<pb::ChargeHoldRequest>) -> Result<Response<pb::ChargeHoldResponse>, Status> {
        Err(pending("ChargeHold"))
    }

    async fn get_charge(&self, _: Request<pb::GetChargeRequest>) -> Result<Response<pb::GetChargeResponse>, Status> {
        Err(pending("GetCharge"))
    }

    async fn refund_payment(
        &self,
        _: Request<pb::RefundPaymentRequest>,
    ) -> Result<Response<pb::RefundPaymentResponse>, Status> {
        Err(pending("RefundPayment"))
    }

    async fn validate_discount_code(
        &self,
        _: Request<pb::ValidateDiscountCodeRequest>,
    ) -> Result<Response<pb::ValidateDiscountCodeResponse>, Status> {
        Err(pending("ValidateDiscountCode"))
    }

    async fn list_patient_payments(
        &self,
        _: Request<pb::ListPatientPaymentsRequest>,
    ) -> Result<Response<pb::ListPatientPaymentsResponse>, Status> {
        Err(pending("ListPatientPayments"))
    }

    async fn list_payments(
        &self,
        _: Request<pb::ListPaymentsRequest>,
    ) -> Result<Response<pb::ListPaymentsResponse>, Status> {
        Err(pending("ListPayments"))
    }

    async fn get_payment_stats(
        &self,
        _: Request<pb::GetPaymentStatsRequest>,
    ) -> Result<Response<pb::GetPaymentStatsResponse>, Status> {
        Err(pending("GetPaymentStats"))
    }

    async fn ingest_stripe_event(
        &self,
        _: Request<pb::IngestStripeEventRequest>,
    ) -> Result<Response<pb::IngestStripeEventResponse>, Status> {
        Err(pending("IngestStripeEvent"))
    }
}
