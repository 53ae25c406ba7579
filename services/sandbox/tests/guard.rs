//! The control plane's guard over real HTTP: the token, the inbox's one-time sign-in and its
//! cookie, and foreign host names refused; the vendors' own routes are not affected.

use era_sandbox::{Sandbox, SandboxConfig};
use reqwest::{header, redirect::Policy, StatusCode};

const TOKEN: &str = "control-token-0123456789abcdef";

async fn start() -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = SandboxConfig {
        control_token: Some(TOKEN.into()),
        allowed_hosts: vec!["sandbox".into()],
        ..Default::default()
    };
    tokio::spawn(era_sandbox::run(Sandbox::with_config(config), listener, async {
        let _ = stopped.await;
    }));
    (base, stop)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(Policy::none()).build().unwrap()
}

#[tokio::test]
async fn the_control_plane_needs_the_token() {
    let (base, _stop) = start().await;
    let http = client();
    let get = |path: &str, bearer: Option<&str>| {
        let mut req = http.get(format!("{base}{path}"));
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        req.send()
    };
    for path in ["/_sandbox/ledger", "/_sandbox/inbox.json", "/_sandbox/faults"] {
        assert_eq!(
            get(path, None).await.unwrap().status(),
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
        assert_eq!(
            get(path, Some("not-the-token")).await.unwrap().status(),
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
        assert_eq!(get(path, Some(TOKEN)).await.unwrap().status(), StatusCode::OK, "{path}");
    }
    // A fault cannot be set without the token: the list stays empty.
    let fault = serde_json::json!({ "path": "/stripe/", "action": { "kind": "status", "status": 500 } });
    let refused = http
        .post(format!("{base}/_sandbox/faults"))
        .json(&fault)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let faults: serde_json::Value = get("/_sandbox/faults", Some(TOKEN))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(faults, serde_json::json!([]));
    // Health stays open, and the vendors answer with their own credentials as before.
    assert_eq!(get("/_sandbox/health", None).await.unwrap().status(), StatusCode::OK);
    let stripe = http
        .get(format!("{base}/stripe/v1/customers"))
        .bearer_auth(era_sandbox::state::DEFAULT_STRIPE_SECRET_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(stripe.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_foreign_host_name_is_refused_even_with_the_token() {
    let (base, _stop) = start().await;
    let http = client();
    let with_host = |host: &str| {
        http.get(format!("{base}/_sandbox/ledger"))
            .bearer_auth(TOKEN)
            .header(header::HOST, host)
            .send()
    };
    assert_eq!(
        with_host("attacker.example").await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        with_host("attacker.example:8090").await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(with_host("localhost:8090").await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        with_host("sandbox:8090").await.unwrap().status(),
        StatusCode::OK,
        "a configured name"
    );
}

#[tokio::test]
async fn the_inbox_page_asks_for_the_token_once_and_keeps_it_in_a_cookie() {
    let (base, _stop) = start().await;
    let http = client();
    let asked = http.get(format!("{base}/_sandbox/inbox")).send().await.unwrap();
    assert_eq!(asked.status(), StatusCode::UNAUTHORIZED);
    let page = asked.text().await.unwrap();
    assert!(page.contains("<form") && page.contains("name=\"token\""), "{page}");

    let wrong = http
        .get(format!("{base}/_sandbox/inbox?token=nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.headers().get(header::SET_COOKIE).is_none());

    let signed_in = http
        .get(format!("{base}/_sandbox/inbox?token={TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        signed_in.headers()[header::LOCATION],
        "/_sandbox/inbox",
        "the token leaves the address"
    );
    let cookie = signed_in.headers()[header::SET_COOKIE].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_owned();
    let inbox = http
        .get(format!("{base}/_sandbox/inbox"))
        .header(header::COOKIE, &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(inbox.status(), StatusCode::OK);
    assert!(inbox.text().await.unwrap().contains("Sandbox inbox"));
}
