//! The Stripe simulator against the official stripe-python SDK: `tests/stripe_sdk.py` runs the
//! clinic's flow through `stripe.api_base` and `StripeClient(base_addresses=...)`. Needs `python3`
//! with the `stripe` package (`pip install stripe`); without it this test fails, saying so.

use std::time::Duration;

use era_sandbox::Sandbox;

#[tokio::test]
async fn stripe_python_talks_to_the_sandbox() {
    let probe = tokio::process::Command::new("python3")
        .args(["-c", "import stripe"])
        .output()
        .await;
    match probe {
        Err(e) => panic!(
            "python3 is needed for the stripe-python wire check ({e}); install Python 3 and `pip install stripe`"
        ),
        Ok(out) if !out.status.success() => panic!(
            "the stripe-python wire check needs the official SDK: run `pip install stripe` ({})",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Ok(_) => {}
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/stripe", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(era_sandbox::run(Sandbox::new(), listener, async {
        let _ = stopped.await;
    }));

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/stripe_sdk.py");
    let run = tokio::process::Command::new("python3")
        .args([script, &base, era_sandbox::state::DEFAULT_STRIPE_SECRET_KEY])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("stripe_sdk.py finishes within two minutes")
        .expect("python3 runs");
    let _ = stop.send(());
    assert!(
        out.status.success(),
        "stripe_sdk.py failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
