//! The binary itself: configuration errors name the variable, production refuses what belongs only
//! to development, `migrate` migrates, `serve` (in production, over mesh TLS) answers `healthcheck`,
//! and SIGTERM stops it cleanly.

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use era_kit::{
    dev_ca::DevCa,
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
        .env("LOG_FILTER", "warn")
        .env("ERA_ENV", "development");
    cmd
}

/// The same, as production runs it: mesh TLS from `ca`, peers over https.
fn production(db_url: &str, listen: &str, ca: &DevCa) -> Command {
    let mut cmd = command(db_url, listen);
    cmd.env("ERA_ENV", "production")
        .env("MESH_TLS_CA", &ca.ca_pem)
        .env("MESH_TLS_CERT", &ca.cert_pem)
        .env("MESH_TLS_KEY", &ca.key_pem)
        .env("CANVAS_GRPC_URL", "https://canvas.era.internal:50051")
        .env("PAYMENTS_GRPC_URL", "https://payments.era.internal:50052")
        .env("NOTIFICATIONS_GRPC_URL", "https://notifications.era.internal:50055");
    cmd
}

fn stderr_of(cmd: &mut Command) -> (Option<i32>, String) {
    let out = cmd.arg("healthcheck").output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
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

#[test]
fn production_refuses_plaintext_peers_missing_certificates_and_the_sandbox() {
    let ca = DevCa::generate().unwrap();
    let db = "postgres://x@127.0.0.1/db";
    // ERA_ENV unset means production.
    let (code, err) = stderr_of(command(db, "127.0.0.1:0").env_remove("ERA_ENV"));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("invalid MESH_TLS_CA: is required when ERA_ENV=production"),
        "{err}"
    );

    let (code, err) = stderr_of(production(db, "127.0.0.1:0", &ca).env("CANVAS_GRPC_URL", "http://canvas:50051"));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("invalid CANVAS_GRPC_URL: is a plaintext http:// URL"),
        "{err}"
    );

    for sandbox in [
        "http://127.0.0.1:8090/boothwyn/lfapi/v1",
        "https://sandbox:8090/boothwyn/lfapi/v1",
    ] {
        let (code, err) = stderr_of(
            production(db, "127.0.0.1:0", &ca)
                .env("BOOTHWYN_API_BASE", sandbox)
                .env("BOOTHWYN_USERNAME", "u")
                .env("BOOTHWYN_PASSWORD", "p")
                .env("BOOTHWYN_VENDOR_ID", "1")
                .env("BOOTHWYN_LOCATION_ID", "1")
                .env("BOOTHWYN_NETWORK_ID", "1")
                .env("BOOTHWYN_PRACTICE_ID", "1"),
        );
        assert_eq!(code, Some(2), "{sandbox}: {err}");
        assert!(err.contains("invalid BOOTHWYN_API_BASE"), "{sandbox}: {err}");
    }

    let (code, err) = stderr_of(production(db, "127.0.0.1:0", &ca).env("MESH_TLS_KEY", "/nonexistent/key.pem"));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("invalid MESH_TLS_KEY: cannot be read"), "{err}");
    assert!(!err.contains("BEGIN"), "no PEM is echoed: {err}");
}

#[tokio::test]
async fn migrate_serve_healthcheck_and_a_clean_stop() {
    let db = TestDb::empty().await;
    let addr = free_port();
    let ca = DevCa::generate().unwrap();
    let command = |url: &str, addr: &str| production(url, addr, &ca);
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
