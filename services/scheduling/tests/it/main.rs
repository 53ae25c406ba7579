//! The scheduling service on its own: its own throwaway PostgreSQL database, real gRPC over loopback
//! to `era_scheduling::run`, the sandbox's Zoom simulator over real HTTP, and in-process fakes of its
//! three peers (canvas, pharmacy-routing, notifications) that record what scheduling sent them.
//!
//! The job runner's retry schedule is the kit's default (5 s, then 30 s, ...) and no setting
//! shortens it, so the tests that retry make the waiting job due at once with SQL on the `jobs` table
//! ([`Harness::retry_now`]) after checking the retry was planned.

mod access;
mod availability;
mod booking;
mod config;
mod fakes;
mod visits;
mod zoom;

use std::time::Duration;

use chrono::{DateTime, NaiveTime, Utc};
use era_kit::{
    auth::{Caller, InternalTokens},
    config::AuthConfig,
    jobs::JobState,
    testing::{self, TestDb},
    ExposeSecret,
};
use era_proto::scheduling::v1::{self as pb, scheduling_service_client::SchedulingServiceClient};
use era_sandbox::state::{DEFAULT_ZOOM_ACCOUNT_ID, DEFAULT_ZOOM_CLIENT_ID, DEFAULT_ZOOM_CLIENT_SECRET};
use era_scheduling::config::{Config, EngineConfig, Peers, ZoomConfig};
use serde_json::Value;
use tokio::sync::oneshot;
use tonic::{transport::Channel, Code, Request, Status};

use crate::fakes::{Canvas, Notifications, Routing, NOLAN};

/// How long a test waits for something the service does in the background.
const PATIENCE: Duration = Duration::from_secs(10);

/// The sandbox (Zoom) over HTTP, with its test controls.
pub(crate) struct Sandbox {
    pub(crate) base: String,
    http: reqwest::Client,
}

impl Sandbox {
    async fn start() -> (Self, oneshot::Sender<()>) {
        let (listener, addr) = testing::listener().await;
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(era_sandbox::run(era_sandbox::Sandbox::new(), listener, async {
            let _ = stopped.await;
        }));
        let sandbox = Self {
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
        };
        (sandbox, stop)
    }

    pub(crate) fn zoom_config(&self) -> ZoomConfig {
        ZoomConfig {
            base_url: format!("{}/zoom/v2", self.base),
            token_url: format!("{}/zoom/oauth/token", self.base),
            account_id: DEFAULT_ZOOM_ACCOUNT_ID.into(),
            client_id: DEFAULT_ZOOM_CLIENT_ID.into(),
            client_secret: era_kit::SecretString::from(DEFAULT_ZOOM_CLIENT_SECRET),
            timeout_secs: 5,
        }
    }

    async fn control(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}/_sandbox{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("the sandbox answers");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Every Zoom meeting not deleted, oldest first.
    pub(crate) async fn meetings(&self) -> Vec<Value> {
        let (status, body) = self.control(reqwest::Method::GET, "/zoom/meetings", None).await;
        assert_eq!(status, 200, "{body}");
        body["meetings"].as_array().unwrap().clone()
    }

    /// The Zoom ledger: every call and effect, oldest first.
    pub(crate) async fn ledger(&self) -> Vec<Value> {
        let (status, body) = self.control(reqwest::Method::GET, "/ledger?vendor=zoom", None).await;
        assert_eq!(status, 200, "{body}");
        body["entries"].as_array().unwrap().clone()
    }

    /// The statuses of the ledger's calls `method` to paths starting with `prefix`, in order.
    pub(crate) async fn calls(&self, method: &str, prefix: &str) -> Vec<Option<u64>> {
        self.ledger()
            .await
            .iter()
            .filter(|e| e["method"] == method && e["path"].as_str().is_some_and(|p| p.starts_with(prefix)))
            .map(|e| e["status"].as_u64())
            .collect()
    }

    /// Every token issued so far is expired from now on.
    pub(crate) async fn expire_tokens(&self) {
        let (status, body) = self.control(reqwest::Method::POST, "/zoom/expire-tokens", None).await;
        assert_eq!(status, 204, "{body}");
    }

    pub(crate) async fn fault(&self, fault: Value) {
        let (status, body) = self.control(reqwest::Method::POST, "/faults", Some(fault)).await;
        assert_eq!(status, 201, "{body}");
    }
}

/// The engine settings of these tests: a fast poll and a short lease.
pub(crate) fn engine() -> EngineConfig {
    EngineConfig {
        poll_ms: 20,
        lease_secs: 2,
        ..Default::default()
    }
}

/// The service with its database, its sandbox and its fake peers. Dropping it stops them all.
pub(crate) struct Harness {
    // Dropped first: the servers stop before the database goes.
    _stops: Vec<oneshot::Sender<()>>,
    pub(crate) client: SchedulingServiceClient<Channel>,
    pub(crate) canvas: Canvas,
    pub(crate) routing: Routing,
    pub(crate) notifications: Notifications,
    pub(crate) sandbox: Sandbox,
    pub(crate) db: TestDb,
    auth: AuthConfig,
}

impl Harness {
    pub(crate) async fn start() -> Self {
        Self::with_engine(engine()).await
    }

    pub(crate) async fn with_engine(engine: EngineConfig) -> Self {
        let db = TestDb::new(&era_scheduling::MIGRATOR).await;
        let (sandbox, sandbox_stop) = Sandbox::start().await;
        let canvas = Canvas::new();
        let routing = Routing::default();
        let notifications = Notifications::default();
        let (canvas_url, canvas_stop) = fakes::serve(canvas.routes()).await;
        let (routing_url, routing_stop) = fakes::serve(routing.routes()).await;
        let (notifications_url, notifications_stop) = fakes::serve(notifications.routes()).await;

        let service = testing::service_config(&db);
        let auth = service.auth.clone();
        let config = Config {
            service,
            peers: Peers {
                canvas_grpc_url: canvas_url,
                pharmacy_routing_grpc_url: routing_url,
                notifications_grpc_url: notifications_url,
            },
            zoom: sandbox.zoom_config(),
            engine,
        };
        let (listener, addr) = testing::listener().await;
        let (stop, stopped) = oneshot::channel::<()>();
        let pool = db.pool.clone();
        tokio::spawn(async move {
            era_scheduling::run(config, listener, pool, async {
                let _ = stopped.await;
            })
            .await
            .expect("the scheduling service runs");
        });
        let client = SchedulingServiceClient::new(era_kit::client::channel(&format!("http://{addr}"), None).unwrap());
        Self {
            _stops: vec![stop, canvas_stop, routing_stop, notifications_stop, sandbox_stop],
            client,
            canvas,
            routing,
            notifications,
            sandbox,
            db,
            auth,
        }
    }

    /// A request carrying `ADMIN_SECRET`.
    pub(crate) fn admin<T>(&self, message: T) -> Request<T> {
        let mut req = Request::new(message);
        let secret = self.auth.admin_secret.expose_secret().to_owned();
        req.metadata_mut()
            .insert("authorization", format!("Bearer {secret}").parse().unwrap());
        req
    }

    /// A request as the edge forwards it for a signed-in patient.
    pub(crate) fn as_patient<T>(&self, message: T, patient: &str) -> Request<T> {
        era_kit::client::request(
            message,
            &InternalTokens::new(&self.auth.internal_token_secret),
            &Caller::patient(patient),
        )
    }

    pub(crate) async fn availability(
        &self,
        req: pb::GetAvailabilityRequest,
    ) -> Result<pb::GetAvailabilityResponse, Status> {
        self.client
            .clone()
            .get_availability(self.admin(req))
            .await
            .map(tonic::Response::into_inner)
    }

    /// The free starts of one practitioner in `[from, to)`, for a patient in Georgia.
    pub(crate) async fn free_starts(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        self.availability(range(fakes::PATIENT_GA, from, to))
            .await
            .expect("availability")
            .slots
            .iter()
            .map(|s| time(&s.start_time))
            .collect()
    }

    /// A booking request for `patient` with Dr. Nolan at `start`.
    pub(crate) fn booking(patient: &str, start: DateTime<Utc>) -> pb::BookAppointmentRequest {
        pb::BookAppointmentRequest {
            canvas_patient_id: patient.into(),
            practitioner_id: NOLAN.into(),
            start_time: Some(era_kit::time::timestamp(start)),
            ..Default::default()
        }
    }

    /// Books as an admin and answers the appointment as the call returned it.
    pub(crate) async fn book(&self, patient: &str, start: DateTime<Utc>) -> Result<pb::Appointment, Status> {
        self.client
            .clone()
            .book_appointment(self.admin(Self::booking(patient, start)))
            .await
            .map(|r| r.into_inner().appointment.expect("an appointment"))
    }

    pub(crate) async fn get(&self, id: &str) -> pb::Appointment {
        self.client
            .clone()
            .get_appointment(self.admin(pb::GetAppointmentRequest { id: id.into() }))
            .await
            .expect("the appointment")
            .into_inner()
            .appointment
            .unwrap()
    }

    /// Waits until the appointment satisfies `done`, and answers it.
    pub(crate) async fn eventually(
        &self,
        id: &str,
        what: &str,
        done: impl Fn(&pb::Appointment) -> bool,
    ) -> pb::Appointment {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let a = self.get(id).await;
            if done(&a) {
                return a;
            }
            assert!(tokio::time::Instant::now() < deadline, "never {what}: {a:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The id of `patient`'s only appointment, once it is recorded (for a booking still in flight).
    pub(crate) async fn recorded_appointment(&self, patient: &str) -> String {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let ids: Vec<String> = sqlx::query_scalar("select id::text from appointments where canvas_patient_id = $1")
                .bind(patient)
                .fetch_all(&self.db.pool)
                .await
                .unwrap();
            match ids.as_slice() {
                [id] => return id.clone(),
                [] => {}
                more => panic!("one appointment expected, found {more:?}"),
            }
            assert!(tokio::time::Instant::now() < deadline, "no appointment was recorded");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The appointment's job, as the queue holds it.
    pub(crate) async fn job(&self, id: &str) -> JobState {
        era_scheduling::queue(self.db.pool.clone())
            .get(&format!("appointment:{id}"))
            .await
            .unwrap()
            .expect("the appointment's job")
    }

    /// Waits until the appointment's job has failed `attempts` times and waits for its next attempt
    /// on the runner's schedule; checks when that was planned, then makes it due now (standing in
    /// for the wait). Answers the job as it was waiting.
    pub(crate) async fn retry_now(&self, id: &str, attempts: i32, planned_after: Duration) -> JobState {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let job = loop {
            let job = self.job(id).await;
            if job.status == "pending" && job.attempts == attempts {
                break job;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "attempt {attempts} never failed: {job:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let wait = (job.run_at - Utc::now()).to_std().unwrap_or_default();
        assert!(
            wait <= planned_after && wait + Duration::from_secs(2) >= planned_after,
            "attempt {} planned {wait:?} ahead, expected about {planned_after:?}: {job:?}",
            attempts + 1
        );
        let moved =
            sqlx::query("update jobs set run_at = now() where key = $1 and status = 'pending' and attempts = $2")
                .bind(&job.key)
                .bind(attempts)
                .execute(&self.db.pool)
                .await
                .unwrap();
        assert_eq!(moved.rows_affected(), 1);
        job
    }
}

/// A protobuf time.
pub(crate) fn ts(t: DateTime<Utc>) -> prost_types::Timestamp {
    era_kit::time::timestamp(t)
}

/// A time from the wire.
pub(crate) fn time(t: &Option<prost_types::Timestamp>) -> DateTime<Utc> {
    era_kit::time::from_timestamp(t.as_ref().expect("a time")).expect("a valid time")
}

/// `days` days from today (UTC) at `hour:minute` UTC.
pub(crate) fn day_at(days: i64, hour: u32, minute: u32) -> DateTime<Utc> {
    (Utc::now().date_naive() + chrono::Duration::days(days))
        .and_time(NaiveTime::from_hms_opt(hour, minute, 0).unwrap())
        .and_utc()
}

/// An availability request for every practitioner.
pub(crate) fn range(patient: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> pb::GetAvailabilityRequest {
    pb::GetAvailabilityRequest {
        canvas_patient_id: patient.into(),
        start_time: Some(ts(from)),
        end_time: Some(ts(to)),
        ..Default::default()
    }
}

pub(crate) fn status_of(a: &pb::Appointment) -> pb::AppointmentStatus {
    pb::AppointmentStatus::try_from(a.status).unwrap()
}

/// Asserts a FAILED_PRECONDITION with this reason.
pub(crate) fn assert_refused(result: Result<impl std::fmt::Debug, Status>, reason: &str) {
    let status = result.expect_err(reason);
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(
        era_kit::error::reason_of(&status).as_deref(),
        Some(reason),
        "{status:?}"
    );
}

/// The field names of an INVALID_ARGUMENT's violations.
pub(crate) fn bad_fields(result: Result<impl std::fmt::Debug, Status>) -> Vec<String> {
    let status = result.expect_err("INVALID_ARGUMENT");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    era_kit::error::violations_of(&status)
        .into_iter()
        .map(|v| v.field)
        .collect()
}
