//! The NotificationsService RPCs. Every one answers UNIMPLEMENTED, naming the issue that delivers it,
//! until that issue replaces it with the real implementation.

use era_proto::notifications::v1::{self as pb, notifications_service_server::NotificationsService};
use tonic::{Request, Response, Status};

const PENDING: &str = "arrives with issue 5 (notifications service)";

#[derive(Debug, Default)]
pub(crate) struct Service;

fn pending(rpc: &str) -> Status {
    Status::unimplemented(format!("{rpc} {PENDING}"))
}

#[tonic::async_trait]
impl NotificationsService for Service {
    async fn send_notification(
        &self,
        _: Request<pb::SendNotificationRequest>,
    ) -> Result<Response<pb::SendNotificationResponse>, Status> {
        Err(pending("SendNotification"))
    }

    async fn cancel_notification(
        &self,
        _: Request<pb::CancelNotificationRequest>,
    ) -> Result<Response<pb::CancelNotificationResponse>, Status> {
        Err(pending("CancelNotification"))
    }

    async fn get_outbox_message(
        &self,
        _: Request<pb::GetOutboxMessageRequest>,
    ) -> Result<Response<pb::GetOutboxMessageResponse>, Status> {
        Err(pending("GetOutboxMessage"))
    }

    async fn list_outbox_messages(
        &self,
        _: Request<pb::ListOutboxMessagesRequest>,
    ) -> Result<Response<pb::ListOutboxMessagesResponse>, Status> {
        Err(pending("ListOutboxMessages"))
    }

    async fn replay_dead_letter(
        &self,
        _: Request<pb::ReplayDeadLetterRequest>,
    ) -> Result<Response<pb::ReplayDeadLetterResponse>, Status> {
        Err(pending("ReplayDeadLetter"))
    }

    async fn list_patient_notifications(
        &self,
        _: Request<pb::ListPatientNotificationsRequest>,
    ) -> Result<Response<pb::ListPatientNotificationsResponse>, Status> {
        Err(pending("ListPatientNotifications"))
    }

    async fn mark_notification_read(
        &self,
        _: Request<pb::MarkNotificationReadRequest>,
    ) -> Result<Response<pb::MarkNotificationReadResponse>, Status> {
        Err(pending("MarkNotificationRead"))
    }

    async fn list_conversations(
        &self,
        _: Request<pb::ListConversationsRequest>,
    ) -> Result<Response<pb::ListConversationsResponse>, Status> {
        Err(pending("ListConversations"))
    }

    async fn get_conversation(
        &self,
        _: Request<pb::GetConversationRequest>,
    ) -> Result<Response<pb::GetConversationResponse>, Status> {
        Err(pending("GetConversation"))
    }

    async fn list_conversation_messages(
        &self,
        _: Request<pb::ListConversationMessagesRequest>,
    ) -> Result<Response<pb::ListConversationMessagesResponse>, Status> {
        Err(pending("ListConversationMessages"))
    }

    async fn reply_to_conversation(
        &self,
        _: Request<pb::ReplyToConversationRequest>,
    ) -> Result<Response<pb::ReplyToConversationResponse>, Status> {
        Err(pending("ReplyToConversation"))
    }

    async fn send_admin_otp(
        &self,
        _: Request<pb::SendAdminOtpRequest>,
    ) -> Result<Response<pb::SendAdminOtpResponse>, Status> {
        Err(pending("SendAdminOtp"))
    }

    async fn verify_admin_otp(
        &self,
        _: Request<pb::VerifyAdminOtpRequest>,
    ) -> Result<Response<pb::VerifyAdminOtpResponse>, Status> {
        Err(pending("VerifyAdminOtp"))
    }

    async fn send_magic_link(
        &self,
        _: Request<pb::SendMagicLinkRequest>,
    ) -> Result<Response<pb::SendMagicLinkResponse>, Status> {
        Err(pending("SendMagicLink"))
    }

    async fn consume_magic_link(
        &self,
        _: Request<pb::ConsumeMagicLinkRequest>,
    ) -> Result<Response<pb::ConsumeMagicLinkResponse>, Status> {
        Err(pending("ConsumeMagicLink"))
    }

    async fn send_patient_otp(
        &self,
        _: Request<pb::SendPatientOtpRequest>,
    ) -> Result<Response<pb::SendPatientOtpResponse>, Status> {
        Err(pending("SendPatientOtp"))
    }

    async fn verify_patient_otp(
        &self,
        _: Request<pb::VerifyPatientOtpRequest>,
    ) -> Result<Response<pb::VerifyPatientOtpResponse>, Status> {
        Err(pending("VerifyPatientOtp"))
    }
}
