//! The OpenAPI 3.1 document, assembled from the handlers' annotations. The handlers list the answers
//! that are theirs (a `409` when a task changed, a `422` with its reason); the answers the edge's
//! shared layers give any route (bad input, authentication, limits, deadlines, overload) are added
//! here, once each, as reusable responses in `components.responses`.

use axum::http::{Method, StatusCode};
use utoipa::{
    openapi::{
        path::{Operation, ParameterIn},
        security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
        ContentBuilder, HeaderBuilder, Ref, RefOr, ResponseBuilder, Type,
    },
    Modify, OpenApi,
};

use crate::{error, limits, routes};

#[derive(OpenApi)]
#[openapi(
    info(title = "Era integration mesh", description = "The REST edge of the clinic's integration mesh."),
    paths(
        routes::canvas_login,
        routes::logout,
        routes::patient_created,
        routes::prescription,
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
        routes::patient_refills,
        routes::refill_action,
        routes::refund_reviews,
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
    modifiers(&Security, &SharedResponses),
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

/// The routes that read their body as raw bytes (a signature covers them, or they take a form post
/// as well as JSON): no `Content-Type` is refused there, so they never answer 415.
const RAW_BODIES: &[(Method, &str)] = &[
    (Method::POST, "/api/auth/canvas"),
    (Method::POST, "/api/auth/magic-link/consume"),
    (Method::POST, "/api/webhooks/stripe"),
    (Method::POST, "/api/webhooks/pharmacy/{pharmacy}"),
];

/// The routes the edge answers from its own state alone (sessions, the allowlist, sign-in sends that
/// go out after the answer): no service's conflict or refusal reaches their callers.
const EDGE_ONLY: &[(Method, &str)] = &[
    (Method::POST, "/api/auth/canvas"),
    (Method::POST, "/api/auth/logout"),
    (Method::POST, "/api/auth/session"),
    (Method::POST, "/api/auth/otp/send"),
    (Method::POST, "/api/auth/magic-link"),
    (Method::GET, "/api/auth/magic-link"),
    (Method::POST, "/api/patient/auth/send-code"),
    (Method::GET, "/api/admin/admin-users"),
    (Method::POST, "/api/admin/admin-users"),
    (Method::DELETE, "/api/admin/admin-users/{email}"),
    (Method::DELETE, "/api/admin/plugin-sessions/{staffId}"),
];

/// One answer of the shared layers: its status, its name under `components.responses`, what it
/// means, and which operations can give it.
struct Shared {
    status: StatusCode,
    name: &'static str,
    description: &'static str,
    /// The header it always carries, with what that header says.
    header: Option<(&'static str, &'static str)>,
    applies: fn(&Op<'_>) -> bool,
}

/// What the rules below look at in an operation.
struct Op<'a> {
    method: Method,
    path: &'a str,
    operation: &'a Operation,
}

impl Op<'_> {
    /// A credential is required: some security requirement, and none of them the empty one.
    fn authenticated(&self) -> bool {
        self.operation.security.as_ref().is_some_and(|all| {
            !all.is_empty()
                && all
                    .iter()
                    .all(|r| serde_json::to_value(r).is_ok_and(|v| v.as_object().is_some_and(|o| !o.is_empty())))
        })
    }

    fn has_path_parameters(&self) -> bool {
        self.operation
            .parameters
            .iter()
            .flatten()
            .any(|p| p.parameter_in == ParameterIn::Path)
    }

    /// The path names something, or an authenticated caller names something in the query or the
    /// body (a patient to book for, a task to act on): either may not exist.
    fn names_resources(&self) -> bool {
        let queried = self
            .operation
            .parameters
            .iter()
            .flatten()
            .any(|p| p.parameter_in == ParameterIn::Query);
        self.has_path_parameters() || (self.authenticated() && (queried || self.operation.request_body.is_some()))
    }

    /// The answer comes from a service, whose refusals and conflicts the edge passes on.
    fn reaches_a_service(&self) -> bool {
        self.path.starts_with("/api/") && !EDGE_ONLY.iter().any(|(m, p)| *m == self.method && *p == self.path)
    }

    fn has_json_body(&self) -> bool {
        self.operation.request_body.is_some() && !RAW_BODIES.iter().any(|(m, p)| *m == self.method && *p == self.path)
    }
}

const SHARED: &[Shared] = &[
    Shared {
        status: StatusCode::BAD_REQUEST,
        name: "BadRequest",
        description: "the request is malformed or a value is invalid: `invalid_request` (the body, query or \
                      path could not be read) or `invalid_argument`; `fields` names each bad field and why",
        header: None,
        applies: |_| true,
    },
    Shared {
        status: StatusCode::UNAUTHORIZED,
        name: "Unauthorized",
        description: "no credential, or one that is invalid, expired or revoked: `missing_credentials`, \
                      `invalid_token`, `token_revoked`",
        header: Some(("WWW-Authenticate", "`Bearer`")),
        applies: |op| op.authenticated(),
    },
    Shared {
        status: StatusCode::FORBIDDEN,
        name: "Forbidden",
        description: "`forbidden`: the credential is valid but not for this route (a patient token on an admin \
                      route, another patient's records, an admin session where only ADMIN_SECRET will do)",
        header: None,
        applies: |op| op.authenticated(),
    },
    Shared {
        status: StatusCode::NOT_FOUND,
        name: "NotFound",
        description: "`not_found`: nothing has an id the path, the query or the body names (or a path segment \
                      is empty)",
        header: None,
        applies: |op| op.names_resources(),
    },
    Shared {
        status: StatusCode::REQUEST_TIMEOUT,
        name: "RequestTimeout",
        description: "`request_timeout`: the request, its body included, took longer than REQUEST_TIMEOUT_SECS",
        header: None,
        applies: |_| true,
    },
    Shared {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        name: "PayloadTooLarge",
        description: "`payload_too_large`: the body is over MAX_BODY_BYTES",
        header: None,
        applies: |op| op.operation.request_body.is_some(),
    },
    Shared {
        status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
        name: "UnsupportedMediaType",
        description: "`unsupported_media_type`: the body must be sent as `application/json`",
        header: None,
        applies: |op| op.has_json_body(),
    },
    Shared {
        status: StatusCode::CONFLICT,
        name: "Conflict",
        description: "the record changed while this request was being made (`changed_since_read`), or a request \
                      with the same key is still under way (`request_in_progress`, `conflict`): nothing was done; \
                      reload or retry",
        header: None,
        applies: |op| op.reaches_a_service() && op.method != Method::GET,
    },
    Shared {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        name: "UnprocessableEntity",
        description: "a rule of the clinic, or a vendor, refused the request as it stands; `code` is the reason \
                      (e.g. `state_excluded`, `canvas_rejected`)",
        header: None,
        applies: |op| op.reaches_a_service(),
    },
    Shared {
        status: StatusCode::TOO_MANY_REQUESTS,
        name: "TooManyRequests",
        description: "`rate_limited` (this client's budget for the route is spent), `too_many_failed_sign_ins` or \
                      `too_many_bad_signatures`; `Retry-After` says when to come back",
        header: Some(("Retry-After", "seconds to wait")),
        applies: |op| limits::is_limited(&op.method, op.path),
    },
    Shared {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        name: "InternalError",
        description: "`internal_error`: a fault on our side, described by its class only (the cause is logged), \
                      or `record_integrity` when a stored record fails its check",
        header: None,
        applies: |_| true,
    },
    Shared {
        status: StatusCode::SERVICE_UNAVAILABLE,
        name: "ServiceUnavailable",
        description: "`overloaded` (the edge is serving as many requests as it can; `Retry-After` is set), \
                      `service_unavailable` (a service behind the edge is down), or a vendor's outage \
                      (`canvas_unavailable`, `stripe_unavailable`, `hubspot_unavailable`, `routing_unavailable`)",
        header: None,
        applies: |_| true,
    },
    Shared {
        status: StatusCode::GATEWAY_TIMEOUT,
        name: "GatewayTimeout",
        description: "`timeout`: a service did not answer within its deadline",
        header: None,
        applies: |_| true,
    },
];

/// Adds to every operation each shared answer it can give and does not list yet, as a `$ref` to
/// `components.responses`. An answer a handler lists with its own description keeps it; one it
/// lists bare (no description) becomes the shared one.
struct SharedResponses;

impl Modify for SharedResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for shared in SHARED {
            let mut response = ResponseBuilder::new().description(shared.description).content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            );
            if let Some((name, description)) = shared.header {
                response = response.header(
                    name,
                    HeaderBuilder::new()
                        .schema(utoipa::openapi::ObjectBuilder::new().schema_type(Type::String))
                        .description(Some(description))
                        .build(),
                );
            }
            components
                .responses
                .insert(shared.name.to_owned(), RefOr::T(response.build()));
        }
        for (path, item) in &mut openapi.paths.paths {
            let operations = [
                (Method::GET, &mut item.get),
                (Method::PUT, &mut item.put),
                (Method::POST, &mut item.post),
                (Method::DELETE, &mut item.delete),
                (Method::PATCH, &mut item.patch),
            ];
            for (method, operation) in operations {
                let Some(operation) = operation else { continue };
                let wanted: Vec<&Shared> = SHARED
                    .iter()
                    .filter(|s| {
                        (s.applies)(&Op {
                            method: method.clone(),
                            path,
                            operation,
                        })
                    })
                    .collect();
                let responses = &mut operation.responses.responses;
                for shared in wanted {
                    let code = shared.status.as_str().to_owned();
                    let bare = match responses.get(&code) {
                        None => true,
                        Some(RefOr::T(r)) => r.description.trim().is_empty(),
                        Some(RefOr::Ref(_)) => false,
                    };
                    if bare {
                        responses.insert(
                            code,
                            RefOr::Ref(Ref::new(format!("#/components/responses/{}", shared.name))),
                        );
                    }
                }
                // A code a handler lists bare that no shared answer covers (a 409, a 422) gets the
                // generic words for it, so that no answer goes undescribed.
                for (code, response) in responses.iter_mut() {
                    if let RefOr::T(r) = response {
                        if r.description.trim().is_empty() {
                            r.description = code
                                .parse::<u16>()
                                .ok()
                                .and_then(|c| StatusCode::from_u16(c).ok())
                                .and_then(|c| c.canonical_reason())
                                .unwrap_or("answer")
                                .to_owned();
                        }
                    }
                }
            }
        }
    }
}

/// Checks of the document that need no running edge.
#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn document() -> Value {
        serde_json::to_value(ApiDoc::openapi()).unwrap()
    }

    fn operations(doc: &Value) -> Vec<(String, String, Value)> {
        doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .unwrap()
                    .iter()
                    .map(move |(method, op)| (path.clone(), method.clone(), op.clone()))
            })
            .collect()
    }

    #[test]
    fn parameters_are_where_the_handlers_read_them() {
        let doc = document();
        for (path, method, op) in operations(&doc) {
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            for p in &params {
                let name = p["name"].as_str().unwrap();
                let in_path = path.contains(&format!("{{{name}}}"));
                assert_eq!(
                    p["in"] == "path",
                    in_path,
                    "{method} {path}: parameter {name} is `in: {}`",
                    p["in"]
                );
            }
            for segment in path.split('/').filter(|s| s.starts_with('{')) {
                let name = segment.trim_matches(['{', '}']);
                assert!(
                    params.iter().any(|p| p["name"] == name && p["in"] == "path"),
                    "{method} {path}: {name} is not declared"
                );
            }
        }
    }

    #[test]
    fn the_route_lists_name_documented_operations() {
        let doc = document();
        for (method, path) in EDGE_ONLY.iter().chain(RAW_BODIES) {
            let method = method.as_str().to_ascii_lowercase();
            assert!(
                doc["paths"][path].get(&method).is_some(),
                "{method} {path} is not documented"
            );
        }
    }

    #[test]
    fn every_operation_lists_the_shared_answers_it_can_give() {
        let doc = document();
        let responses = doc["components"]["responses"].as_object().unwrap();
        for (path, method, op) in operations(&doc) {
            let listed = op["responses"].as_object().unwrap();
            for code in ["400", "408", "500", "503", "504"] {
                assert!(listed.contains_key(code), "{method} {path} does not list {code}");
            }
            let authenticated = op["security"]
                .as_array()
                .is_some_and(|s| !s.is_empty() && s.iter().all(|r| r.as_object().is_some_and(|o| !o.is_empty())));
            if authenticated {
                assert!(
                    listed.contains_key("401") && listed.contains_key("403"),
                    "{method} {path}"
                );
            }
            if op.get("requestBody").is_some() {
                assert!(listed.contains_key("413"), "{method} {path}");
            }
            if path.contains('{') {
                assert!(listed.contains_key("404"), "{method} {path}");
            }
            for (code, response) in listed {
                match response.get("$ref").and_then(Value::as_str) {
                    Some(r) => assert!(
                        responses.contains_key(r.trim_start_matches("#/components/responses/")),
                        "{method} {path} {code}: {r} is not defined"
                    ),
                    None => assert!(
                        !response["description"].as_str().unwrap_or_default().is_empty(),
                        "{method} {path} {code} has no description"
                    ),
                }
            }
        }
        let answers = |method: &str, path: &str| doc["paths"][path][method]["responses"].clone();
        assert!(answers("put", "/api/admin/routing/{state}").get("409").is_some());
        assert!(answers("get", "/api/admin/routing").get("409").is_none());
        assert!(answers("post", "/api/auth/logout").get("422").is_none());
        let limited = &doc["paths"]["/api/auth/otp/verify"]["post"]["responses"]["429"]["$ref"];
        assert_eq!(limited, "#/components/responses/TooManyRequests");
        let unlimited = &doc["paths"]["/api/admin/routing"]["get"]["responses"];
        assert!(unlimited.get("429").is_none(), "{unlimited}");
    }
}
