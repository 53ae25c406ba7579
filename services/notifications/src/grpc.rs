//! The NotificationsService RPCs: who may call each, then the module that does it.

use era_kit::auth::Caller;
use era_proto::notifications::v1::{self as pb, notifications_service_server::NotificationsService};
use tonic::{Request, Response, Status};

use crate::{app::Shared, conversations, logins, outbox, portal};

#[derive(Debug)]
pub(crate) struct Service {
    pub(crate) app: Shared,
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

fn ok<T>(result: crate::error::Result<T>) -> Reply<T> {
    result.map(Response::new).map_err(Status::from)
}

#[tonic::async_trait]
impl NotificationsService for Service {
    async fn send_notification(
        &self,
        req: Request<pb::SendNotificationRequest>,
    ) -> Reply<pb::SendNotificationResponse> {
        let who = staff(&req)?;
        let request = outbox::request_of(&self.app, req.into_inner(), &who).map_err(Status::from)?;
        ok(outbox::record(&self.app, request).await)
    }

    async fn cancel_notification(
        &self,
        req: Request<pb::CancelNotificationRequest>,
    ) -> Reply<pb::CancelNotificationResponse> {
        staff(&req)?;
        ok(outbox::cancel(&self.app, req.get_ref()).await)
    }

    async fn get_outbox_message(
        &self,
        req: Request<pb::GetOutboxMessageRequest>,
    ) -> Reply<pb::GetOutboxMessageResponse> {
        staff(&req)?;
        ok(outbox::get(&self.app, req.get_ref()).await)
    }

    async fn list_outbox_messages(
        &self,
        req: Request<pb::ListOutboxMessagesRequest>,
    ) -> Reply<pb::ListOutboxMessagesResponse> {
        staff(&req)?;
        ok(outbox::list(&self.app, req.get_ref()).await)
    }

    async fn replay_dead_letter(
        &self,
        req: Request<pb::ReplayDeadLetterRequest>,
    ) -> Reply<pb::ReplayDeadLetterResponse> {
        staff(&req)?;
        ok(outbox::replay(&self.app, req.get_ref()).await)
    }

    async fn list_patient_notifications(
        &self,
        req: Request<pb::ListPatientNotificationsRequest>,
    ) -> Reply<pb::ListPatientNotificationsResponse> {
        caller(&req)?.require_patient_access(&req.get_ref().canvas_patient_id)?;
        ok(portal::list(&self.app, req.get_ref()).await)
    }

    async fn mark_notification_read(
        &self,
        req: Request<pb::MarkNotificationReadRequest>,
    ) -> Reply<pb::MarkNotificationReadResponse> {
        caller(&req)?.require_patient_access(&req.get_ref().canvas_patient_id)?;
        ok(portal::mark_read(&self.app, req.get_ref()).await)
    }

    async fn list_conversations(
        &self,
        req: Request<pb::ListConversationsRequest>,
    ) -> Reply<pb::ListConversationsResponse> {
        staff(&req)?;
        ok(conversations::list(&self.app, req.get_ref()).await)
    }

    async fn get_conversation(&self, req: Request<pb::GetConversationRequest>) -> Reply<pb::GetConversationResponse> {
        staff(&req)?;
        ok(conversations::get(&self.app, req.get_ref()).await)
    }

    async fn list_conversation_messages(
        &self,
        req: Request<pb::ListConversationMessagesRequest>,
    ) -> Reply<pb::ListConversationMessagesResponse> {
        staff(&req)?;
        ok(conversations::messages(&self.app, req.get_ref()).await)
    }

    async fn reply_to_conversation(
        &self,
        req: Request<pb::ReplyToConversationRequest>,
    ) -> Reply<pb::ReplyToConversationResponse> {
        let who = staff(&req)?;
        ok(conversations::reply(&self.app, &who, req.get_ref()).await)
    }

    async fn send_admin_otp(&self, req: Request<pb::SendAdminOtpRequest>) -> Reply<pb::SendAdminOtpResponse> {
        // Logins are the edge's to drive: it checks the allowlist and mints the session.
        staff(&req)?;
        ok(logins::send_admin_otp(&self.app, req.get_ref()).await)
    }

    async fn verify_admin_otp(&self, req: Request<pb::VerifyAdminOtpRequest>) -> Reply<pb::VerifyAdminOtpResponse> {
        // Logins are the edge's to drive: it checks the allowlist and mints the session.
        staff(&req)?;
        ok(logins::verify_admin_otp(&self.app, req.get_ref()).await)
    }

    async fn send_magic_link(&self, req: Request<pb::SendMagicLinkRequest>) -> Reply<pb::SendMagicLinkResponse> {
        // Logins are the edge's to drive: it checks the allowlist and mints the session.
        staff(&req)?;
        ok(logins::send_magic_link(&self.app, req.get_ref()).await)
    }

    async fn consume_magic_link(
        &self,
        req: Request<pb::ConsumeMagicLinkRequest>,
    ) -> Reply<pb::ConsumeMagicLinkResponse> {
        // Logins are the edge's to drive: it checks the allowlist and mints the session.
        staff(&req)?;
        ok(logins::consume_magic_link(&self.app, req.get_ref()).await)
    }

    async fn check_magic_link(&self, req: Request<pb::CheckMagicLinkRequest>) -> Reply<pb::CheckMagicLinkResponse> {
        // Logins are the edge's to drive: it checks the allowlist and mints the session.
        staff(&req)?;
        ok(logins::check_magic_link(&self.app, req.get_ref()).await)
    }

    async fn send_patient_otp(&self, req: Request<pb::SendPatientOtpRequest>) -> Reply<pb::SendPatientOtpResponse> {
        // Logins are the edge's to drive: it checks the allowlist and mints the session.
        staff(&req)?;
        ok(logins::send_patient_otp(&self.app, req.get_ref()).await)
    }

    async fn verify_patient_otp(
        &self,
        req: Request<pb::VerifyPatientOtpRequest>,
    ) -> Reply<pb::VerifyPatientOtpResponse> {
        // Logins are the edge's to drive: it checks the allowlist and mints the session.
        staff(&req)?;
        ok(logins::verify_patient_otp(&self.app, req.get_ref()).await)
    }
}
