//! `era-bench`: throughput and latency of the routing decision three ways, measured in one run so the
//! ratios are comparable: a trivial tonic echo server (the ceiling of a gRPC hop on this machine),
//! the routing service called directly over gRPC, and the same decision through the edge with an
//! admin JWT. Closed loop: a fixed number of requests in flight at all times.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use clap::Parser;
use era_dev::{postgres::LocalCluster, Mesh, MeshOptions, Ports, Secrets};
use era_kit::config::LoggingConfig;
use era_proto::{
    bench::v1::{
        echo_service_client::EchoServiceClient,
        echo_service_server::{EchoService, EchoServiceServer},
        EchoRequest, EchoResponse,
    },
    pharmacy_routing::v1::{pharmacy_routing_service_client::PharmacyRoutingServiceClient, DecideRouteRequest},
};
use futures::future::BoxFuture;
use tonic::transport::Channel;

#[derive(Debug, Parser)]
#[command(
    name = "era-bench",
    about = "Measure the edge and routing paths against a trivial tonic server"
)]
struct Cli {
    /// PostgreSQL server for the mesh's databases; unset: the dev cluster under .era/.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// Requests in flight at all times.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Measured seconds per scenario (after a warm-up of a quarter of that).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Run only the scenarios whose name contains this (for profiling one path); no ratios then.
    #[arg(long)]
    only: Option<String>,
}

// glibc's allocator spends a large share of each request consolidating small blocks.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const STATES: [&str; 8] = ["GA", "NY", "FL", "WY", "CO", "WA", "DC", "ME"];

#[derive(Debug, Default)]
struct Echo;

#[tonic::async_trait]
impl EchoService for Echo {
    async fn echo(&self, request: tonic::Request<EchoRequest>) -> Result<tonic::Response<EchoResponse>, tonic::Status> {
        Ok(tonic::Response::new(EchoResponse {
            message: request.into_inner().message,
        }))
    }
}

struct Outcome {
    name: &'static str,
    requests: usize,
    errors: usize,
    per_sec: f64,
    p50: Duration,
    p99: Duration,
}

type Call = Arc<dyn Fn(usize) -> BoxFuture<'static, bool> + Send + Sync>;

/// Runs `call` from `concurrency` workers for warm-up plus `seconds`, counting only the measured part.
async fn measure(name: &'static str, call: Call, concurrency: usize, seconds: u64) -> Outcome {
    let warmup = Duration::from_millis(seconds * 250);
    let started = Instant::now();
    let measure_from = started + warmup;
    let until = measure_from + Duration::from_secs(seconds);
    let workers = (0..concurrency).map(|w| {
        let call = Arc::clone(&call);
        tokio::spawn(async move {
            let (mut latencies, mut errors, mut i) = (Vec::new(), 0usize, w);
            loop {
                let sent = Instant::now();
                if sent >= until {
                    break;
                }
                let ok = call(i).await;
                i += concurrency;
                if sent >= measure_from {
                    latencies.push(sent.elapsed());
                    errors += usize::from(!ok);
                }
            }
            (latencies, errors)
        })
    });
    let mut all = Vec::new();
    let mut errors = 0;
    for w in futures::future::join_all(workers).await {
        let (l, e) = w.expect("a worker panicked");
        all.extend(l);
        errors += e;
    }
    all.sort();
    let pick = |q: f64| {
        all.get(((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1)))
            .copied()
    };
    Outcome {
        name,
        requests: all.len(),
        errors,
        per_sec: all.len() as f64 / seconds as f64,
        p50: pick(0.50).unwrap_or_default(),
        p99: pick(0.99).unwrap_or_default(),
    }
}

#[tokio::main]
#[expect(clippy::print_stdout, reason = "the report is the tool's output")]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    era_kit::telemetry::init(&LoggingConfig {
        log_filter: "warn".into(),
        ..LoggingConfig::default()
    });
    let (cluster, server_url) = match cli.database_url.clone() {
        Some(url) => (None, url),
        None => {
            let (c, url) = LocalCluster::start(std::path::Path::new(".era/postgres"))?;
            (Some(c), url)
        }
    };
    let mut options = MeshOptions::new(server_url, Secrets::generate());
    options.ports = Ports::ANY;
    options.database_prefix = format!("era_bench_{:08x}", rand::random::<u32>());
    options.logging = LoggingConfig {
        log_filter: "warn".into(),
        ..LoggingConfig::default()
    };
    let mesh = Mesh::start(options).await?;
    mesh.wait_ready(Duration::from_secs(30)).await?;

    let echo_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let echo_url = format!("http://{}", echo_listener.local_addr()?);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(EchoServiceServer::new(Echo))
            .serve_with_incoming(tokio_stream_listener(echo_listener)),
    );

    let echo_client = EchoServiceClient::new(era_kit::client::channel(&echo_url)?);
    let echo: Call = Arc::new(move |_| {
        let mut c = echo_client.clone();
        Box::pin(async move { c.echo(EchoRequest { message: "ping".into() }).await.is_ok() })
    });

    let routing_url = mesh
        .service_url("era-pharmacy-routing")
        .expect("routing runs")
        .to_owned();
    let routing: PharmacyRoutingServiceClient<Channel> =
        PharmacyRoutingServiceClient::new(era_kit::client::channel(&routing_url)?);
    let bearer: tonic::metadata::MetadataValue<_> = format!("Bearer {}", mesh.admin_secret()).parse()?;
    let grpc: Call = Arc::new(move |i| {
        let mut c = routing.clone();
        let mut req = tonic::Request::new(DecideRouteRequest {
            state: STATES[i % STATES.len()].into(),
            ..Default::default()
        });
        req.metadata_mut().insert("authorization", bearer.clone());
        Box::pin(async move { c.decide_route(req).await.is_ok() })
    });

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(cli.concurrency)
        .build()?;
    let jwt = era_edge::auth::jwt::TokenKind::admin(&mesh.secrets.admin_jwt_secret)
        .issue("bench@clinic.example")
        .token;
    let floor_http = http.clone();
    let healthz = format!("{}/healthz", mesh.edge_url);
    let floor: Call = Arc::new(move |_| {
        let req = floor_http.get(&healthz);
        Box::pin(async move { matches!(req.send().await, Ok(r) if r.status().is_success()) })
    });
    let edge_url = mesh.edge_url.clone();
    let edge: Call = Arc::new(move |i| {
        let req = http
            .get(format!("{edge_url}/api/admin/routing/{}", STATES[i % STATES.len()]))
            .bearer_auth(&jwt);
        Box::pin(async move { matches!(req.send().await, Ok(r) if r.status().is_success()) })
    });

    println!(
        "era-bench: {} in flight, {} s per scenario after warm-up, {} cores",
        cli.concurrency,
        cli.seconds,
        cores()
    );
    let mut results = Vec::new();
    for (name, call) in [
        ("tonic echo", echo),
        ("routing over gRPC", grpc),
        ("routing through the edge", edge),
        ("edge /healthz", floor),
    ] {
        if cli.only.as_ref().is_some_and(|only| !name.contains(only.as_str())) {
            continue;
        }
        results.push(measure(name, call, cli.concurrency, cli.seconds).await);
    }
    println!(
        "{:<26} {:>10} {:>9} {:>10} {:>10} {:>7}",
        "scenario", "requests", "req/s", "p50 ms", "p99 ms", "errors"
    );
    for r in &results {
        println!(
            "{:<26} {:>10} {:>9.0} {:>10.2} {:>10.2} {:>7}",
            r.name,
            r.requests,
            r.per_sec,
            r.p50.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3,
            r.errors
        );
    }
    if let [echo, grpc, edge, floor] = results.as_slice() {
        println!("ratio routing-gRPC / echo:  {:.2}", grpc.per_sec / echo.per_sec);
        println!(
            "ratio edge / echo:          {:.2}   (aim: at least 0.40)",
            edge.per_sec / echo.per_sec
        );
        println!("ratio edge / routing-gRPC:  {:.2}", edge.per_sec / grpc.per_sec);
        println!(
            "ratio edge /healthz / echo: {:.2}   (the HTTP/1.1 floor: client and server, no auth, no gRPC)",
            floor.per_sec / echo.per_sec
        );
    }

    let databases = mesh.databases.clone();
    mesh.shutdown().await;
    drop_databases(cli.database_url.as_deref(), &databases).await;
    if let Some(c) = cluster {
        c.stop()?;
    }
    Ok(())
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn tokio_stream_listener(
    listener: tokio::net::TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures::stream::unfold(listener, |l| async move {
        let next = l.accept().await.map(|(s, _)| {
            let _ = s.set_nodelay(true);
            s
        });
        Some((next, l))
    })
}

async fn drop_databases(server_url: Option<&str>, names: &[String]) {
    let Some(url) = server_url else { return };
    let Ok(admin) = era_dev::database_url(url, "postgres") else {
        return;
    };
    let Ok(pool) = sqlx::PgPool::connect(&admin).await else {
        return;
    };
    for name in names {
        let _ = sqlx::query(&format!(
            "drop database if exists {} with (force)",
            era_kit::db::quote_ident(name)
        ))
        .execute(&pool)
        .await;
    }
}
