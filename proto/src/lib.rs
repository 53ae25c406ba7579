//! The mesh's contracts: one module per proto package (`era::pharmacy_routing::v1`, ...), generated
//! at build time and never committed, plus the descriptor set that server reflection serves.

#[allow(
    missing_docs,
    unreachable_pub,
    clippy::all,
    clippy::pedantic,
    rust_2018_idioms,
    reason = "generated code"
)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/mod.rs"));
}

pub use generated::era::*;
pub use prost_types::Timestamp;

/// Every file of `proto/era`, encoded, for tonic-reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/era_descriptor.bin"));

#[cfg(test)]
mod tests {
    use prost::Message;

    #[test]
    fn descriptor_set_decodes_and_names_every_service() {
        let fds = prost_types::FileDescriptorSet::decode(super::FILE_DESCRIPTOR_SET).unwrap();
        let services: Vec<String> = fds
            .file
            .iter()
            .flat_map(|f| {
                let pkg = f.package().to_owned();
                f.service.iter().map(move |s| format!("{pkg}.{}", s.name()))
            })
            .collect();
        for expected in [
            "era.canvas.v1.CanvasService",
            "era.payments.v1.PaymentsService",
            "era.pharmacy_routing.v1.PharmacyRoutingService",
            "era.scheduling.v1.SchedulingService",
            "era.notifications.v1.NotificationsService",
        ] {
            assert!(
                services.iter().any(|s| s == expected),
                "{expected} missing from {services:?}"
            );
        }
    }
}
