//! TestMesh: the whole mesh (sandbox, five services, edge) in this process on port 0, with a fresh
//! set of databases that is dropped when the test ends. Nothing is mocked: requests go through
//! real HTTP, real gRPC over loopback and real PostgreSQL.

use std::time::Duration;

use era_dev::{Mesh, MeshOptions, Ports, Secrets};
use era_edge::auth::{hmac, jwt::TokenKind};
use secrecy::ExposeSecret;

#[derive(Debug)]
pub struct TestMesh {
    pub mesh: Mesh,
    /// For the edge (each request sets its own credentials).
    pub http: reqwest::Client,
    /// For the sandbox's control plane: every request carries its token.
    pub sandbox: reqwest::Client,
}

impl TestMesh {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts with options adjusted by `adjust` (CORS origins, for instance).
    pub async fn start_with(adjust: impl FnOnce(&mut MeshOptions)) -> Self {
        let mut options = MeshOptions::new(era_kit::testing::server_url(), Secrets::generate());
        options.ports = Ports::ANY;
        options.database_prefix = format!("era_test_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        // Suites call the public routes in bursts from one address; the rate limits' own tests
        // lower this again.
        options.rate_limit_multiplier = 1000;
        adjust(&mut options);
        let mesh = Mesh::start(options).await.expect("the mesh starts");
        mesh.wait_ready(Duration::from_secs(30))
            .await
            .expect("the mesh gets ready");
        Self {
            sandbox: mesh.sandbox_control(),
            mesh,
            http: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.mesh.edge_url)
    }

    pub fn admin_secret(&self) -> String {
        self.mesh.admin_secret().to_owned()
    }

    pub fn admin_tokens(&self) -> TokenKind {
        TokenKind::admin(&self.mesh.secrets.admin_jwt_secret)
    }

    pub fn patient_tokens(&self) -> TokenKind {
        TokenKind::patient(&self.mesh.secrets.patient_jwt_secret)
    }

    /// A fresh admin JWT for `subject`.
    pub fn admin_jwt(&self, subject: &str) -> String {
        self.admin_tokens().issue(subject).token
    }

    /// The raw admin JWT / HMAC key, for tests that forge tokens.
    pub fn admin_jwt_key(&self) -> Vec<u8> {
        self.mesh.secrets.admin_jwt_secret.expose_secret().as_bytes().to_vec()
    }

    /// `X-Signature` for `body` at `timestamp`, as the Canvas plugin signs it.
    pub fn canvas_signature(&self, timestamp: &str, body: &[u8]) -> String {
        hmac::sign(&self.mesh.secrets.admin_jwt_secret, timestamp, body)
    }

    pub async fn get(&self, path: &str, bearer: Option<&str>) -> reqwest::Response {
        let mut req = self.http.get(self.url(path));
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        req.send().await.expect("the edge answers")
    }

    /// Posts a Canvas-plugin-signed body to `path` with the given timestamp.
    pub async fn post_signed(&self, path: &str, timestamp: &str, body: &str) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .header("content-type", "application/json")
            .header("x-timestamp", timestamp)
            .header("x-signature", self.canvas_signature(timestamp, body.as_bytes()))
            .body(body.to_owned())
            .send()
            .await
            .expect("the edge answers")
    }
}

/// The sandbox's ledger and faults, as tests drive them.
impl TestMesh {
    /// The sandbox's emails to `to`, newest first.
    pub async fn mail(&self, to: &str) -> Vec<serde_json::Value> {
        let resp: serde_json::Value = self
            .sandbox
            .get(self.sandbox_url("/_sandbox/inbox.json"))
            .query(&[("to", to), ("channel", "email")])
            .send()
            .await
            .expect("the sandbox answers")
            .json()
            .await
            .expect("the inbox is JSON");
        resp["messages"].as_array().cloned().unwrap_or_default()
    }

    /// Waits for the `n`th email to `to` (the outbox sends asynchronously) and returns the newest's
    /// text.
    pub async fn nth_mail(&self, to: &str, n: usize) -> String {
        for _ in 0..100 {
            let all = self.mail(to).await;
            if all.len() >= n {
                return all[0]["text"].as_str().unwrap_or_default().to_owned();
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("mail {n} to the address did not arrive");
    }

    pub fn sandbox_url(&self, path: &str) -> String {
        format!("{}{path}", self.mesh.sandbox_url)
    }

    /// The newest ledger sequence number, to count calls made after it.
    pub async fn ledger_mark(&self) -> u64 {
        let v: serde_json::Value = self
            .sandbox
            .get(self.sandbox_url("/_sandbox/ledger"))
            .send()
            .await
            .expect("the sandbox answers")
            .json()
            .await
            .expect("ledger JSON");
        v["entries"]
            .as_array()
            .and_then(|e| e.last())
            .and_then(|e| e["seq"].as_u64())
            .unwrap_or(0)
    }

    /// Calls to `vendor` since `mark`, per `METHOD path`.
    pub async fn ledger_counts(&self, vendor: &str, mark: u64) -> std::collections::BTreeMap<String, u64> {
        self.sandbox
            .get(self.sandbox_url(&format!("/_sandbox/ledger/counts?vendor={vendor}&since={mark}")))
            .send()
            .await
            .expect("the sandbox answers")
            .json()
            .await
            .expect("counts JSON")
    }

    /// Injects a fault (the sandbox's JSON shape: path, method, times, latency_ms, action).
    pub async fn fault(&self, fault: serde_json::Value) {
        let resp = self
            .sandbox
            .post(self.sandbox_url("/_sandbox/faults"))
            .json(&fault)
            .send()
            .await
            .expect("the sandbox answers");
        assert_eq!(resp.status().as_u16(), 201, "fault accepted");
    }

    /// Removes every fault still waiting.
    pub async fn clear_faults(&self) {
        let resp = self
            .sandbox
            .delete(self.sandbox_url("/_sandbox/faults"))
            .send()
            .await
            .expect("the sandbox answers");
        assert!(resp.status().is_success(), "faults cleared");
    }

    /// POSTs to a sandbox control route.
    pub async fn sandbox_post(&self, path: &str) -> reqwest::Response {
        self.sandbox
            .post(self.sandbox_url(path))
            .send()
            .await
            .expect("the sandbox answers")
    }

    /// A gRPC request carrying `ADMIN_SECRET`, as jobs and operators send it.
    pub fn admin_request<T>(&self, message: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(message);
        let value = format!("Bearer {}", self.admin_secret());
        req.metadata_mut()
            .insert("authorization", value.parse().expect("ASCII secret"));
        req
    }

    /// A gRPC request as the edge forwards it for `caller`.
    pub fn request_as<T>(&self, message: T, caller: &era_kit::auth::Caller) -> tonic::Request<T> {
        let tokens = era_kit::auth::InternalTokens::new(&self.mesh.secrets.internal_token_secret);
        era_kit::client::request(message, &tokens, caller)
    }

    /// A client of the payments service.
    pub fn payments(
        &self,
    ) -> era_proto::payments::v1::payments_service_client::PaymentsServiceClient<tonic::transport::Channel> {
        let url = self.mesh.service_url("era-payments").expect("payments runs");
        era_proto::payments::v1::payments_service_client::PaymentsServiceClient::new(
            self.mesh.channel(url).expect("a valid URL"),
        )
    }

    /// A client of the notifications service.
    pub fn notifications(
        &self,
    ) -> era_proto::notifications::v1::notifications_service_client::NotificationsServiceClient<tonic::transport::Channel>
    {
        let url = self.mesh.service_url("era-notifications").expect("notifications runs");
        era_proto::notifications::v1::notifications_service_client::NotificationsServiceClient::new(
            self.mesh.channel(url).expect("a valid URL"),
        )
    }

    /// The URL of one of the mesh's databases (`service` as in `era_<service>`).
    pub fn database_url(&self, service: &str) -> String {
        let name = self
            .mesh
            .databases
            .iter()
            .find(|d| d.ends_with(&format!("_{service}")))
            .expect("the mesh has that database");
        era_dev::database_url(&era_kit::testing::server_url(), name).expect("a database URL")
    }

    /// Runs SQL against the notifications database as its owner (tests stage states a crash leaves).
    pub async fn notifications_sql(&self, sql: &str) {
        let pool = sqlx::PgPool::connect(&self.database_url("notifications"))
            .await
            .expect("the database answers");
        sqlx::query(sql).execute(&pool).await.expect("the statement runs");
        pool.close().await;
    }

    /// Starts another notifications replica on the mesh's database (with its own worker); it
    /// stops when the returned guard is dropped.
    pub async fn start_notifications_replica(&self, outbox: era_notifications::config::OutboxConfig) -> Replica {
        let (service, listener, pool) = self.replica_service("notifications").await;
        let addr = service.listen_addr.expect("a bound address");
        let canvas = self.mesh.service_url("era-canvas").expect("canvas runs");
        let config = era_dev::notifications_config(
            service,
            &self.mesh.secrets,
            &self.mesh.sandbox_url,
            canvas,
            &self.mesh.edge_url,
            outbox,
        );
        Replica::spawn(format!("https://{addr}"), |stopped| {
            era_notifications::run(config, listener, pool, stopped)
        })
    }

    /// A second replica's settings for `service`: its own loopback socket, the mesh's database.
    async fn replica_service(
        &self,
        service: &str,
    ) -> (era_kit::config::ServiceConfig, tokio::net::TcpListener, sqlx::PgPool) {
        let database = era_kit::config::DatabaseConfig::new(self.database_url(service));
        let pool = era_kit::db::connect(&database).await.expect("the database answers");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let addr = listener.local_addr().expect("an address");
        let config = era_kit::config::ServiceConfig {
            listen_addr: Some(addr),
            database,
            auth: self.mesh.secrets.auth(),
            logging: Default::default(),
            mesh: self.mesh.mesh_config.clone(),
        };
        (config, listener, pool)
    }

    pub fn canvas(
        &self,
    ) -> era_proto::canvas::v1::canvas_service_client::CanvasServiceClient<tonic::transport::Channel> {
        let url = self.mesh.service_url("era-canvas").expect("canvas runs");
        era_proto::canvas::v1::canvas_service_client::CanvasServiceClient::new(
            self.mesh.channel(url).expect("a valid URL"),
        )
    }
}

impl TestMesh {
    /// Starts a second edge on the mesh's edge database and services, with `adjust` applied to its
    /// settings; it stops when the returned guard is dropped.
    pub async fn start_edge_replica(&self, adjust: impl FnOnce(&mut era_edge::Config)) -> Replica {
        let (service, listener, pool) = self.replica_service("edge").await;
        let addr = service.listen_addr.expect("a bound address");
        let url = |name| self.mesh.service_url(name).expect("the service runs").to_owned();
        let peers = era_edge::config::Peers {
            canvas: url("era-canvas"),
            payments: url("era-payments"),
            pharmacy_routing: url("era-pharmacy-routing"),
            scheduling: url("era-scheduling"),
            notifications: url("era-notifications"),
        };
        let mut config = era_dev::edge_config(
            addr,
            service.database,
            &self.mesh.secrets,
            peers,
            Default::default(),
            self.mesh.mesh_config.clone(),
        );
        adjust(&mut config);
        config.validate().expect("a valid edge config");
        Replica::spawn(format!("http://{addr}"), |stopped| {
            era_edge::run(config, listener, pool, stopped)
        })
    }

    pub fn scheduling(
        &self,
    ) -> era_proto::scheduling::v1::scheduling_service_client::SchedulingServiceClient<tonic::transport::Channel> {
        let url = self.mesh.service_url("era-scheduling").expect("scheduling runs");
        era_proto::scheduling::v1::scheduling_service_client::SchedulingServiceClient::new(
            self.mesh.channel(url).expect("a valid URL"),
        )
    }

    /// Starts another scheduling replica on the mesh's database with `engine` (a failpoint, a short
    /// lease); it stops when the returned guard is dropped.
    pub async fn start_scheduling_replica(&self, engine: era_scheduling::config::EngineConfig) -> Replica {
        let (service, listener, pool) = self.replica_service("scheduling").await;
        let addr = service.listen_addr.expect("a bound address");
        let url = |name| self.mesh.service_url(name).expect("the service runs");
        let config = era_dev::scheduling_config(
            service,
            &self.mesh.secrets,
            &self.mesh.sandbox_url,
            era_dev::SchedulingPeers {
                canvas: url("era-canvas"),
                pharmacy_routing: url("era-pharmacy-routing"),
                notifications: url("era-notifications"),
            },
            engine,
        );
        Replica::spawn(format!("https://{addr}"), |stopped| {
            era_scheduling::run(config, listener, pool, stopped)
        })
    }

    pub fn pharmacy_routing(
        &self,
    ) -> era_proto::pharmacy_routing::v1::pharmacy_routing_service_client::PharmacyRoutingServiceClient<
        tonic::transport::Channel,
    > {
        self.routing_client(self.mesh.service_url("era-pharmacy-routing").expect("routing runs"))
    }

    pub fn routing_client(
        &self,
        url: &str,
    ) -> era_proto::pharmacy_routing::v1::pharmacy_routing_service_client::PharmacyRoutingServiceClient<
        tonic::transport::Channel,
    > {
        era_proto::pharmacy_routing::v1::pharmacy_routing_service_client::PharmacyRoutingServiceClient::new(
            self.mesh.channel(url).expect("a valid URL"),
        )
    }

    /// Starts another pharmacy-routing replica on the mesh's database with `pipeline` (a failpoint,
    /// a short lease); it stops when the returned guard is dropped.
    pub async fn start_routing_replica(&self, pipeline: era_pharmacy_routing::config::PipelineConfig) -> Replica {
        let (service, listener, pool) = self.replica_service("pharmacy_routing").await;
        let addr = service.listen_addr.expect("a bound address");
        let url = |name| self.mesh.service_url(name).expect("the service runs");
        let config = era_dev::pharmacy_routing_config(
            service,
            &self.mesh.secrets,
            &self.mesh.sandbox_url,
            era_dev::Peers {
                canvas: url("era-canvas"),
                payments: url("era-payments"),
                notifications: url("era-notifications"),
            },
            pipeline,
        );
        Replica::spawn(format!("https://{addr}"), |stopped| {
            era_pharmacy_routing::run(config, listener, pool, stopped)
        })
    }
}

/// A service replica a test started; stopped when dropped.
#[derive(Debug)]
pub struct Replica {
    _stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub url: String,
}

impl Replica {
    /// Runs the server `serve` builds (given the future that resolves when the guard is dropped).
    fn spawn<F>(url: String, serve: impl FnOnce(BoxedStop) -> F) -> Self
    where
        F: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(Box::pin(async {
            let _ = stopped.await;
        })));
        Self { _stop: stop, task, url }
    }
}

type BoxedStop = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

impl Drop for Replica {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Drop for TestMesh {
    fn drop(&mut self) {
        for name in &self.mesh.databases {
            era_kit::testing::drop_database_blocking(name);
        }
    }
}

/// The `error.code` of an error response, asserting its HTTP status.
pub async fn error_code(resp: reqwest::Response, status: u16) -> String {
    assert_eq!(resp.status().as_u16(), status, "unexpected status");
    let body: serde_json::Value = resp.json().await.expect("a JSON error body");
    body["error"]["code"].as_str().expect("error.code").to_owned()
}

/// Seconds since the epoch, as the plugin would stamp a request.
pub fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The six-digit code in a mail's text.
pub fn code_in(text: &str) -> String {
    text.split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .expect("a six-digit code")
        .to_owned()
}
