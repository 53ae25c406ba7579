//! Routing through the edge: REST -> auth -> gRPC -> PostgreSQL -> answer.

use era_tests::{error_code, TestMesh};
use serde_json::{json, Value};

#[tokio::test]
async fn a_state_routes_through_the_whole_mesh() {
    let mesh = TestMesh::start().await;
    let secret = mesh.admin_secret();
    let d: Value = mesh
        .get("/api/admin/routing/%20ny%20", Some(&secret))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(d["state"], "NY");
    assert_eq!(d["pharmacy"]["id"], "gmp");
    assert_eq!(
        d["prescriber"],
        json!({ "id": "ali-nolan", "name": "Ali Nolan FNP-C", "npi": "1982609764", "active": true })
    );
    assert_eq!(d["reason"], "primary_route");

    let d: Value = mesh
        .get("/api/admin/routing/wy?medication=tirzepatide", Some(&secret))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (d["pharmacy"]["id"].as_str(), d["reason"].as_str()),
        (Some("strive"), Some("fallback_pharmacy"))
    );
    assert_eq!(d["prescriber"]["npi"], "1164633533");

    let m: Value = mesh
        .get("/api/admin/routing", Some(&secret))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(m["states"].as_array().unwrap().len(), 51);
    let meds: Value = mesh
        .get("/api/admin/medications", Some(&secret))
        .await
        .json()
        .await
        .unwrap();
    let sema = meds["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "semaglutide")
        .unwrap()
        .clone();
    assert_eq!(sema["priceCents"], 29900);
}

#[tokio::test]
async fn bad_and_refused_states_get_specific_errors() {
    let mesh = TestMesh::start().await;
    let secret = mesh.admin_secret();
    let resp = mesh.get("/api/admin/routing/PR", Some(&secret)).await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_argument");
    assert_eq!(body["error"]["fields"][0]["field"], "state");
    for excluded in ["MN", "ca", "TX", "AR", "NC", "OK"] {
        let resp = mesh.get(&format!("/api/admin/routing/{excluded}"), Some(&secret)).await;
        assert_eq!(error_code(resp, 422).await, "state_excluded", "{excluded}");
    }
    let resp = mesh
        .get("/api/admin/routing/GA?medication=aspirin", Some(&secret))
        .await;
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["fields"][0]["field"], "medication");
    let resp = mesh.get("/api/admin/routing/GA?dose=1", Some(&secret)).await;
    assert_eq!(error_code(resp, 400).await, "invalid_request");
}

#[tokio::test]
async fn an_admin_changes_a_route_and_the_audit_names_them() {
    let mesh = TestMesh::start().await;
    let jwt = mesh.admin_jwt("ops@clinic.example");
    let put = |body: Value| {
        mesh.http
            .put(mesh.url("/api/admin/routing/wy"))
            .bearer_auth(&jwt)
            .json(&body)
            .send()
    };

    let bad = put(json!({ "routes": [{ "pharmacyId": "nowhere", "prescriberId": "neelima-singh", "priority": 1 }] }))
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["error"]["fields"][0]["field"], "routes[0].pharmacyId");
    let mass_assignment = put(json!({ "routes": [], "updatedBy": "someone-else" })).await.unwrap();
    assert_eq!(error_code(mass_assignment, 400).await, "invalid_request");

    let ok = put(json!({
        "routes": [{ "pharmacyId": "strive", "prescriberId": "neelima-singh", "priority": 1 }],
        "note": "Boothwyn paused"
    }))
    .await
    .unwrap();
    assert_eq!(ok.status(), 200);
    let updated: Value = ok.json().await.unwrap();
    assert_eq!(updated["routing"]["updatedBy"], "ops@clinic.example");

    let d: Value = mesh
        .get("/api/admin/routing/WY", Some(&jwt))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(d["pharmacy"]["id"], "strive");
    let audit: Value = mesh
        .get("/api/admin/routing-audit?state=WY", Some(&jwt))
        .await
        .json()
        .await
        .unwrap();
    let entry = &audit["items"][0];
    assert_eq!(entry["id"], updated["auditId"]);
    assert_eq!(entry["changedBy"], "ops@clinic.example");
    assert_eq!(entry["note"], "Boothwyn paused");
    assert_eq!(entry["before"]["routes"][0]["pharmacyId"], "boothwyn");
    assert_eq!(entry["after"]["routes"][0]["pharmacyId"], "strive");
}
