//! The edge's auth matrix on an admin route, and the Canvas plugin's HMAC login.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use era_edge::auth::jwt::Claims;
use era_tests::{error_code, unix_now, TestMesh};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

const ROUTE: &str = "/api/admin/routing/GA";

fn claims(mesh: &TestMesh, edit: impl FnOnce(&mut Claims)) -> Claims {
    let mut c = mesh.admin_tokens().issue("ops@clinic.example").claims;
    edit(&mut c);
    c
}

fn sign(mesh: &TestMesh, alg: Algorithm, claims: &Claims) -> String {
    jsonwebtoken::encode(
        &Header::new(alg),
        claims,
        &EncodingKey::from_secret(&mesh.admin_jwt_key()),
    )
    .unwrap()
}

#[tokio::test]
async fn the_admin_route_accepts_only_valid_admin_credentials() {
    let mesh = TestMesh::start().await;

    let resp = mesh.get(ROUTE, None).await;
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    assert_eq!(error_code(resp, 401).await, "missing_credentials");
    assert_eq!(
        error_code(mesh.get(ROUTE, Some("not-the-secret")).await, 401).await,
        "invalid_token"
    );

    assert_eq!(mesh.get(ROUTE, Some(&mesh.admin_secret())).await.status(), 200);
    assert_eq!(
        mesh.get(ROUTE, Some(&mesh.admin_jwt("ops@clinic.example")))
            .await
            .status(),
        200
    );

    let valid = claims(&mesh, |_| {});
    let header_none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&valid).unwrap());
    let forged: Vec<(&str, String)> = vec![
        ("alg none", format!("{header_none}.{body}.")),
        ("HS512", sign(&mesh, Algorithm::HS512, &valid)),
        (
            "wrong iss",
            sign(
                &mesh,
                Algorithm::HS256,
                &claims(&mesh, |c| c.iss = "someone-else".into()),
            ),
        ),
        (
            "wrong aud",
            sign(
                &mesh,
                Algorithm::HS256,
                &claims(&mesh, |c| c.aud = "era-patient".into()),
            ),
        ),
        (
            "expired",
            sign(
                &mesh,
                Algorithm::HS256,
                &claims(&mesh, |c| {
                    c.iat = unix_now() - 2 * 3600;
                    c.exp = unix_now() - 3600;
                }),
            ),
        ),
        (
            "nbf in the future",
            sign(
                &mesh,
                Algorithm::HS256,
                &claims(&mesh, |c| c.nbf = Some(unix_now() + 3600)),
            ),
        ),
        ("patient key", mesh.patient_tokens().sign(&valid)),
    ];
    for (what, token) in forged {
        assert_eq!(
            error_code(mesh.get(ROUTE, Some(&token)).await, 401).await,
            "invalid_token",
            "{what}"
        );
    }

    // A patient's own token is valid, just not here.
    let patient = mesh.patient_tokens().issue("pat-123").token;
    assert_eq!(
        error_code(mesh.get(ROUTE, Some(&patient)).await, 403).await,
        "forbidden"
    );
}

#[tokio::test]
async fn canvas_hmac_login_issues_a_session_that_logout_revokes() {
    let mesh = TestMesh::start().await;
    let ts = unix_now().to_string();
    let resp = mesh
        .post_signed("/api/auth/canvas", &ts, r#"{"staffId":"staff-42"}"#)
        .await;
    assert_eq!(resp.status(), 200);
    let session: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(session["tokenType"], "Bearer");
    assert_eq!(session["subject"], "canvas-staff:staff-42");
    let token = session["token"].as_str().unwrap().to_owned();
    let claims = mesh.admin_tokens().verify(&token).unwrap();
    assert_eq!(claims.exp - claims.iat, 86_400);
    assert_eq!(mesh.get(ROUTE, Some(&token)).await.status(), 200);

    let logout = mesh
        .http
        .post(mesh.url("/api/auth/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);
    assert_eq!(
        error_code(mesh.get(ROUTE, Some(&token)).await, 401).await,
        "token_revoked"
    );
    // Another session of the same person is untouched.
    assert_eq!(
        mesh.get(ROUTE, Some(&mesh.admin_jwt("canvas-staff:staff-42")))
            .await
            .status(),
        200
    );

    // Ending a staff member's plugin sessions ends all of theirs, and only theirs; only
    // ADMIN_SECRET may do it.
    let other = mesh.admin_jwt("canvas-staff:staff-42");
    let colleague = mesh.admin_jwt("canvas-staff:staff-43");
    let end = |credential: String| {
        mesh.http
            .delete(mesh.url("/api/admin/plugin-sessions/staff-42"))
            .bearer_auth(credential)
            .send()
    };
    assert_eq!(end(colleague.clone()).await.unwrap().status(), 403);
    assert_eq!(end(mesh.admin_secret()).await.unwrap().status(), 204);
    assert_eq!(
        error_code(mesh.get(ROUTE, Some(&other)).await, 401).await,
        "token_revoked"
    );
    assert_eq!(mesh.get(ROUTE, Some(&colleague)).await.status(), 200);
    let bad = mesh
        .http
        .delete(mesh.url("/api/admin/plugin-sessions/a%20b"))
        .bearer_auth(mesh.admin_secret())
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    // The plugin may vouch for them again: a session issued after the second of the revocation
    // works (sessions are compared by their issue second, so one issued in it is refused too).
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let again = mesh
        .post_signed("/api/auth/canvas", &unix_now().to_string(), r#"{"staffId":"staff-42"}"#)
        .await;
    let again: serde_json::Value = again.json().await.unwrap();
    assert_eq!(
        mesh.get(ROUTE, Some(again["token"].as_str().unwrap())).await.status(),
        200
    );

    let secret_logout = mesh
        .http
        .post(mesh.url("/api/auth/logout"))
        .bearer_auth(mesh.admin_secret())
        .send()
        .await;
    assert_eq!(error_code(secret_logout.unwrap(), 400).await, "invalid_argument");
}

#[tokio::test]
async fn hmac_signatures_hold_for_300_seconds_either_way_and_only_once() {
    let mesh = TestMesh::start().await;
    let now = unix_now();
    // The exact ±300 / ±301 boundaries are unit-tested with a fixed clock (edge auth::hmac); here
    // the margins leave room for the clock to tick between signing and checking.
    for (i, skew) in [295_i64, -295].into_iter().enumerate() {
        let body = format!(r#"{{"staffId":"staff-{i}"}}"#);
        let resp = mesh
            .post_signed("/api/auth/canvas", &(now + skew).to_string(), &body)
            .await;
        assert_eq!(resp.status(), 200, "skew {skew}");
    }
    for skew in [305_i64, -305] {
        let resp = mesh
            .post_signed("/api/auth/canvas", &(now + skew).to_string(), r#"{"staffId":"s"}"#)
            .await;
        assert_eq!(error_code(resp, 401).await, "stale_timestamp", "skew {skew}");
    }
    // RFC 3339 timestamps work too.
    let rfc = chrono::Utc::now().to_rfc3339();
    assert_eq!(
        mesh.post_signed("/api/auth/canvas", &rfc, r#"{"staffId":"rfc"}"#)
            .await
            .status(),
        200
    );

    // The very same signed request again is a replay.
    let ts = now.to_string();
    let body = r#"{"staffId":"staff-replay"}"#;
    assert_eq!(mesh.post_signed("/api/auth/canvas", &ts, body).await.status(), 200);
    assert_eq!(
        error_code(mesh.post_signed("/api/auth/canvas", &ts, body).await, 401).await,
        "replayed_request"
    );

    // A body changed after signing.
    let signature = mesh.canvas_signature(&ts, br#"{"staffId":"staff-a"}"#);
    let tampered = mesh
        .http
        .post(mesh.url("/api/auth/canvas"))
        .header("x-timestamp", &ts)
        .header("x-signature", signature)
        .body(r#"{"staffId":"staff-b"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(tampered, 401).await, "invalid_signature");

    let unsigned = mesh
        .http
        .post(mesh.url("/api/auth/canvas"))
        .body(r#"{"staffId":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(unsigned, 401).await, "missing_signature");

    // Signed, but not the shape the route takes: refused, naming the field.
    let resp = mesh
        .post_signed("/api/auth/canvas", &ts, &json!({"staffId": "a b"}).to_string())
        .await;
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["fields"][0]["field"], "staffId");
}

#[tokio::test]
async fn every_admin_prefix_requires_admin() {
    let mesh = TestMesh::start().await;
    let patient = mesh.patient_tokens().issue("pat-1").token;
    for path in [
        "/api/admin/routing",
        "/api/admin/medications",
        "/api/tasks",
        "/api/rx-queue/tasks",
        "/api/admin/sync-logs",
        "/api/admin/orchestration-runs",
    ] {
        assert_eq!(
            error_code(mesh.get(path, None).await, 401).await,
            "missing_credentials",
            "{path}"
        );
        assert_eq!(
            error_code(mesh.get(path, Some(&patient)).await, 403).await,
            "forbidden",
            "{path}"
        );
        let status = mesh.get(path, Some(&mesh.admin_secret())).await.status().as_u16();
        assert!(status == 200 || status == 501, "{path}: {status}");
    }
}
