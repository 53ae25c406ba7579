//! End-to-end suites over the whole mesh (TestMesh): REST -> edge auth -> gRPC -> PostgreSQL.

mod approval;
mod auth;
mod canvas;
mod conversations;
mod identity;
mod limits;
mod logins;
mod mesh_tls;
mod notifications;
mod ops;
mod patient_detail;
mod payments;
mod plugin;
mod prescriptions;
mod refills;
mod routing;
mod rx_queue;
mod scheduling;
mod tracking;
