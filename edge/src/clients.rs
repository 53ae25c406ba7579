//! Channels to the services, each connecting lazily so the edge starts before its peers.

use era_proto::pharmacy_routing::v1::pharmacy_routing_service_client::PharmacyRoutingServiceClient;
use tonic::transport::Channel;

use crate::config::Peers;

#[derive(Clone, Debug)]
pub struct Clients {
    pub routing: PharmacyRoutingServiceClient<Channel>,
    /// Every peer's channel with the gRPC service name it must report SERVING, for `/readyz`.
    pub health: Vec<(&'static str, Channel)>,
}

impl Clients {
    pub fn connect(peers: &Peers) -> anyhow::Result<Self> {
        let mut health = Vec::new();
        let mut routing = None;
        for (_, url, service) in peers.all() {
            let channel = era_kit::client::channel(url)?;
            if url == peers.pharmacy_routing {
                routing = Some(channel.clone());
            }
            health.push((service, channel));
        }
        let routing = routing.map_or_else(|| era_kit::client::channel(&peers.pharmacy_routing), Ok)?;
        Ok(Self {
            routing: PharmacyRoutingServiceClient::new(routing),
            health,
        })
    }
}
