//! The settings are checked at start, each error naming its environment variable.

use era_kit::{
    config::{DatabaseConfig, LoggingConfig, MeshConfig, ServiceConfig},
    testing, SecretString,
};
use era_scheduling::config::{Config, EngineConfig, Peers, ZoomConfig};

fn valid() -> Config {
    Config {
        service: ServiceConfig {
            listen_addr: None,
            database: DatabaseConfig::new("postgres://postgres@127.0.0.1:5432/era_scheduling"),
            auth: testing::auth_config(),
            logging: LoggingConfig::default(),
            mesh: MeshConfig::development(Default::default()),
        },
        peers: Peers {
            canvas_grpc_url: "http://127.0.0.1:50051".into(),
            pharmacy_routing_grpc_url: "http://127.0.0.1:50053".into(),
            notifications_grpc_url: "http://127.0.0.1:50055".into(),
        },
        zoom: ZoomConfig {
            base_url: "http://127.0.0.1:4010/zoom/v2".into(),
            token_url: "http://127.0.0.1:4010/zoom/oauth/token".into(),
            account_id: era_sandbox::state::DEFAULT_ZOOM_ACCOUNT_ID.into(),
            client_id: era_sandbox::state::DEFAULT_ZOOM_CLIENT_ID.into(),
            client_secret: SecretString::from(era_sandbox::state::DEFAULT_ZOOM_CLIENT_SECRET),
            timeout_secs: 5,
        },
        engine: EngineConfig::default(),
    }
}

type Change = fn(&mut Config);

#[test]
fn each_bad_setting_is_named_by_its_variable() {
    valid().validate().expect("the baseline is valid");
    let cases: [(&str, Change); 16] = [
        ("ZOOM_CLIENT_SECRET", |c| c.zoom.client_secret = SecretString::from("")),
        ("ZOOM_CLIENT_SECRET", |c| {
            c.zoom.client_secret = SecretString::from("   ")
        }),
        ("ZOOM_ACCOUNT_ID", |c| c.zoom.account_id = String::new()),
        ("ZOOM_CLIENT_ID", |c| c.zoom.client_id = String::new()),
        ("ZOOM_BASE_URL", |c| c.zoom.base_url = "api.zoom.us/v2".into()),
        ("ZOOM_BASE_URL", |c| c.zoom.base_url = "ftp://api.zoom.us/v2".into()),
        ("ZOOM_TOKEN_URL", |c| c.zoom.token_url = String::new()),
        ("ZOOM_TIMEOUT_SECS", |c| c.zoom.timeout_secs = 0),
        ("SCHEDULING_SYNC_WAIT_MS", |c| c.engine.sync_wait_ms = 9_001),
        ("SCHEDULING_CLINIC_TIME_ZONE", |c| {
            c.engine.clinic_time_zone = "Eastern Time".into()
        }),
        ("SCHEDULING_CLINIC_TIME_ZONE", |c| {
            c.engine.clinic_time_zone = String::new()
        }),
        ("SCHEDULING_AVAILABILITY_CACHE_SECS", |c| {
            c.engine.availability_cache_secs = 61
        }),
        ("SCHEDULING_VISIT_MINUTES", |c| c.engine.visit_minutes = 4),
        ("SCHEDULING_POLL_MS", |c| c.engine.poll_ms = 5),
        ("CANVAS_GRPC_URL", |c| c.peers.canvas_grpc_url = "canvas:50051".into()),
        ("NOTIFICATIONS_GRPC_URL", |c| {
            c.peers.notifications_grpc_url = String::new()
        }),
    ];
    for (var, change) in cases {
        let mut config = valid();
        change(&mut config);
        let err = config.validate().expect_err(var);
        assert_eq!(err.var, var, "{err}");
        assert!(err.to_string().contains(var), "{err}");
    }

    // The limits themselves are allowed.
    let mut edge = valid();
    edge.engine.sync_wait_ms = 9_000;
    edge.engine.availability_cache_secs = 60;
    edge.engine.clinic_time_zone = "America/Chicago".into();
    edge.validate().expect("the limits are valid");
}

#[test]
fn a_bad_zoom_secret_is_never_echoed() {
    let mut config = valid();
    config.zoom.base_url = "not a url".into();
    config.zoom.client_secret = SecretString::from("s3cr3t-value-never-shown");
    let err = config.validate().expect_err("bad base url");
    assert!(!err.to_string().contains("s3cr3t"), "{err}");
    assert!(!format!("{config:?}").contains("s3cr3t"), "{config:?}");
}

#[tokio::test]
async fn the_service_refuses_to_start_with_a_bad_setting() {
    let mut config = valid();
    config.engine.sync_wait_ms = 10_000;
    let (listener, _) = testing::listener().await;
    // Never connected: the settings are checked before the database is touched.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .connect_lazy("postgres://nobody@127.0.0.1:9/none")
        .unwrap();
    let err = era_scheduling::run(config, listener, pool, std::future::pending())
        .await
        .expect_err("a bad setting stops the start");
    assert!(err.to_string().contains("SCHEDULING_SYNC_WAIT_MS"), "{err}");
}
