//! `era-bench`: throughput and latency of the routing decision three ways, measured in one run so the
//! ratios are comparable: a trivial tonic echo server (the ceiling of a gRPC hop on this machine),
//! the routing service called directly over gRPC, and the same decision through the edge with an
//! admin JWT. Closed loop: a fixed number of requests in flight at all times. Then a patient's
//! availability with one practitioner over 14 days through the edge, with the scheduling service's
//! Canvas cache off (every request pays its Canvas calls: the worst case), and how many Canvas
//! requests one availability costs for ranges of 1 to 31 days.

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
    /// Measured seconds per scenario, in 5 interleaved rounds (each after a warm-up of a quarter of it).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Run only the scenarios whose name contains this (for profiling one path); no ratios then.
    #[arg(long)]
    only: Option<String>,
}

// glibc's allocator spends a large share of each request consolidating small blocks.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Each scenario's time is split into this many rounds, interleaved with the others'.
const ROUNDS: u32 = 5;

const AVAILABILITY: &str = "availability, edge (14 d, uncached)";

/// How many calls the sandbox's Canvas (OAuth and FHIR) received for one availability request over
/// each range: the cost should not grow with the range.
async fn canvas_requests_per_availability(
    mesh: &Mesh,
    jwt: &str,
    path: &dyn Fn(i64) -> String,
) -> anyhow::Result<Vec<(i64, u64)>> {
    let http = reqwest::Client::new();
    let control = mesh.sandbox_control();
    let mark = || async {
        let ledger: serde_json::Value = control
            .get(format!("{}/_sandbox/ledger", mesh.sandbox_url))
            .send()
            .await?
            .json()
            .await?;
        anyhow::Ok(
            ledger["entries"]
                .as_array()
                .and_then(|e| e.last())
                .and_then(|e| e["seq"].as_u64())
                .unwrap_or(0),
        )
    };
    let mut out = Vec::new();
    for days in [1, 7, 14, 31] {
        let since = mark().await?;
        let resp = http
            .get(format!("{}{}", mesh.edge_url, path(days)))
            .bearer_auth(jwt)
            .send()
            .await?;
        anyhow::ensure!(resp.status().is_success(), "availability answered {}", resp.status());
        let mut calls = 0;
        for vendor in ["canvas", "canvas-fhir"] {
            let counts: std::collections::BTreeMap<String, u64> = control
                .get(format!(
                    "{}/_sandbox/ledger/counts?vendor={vendor}&since={since}",
                    mesh.sandbox_url
                ))
                .send()
                .await?
                .json()
                .await?;
            calls += counts.values().sum::<u64>();
        }
        out.push((days, calls));
    }
    Ok(out)
}

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

/// One scenario's samples so far.
#[derive(Default)]
struct Samples {
    latencies: Vec<Duration>,
    errors: usize,
    measured: Duration,
}

impl Samples {
    fn outcome(mut self, name: &'static str) -> Outcome {
        self.latencies.sort();
        let all = &self.latencies;
        let pick = |q: f64| {
            all.get(((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1)))
                .copied()
        };
        Outcome {
            name,
            requests: all.len(),
            errors: self.errors,
            per_sec: all.len() as f64 / self.measured.as_secs_f64(),
            p50: pick(0.50).unwrap_or_default(),
            p99: pick(0.99).unwrap_or_default(),
        }
    }
}

/// Runs `call` from `concurrency` workers for `warmup` plus `span`, adding the measured part to `into`.
async fn measure(call: &Call, concurrency: usize, warmup: Duration, span: Duration, into: &mut Samples) {
    let measure_from = Instant::now() + warmup;
    let until = measure_from + span;
    let workers = (0..concurrency).map(|w| {
        let call = Arc::clone(call);
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
    for w in futures::future::join_all(workers).await {
        let (l, e) = w.expect("a worker panicked");
        into.latencies.extend(l);
        into.errors += e;
    }
    into.measured += span;
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
    options.scheduling.availability_cache_secs = 0;
    let mesh = Mesh::start(options).await?;
    mesh.wait_ready(Duration::from_secs(30)).await?;

    let echo_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    // The floor runs over the same mesh TLS as the services, so the ratios compare like with like.
    let echo_url = format!("https://{}", echo_listener.local_addr()?);
    let tls = mesh
        .mesh_config
        .tls()?
        .ok_or_else(|| anyhow::anyhow!("the mesh runs over TLS"))?;
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(EchoServiceServer::new(Echo))
            .serve_with_incoming(tls.incoming(echo_listener)),
    );

    let echo_client = EchoServiceClient::new(mesh.channel(&echo_url)?);
    let echo: Call = Arc::new(move |_| {
        let mut c = echo_client.clone();
        Box::pin(async move { c.echo(EchoRequest { message: "ping".into() }).await.is_ok() })
    });

    let routing_url = mesh
        .service_url("era-pharmacy-routing")
        .expect("routing runs")
        .to_owned();
    let routing: PharmacyRoutingServiceClient<Channel> = PharmacyRoutingServiceClient::new(mesh.channel(&routing_url)?);
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

    // Like wrk: one keep-alive HTTP/1.1 connection per request in flight, so the load generator
    // costs as little as it can and the figures are the edge's.
    let edge_addr = mesh.edge_url.trim_start_matches("http://").to_owned();
    let conns = Arc::new(Http1Pool::connect(&edge_addr, cli.concurrency).await?);
    let jwt = era_edge::auth::jwt::TokenKind::admin(&mesh.secrets.admin_jwt_secret)
        .issue("bench@clinic.example")
        .token;
    let floor: Call = {
        let conns = Arc::clone(&conns);
        Arc::new(move |i| Box::pin(Arc::clone(&conns).get(i, "/healthz".into(), None)))
    };
    let edge: Call = {
        let bearer = format!("Bearer {jwt}");
        let conns = Arc::clone(&conns);
        Arc::new(move |i| {
            let path = format!("/api/admin/routing/{}", STATES[i % STATES.len()]);
            Box::pin(Arc::clone(&conns).get(i, path, Some(bearer.clone())))
        })
    };

    // A Georgia demo patient's slots with the prescriber licensed there, over `days` days.
    let patient = era_sandbox::canvas::seed::patients()
        .into_iter()
        .find(|p| p.state == "GA")
        .ok_or_else(|| anyhow::anyhow!("the demo clinic has a Georgia patient"))?;
    let from = chrono::Utc::now() + chrono::Duration::days(1);
    let availability_path = move |days: i64| {
        let at = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
        format!(
            "/api/admin/availability?canvasPatientId={}&practitionerId={}&from={}&to={}",
            patient.id,
            era_sandbox::canvas::seed::ALI_NOLAN_ID,
            at(from),
            at(from + chrono::Duration::days(days))
        )
    };
    let canvas_calls = canvas_requests_per_availability(&mesh, &jwt, &availability_path).await?;
    let availability: Call = {
        let conns = Arc::clone(&conns);
        let bearer = format!("Bearer {jwt}");
        let path = availability_path(14);
        Arc::new(move |i| Box::pin(Arc::clone(&conns).get(i, path.clone(), Some(bearer.clone()))))
    };

    println!(
        "era-bench: {} in flight, {} s per scenario after warm-up, {} cores",
        cli.concurrency,
        cli.seconds,
        cores()
    );
    let scenarios: Vec<(&'static str, Call)> = [
        ("tonic echo", echo),
        ("routing over gRPC", grpc),
        ("routing through the edge", edge),
        ("edge /healthz", floor),
        (AVAILABILITY, availability),
    ]
    .into_iter()
    .filter(|(name, _)| cli.only.as_ref().is_none_or(|only| name.contains(only.as_str())))
    .collect();
    // Rounds interleave the scenarios so that drift in the machine's speed (other tenants, clock
    // changes) falls on all of them alike and the ratios stay comparable.
    let span = Duration::from_secs(cli.seconds).div_f64(ROUNDS as f64);
    let mut samples: Vec<Samples> = scenarios.iter().map(|_| Samples::default()).collect();
    for _ in 0..ROUNDS {
        for ((_, call), into) in scenarios.iter().zip(samples.iter_mut()) {
            measure(call, cli.concurrency, span / 4, span, into).await;
        }
    }
    let results: Vec<Outcome> = scenarios
        .iter()
        .zip(samples)
        .map(|((name, _), s)| s.outcome(name))
        .collect();
    println!(
        "{:<32} {:>10} {:>9} {:>10} {:>10} {:>7}",
        "scenario", "requests", "req/s", "p50 ms", "p99 ms", "errors"
    );
    for r in &results {
        println!(
            "{:<32} {:>10} {:>9.0} {:>10.2} {:>10.2} {:>7}",
            r.name,
            r.requests,
            r.per_sec,
            r.p50.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3,
            r.errors
        );
    }
    if let [echo, grpc, edge, floor, ..] = results.as_slice() {
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

    let calls: Vec<String> = canvas_calls.iter().map(|(d, n)| format!("{d} d: {n}")).collect();
    println!(
        "Canvas requests per availability (one practitioner, cache off): {}",
        calls.join(", ")
    );

    let databases = mesh.databases.clone();
    mesh.shutdown().await;
    drop_databases(cli.database_url.as_deref(), &databases).await;
    if let Some(c) = cluster {
        c.stop()?;
    }
    Ok(())
}

/// One HTTP/1.1 connection per worker; request `i` of worker `w` always has `i % n == w`.
struct Http1Pool {
    host: String,
    conns: Vec<tokio::sync::Mutex<hyper::client::conn::http1::SendRequest<http_body_util::Empty<bytes::Bytes>>>>,
}

impl Http1Pool {
    async fn connect(addr: &str, n: usize) -> anyhow::Result<Self> {
        let mut conns = Vec::with_capacity(n);
        for _ in 0..n {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let (send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            conns.push(tokio::sync::Mutex::new(send));
        }
        Ok(Self {
            host: addr.to_owned(),
            conns,
        })
    }

    async fn get(self: Arc<Self>, i: usize, path: String, authorization: Option<String>) -> bool {
        use http_body_util::BodyExt;
        let mut send = self.conns[i % self.conns.len()].lock().await;
        let mut req = http::Request::get(path).header(http::header::HOST, &self.host);
        if let Some(value) = authorization {
            req = req.header(http::header::AUTHORIZATION, value);
        }
        let Ok(req) = req.body(http_body_util::Empty::new()) else {
            return false;
        };
        match send.send_request(req).await {
            Ok(resp) => resp.status().is_success() && resp.into_body().collect().await.is_ok(),
            Err(_) => false,
        }
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
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
