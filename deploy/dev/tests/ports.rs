//! The mesh's listening ports: every socket is bound before any outbound connection is opened, a
//! port that is taken is reported by name and number, and `ERA_DEV_PORTS=any` makes era-dev immune
//! to whatever else holds ports on the machine.

use std::{
    io::{BufRead as _, BufReader},
    net::SocketAddr,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use era_dev::{Mesh, MeshOptions, Ports, Secrets};
use era_kit::tls::{PemSource, TlsConfig};
use sqlx::{Connection as _, PgConnection};

fn unique_prefix() -> String {
    format!("era_test_{}", &uuid_like()[..12])
}

fn uuid_like() -> String {
    let bytes: [u8; 16] = rand::random();
    hex::encode(bytes)
}

/// The databases on the test server whose names start with `prefix_`.
async fn databases_named(prefix: &str) -> Vec<String> {
    let mut conn = PgConnection::connect(&era_kit::testing::server_url())
        .await
        .expect("the test server answers");
    sqlx::query_scalar("select datname from pg_database where starts_with(datname, $1)")
        .bind(format!("{prefix}_"))
        .fetch_all(&mut conn)
        .await
        .expect("pg_database reads")
}

/// An outbound connection whose local end is `port`: what the kernel does when it hands one of
/// the mesh's ports to any process's connection.
async fn outbound_from(port: u16, to: SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket
        .bind(SocketAddr::from(([127, 0, 0, 1], port)))
        .expect("the chosen local port is free");
    socket.connect(to).await.expect("the outbound connection opens")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_held_by_an_outbound_connection_is_named_and_nothing_is_connected_first() {
    let target = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target_addr = target.local_addr().unwrap();
    // A free port, then an outbound connection that takes it as its local end.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _held = outbound_from(port, target_addr).await;

    let prefix = unique_prefix();
    let mut options = MeshOptions::new(era_kit::testing::server_url(), Secrets::generate());
    options.ports = Ports {
        notifications: port,
        ..Ports::ANY
    };
    options.database_prefix = prefix.clone();
    let err = Mesh::start(options).await.expect_err("the port is taken");
    let message = format!("{err:#}");
    assert!(
        message.contains(&format!("127.0.0.1:{port}")) && message.contains("era-notifications"),
        "the error names the component and the port: {message}"
    );
    assert!(message.contains("in use"), "the error says why: {message}");
    // Every socket is bound before the mesh opens any outbound connection: no database was
    // created or connected to for any service.
    assert_eq!(databases_named(&prefix).await, Vec::<String>::new());
}

/// Ends era-dev and drops the databases it made, however the test ends.
struct Launched {
    child: std::process::Child,
    prefix: String,
}

impl Drop for Launched {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for service in [
            "canvas",
            "payments",
            "pharmacy_routing",
            "scheduling",
            "notifications",
            "edge",
        ] {
            era_kit::testing::drop_database_blocking(&format!("{}_{service}", self.prefix));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn era_dev_starts_on_free_ports_while_many_outbound_connections_are_open() {
    // Hundreds of open outbound connections, each holding an ephemeral port, as a busy machine has.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = listener.local_addr().unwrap();
    let accepting = tokio::spawn(async move {
        let mut accepted = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            accepted.push(stream);
        }
    });
    let mut outbound = Vec::new();
    for _ in 0..500 {
        outbound.push(
            tokio::net::TcpStream::connect(target)
                .await
                .expect("an outbound connection"),
        );
    }

    let dir = std::env::temp_dir().join(format!("era-dev-ports-{}", uuid_like()));
    let prefix = unique_prefix();
    let child = Command::new(env!("CARGO_BIN_EXE_era-dev"))
        .env("ERA_DEV_PORTS", "any")
        .env("ERA_DEV_DATABASE_PREFIX", &prefix)
        .env("ERA_DEV_DIR", &dir)
        .env("DATABASE_URL", era_kit::testing::server_url())
        .env("LOG_FILTER", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("era-dev starts");
    let mut launched = Launched { child, prefix };
    let stdout = launched.child.stdout.take().expect("piped stdout");

    // era-dev prints each component's name and URL, then its ready line.
    let printed = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("era-dev's output reads");
            let ready = line.starts_with("era-dev ready");
            lines.push(line);
            if ready || Instant::now() > deadline {
                break;
            }
        }
        lines
    })
    .await
    .unwrap();
    assert!(
        printed.iter().any(|l| l.starts_with("era-dev ready")),
        "era-dev got ready: {printed:#?}"
    );
    let address = |name: &str| -> String {
        printed
            .iter()
            .find_map(|l| {
                let mut words = l.split_whitespace();
                (words.next() == Some(name))
                    .then(|| words.next().map(str::to_owned))
                    .flatten()
            })
            .unwrap_or_else(|| panic!("era-dev printed an address for {name}: {printed:#?}"))
    };
    // The certificates era-dev leaves for grpcurl are the ones its mesh presents.
    let files = TlsConfig {
        ca: Some(PemSource::File(dir.join("tls").join(era_kit::dev_ca::CA_FILE))),
        cert: Some(PemSource::File(dir.join("tls").join(era_kit::dev_ca::CERT_FILE))),
        key: Some(PemSource::File(dir.join("tls").join(era_kit::dev_ca::KEY_FILE))),
        ..TlsConfig::default()
    };
    let tls = files.load().expect("era-dev wrote usable certificate files");
    let edge = address("edge");
    let ready = reqwest::get(format!("{edge}/readyz")).await.expect("the edge answers");
    assert_eq!(ready.status(), 200, "every service reports SERVING through the edge");
    for name in [
        "era-canvas",
        "era-payments",
        "era-pharmacy-routing",
        "era-scheduling",
        "era-notifications",
    ] {
        let url = address(name);
        let port: u16 = url.rsplit(':').next().and_then(|p| p.parse().ok()).expect("a port");
        let s = Ports::STANDARD;
        assert!(
            ![s.canvas, s.payments, s.pharmacy_routing, s.scheduling, s.notifications].contains(&port),
            "{name} took a free port, not a standard one: {url}"
        );
        assert!(url.starts_with("https://"), "{name} serves over mesh TLS: {url}");
        assert_eq!(
            era_kit::server::check_health(&url, tls.as_ref(), "").await.ok(),
            Some(true),
            "{name} at {url} is SERVING"
        );
    }
    drop(launched);
    drop(outbound);
    accepting.abort();
    let _ = std::fs::remove_dir_all(dir);
}
