//! era-sandbox: one HTTP server that speaks each external vendor's wire format under its own path
//! prefix, keeps its state in memory, and records every effect in a ledger that tests read. Faults
//! (an error status, latency, a dropped connection) can be injected for the next N calls to a route.
//!
//! Every vendor prefix is simulated; a path under one that its simulator does not cover answers
//! 404 in a JSON body that says the route is not simulated (Canvas's FHIR API and Stripe answer
//! such paths in their own error shapes instead). Simulated:
//! - Canvas (`/canvas` for OAuth, `/canvas-fhir` for FHIR R4; see [`canvas`]), with the clinic's
//!   Canvas plugin: a patient created over FHIR, and a prescription a physician writes, stops or
//!   adjusts (`/_sandbox/canvas/prescriptions`), is a JSON event POSTed to
//!   `{canvas_plugin_webhook_url}/prescription` or `/patient-created` (`CANVAS_PLUGIN_WEBHOOK_URL`)
//!   signed with `X-Timestamp` and `X-Signature` under `canvas_plugin_secret`
//!   (`CANVAS_AUTH_SECRET`, the edge's `ADMIN_JWT_SECRET`), controlled at `/_sandbox/canvas`;
//! - Stripe (`/stripe`, the v1 API with signed webhooks, also at the root `/v1` for stripe-node;
//!   see [`stripe`]);
//! - Zoom (`/zoom`: Server-to-Server OAuth at `/zoom/oauth/token` and the Meetings API v2 at
//!   `/zoom/v2`, with Zoom's per-host daily and per-second rate limits; see [`zoom`]);
//! - SendGrid (`/sendgrid`: v3 mail/send with rate-limit headers, and the Email Activity lookup;
//!   see [`sendgrid`]);
//! - Twilio (`/twilio`: the 2010-04-01 Messages API with test-credential magic numbers and signed
//!   status callbacks; see [`twilio`]);
//! - HubSpot (`/hubspot`: the v3 Conversations inbox API over a seeded demo account; see
//!   [`hubspot`]);
//! - FedEx (`/fedex`, a client's `FEDEX_BASE_URL`: OAuth client credentials at
//!   `/fedex/oauth/token` with `fedex_client_id` and `fedex_client_secret` (`FEDEX_CLIENT_ID`,
//!   `FEDEX_CLIENT_SECRET`), and the Track API at `/fedex/track/v1/trackingnumbers`, up to 30
//!   numbers a request, an unknown number answered 200 with its error inside, behind FedEx's
//!   per-project throttle; see [`fedex`]). The pharmacies' shipped orders are trackable there;
//!   parcels move at `/_sandbox/fedex`;
//! - the compounding pharmacies (see [`pharmacy`]): PioneerRx, GMP's system (`/pioneerrx`, an
//!   assumed order API behind PioneerRx's documented request signing; see [`pharmacy::pioneerrx`]),
//!   and Boothwyn and Strive, two LifeFile instances (`/boothwyn/lfapi/v1`, `/strive/lfapi/v1`;
//!   see [`pharmacy::lifefile`]). Orders are not idempotent, and each status change is a signed
//!   JSON callback to `{pharmacy_webhook_url}/{pharmacy}`, controlled at `/_sandbox/pharmacy`.
//!
//! Email, SMS and conversation replies the simulators accepted are listed, newest first, at
//! `/_sandbox/inbox` (a page) and `/_sandbox/inbox.json` (for tests reading one-time codes).

use std::{future::Future, sync::Arc};

use axum::{
    extract::{Request, State},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{any, get},
    Json, Router,
};
use http::StatusCode;
use tokio::net::TcpListener;

pub mod canvas;
mod control;
pub mod fedex;
mod guard;
pub mod hubspot;
mod inbox;
pub mod pharmacy;
mod secret;
pub mod sendgrid;
mod serve;
pub mod state;
pub mod stripe;
pub mod twilio;
mod urlencoded;
mod webhook;
pub mod zoom;

pub use serve::serve;
pub use state::{Fault, FaultAction, LedgerEntry, LifeFileAccount, Sandbox, SandboxConfig, ZoomUser, EFFECT};

/// The vendors and the path prefix each is served under (ARCHITECTURE.md's table).
pub const VENDORS: &[(&str, &str)] = &[
    ("canvas", "/canvas"),
    ("canvas-fhir", "/canvas-fhir"),
    ("stripe", "/stripe"),
    ("zoom", "/zoom"),
    ("sendgrid", "/sendgrid"),
    ("twilio", "/twilio"),
    ("hubspot", "/hubspot"),
    ("fedex", "/fedex"),
    ("pioneerrx", "/pioneerrx"),
    ("boothwyn", "/boothwyn"),
    ("strive", "/strive"),
];

/// The whole sandbox: vendors under their prefixes behind the ledger and fault layer, and the
/// `/_sandbox` control routes.
pub fn app(sandbox: Sandbox) -> Router {
    let mut vendors = Router::new();
    for (vendor, prefix) in VENDORS {
        vendors = vendors.nest(prefix, vendor_router(vendor));
    }
    let vendors = vendors.layer(middleware::from_fn_with_state(sandbox.clone(), record_and_inject));
    // stripe-node's base path is fixed at `/v1/` (only host and port are configurable), so Stripe
    // also answers at the root: `/v1/...` is served exactly as `/stripe/v1/...`, ledger and faults
    // included.
    let stripe_alias = vendors.clone().with_state(sandbox.clone());
    Router::new()
        .merge(vendors)
        .route(
            "/v1/{*rest}",
            any(move |req: Request| stripe::serve_alias(stripe_alias.clone(), req)),
        )
        .nest(
            "/_sandbox",
            control::router().layer(middleware::from_fn_with_state(sandbox.clone(), guard::control)),
        )
        .route(
            "/",
            get(|| async { Json(serde_json::json!({ "sandbox": "era", "control": "/_sandbox" })) }),
        )
        .with_state(sandbox)
}

/// A vendor's routes; paths a simulator does not cover fall through to "not simulated".
fn vendor_router(vendor: &'static str) -> Router<Sandbox> {
    let routes = match vendor {
        "canvas" => canvas::emr_router(),
        // The FHIR API answers unknown routes itself, with an OperationOutcome as Canvas does.
        "canvas-fhir" => return canvas::fhir_router(),
        // Stripe answers unknown routes itself, with its "Unrecognized request URL" error.
        "stripe" => return stripe::api_router(),
        "zoom" => zoom::router(),
        "sendgrid" => sendgrid::router(),
        "twilio" => twilio::router(),
        "hubspot" => hubspot::router(),
        "fedex" => fedex::router(),
        "pioneerrx" => pharmacy::pioneerrx::router(),
        "boothwyn" => pharmacy::lifefile::router(pharmacy::Pharmacy::Boothwyn),
        "strive" => pharmacy::lifefile::router(pharmacy::Pharmacy::Strive),
        _ => Router::new(),
    };
    let routes = routes.fallback(move |req: Request| async move {
        let body = serde_json::json!({
            "error": {
                "type": "not_simulated",
                "message": format!("{vendor}: {} {} is not simulated yet", req.method(), req.uri().path()),
            }
        });
        (StatusCode::NOT_FOUND, Json(body))
    });
    // Zoom's gateway puts its tracking id on every answer, routes it has no handler for included.
    if vendor == "zoom" {
        routes.layer(middleware::map_response(zoom::track))
    } else {
        routes
    }
}

/// Counts every vendor call in the ledger and applies the first matching injected fault.
async fn record_and_inject(State(sandbox): State<Sandbox>, req: Request, next: Next) -> Response {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let fault = sandbox.take_fault(&method, &path);
    let kill = req.extensions().get::<serve::ConnectionKill>().cloned();

    if let Some(ms) = fault.as_ref().and_then(|f| f.latency_ms) {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    let action = fault.as_ref().and_then(|f| f.action.clone());
    let response = match action {
        Some(FaultAction::Status { status, body }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let body = body.unwrap_or_else(|| {
                // FedEx clients read its envelope on every error, so a made-up one wears it too.
                if path.starts_with("/fedex/") {
                    fedex::injected_body(status)
                } else {
                    serde_json::json!({ "error": { "message": "injected fault" } })
                }
            });
            let mut response = (status, Json(body)).into_response();
            if path.starts_with("/stripe/") {
                stripe::stamp(&mut response);
            }
            // SendGrid puts its rate-limit headers on every response, made-up failures included.
            if path.starts_with("/sendgrid/") {
                sendgrid::stamp(&sandbox, &mut response);
            }
            if path.starts_with("/zoom/") {
                zoom::stamp(&mut response);
            }
            response
        }
        Some(FaultAction::DropBefore) => {
            sandbox.record(&method, &path, None, Some("drop_before"));
            return drop_connection(kill).await;
        }
        Some(FaultAction::DropAfter) => {
            // The vendor does its work (and commits its effect); the caller never hears back.
            let response = next.run(req).await;
            sandbox.record(&method, &path, Some(response.status().as_u16()), Some("drop_after"));
            return drop_connection(kill).await;
        }
        None => next.run(req).await,
    };
    let injected = fault.map(|f| f.describe());
    sandbox.record(&method, &path, Some(response.status().as_u16()), injected.as_deref());
    response
}

/// Closes the client's connection without a response.
async fn drop_connection(kill: Option<serve::ConnectionKill>) -> Response {
    match kill {
        Some(kill) => {
            kill.fire();
            std::future::pending::<Response>().await
        }
        // Served without the sandbox's own accept loop (a router test): the nearest thing.
        None => StatusCode::BAD_GATEWAY.into_response(),
    }
}

/// Serves the sandbox on `listener` until `shutdown` resolves.
pub async fn run(
    sandbox: Sandbox,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve(listener, app(sandbox), shutdown).await
}

/// Shared handle type for vendor modules.
pub type Shared<T> = Arc<std::sync::Mutex<T>>;
