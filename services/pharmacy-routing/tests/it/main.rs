//! The routing service over real gRPC on a loopback port, against its own throwaway database.

mod auth;
mod cli;
mod decide;
mod matrix;
mod pharmacies;

use era_kit::{
    auth::{Caller, InternalTokens},
    config::AuthConfig,
    testing::{self, TestDb},
};
use era_proto::pharmacy_routing::v1::pharmacy_routing_service_client::PharmacyRoutingServiceClient;
use tokio::sync::oneshot;
use tonic::{transport::Channel, Code, Status};

pub(crate) struct Routing {
    pub(crate) client: PharmacyRoutingServiceClient<Channel>,
    pub(crate) channel: Channel,
    pub(crate) db: TestDb,
    auth: AuthConfig,
    _stop: oneshot::Sender<()>,
}

impl Routing {
    pub(crate) async fn spawn() -> Self {
        let db = TestDb::new(&era_pharmacy_routing::MIGRATOR).await;
        let (listener, addr) = testing::listener().await;
        let service = testing::service_config(&db);
        let auth = service.auth.clone();
        let config = config(service);
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(era_pharmacy_routing::run(config, listener, db.pool.clone(), async {
            let _ = stopped.await;
        }));
        let channel = era_kit::client::channel(&format!("http://{addr}"), None).unwrap();
        Self {
            client: PharmacyRoutingServiceClient::new(channel.clone()),
            channel,
            db,
            auth,
            _stop: stop,
        }
    }

    /// A request carrying `ADMIN_SECRET`, as jobs and operators send it.
    pub(crate) fn admin<T>(&self, message: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(message);
        let secret = era_kit::ExposeSecret::expose_secret(&self.auth.admin_secret).to_owned();
        req.metadata_mut()
            .insert("authorization", format!("Bearer {secret}").parse().unwrap());
        req
    }

    /// A request as the edge forwards it for `caller`.
    pub(crate) fn as_caller<T>(&self, message: T, caller: &Caller) -> tonic::Request<T> {
        era_kit::client::request(message, &InternalTokens::new(&self.auth.internal_token_secret), caller)
    }
}

/// The service's settings for these tests: no peers or pharmacies are reached (the approval
/// pipeline is tested end to end with the whole mesh in tests/), and no worker runs.
pub(crate) fn config(service: era_kit::config::ServiceConfig) -> era_pharmacy_routing::Config {
    use era_pharmacy_routing::config as c;
    let none = || era_kit::SecretString::from(String::new());
    c::Config {
        service,
        peers: c::Peers {
            canvas_grpc_url: "http://127.0.0.1:9".into(),
            payments_grpc_url: "http://127.0.0.1:9".into(),
            notifications_grpc_url: "http://127.0.0.1:9".into(),
        },
        keys: c::PipelineKeys {
            keys: era_kit::SecretString::from(format!("1:{}", "A".repeat(43) + "=")),
            active_key: 1,
        },
        pharmacies: c::PharmacyAccounts {
            pioneerrx_api_base: String::new(),
            pioneerrx_api_key: none(),
            pioneerrx_shared_secret: none(),
            boothwyn: c::BoothwynAccount {
                api_base: String::new(),
                username: String::new(),
                password: none(),
                vendor_id: String::new(),
                location_id: String::new(),
                network_id: String::new(),
                practice_id: String::new(),
            },
            strive: c::StriveAccount {
                api_base: String::new(),
                username: String::new(),
                password: none(),
                vendor_id: String::new(),
                location_id: String::new(),
                network_id: String::new(),
                practice_id: String::new(),
            },
            timeout_secs: 20,
        },
        pipeline: c::PipelineConfig {
            worker: false,
            ..Default::default()
        },
        carriers: c::CarrierAccounts::default(),
    }
}

/// The field names of an INVALID_ARGUMENT's violations.
pub(crate) fn bad_fields(status: &Status) -> Vec<String> {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    era_kit::error::violations_of(status)
        .into_iter()
        .map(|v| v.field)
        .collect()
}
