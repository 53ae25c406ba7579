//! era-kit: what every mesh service shares, so that each service crate holds only its own domain.
//!
//! - [`config`]: the clap blocks every binary flattens (database, secrets, logging) and their validation.
//! - [`telemetry`]: logs as text or JSON.
//! - [`auth`]: the internal token the edge mints, `ADMIN_SECRET`, and the caller identity handlers read.
//! - [`cache`]: a bounded expiring map for token work repeated on every request.
//! - [`context`]: request id and trace context carried from the edge through every hop.
//! - [`server`]: the gRPC bootstrap (health, reflection, auth, graceful shutdown).
//! - [`client`]: channels to peers that forward identity and context.
//! - [`db`]: pool, database creation and migrations.
//! - [`time`]: chrono <-> protobuf times, keyset page tokens.
//! - [`keylock`]: per-key advisory locks for exactly-once work toward vendors.
//! - [`jobs`]: durable background work (claim with `SKIP LOCKED`, lease, heartbeat, fence, retry
//!   schedule, dead jobs) and the failpoints crash tests stop replicas with.
//! - [`sealing`]: AES-256-GCM sealing of PHI-bearing rows with versioned keys, and blind indexes.
//! - [`error`]: building `tonic::Status` with field violations and stable reason codes.
//! - [`tls`]: mTLS on every gRPC hop, with certificates re-read when they rotate.
//! - [`cli`]: the `serve` / `migrate` / `healthcheck` entry point every service `main` calls.

pub mod auth;
pub mod cache;
pub mod cli;
pub mod client;
pub mod config;
pub mod context;
pub mod db;
#[cfg(feature = "dev-ca")]
pub mod dev_ca;
pub mod error;
pub mod jobs;
pub mod keylock;
pub mod sealing;
pub mod server;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time;
pub mod tls;

pub use secrecy::{ExposeSecret, SecretString};
pub use tonic_health as health;
