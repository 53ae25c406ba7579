//! Per-client rate limits on the public routes, as an abuser meets them: the budget holds across two
//! edges on one database, a made-up `X-Forwarded-For` does not reset it, a trusted proxy's does
//! tell clients apart, and the 429 says when to come back.

use std::time::Duration;

use era_tests::TestMesh;
use serde_json::json;

const SEND_CODE: &str = "/api/patient/auth/send-code";
/// The route's budget per client per minute (edge/src/limits.rs).
const BUDGET: usize = 5;

/// Waits out the end of the current minute when little of it is left, so a burst falls in one
/// window.
async fn early_in_a_window() {
    let into = chrono::Utc::now().timestamp() % 60;
    if into > 45 {
        tokio::time::sleep(Duration::from_secs((61 - into) as u64)).await;
    }
}

async fn send_code(mesh: &TestMesh, base: &str, i: usize, forwarded: Option<&str>) -> reqwest::Response {
    let mut req = mesh
        .http
        .post(format!("{base}{SEND_CODE}"))
        .json(&json!({ "email": format!("someone.{i}@example.test") }));
    if let Some(f) = forwarded {
        req = req.header("x-forwarded-for", f);
    }
    req.send().await.expect("the edge answers")
}

#[tokio::test]
async fn a_public_route_is_limited_per_client_across_edges() {
    let mesh = TestMesh::start_with(|o| o.rate_limit_multiplier = 1).await;
    let second = mesh.start_edge_replica(|_| {}).await;
    let edges = [mesh.mesh.edge_url.clone(), second.url.clone()];
    early_in_a_window().await;
    // The budget is spent across both edges, whatever X-Forwarded-For the client makes up.
    for i in 0..BUDGET {
        let resp = send_code(&mesh, &edges[i % 2], i, Some(&format!("198.51.100.{i}"))).await;
        assert!(resp.status().is_success(), "request {i}: {}", resp.status());
    }
    for edge in &edges {
        let refused = send_code(&mesh, edge, 99, Some("203.0.113.99")).await;
        assert_eq!(refused.status(), 429, "{edge}");
        let wait: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=60).contains(&wait), "Retry-After {wait}");
        let body: serde_json::Value = refused.json().await.unwrap();
        assert_eq!(body["error"]["code"], "rate_limited");
    }
    // Another route's budget is its own; API answers are never to be cached.
    let discount = mesh
        .http
        .post(mesh.url("/api/intake/discount/validate"))
        .json(&json!({ "code": "BIGORDER", "amountCents": 20_000 }))
        .send()
        .await
        .unwrap();
    assert_eq!(discount.status(), 200);
    assert_eq!(discount.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn behind_a_trusted_proxy_clients_are_told_apart_by_the_address_it_saw() {
    let mesh = TestMesh::start_with(|o| o.rate_limit_multiplier = 1).await;
    let behind = mesh.start_edge_replica(|c| c.trusted_proxy_hops = 1).await;
    early_in_a_window().await;
    // The proxy appends the address it saw; what the client wrote before it is not trusted.
    let from = |client: &str| format!("6.6.6.6, {client}");
    for i in 0..BUDGET {
        assert!(send_code(&mesh, &behind.url, i, Some(&from("192.0.2.10")))
            .await
            .status()
            .is_success());
    }
    assert_eq!(
        send_code(&mesh, &behind.url, 9, Some(&from("192.0.2.10")))
            .await
            .status(),
        429
    );
    // Another client behind the same proxy has its own budget.
    assert!(send_code(&mesh, &behind.url, 10, Some(&from("192.0.2.11")))
        .await
        .status()
        .is_success());
}

/// The replica's address without the scheme, for raw sockets.
fn host_of(url: &str) -> String {
    url.trim_start_matches("http://").to_owned()
}

#[tokio::test]
async fn a_client_trickling_its_headers_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mesh = TestMesh::start().await;
    let edge = mesh.start_edge_replica(|c| c.header_read_timeout_secs = 1).await;
    let mut stream = tokio::net::TcpStream::connect(host_of(&edge.url)).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: edge\r\n")
        .await
        .unwrap();
    // The rest of the headers never comes: the edge closes the connection soon after its deadline.
    let started = std::time::Instant::now();
    let mut buf = [0u8; 256];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "the connection was closed: {read:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "closed after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_slow_body_times_out_and_requests_past_the_cap_are_refused_at_once() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mesh = TestMesh::start().await;
    let edge = mesh
        .start_edge_replica(|c| {
            c.request_timeout_secs = 2;
            c.max_concurrent_requests = 1;
        })
        .await;
    // A body promised and never sent holds the only slot...
    let mut slow = tokio::net::TcpStream::connect(host_of(&edge.url)).await.unwrap();
    slow.write_all(
        b"POST /api/intake/discount/validate HTTP/1.1\r\nHost: edge\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // ...so another request is refused at once, saying when to come back.
    let refused = mesh.http.get(format!("{}/healthz", edge.url)).send().await.unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "overloaded");
    // The slow request ends at its deadline with 408, and the slot is free again.
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let served = mesh.http.get(format!("{}/healthz", edge.url)).send().await.unwrap();
    assert_eq!(served.status(), 200);
}

#[tokio::test]
async fn failed_sign_ins_are_budgeted_per_client_and_across_all_clients() {
    let mesh = TestMesh::start_with(|o| o.rate_limit_multiplier = 1).await;
    let behind = mesh.start_edge_replica(|c| c.trusted_proxy_hops = 1).await;
    early_in_a_window().await;
    let verify = |client: &'static str, i: usize| {
        mesh.http
            .post(format!("{}/api/patient/auth/verify", behind.url))
            .header("x-forwarded-for", client)
            .json(&json!({ "email": format!("guess.{i}@example.test"), "code": "123456" }))
            .send()
    };
    // Ten wrong codes from one client, across as many accounts: then that client is stopped.
    for i in 0..10 {
        assert_eq!(verify("192.0.2.20", i).await.unwrap().status(), 401, "guess {i}");
    }
    let stopped = verify("192.0.2.20", 10).await.unwrap();
    assert_eq!(stopped.status(), 429);
    assert!(stopped.headers().contains_key("retry-after"));
    let body: serde_json::Value = stopped.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_failed_sign_ins");
    // Another client still may guess, until all clients together have spent the minute's twenty.
    for i in 0..10 {
        assert_eq!(verify("192.0.2.21", 100 + i).await.unwrap().status(), 401, "guess {i}");
    }
    let everyone = verify("192.0.2.22", 200).await.unwrap();
    assert_eq!(everyone.status(), 429, "the global budget is spent");
}

#[tokio::test]
async fn a_client_sending_bad_signatures_is_stopped_and_the_vendors_are_not() {
    use hmac::{Hmac, Mac};
    use secrecy::ExposeSecret;
    let mesh = TestMesh::start_with(|o| o.rate_limit_multiplier = 1).await;
    let behind = mesh.start_edge_replica(|c| c.trusted_proxy_hops = 1).await;
    early_in_a_window().await;
    let body = json!({
        "eventId": "evt-probe", "pharmacy": "strive", "orderId": "no-such-order",
        "status": "shipped", "occurredAt": chrono::Utc::now().to_rfc3339(),
    })
    .to_string();
    let callback = |client: &'static str, signature: String| {
        mesh.http
            .post(format!("{}/api/webhooks/pharmacy/strive", behind.url))
            .header("x-forwarded-for", client)
            .header("x-pharmacy-signature", signature)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
    };
    let t = era_tests::unix_now();
    let forged = format!("t={t},v1={}", "ab".repeat(32));
    // Ten forgeries are each refused on their signature; the eleventh is not even checked.
    for i in 0..10 {
        let resp = callback("192.0.2.30", forged.clone()).await.unwrap();
        assert_eq!(resp.status(), 400, "forgery {i}");
    }
    let stopped = callback("192.0.2.30", forged.clone()).await.unwrap();
    assert_eq!(stopped.status(), 429);
    assert!(stopped.headers().contains_key("retry-after"));
    let answer: serde_json::Value = stopped.json().await.unwrap();
    assert_eq!(answer["error"]["code"], "too_many_bad_signatures");
    // The same client is stopped on the other signed routes too, Stripe's webhook among them.
    let stripe = mesh
        .http
        .post(format!("{}/api/webhooks/stripe", behind.url))
        .header("x-forwarded-for", "192.0.2.30")
        .header("stripe-signature", forged.clone())
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(stripe.status(), 429);

    // The pharmacy itself, from its own address, still gets through with a good signature (to
    // pharmacy-routing, which knows no such order and leaves the event for redelivery).
    let secret = mesh.mesh.secrets.strive_webhook_secret.expose_secret().to_owned();
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    let good = format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()));
    let delivered = callback("198.51.100.40", good).await.unwrap();
    assert_eq!(delivered.status(), 404, "{:?}", delivered.text().await);

    // The count is the edge's shared table: one row for the forger, ten failures (and none for the
    // pharmacy), stored under a digest of the address.
    let edge_db = sqlx::PgPool::connect(&mesh.database_url("edge")).await.unwrap();
    let counts: Vec<(String, i32)> =
        sqlx::query_as("select bucket, hits from rate_limits where bucket like 'bad-signature:%'")
            .fetch_all(&edge_db)
            .await
            .unwrap();
    assert_eq!(counts.len(), 1, "{counts:?}");
    assert_eq!(counts[0].1, 10);
    assert!(!counts[0].0.contains("192.0.2.30"));
}
