//! The whole mesh runs over mTLS: each service answers a caller holding the mesh's certificate and
//! refuses plaintext and certificates of another CA, and an edge holding a foreign certificate cannot
//! reach any service (its readiness says so).

use era_proto::pharmacy_routing::v1::{
    pharmacy_routing_service_client::PharmacyRoutingServiceClient, DecideRouteRequest,
};
use era_tests::TestMesh;
use serde_json::Value;

#[tokio::test]
async fn every_hop_requires_the_mesh_certificate() {
    let mesh = TestMesh::start().await;
    let foreign = era_kit::dev_ca::DevCa::generate().unwrap().mesh_config();
    for (name, url) in &mesh.mesh.services {
        assert!(url.starts_with("https://"), "{name} serves TLS: {url}");
        let tls = mesh.mesh.mesh_config.tls().unwrap();
        assert_eq!(
            era_kit::server::check_health(url, tls.as_ref(), "").await.ok(),
            Some(true),
            "{name} answers the mesh's certificate"
        );
        let other = foreign.tls().unwrap();
        assert!(
            era_kit::server::check_health(url, other.as_ref(), "").await.is_err(),
            "{name} refuses a certificate of another CA"
        );
        let plaintext = url.replacen("https://", "http://", 1);
        assert!(
            era_kit::server::check_health(&plaintext, None, "").await.is_err(),
            "{name} refuses plaintext"
        );
    }

    // A call with credentials but the wrong certificate never reaches the handler.
    let url = mesh.mesh.service_url("era-pharmacy-routing").unwrap();
    let mut routing = PharmacyRoutingServiceClient::new(foreign.channel(url).unwrap());
    let refused = routing
        .decide_route(mesh.admin_request(DecideRouteRequest {
            state: "GA".into(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    let decided = mesh
        .pharmacy_routing()
        .decide_route(mesh.admin_request(DecideRouteRequest {
            state: "GA".into(),
            ..Default::default()
        }))
        .await
        .unwrap();
    assert_eq!(decided.into_inner().state, "GA");

    let stranger = mesh.start_edge_replica(|c| c.mesh = foreign.clone()).await;
    let resp = mesh.http.get(format!("{}/readyz", stranger.url)).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    let ready: Value = resp.json().await.unwrap();
    for (service, status) in ready["services"].as_object().unwrap() {
        assert_ne!(
            status, "SERVING",
            "{service} answered an edge with a foreign certificate"
        );
    }
}
