//! The edge's operational surface and shared behaviour: request ids, limits, CORS, errors.

use era_tests::{error_code, TestMesh};
use serde_json::Value;

#[tokio::test]
async fn health_readiness_metrics_and_docs_answer() {
    let mesh = TestMesh::start().await;
    assert_eq!(mesh.get("/healthz", None).await.status(), 200);
    let ready: Value = mesh.get("/readyz", None).await.json().await.unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["services"].as_object().unwrap().len(), 5);

    mesh.get("/api/admin/routing/GA", Some(&mesh.admin_secret())).await;
    let metrics = mesh.get("/metrics", None).await.text().await.unwrap();
    assert!(
        metrics.contains(r#"route="/api/admin/routing/{state}",status="200"} 1"#),
        "{metrics}"
    );
    assert!(!metrics.contains("/GA"), "path values must not become labels");

    let doc: Value = mesh.get("/openapi.json", None).await.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/api/admin/routing",
        "/api/admin/routing/{state}",
        "/api/auth/canvas",
        "/api/auth/logout",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from the OpenAPI document"
        );
    }
    // The viewer is Swagger UI, every file of it served by the edge, under a policy that lets
    // nothing else in.
    let docs = mesh.get("/docs", None).await;
    assert_eq!(docs.status(), 200);
    let policy = docs.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(
        policy.contains("script-src 'self'") && policy.contains("connect-src 'self'"),
        "{policy}"
    );
    let page = docs.text().await.unwrap();
    for (asset, content_type, needle) in [
        (
            "/docs/assets/swagger-ui-bundle.js",
            "text/javascript",
            "SwaggerUIBundle",
        ),
        ("/docs/assets/swagger-ui.css", "text/css", ".swagger-ui"),
        ("/docs/assets/init.js", "text/javascript", "/openapi.json"),
    ] {
        assert!(page.contains(asset), "the page loads {asset}");
        let resp = mesh.get(asset, None).await;
        assert_eq!(resp.status(), 200, "{asset}");
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with(content_type));
        assert!(resp.text().await.unwrap().contains(needle), "{asset}");
    }
    assert!(
        !page.contains("https://") && !page.contains("http://"),
        "no asset from elsewhere"
    );
    assert_eq!(mesh.get("/docs/assets/nonesuch.js", None).await.status(), 404);
}

/// A real OpenAPI 3.1 validator (`openapi-spec-validator`, from PyPI) reads the document the edge
/// serves: a client generator must be able to trust it.
#[tokio::test]
async fn the_openapi_document_passes_a_validator() {
    let has_validator = std::process::Command::new("python3")
        .args(["-c", "import openapi_spec_validator"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        has_validator,
        "this test needs python3 with openapi-spec-validator: pip install openapi-spec-validator"
    );
    let mesh = TestMesh::start().await;
    let resp = mesh.get("/openapi.json", None).await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();

    // Paging and the magic link's token are query parameters, wherever they appear.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for p in op["parameters"].as_array().into_iter().flatten() {
                let name = p["name"].as_str().unwrap();
                if ["pageSize", "pageToken", "token"].contains(&name) {
                    assert_eq!(p["in"], "query", "{method} {path}: {name}");
                }
            }
        }
    }

    let file = std::env::temp_dir().join(format!("era-openapi-{}.json", uuid::Uuid::new_v4().simple()));
    std::fs::write(&file, &text).unwrap();
    // The validator, then the task-action form's two shapes against its request schema (a schema no
    // body could satisfy is still a valid document).
    let script = r#"
import json, sys
from openapi_spec_validator import validate
from openapi_schema_validator import OAS31Validator
with open(sys.argv[1]) as f:
    doc = json.load(f)
validate(doc)
schema = doc["paths"]["/api/task-action"]["post"]["requestBody"]["content"]["application/json"]["schema"]
schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]] if "$ref" in schema else schema
check = OAS31Validator(schema)
for body in ({"taskId": "t1", "action": "approve", "doseLabel": "0.25 mg weekly"},
             {"taskId": "t1", "action": "deny", "reason": "contraindicated"}):
    check.validate(body)
for body in ({"taskId": "t1", "action": "deny", "reason": "no", "doseLabel": "x"},
             {"taskId": "t1", "action": "cancel"}):
    assert not check.is_valid(body), body
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&file)
        .output()
        .expect("python3 runs");
    std::fs::remove_file(&file).ok();
    assert!(
        out.status.success(),
        "the OpenAPI document is not valid:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn readiness_fails_when_a_service_is_down() {
    let mesh = TestMesh::start().await;
    mesh.mesh.shutdown_service("era-scheduling").await;
    // The answer is reused for a second (the mesh's start asked just now): within a few it says so.
    let mut resp = mesh.get("/readyz", None).await;
    for _ in 0..40 {
        if resp.status() == 503 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        resp = mesh.get("/readyz", None).await;
    }
    assert_eq!(resp.status(), 503);
    let ready: Value = resp.json().await.unwrap();
    assert_ne!(ready["services"]["era.scheduling.v1.SchedulingService"], "SERVING");
    assert_eq!(ready["services"]["era.canvas.v1.CanvasService"], "SERVING");
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_errors_share_one_shape() {
    let mesh = TestMesh::start().await;
    let resp = mesh
        .http
        .get(mesh.url("/healthz"))
        .header("x-request-id", "req-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "req-abc-123");
    let resp = mesh.get("/nowhere", None).await;
    assert!(!resp.headers()["x-request-id"].is_empty());
    assert_eq!(error_code(resp, 404).await, "not_found");

    let big = "x".repeat(1024 * 1024 + 1);
    let resp = mesh
        .http
        .put(mesh.url("/api/admin/routing/WY"))
        .bearer_auth(mesh.admin_secret())
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(resp, 413).await, "payload_too_large");

    let resp = mesh
        .http
        .put(mesh.url("/api/admin/routing/WY"))
        .bearer_auth(mesh.admin_secret())
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_request");
}

#[tokio::test]
async fn cors_allows_only_configured_origins() {
    let mesh = TestMesh::start_with(|o| o.cors_allowed_origins = vec!["https://admin.example.com".into()]).await;
    let preflight = |origin: &'static str| {
        mesh.http
            .request(reqwest::Method::OPTIONS, mesh.url("/api/admin/routing"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let ok = preflight("https://admin.example.com").await.unwrap();
    assert_eq!(ok.headers()["access-control-allow-origin"], "https://admin.example.com");
    let other = preflight("https://evil.example.com").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn a_wrongly_typed_field_is_named_without_echoing_its_value() {
    let mesh = TestMesh::start().await;
    let resp = mesh
        .http
        .put(mesh.url("/api/admin/routing/WY"))
        .bearer_auth(mesh.admin_secret())
        .json(&serde_json::json!({
            "routes": [{ "pharmacyId": "strive", "prescriberId": "neelima-singh", "priority": "Jane Doe 1980-01-01" }]
        }))
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_request");
    let message = body["error"]["message"].as_str().unwrap();
    assert_eq!(message, "routes[0].priority: must be an integer");
    assert_eq!(body["error"]["fields"][0]["field"], "routes[0].priority");
    assert!(
        !body.to_string().contains("Jane") && !body.to_string().contains("1980"),
        "{body}"
    );
}

#[tokio::test]
async fn with_an_ops_token_metrics_and_readiness_detail_are_for_operators_only() {
    let mesh = TestMesh::start().await;
    let token = "ops-token-0123456789abcdef0123456789abcdef";
    let edge = mesh
        .start_edge_replica(|c| c.secrets.ops_token = Some(era_kit::SecretString::from(token)))
        .await;
    let get = |path: &str, bearer: Option<&str>| {
        let mut req = mesh.http.get(format!("{}{path}", edge.url));
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        req.send()
    };
    let refused = get("/metrics", None).await.unwrap();
    assert_eq!(refused.status(), 401);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "ops_token_required");
    assert_eq!(get("/metrics", Some("wrong")).await.unwrap().status(), 401);
    let metrics = get("/metrics", Some(token)).await.unwrap();
    assert_eq!(metrics.status(), 200);
    assert!(metrics.text().await.unwrap().contains("# TYPE"));

    // A load balancer still learns ready or not; only the operator learns which service is down.
    let anyone: Value = get("/readyz", None).await.unwrap().json().await.unwrap();
    assert_eq!(anyone["status"], "ready");
    assert!(anyone["services"].as_object().unwrap().is_empty(), "{anyone}");
    let operator: Value = get("/readyz", Some(token)).await.unwrap().json().await.unwrap();
    assert_eq!(operator["services"].as_object().unwrap().len(), 5, "{operator}");
}
