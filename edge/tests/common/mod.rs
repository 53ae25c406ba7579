//! What the edge's router-level tests share: a valid configuration whose services are unreachable
//! (port 1), on a throwaway edge database.

#![allow(dead_code, unreachable_pub)]

use era_edge::{
    config::{EdgeSecrets, Peers},
    Config,
};
use era_kit::{
    config::{LoggingConfig, MeshConfig},
    testing,
    testing::TestDb,
    SecretString,
};

pub const ADMIN_JWT_SECRET: &str = "admin-jwt-secret-0123456789abcdef0123456789";
pub const PATIENT_JWT_SECRET: &str = "patient-jwt-secret-0123456789abcdef012345678";

/// The edge's configuration for `db`, with every service at an address nothing answers on.
pub fn config(db: &TestDb) -> Config {
    Config {
        listen_addr: "127.0.0.1:0".parse().unwrap(),
        database: db.config(),
        auth: testing::auth_config(),
        secrets: EdgeSecrets {
            admin_jwt_secret: Some(SecretString::from(ADMIN_JWT_SECRET)),
            canvas_auth_secret: None,
            patient_jwt_secret: SecretString::from(PATIENT_JWT_SECRET),
            stripe_webhook_secret: None,
            ops_token: None,
            pharmacy_webhooks: Default::default(),
        },
        peers: Peers {
            canvas: "http://127.0.0.1:1".into(),
            payments: "http://127.0.0.1:1".into(),
            pharmacy_routing: "http://127.0.0.1:1".into(),
            scheduling: "http://127.0.0.1:1".into(),
            notifications: "http://127.0.0.1:1".into(),
        },
        admin_portal_url: None,
        cors_allowed_origins: vec![],
        max_body_bytes: 1 << 20,
        trusted_proxy_hops: 0,
        rate_limit_multiplier: 1,
        header_read_timeout_secs: 10,
        request_timeout_secs: 30,
        max_concurrent_requests: 1024,
        logging: LoggingConfig::default(),
        mesh: MeshConfig::development(Default::default()),
    }
}
