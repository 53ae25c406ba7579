//! The Canvas plugin's events at the edge: every delivery is stored as it came; a bad signature
//! (missing, stale, tampered, replayed, another key) is refused and nothing is processed; an event is
//! processed once per id, and a patient is welcomed once whatever the number of events.

use era_proto::{canvas::v1 as canvas, common::v1::Address};
use era_tests::{error_code, unix_now, TestMesh};
use serde_json::json;

const ROUTE: &str = "/api/webhooks/canvas/patient-created";

async fn edge_count(mesh: &TestMesh, sql: &str) -> i64 {
    let pool = sqlx::PgPool::connect(&mesh.database_url("edge")).await.unwrap();
    let n = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
    pool.close().await;
    n
}

async fn welcomes(mesh: &TestMesh, patient: &str) -> i64 {
    let pool = sqlx::PgPool::connect(&mesh.database_url("notifications"))
        .await
        .unwrap();
    // notifications keeps a caller's key under its own `key:` prefix.
    let n = sqlx::query_scalar("select count(*) from notifications where dedupe_key = $1")
        .bind(format!("key:welcome:{patient}"))
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n
}

/// Sends forgeries of `body` to the plugin's `route`: unsigned, stale either way, `tampered` sent
/// under `body`'s signature, and signed with another key; each is refused with its reason.
pub(crate) async fn forgeries_are_refused(mesh: &TestMesh, route: &str, body: &str, tampered: &str) {
    let send = |ts: Option<(&str, String)>, body: &str| {
        let mut req = mesh
            .http
            .post(mesh.url(route))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some((ts, signature)) = ts {
            req = req.header("x-timestamp", ts).header("x-signature", signature);
        }
        req.send()
    };
    let unsigned = send(None, body).await.unwrap();
    assert_eq!(error_code(unsigned, 401).await, "missing_signature");
    for skew in [-301, 301] {
        let stale = mesh.post_signed(route, &(unix_now() + skew).to_string(), body).await;
        assert_eq!(error_code(stale, 401).await, "stale_timestamp", "{skew}");
    }
    let ts = unix_now().to_string();
    let forged = send(Some((&ts, mesh.canvas_signature(&ts, body.as_bytes()))), tampered)
        .await
        .unwrap();
    assert_eq!(error_code(forged, 401).await, "invalid_signature");
    let other_key = era_edge::auth::hmac::sign(
        &era_kit::SecretString::from("another-plugin-secret-0123456789abcdef"),
        &ts,
        body.as_bytes(),
    );
    let wrong = send(Some((&ts, other_key)), body).await.unwrap();
    assert_eq!(error_code(wrong, 401).await, "invalid_signature");
}

#[tokio::test]
async fn a_patient_created_in_canvas_is_welcomed_once_and_forgeries_change_nothing() {
    let mesh = TestMesh::start().await;
    let email = "plugin.welcome@example.test";
    let patient = mesh
        .canvas()
        .create_patient(mesh.admin_request(canvas::CreatePatientRequest {
            given_name: "Plugin".into(),
            family_name: "Welcome".into(),
            birth_date: "1981-01-01".into(),
            gender: canvas::Gender::Female as i32,
            birth_sex: canvas::BirthSex::Female as i32,
            email: email.into(),
            phone: "+15555550150".into(),
            address: Some(Address {
                lines: vec!["1 Plugin Way".into()],
                city: "Columbus".into(),
                state: "OH".into(),
                postal_code: "43004".into(),
                country: "US".into(),
            }),
            idempotency_key: "plugin-welcome".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .patient
        .unwrap()
        .id;
    let event = |id: &str| {
        json!({ "id": id, "type": "PATIENT_CREATED", "patientId": patient, "occurredAt": "2026-12-07T10:00:00Z" })
            .to_string()
    };
    let body = event("evt-created-1");

    // Forgeries: no signature, stale either way, tampered, another key (a replay comes below).
    forgeries_are_refused(&mesh, ROUTE, &body, &event("evt-forged")).await;
    let ts = unix_now().to_string();
    assert_eq!(
        edge_count(
            &mesh,
            "select count(*) from plugin_deliveries where outcome = 'bad_signature'"
        )
        .await,
        5,
        "every forgery is kept"
    );
    assert_eq!(
        edge_count(&mesh, "select count(*) from plugin_events").await,
        0,
        "none processed"
    );
    assert_eq!(welcomes(&mesh, &patient).await, 0);

    // The real event, delivered three times (each a fresh signature), then a replay of one delivery.
    let first = mesh.post_signed(ROUTE, &ts, &body).await;
    assert_eq!(first.status(), 200);
    let first: serde_json::Value = first.json().await.unwrap();
    assert_eq!(first["processed"], true);
    let replay = mesh.post_signed(ROUTE, &ts, &body).await;
    assert_eq!(error_code(replay, 401).await, "replayed_request");
    for i in 1..3 {
        let again = mesh.post_signed(ROUTE, &(unix_now() + i).to_string(), &body).await;
        assert_eq!(again.status(), 200);
        let again: serde_json::Value = again.json().await.unwrap();
        assert_eq!(again["processed"], false, "delivery {i} of the same event");
    }
    // Another event naming the same patient is processed, and still one welcome.
    let second = mesh
        .post_signed(ROUTE, &(unix_now() + 5).to_string(), &event("evt-created-2"))
        .await;
    assert_eq!(second.status(), 200);
    assert_eq!(welcomes(&mesh, &patient).await, 1, "one welcome for the patient");
    let mail = mesh.nth_mail(email, 1).await;
    assert!(mail.contains("Hi Plugin"), "{mail}");

    // Signed but not an event: refused, and kept.
    let malformed = mesh
        .post_signed(ROUTE, &(unix_now() + 6).to_string(), "{\"id\": 7}")
        .await;
    assert_eq!(malformed.status(), 400);
    // A patient Canvas does not have: nothing is done.
    let ghost = json!({ "id": "evt-ghost", "type": "PATIENT_CREATED", "patientId": "nosuchpatient0001" }).to_string();
    let unknown = mesh.post_signed(ROUTE, &(unix_now() + 7).to_string(), &ghost).await;
    assert_eq!(unknown.status(), 404);
    assert_eq!(welcomes(&mesh, "nosuchpatient0001").await, 0);
    assert_eq!(
        edge_count(
            &mesh,
            "select count(*) from plugin_deliveries where outcome in ('malformed', 'unknown_patient')"
        )
        .await,
        2
    );
}
