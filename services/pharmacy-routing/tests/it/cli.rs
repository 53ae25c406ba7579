//! The binary itself: configuration errors name the variable, `migrate` migrates, `serve` answers
//! `healthcheck`, and SIGTERM stops it cleanly.

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use era_kit::{
    testing::{self, TestDb},
    ExposeSecret,
};

const BIN: &str = env!("CARGO_BIN_EXE_era-pharmacy-routing");

fn command(db_url: &str, listen: &str) -> Command {
    let auth = testing::auth_config();
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("DATABASE_URL", db_url)
        .env("LISTEN_ADDR", listen)
        .env("ADMIN_SECRET", auth.admin_secret.expose_secret())
        .env("INTERNAL_TOKEN_SECRET", auth.internal_token_secret.expose_secret())
        .env("PIPELINE_KEYS", "1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
        .env("LOG_FILTER", "warn");
    cmd
}

fn free_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

#[test]
fn configuration_errors_name_the_variable() {
    let out = command("postgres://x@127.0.0.1/db", "127.0.0.1:0")
        .env("ADMIN_SECRET", "short")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid ADMIN_SECRET: must be at least 32 characters"),
        "{stderr}"
    );
    assert!(!stderr.contains("short"), "the value must not be echoed: {stderr}");

    let out = command("postgres://x@127.0.0.1/db", "127.0.0.1:0")
        .env("PIPELINE_KEYS", "1:not-base64")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid PIPELINE_KEYS: key version 1 is not base64"));

    let out = command("postgres://x@127.0.0.1/db", "127.0.0.1:0")
        .env("BOOTHWYN_API_BASE", "https://boothwyn.example/lfapi/v1")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("invalid BOOTHWYN_USERNAME: is required when BOOTHWYN_API_BASE is set"));

    let out = command("mysql://x/db", "127.0.0.1:0").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid DATABASE_URL"));

    let out = command("postgres://x@127.0.0.1/db", "127.0.0.1:0")
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("DATABASE_URL"));
}

#[tokio::test]
async fn migrate_serve_healthcheck_and_a_clean_stop() {
    let db = TestDb::empty().await;
    let addr = free_port();
    let migrate = command(&db.url, &addr).arg("migrate").output().unwrap();
    assert!(migrate.status.success(), "{}", String::from_utf8_lossy(&migrate.stderr));
    let states: i64 = sqlx::query_scalar("select count(*) from jurisdictions")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(states, 51);

    // Not serving yet: the health check fails.
    assert!(!command(&db.url, &addr).arg("healthcheck").status().unwrap().success());

    let mut server = command(&db.url, &addr)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut healthy = false;
    for _ in 0..100 {
        if command(&db.url, &addr).arg("healthcheck").status().unwrap().success() {
            healthy = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(healthy, "the server never reported SERVING");

    Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    let mut exited = None;
    for _ in 0..100 {
        if let Some(status) = server.try_wait().unwrap() {
            exited = Some(status);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = server.kill();
    assert!(exited.expect("the server stops on SIGTERM").success());
}
