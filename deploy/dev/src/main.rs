//! `era-dev`: the whole mesh on the standard ports, with the sandbox in place of every vendor.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use era_dev::{postgres::LocalCluster, Mesh, MeshOptions, Ports, Secrets};
use era_kit::{
    config::LoggingConfig,
    dev_ca::{CA_FILE, CERT_FILE, KEY_FILE},
    ExposeSecret,
};

// glibc's allocator spends a large share of each small request consolidating blocks.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "era-dev",
    about = "Run the whole Era mesh locally against the vendor sandbox"
)]
struct Cli {
    /// A PostgreSQL server where era-dev may create one database per service. Unset: era-dev runs
    /// its own cluster under `.era/` from the installed PostgreSQL.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// Where the dev cluster lives when DATABASE_URL is unset.
    #[arg(long, env = "ERA_DEV_DIR", default_value = ".era")]
    dir: std::path::PathBuf,
    /// `standard`: the ports in ARCHITECTURE.md (edge 8080, sandbox 8090, services 50051-50055).
    /// `any`: free ports the system picks, printed below, for scripts and tests that must not
    /// depend on the standard ones being free.
    #[arg(long, env = "ERA_DEV_PORTS", value_enum, default_value = "standard")]
    ports: PortChoice,
    /// Databases are named `<prefix>_<service>`.
    #[arg(long, env = "ERA_DEV_DATABASE_PREFIX", default_value = "era")]
    database_prefix: String,
    /// Browser origins allowed to call the edge, comma-separated.
    #[arg(long, env = "CORS_ALLOWED_ORIGINS", value_delimiter = ',', default_value = "")]
    cors_allowed_origins: Vec<String>,
    /// The edge's `RATE_LIMIT_MULTIPLIER`: every public route's budget per client per minute is
    /// multiplied by it. Raise it for a fuzzer or a load test that calls the public routes in bursts.
    #[arg(long, env = "ERA_DEV_RATE_LIMIT_MULTIPLIER", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    rate_limit_multiplier: u32,
    /// pharmacy-routing's waits before each retry of a refill whose card was declined (seconds,
    /// comma-separated): shorten them to watch a decline, its retries and the overdue notice.
    #[arg(long, env = "REFILL_RETRY_SECS", value_delimiter = ',', default_values_t = [86_400u64, 259_200])]
    refill_retry_secs: Vec<u64>,
    #[command(flatten)]
    logging: LoggingConfig,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum PortChoice {
    Standard,
    Any,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    era_kit::telemetry::init(&cli.logging);
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("era-dev: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[expect(
    clippy::print_stdout,
    reason = "the launcher's output is for the person who started it"
)]
async fn run(cli: Cli) -> anyhow::Result<()> {
    anyhow::ensure!(
        std::env::var("ERA_ENV").map_or(true, |env| env != "production"),
        "ERA_ENV=production: era-dev runs the vendor sandbox and a throwaway CA, for development only"
    );
    anyhow::ensure!(
        !cli.database_prefix.is_empty()
            && cli
                .database_prefix
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
        "ERA_DEV_DATABASE_PREFIX must be lowercase letters, digits and underscores"
    );
    let (cluster, server_url) = match cli.database_url {
        Some(url) => (None, url),
        None => {
            let (cluster, url) = LocalCluster::start(&cli.dir.join("postgres"))?;
            println!("PostgreSQL   {url} (data in {})", cli.dir.join("postgres").display());
            (Some(cluster), url)
        }
    };
    let (mut secrets, mut generated) = Secrets::from_env_or_generate();
    keep_data_keys(&cli.dir, &mut secrets, &mut generated)?;
    let mut options = MeshOptions::new(server_url, secrets);
    options.logging = cli.logging.clone();
    options.database_prefix = cli.database_prefix.clone();
    options.ports = match cli.ports {
        PortChoice::Standard => Ports::STANDARD,
        PortChoice::Any => Ports::ANY,
    };
    options.cors_allowed_origins = cli.cors_allowed_origins.clone();
    options.rate_limit_multiplier = cli.rate_limit_multiplier;
    options.pipeline.refill_retry_secs = cli.refill_retry_secs.clone();
    // The local mesh behaves as deployed: the Canvas plugin announces new patients and
    // prescriptions to the edge.
    options.canvas_plugin_webhook = true;
    let tls_dir = cli.dir.join("tls");
    options
        .ca
        .write(&tls_dir)
        .with_context(|| format!("writing the mesh certificates to {}", tls_dir.display()))?;
    let mut mesh = Mesh::start(options).await?;
    mesh.wait_ready(std::time::Duration::from_secs(30)).await?;

    println!("edge         {}   (docs {}/docs)", mesh.edge_url, mesh.edge_url);
    println!(
        "sandbox      {}   (its control plane at {}/_sandbox takes Authorization: Bearer $SANDBOX_CONTROL_TOKEN; what patients were sent: {}/_sandbox/inbox, which asks for the token once)",
        mesh.sandbox_url, mesh.sandbox_url, mesh.sandbox_url
    );
    for (name, url) in &mesh.services {
        println!("{name:<21}{url}");
    }
    println!("databases    {}", mesh.databases.join(", "));
    println!(
        "mesh-tls     {}   (gRPC runs over mTLS with a CA made for this run: {CA_FILE}, and the certificate and key every component presents, {CERT_FILE} and {KEY_FILE})",
        tls_dir.display()
    );
    let s = &mesh.secrets;
    for (var, value) in [
        ("ADMIN_SECRET", &s.admin_secret),
        ("ADMIN_JWT_SECRET", &s.admin_jwt_secret),
        ("PATIENT_JWT_SECRET", &s.patient_jwt_secret),
        ("INTERNAL_TOKEN_SECRET", &s.internal_token_secret),
        ("CANVAS_CLIENT_SECRET", &s.canvas_client_secret),
        ("STRIPE_SECRET_KEY", &s.stripe_secret_key),
        ("STRIPE_WEBHOOK_SECRET", &s.stripe_webhook_secret),
        ("PIONEERRX_WEBHOOK_SECRET", &s.pioneerrx_webhook_secret),
        ("BOOTHWYN_WEBHOOK_SECRET", &s.boothwyn_webhook_secret),
        ("STRIVE_WEBHOOK_SECRET", &s.strive_webhook_secret),
        ("TWILIO_AUTH_TOKEN", &s.twilio_auth_token),
        ("ZOOM_CLIENT_SECRET", &s.zoom_client_secret),
        ("FEDEX_CLIENT_SECRET", &s.fedex_client_secret),
        ("SANDBOX_CONTROL_TOKEN", &s.sandbox_control_token),
    ] {
        // A secret the operator set is theirs to know; printing it would copy it into terminals
        // and logs.
        if generated.contains(&var) {
            println!("{var}={}   (generated)", value.expose_secret());
        } else {
            println!("{var}   (from the environment)");
        }
    }
    // The keys that protect stored records are not printed: they live in a file of their own.
    println!(
        "RECORDS_KEYS, BLIND_INDEX_KEY, MESSAGE_KEYS, LOGIN_CODE_KEY, PIPELINE_KEYS   (from the environment, else kept in {})",
        cli.dir.join(DATA_KEYS_FILE).display()
    );
    println!(
        "try: curl -H \"Authorization: Bearer $ADMIN_SECRET\" '{}/api/rx-queue/tasks?pageSize=5'",
        mesh.edge_url
    );
    if let Some(task) = first_task(&mesh).await {
        println!(
            "     curl -H \"Authorization: Bearer $ADMIN_SECRET\" {}/api/rx-queue/tasks/{task}",
            mesh.edge_url
        );
        if let Some(dose) = demo_card(&mesh, &task).await {
            println!(
                "     curl -X POST -H \"Authorization: Bearer $ADMIN_SECRET\" -H 'content-type: application/json' -d '{{\"doseLabel\":\"{dose}\"}}' {}/api/rx-queue/tasks/{task}/approve",
                mesh.edge_url
            );
        }
    }
    println!(
        "     curl -H \"Authorization: Bearer $ADMIN_SECRET\" '{}/api/admin/routing/GA?medication=semaglutide'",
        mesh.edge_url
    );
    demo_booking(&mesh).await;
    if let Some(canvas) = mesh.service_url("era-canvas") {
        let tls = tls_dir.display();
        println!(
            "     grpcurl -cacert {tls}/{CA_FILE} -cert {tls}/{CERT_FILE} -key {tls}/{KEY_FILE} -H \"authorization: Bearer $ADMIN_SECRET\" -d '{{\"page\":{{\"pageSize\":5}}}}' {} era.canvas.v1.CanvasService/ListRxReviewTasks",
            canvas.trim_start_matches("https://")
        );
    }
    println!("era-dev ready: edge {} (Ctrl-C to stop)", mesh.edge_url);

    let outcome = tokio::select! {
        () = era_kit::server::shutdown_signal() => Ok(()),
        (name, result) = mesh.exited() => Err(anyhow::anyhow!("{name} stopped: {:?}", result.err())),
    };
    mesh.shutdown().await;
    if let Some(cluster) = cluster {
        cluster.stop()?;
    }
    outcome
}

/// The id of the demo queue's first task, for the launcher's example; the queue is read the way a
/// newcomer would, through the edge.
async fn first_task(mesh: &Mesh) -> Option<String> {
    let resp = edge_get(mesh, "/api/rx-queue/tasks?pageSize=1").await?;
    resp["items"][0]["id"].as_str().map(str::to_owned)
}

/// A GET through the edge with `ADMIN_SECRET`, as a newcomer's curl would do it.
async fn edge_get(mesh: &Mesh, path: &str) -> Option<serde_json::Value> {
    reqwest::Client::new()
        .get(format!("{}{path}", mesh.edge_url))
        .bearer_auth(mesh.admin_secret())
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()
}

/// Prints the availability of a demo patient and a booking of their first free slot.
#[expect(
    clippy::print_stdout,
    reason = "the launcher's output is for the person who started it"
)]
async fn demo_booking(mesh: &Mesh) {
    let Some(patient) = era_sandbox::canvas::seed::patients()
        .into_iter()
        .find(|p| p.state == "GA")
    else {
        return;
    };
    let path = format!("/api/admin/availability?canvasPatientId={}", patient.id);
    println!(
        "     curl -H \"Authorization: Bearer $ADMIN_SECRET\" '{}{path}'",
        mesh.edge_url
    );
    let Some(slots) = edge_get(mesh, &path).await else {
        return;
    };
    let slot = &slots["items"][0];
    if let (Some(practitioner), Some(start)) = (slot["practitionerId"].as_str(), slot["startTime"].as_str()) {
        println!(
            "     curl -X POST -H \"Authorization: Bearer $ADMIN_SECRET\" -H 'content-type: application/json' -d '{{\"canvasPatientId\":\"{}\",\"practitionerId\":\"{practitioner}\",\"startTime\":\"{start}\"}}' {}/api/admin/appointments",
            patient.id, mesh.edge_url
        );
    }
}

/// Gives the task's patient a saved test card (Stripe's `pm_card_visa`, in the sandbox) when they
/// have none, so the printed approval goes through; answers the task's first dose.
async fn demo_card(mesh: &Mesh, task: &str) -> Option<String> {
    use era_proto::payments::v1::{self as pb, payments_service_client::PaymentsServiceClient};
    let detail = edge_get(mesh, &format!("/api/rx-queue/tasks/{task}")).await?;
    let patient = detail["task"]["canvasPatientId"].as_str()?.to_owned();
    let dose = detail["dosageOptions"][0]["label"].as_str()?.to_owned();
    let channel = mesh.channel(mesh.service_url("era-payments")?).ok()?;
    let mut payments = PaymentsServiceClient::new(channel);
    fn with_secret<T>(secret: &str, message: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(message);
        if let Ok(v) = format!("Bearer {secret}").parse() {
            req.metadata_mut().insert("authorization", v);
        }
        req
    }
    let secret = mesh.admin_secret().to_owned();
    let held = payments
        .get_payment_hold(with_secret(
            &secret,
            pb::GetPaymentHoldRequest {
                canvas_patient_id: patient.clone(),
                ..Default::default()
            },
        ))
        .await;
    if held.is_err() {
        let setup = payments
            .create_setup_intent(with_secret(
                &secret,
                pb::CreateSetupIntentRequest {
                    canvas_patient_id: patient.clone(),
                    submission_id: "era-dev-demo".into(),
                    idempotency_key: format!("era-dev-demo-{patient}"),
                    ..Default::default()
                },
            ))
            .await
            .ok()?
            .into_inner();
        payments
            .save_payment_method(with_secret(
                &secret,
                pb::SavePaymentMethodRequest {
                    canvas_patient_id: patient,
                    setup_intent_id: setup.setup_intent_id,
                    payment_method_id: "pm_card_visa".into(),
                    idempotency_key: String::new(),
                },
            ))
            .await
            .ok()?;
    }
    Some(dose)
}

const DATA_KEYS_FILE: &str = "data-keys.env";

/// The keys that protect stored data (intake records, messages, their blind indexes) must outlive one run:
/// the databases do. Generated ones are written to `<dir>/data-keys.env` (mode 0600) and read back
/// on the next start; values set in the environment always win.
fn keep_data_keys(
    dir: &std::path::Path,
    secrets: &mut Secrets,
    generated: &mut Vec<&'static str>,
) -> anyhow::Result<()> {
    use std::io::Write as _;
    let path = dir.join(DATA_KEYS_FILE);
    let saved: std::collections::HashMap<String, String> = std::fs::read_to_string(&path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        })
        .collect();
    let mut to_save = Vec::new();
    for var in [
        "RECORDS_KEYS",
        "BLIND_INDEX_KEY",
        "MESSAGE_KEYS",
        "LOGIN_CODE_KEY",
        "PIPELINE_KEYS",
    ] {
        if !generated.contains(&var) {
            continue;
        }
        let slot = match var {
            "RECORDS_KEYS" => &mut secrets.records_keys,
            "MESSAGE_KEYS" => &mut secrets.message_keys,
            "LOGIN_CODE_KEY" => &mut secrets.login_code_key,
            "PIPELINE_KEYS" => &mut secrets.pipeline_keys,
            _ => &mut secrets.blind_index_key,
        };
        match saved.get(var) {
            Some(value) if !value.is_empty() => {
                *slot = era_kit::SecretString::from(value.clone());
                generated.retain(|g| *g != var);
            }
            _ => to_save.push(format!("{var}={}", slot.expose_secret())),
        }
    }
    if to_save.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&path)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    // An existing file keeps the mode it was created with; make sure it is the owner's alone.
    #[cfg(unix)]
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    for line in to_save {
        writeln!(file, "{line}")?;
    }
    Ok(())
}
