//! The sandbox's Canvas plugin against the real edge: with `canvas_plugin_webhook` the mesh points
//! the plugin at `/api/webhooks/canvas` and signs with the edge's own key, so a patient created in
//! Canvas is accepted by the edge (a wrong key or scheme would be a 401) and welcomed by email.

use std::time::{Duration, Instant};

use era_dev::{Mesh, MeshOptions, Ports, Secrets};
use secrecy::ExposeSecret;
use serde_json::{json, Value};

/// Drops the mesh's databases however the test ends.
struct Databases(Vec<String>);

impl Drop for Databases {
    fn drop(&mut self) {
        for name in &self.0 {
            era_kit::testing::drop_database_blocking(name);
        }
    }
}

/// Polls `check` every 100 ms until it answers, for at most `secs`.
async fn eventually<T, F: std::future::Future<Output = Option<T>>>(secs: u64, what: &str, check: impl Fn() -> F) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plugins_patient_created_is_accepted_by_the_edge_and_welcomes_the_patient() {
    let mut options = MeshOptions::new(era_kit::testing::server_url(), Secrets::generate());
    options.ports = Ports::ANY;
    let bytes: [u8; 6] = rand::random();
    options.database_prefix = format!("era_test_{}", hex::encode(bytes));
    options.rate_limit_multiplier = 1000;
    options.canvas_plugin_webhook = true;
    let mesh = Mesh::start(options).await.expect("the mesh starts");
    let _databases = Databases(mesh.databases.clone());
    mesh.wait_ready(Duration::from_secs(60))
        .await
        .expect("the mesh gets ready");
    let sandbox = mesh.sandbox_control();
    let http = reqwest::Client::new();

    let webhook: Value = sandbox
        .get(format!("{}/_sandbox/canvas/webhook", mesh.sandbox_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(webhook["url"], format!("{}/api/webhooks/canvas", mesh.edge_url));
    assert_eq!(webhook["paused"], false);

    // A patient created in Canvas, as a receptionist's EMR would (straight to the FHIR API).
    let token: Value = http
        .post(format!("{}/canvas/auth/token/", mesh.sandbox_url))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", mesh.secrets.canvas_client_id.as_str()),
            ("client_secret", mesh.secrets.canvas_client_secret.expose_secret()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let email = "plugin.sandbox@example.test";
    let created = http
        .post(format!("{}/canvas-fhir/Patient", mesh.sandbox_url))
        .bearer_auth(token["access_token"].as_str().unwrap())
        .json(&json!({
            "resourceType": "Patient",
            "extension": [{ "url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex", "valueCode": "F" }],
            "name": [{ "use": "official", "family": "Sandbox", "given": ["Plugin"] }],
            "gender": "female",
            "birthDate": "1984-06-02",
            "telecom": [{ "system": "email", "value": email }, { "system": "phone", "value": "+15555550151" }],
            "address": [{ "line": ["1 Plugin Way"], "city": "Columbus", "state": "OH", "postalCode": "43004", "country": "US" }],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);

    // The edge answers the delivery 200: the signature and the event passed its checks.
    let event = eventually(30, "the PATIENT_CREATED delivery", || {
        let sandbox = sandbox.clone();
        let url = format!("{}/_sandbox/canvas/events?type=PATIENT_CREATED", mesh.sandbox_url);
        async move {
            let body: Value = sandbox.get(url).send().await.ok()?.json().await.ok()?;
            let e = body["events"].get(0)?.clone();
            (e["delivery"] != "pending" && !e["attempts"].as_array()?.is_empty()).then_some(e)
        }
    })
    .await;
    assert_eq!(event["delivery"], "delivered", "{event}");
    assert_eq!(event["attempts"][0]["status"], 200, "{event}");
    assert_eq!(
        event["attempts"][0]["url"],
        format!("{}/api/webhooks/canvas/patient-created", mesh.edge_url)
    );

    // And the patient is welcomed, as the edge does for PATIENT_CREATED.
    eventually(60, "the welcome email", || {
        let sandbox = sandbox.clone();
        let url = format!("{}/_sandbox/inbox.json?to={email}", mesh.sandbox_url);
        async move {
            let body: Value = sandbox.get(url).send().await.ok()?.json().await.ok()?;
            (!body["messages"].as_array()?.is_empty()).then_some(())
        }
    })
    .await;
    mesh.shutdown().await;
}
