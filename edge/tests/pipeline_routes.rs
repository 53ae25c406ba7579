//! The approval pipeline's routes and the pharmacies' webhook through the whole router, with no
//! service behind it: who may call, what is refused before any service is asked, and that a request
//! which passes reaches the service (here: nothing answers, so 503). End-to-end behaviour is in
//! `tests/` (TestMesh).

use axum::{
    body::Body,
    http::{Request, StatusCode},
    Router,
};
use era_edge::{auth::jwt::TokenKind, AppState};
use era_kit::{testing::TestDb, ExposeSecret, SecretString};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tower::ServiceExt;

mod common;

/// GMP's callback secret; Boothwyn and Strive have their own.
const PHARMACY_SECRET: &str = "pharmacy-webhook-secret-0123456789abcdef";
const BOOTHWYN_SECRET: &str = "boothwyn-webhook-secret-0123456789abcdef";
const STRIVE_SECRET: &str = "strive-webhook-secret-0123456789abcdef01";

struct Fixture {
    app: Router,
    admin_secret: String,
    admin_session: String,
    patient_tokens: TokenKind,
    _db: TestDb,
}

async fn fixture(pharmacy_secret: Option<&str>) -> Fixture {
    let db = TestDb::new(&era_edge::MIGRATOR).await;
    let mut config = common::config(&db);
    // These tests send many refused callbacks from one client; the limits have tests of their own.
    config.rate_limit_multiplier = 100;
    // GMP's secret as given; Boothwyn and Strive each their own.
    let webhooks = &mut config.secrets.pharmacy_webhooks;
    webhooks.pioneerrx = pharmacy_secret.map(SecretString::from);
    if pharmacy_secret.is_some() {
        webhooks.boothwyn = Some(SecretString::from(BOOTHWYN_SECRET));
        webhooks.strive = Some(SecretString::from(STRIVE_SECRET));
    }
    config.validate().unwrap();
    let admin_secret = config.auth.admin_secret.expose_secret().to_owned();
    let state = AppState::new(config, db.pool.clone()).await.unwrap();
    Fixture {
        app: era_edge::router(state),
        admin_secret,
        admin_session: TokenKind::admin(&SecretString::from(common::ADMIN_JWT_SECRET))
            .issue("ops@clinic.example")
            .token,
        patient_tokens: TokenKind::patient(&SecretString::from(common::PATIENT_JWT_SECRET)),
        _db: db,
    }
}

/// Sends a request and answers its status and JSON body (`null` when there is none).
async fn send(app: &Router, req: Request<Body>) -> (StatusCode, Value) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn post_json(path: &str, token: Option<&str>, body: &Value) -> Request<Body> {
    let mut req = Request::post(path).header("content-type", "application/json");
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    req.body(Body::from(body.to_string())).unwrap()
}

fn get(path: &str, token: Option<&str>) -> Request<Body> {
    let mut req = Request::get(path);
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    req.body(Body::empty()).unwrap()
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

fn fields(body: &Value) -> Vec<&str> {
    body["error"]["fields"]
        .as_array()
        .map(|f| f.iter().filter_map(|f| f["field"].as_str()).collect())
        .unwrap_or_default()
}

fn signature(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

fn callback(pharmacy: &str, signature: Option<String>, body: &str) -> Request<Body> {
    let mut req =
        Request::post(format!("/api/webhooks/pharmacy/{pharmacy}")).header("content-type", "application/json");
    if let Some(signature) = signature {
        req = req.header("x-pharmacy-signature", signature);
    }
    req.body(Body::from(body.to_owned())).unwrap()
}

#[tokio::test]
async fn the_pharmacy_webhook_answers_503_without_its_secret() {
    let f = fixture(None).await;
    let body = r#"{"eventId":"evt-1","status":"shipped"}"#;
    let now = chrono::Utc::now().timestamp();
    let (status, resp) = send(
        &f.app,
        callback("boothwyn", Some(signature(PHARMACY_SECRET, now, body.as_bytes())), body),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(code(&resp), "webhook_not_configured");
    // Stripe's route, through the same verifier, still does the same.
    let (status, resp) = send(&f.app, post_json("/api/webhooks/stripe", None, &json!({"id": "evt_1"}))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(code(&resp), "webhook_not_configured");
}

#[tokio::test]
async fn pharmacy_callbacks_are_verified_before_anything_else() {
    // Two secrets during a rotation; either signs.
    let f = fixture(Some(&format!(
        "old-secret-0123456789abcdef0123456789, {PHARMACY_SECRET}"
    )))
    .await;
    let body = r#"{"eventId":"evt-1","pharmacy":"pioneerrx","orderId":"PRX-1","status":"shipped"}"#;
    let now = chrono::Utc::now().timestamp();
    let good = || Some(signature(PHARMACY_SECRET, now, body.as_bytes()));

    let (status, resp) = send(&f.app, callback("walgreens", good(), body)).await;
    assert_eq!((status, code(&resp)), (StatusCode::NOT_FOUND, "not_found"));

    for bad in [
        None,
        Some("garbage".to_owned()),
        Some(signature(
            "another-secret-0123456789abcdef0123456789",
            now,
            body.as_bytes(),
        )),
        Some(signature(PHARMACY_SECRET, now - 301, body.as_bytes())),
        Some(signature(PHARMACY_SECRET, now, br#"{"eventId":"evt-2"}"#)),
    ] {
        let (status, resp) = send(&f.app, callback("pioneerrx", bad.clone(), body)).await;
        assert_eq!(
            (status, code(&resp)),
            (StatusCode::BAD_REQUEST, "invalid_signature"),
            "{bad:?}"
        );
    }

    // Each pharmacy signs with its own secret: GMP's does not pass for another pharmacy.
    for slug in ["boothwyn", "strive"] {
        let (status, resp) = send(&f.app, callback(slug, good(), body)).await;
        assert_eq!(
            (status, code(&resp)),
            (StatusCode::BAD_REQUEST, "invalid_signature"),
            "{slug}"
        );
    }

    for no_event_id in [r#"{"status":"shipped"}"#, r#"{"eventId":""}"#, r#"{"eventId":42}"#] {
        let sig = Some(signature(STRIVE_SECRET, now, no_event_id.as_bytes()));
        let (status, resp) = send(&f.app, callback("strive", sig, no_event_id)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{no_event_id}");
        assert_eq!(fields(&resp), ["eventId"], "{no_event_id}");
    }
    let not_json = "eventId=evt-1";
    let sig = Some(signature(STRIVE_SECRET, now, not_json.as_bytes()));
    let (status, resp) = send(&f.app, callback("strive", sig, not_json)).await;
    assert_eq!((status, code(&resp)), (StatusCode::BAD_REQUEST, "invalid_event"));

    // Verified, so it goes on to pharmacy-routing, which is not running here. Every slug gets there.
    for (slug, secret) in [
        ("pioneerrx", PHARMACY_SECRET),
        ("gmp", PHARMACY_SECRET),
        ("boothwyn", BOOTHWYN_SECRET),
        ("strive", STRIVE_SECRET),
    ] {
        let sig = Some(signature(secret, now, body.as_bytes()));
        let (status, resp) = send(&f.app, callback(slug, sig, body)).await;
        assert_eq!(
            (status, code(&resp)),
            (StatusCode::SERVICE_UNAVAILABLE, "service_unavailable"),
            "{slug}"
        );
    }
}

#[tokio::test]
async fn approvals_and_denials_are_for_admins_only() {
    let f = fixture(None).await;
    let patient = f.patient_tokens.issue("pat-1").token;
    let approve = json!({"doseLabel": "0.25 mg weekly"});
    let deny = json!({"reason": "Contraindicated"});
    let action = json!({"taskId": "task-1", "action": "approve", "doseLabel": "0.25 mg weekly"});
    for (path, body) in [
        ("/api/rx-queue/tasks/task-1/approve", &approve),
        ("/api/rx-queue/tasks/task-1/deny", &deny),
        ("/api/task-action", &action),
    ] {
        let (status, _) = send(&f.app, post_json(path, None, body)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        let (status, _) = send(&f.app, post_json(path, Some("not-a-token"), body)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        let (status, _) = send(&f.app, post_json(path, Some(&patient), body)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        // An admin gets through to pharmacy-routing (not running here).
        for admin in [&f.admin_secret, &f.admin_session] {
            let (status, _) = send(&f.app, post_json(path, Some(admin), body)).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        }
    }
    for path in [
        "/api/rx-queue/runs/run-1",
        "/api/admin/orchestration-runs",
        "/api/admin/pharmacy-orders",
        "/api/admin/pharmacy-orders/order-1",
        "/api/admin/sync-logs",
        "/api/admin/shipments/pat-1",
        "/api/admin/refills/pat-1",
    ] {
        assert_eq!(
            send(&f.app, get(path, None)).await.0,
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
        assert_eq!(
            send(&f.app, get(path, Some(&patient))).await.0,
            StatusCode::FORBIDDEN,
            "{path}"
        );
        assert_eq!(
            send(&f.app, get(path, Some(&f.admin_session))).await.0,
            StatusCode::SERVICE_UNAVAILABLE,
            "{path}"
        );
    }
}

#[tokio::test]
async fn bad_requests_name_their_fields_before_any_service_is_asked() {
    let f = fixture(None).await;
    let admin = Some(f.admin_secret.as_str());
    let cases = [
        (
            "/api/rx-queue/tasks/task-1/approve",
            json!({"doseLabel": " ", "note": "n".repeat(4001)}),
            vec!["doseLabel", "note"],
        ),
        ("/api/rx-queue/tasks/task-1/approve", json!({}), vec!["doseLabel"]),
        (
            "/api/rx-queue/tasks/task-1/deny",
            json!({"reason": "r".repeat(2001)}),
            vec!["reason"],
        ),
        (
            "/api/task-action",
            json!({"action": "deny", "reason": "no"}),
            vec!["taskId"],
        ),
        (
            "/api/task-action",
            json!({"taskId": "task-1", "action": "approve", "doseLabel": ""}),
            vec!["doseLabel"],
        ),
    ];
    for (path, body, want) in cases {
        let (status, resp) = send(&f.app, post_json(path, admin, &body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body}");
        assert_eq!(fields(&resp), want, "{path} {body}");
    }
    // Unknown fields, and fields of the other action, are refused.
    for (path, body) in [
        (
            "/api/rx-queue/tasks/task-1/approve",
            json!({"doseLabel": "x", "approvedBy": "someone"}),
        ),
        (
            "/api/task-action",
            json!({"taskId": "t", "action": "deny", "reason": "no", "doseLabel": "x"}),
        ),
        ("/api/task-action", json!({"taskId": "t", "action": "cancel"})),
    ] {
        let (status, _) = send(&f.app, post_json(path, admin, &body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body}");
    }
    for (path, field) in [
        ("/api/admin/orchestration-runs?status=done", "status"),
        ("/api/admin/pharmacy-orders?status=canceled", "status"),
        ("/api/admin/sync-logs?from=yesterday", "from"),
        ("/api/admin/sync-logs?to=2025-13-01T00:00:00Z", "to"),
        (
            "/api/admin/sync-logs?from=2025-02-01T00:00:00Z&to=2025-01-01T00:00:00Z",
            "to",
        ),
    ] {
        let (status, resp) = send(&f.app, get(path, admin)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(fields(&resp), [field], "{path}");
    }
    // Good filters go on to the service.
    for path in [
        "/api/admin/orchestration-runs?status=running&taskId=t&patientId=p&pageSize=5",
        "/api/admin/pharmacy-orders?status=shipped&pharmacy=gmp",
        "/api/admin/sync-logs?from=2025-01-01T00:00:00Z&to=2025-02-01T00:00:00Z&status=failure",
    ] {
        assert_eq!(
            send(&f.app, get(path, admin)).await.0,
            StatusCode::SERVICE_UNAVAILABLE,
            "{path}"
        );
    }
}

#[tokio::test]
async fn a_patient_reads_only_their_own_shipments() {
    let f = fixture(None).await;
    let own = f.patient_tokens.issue("pat-1").token;
    let path = "/api/patient-shipments/pat-1";
    // Allowed through to pharmacy-routing (not running here).
    assert_eq!(
        send(&f.app, get(path, Some(&own))).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        send(&f.app, get(path, Some(&f.admin_secret))).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        send(&f.app, get("/api/patient-shipments/pat-2", Some(&own))).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        send(&f.app, get(path, Some(&f.admin_session))).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(send(&f.app, get(path, None)).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_openapi_document_lists_the_new_routes() {
    let f = fixture(None).await;
    let (status, doc) = send(&f.app, get("/openapi.json", None)).await;
    assert_eq!(status, StatusCode::OK);
    for (path, method) in [
        ("/api/rx-queue/tasks/{taskId}/approve", "post"),
        ("/api/rx-queue/tasks/{taskId}/deny", "post"),
        ("/api/task-action", "post"),
        ("/api/rx-queue/runs/{runId}", "get"),
        ("/api/admin/orchestration-runs", "get"),
        ("/api/admin/sync-logs", "get"),
        ("/api/admin/pharmacy-orders", "get"),
        ("/api/admin/pharmacy-orders/{orderId}", "get"),
        ("/api/admin/shipments/{patientId}", "get"),
        ("/api/admin/refills/{patientId}", "get"),
        ("/api/patient-shipments/{patientId}", "get"),
        ("/api/webhooks/pharmacy/{pharmacy}", "post"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} is not documented"
        );
    }
}
