//! The OpenAPI 3.1 document, assembled from the handlers' annotations.

use utoipa::{
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    Modify, OpenApi,
};

use crate::{error, routes};

#[derive(OpenApi)]
#[openapi(
    info(title = "Era integration mesh", description = "The REST edge of the clinic's integration mesh."),
    paths(
        routes::canvas_login,
        routes::logout,
        routes::identity_reviews,
        routes::resolve_identity_review,
        routes::end_plugin_sessions,
        routes::routing_matrix,
        routes::decide_route,
        routes::update_state_routing,
        routes::routing_audit,
        routes::medications,
        routes::list_tasks,
        routes::get_task,
        routes::practitioners,
        routes::approve_task,
        routes::deny_task,
        routes::task_action,
        routes::orchestration_run,
        routes::orchestration_runs,
        routes::pharmacy_orders,
        routes::pharmacy_order,
        routes::sync_logs,
        routes::shipments,
        routes::refills,
        routes::patient_shipments,
        routes::admin_appointments,
        routes::admin_appointment,
        routes::admin_availability,
        routes::admin_book,
        routes::admin_cancel,
        routes::admin_reschedule,
        routes::patient_availability,
        routes::patient_book,
        routes::patient_cancel,
        routes::patient_reschedule,
        routes::patient_appointments,
        routes::search_patients,
        routes::patient_detail,
        routes::prescriptions,
        routes::patient_records,
        routes::submit_intake,
        routes::stripe_webhook,
        routes::pharmacy_webhook,
        routes::admin_otp_send,
        routes::admin_otp_verify,
        routes::magic_link_send,
        routes::magic_link_page,
        routes::magic_link_consume,
        routes::session_handoff,
        routes::patient_code_send,
        routes::patient_code_verify,
        routes::list_admins,
        routes::add_admin,
        routes::remove_admin,
        routes::patient_notifications,
        routes::mark_read,
        routes::outbox,
        routes::outbox_message,
        routes::replay,
        routes::conversations,
        routes::conversation,
        routes::conversation_messages,
        routes::reply_to_conversation,
        routes::validate_discount,
        routes::setup_intent,
        routes::save_payment_method,
        routes::charge_hold,
        routes::refund,
        routes::orders,
        routes::patient_payments,
        routes::healthz,
        routes::readyz,
        routes::metrics,
        routes::openapi,
    ),
    components(schemas(error::ErrorBody, error::ErrorDetail, error::FieldError)),
    modifiers(&Security),
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |desc: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(desc))
                    .build(),
            )
        };
        components.add_security_scheme("admin_secret", bearer("ADMIN_SECRET, server-to-server"));
        components.add_security_scheme("admin_jwt", bearer("admin JWT (HS256, aud era-admin, 24 h)"));
        components.add_security_scheme("patient_jwt", bearer("patient JWT (HS256, aud era-patient, 4 h)"));
        components.add_security_scheme(
            "intake_token",
            bearer("intakeToken from POST /api/intake/submit (HS256, aud era-intake, 2 h): saves a card for that patient only"),
        );
        components.add_security_scheme("ops_token", bearer("OPS_TOKEN: metrics and readiness detail, when set"));
    }
}
