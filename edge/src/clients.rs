//! Channels to the services, each connecting lazily so the edge starts before its peers.

use era_proto::{
    canvas::v1::canvas_service_client::CanvasServiceClient,
    notifications::v1::notifications_service_client::NotificationsServiceClient,
    payments::v1::payments_service_client::PaymentsServiceClient,
    pharmacy_routing::v1::pharmacy_routing_service_client::PharmacyRoutingServiceClient,
    scheduling::v1::scheduling_service_client::SchedulingServiceClient,
};
use tonic::transport::Channel;

use era_kit::config::MeshConfig;

use crate::config::Peers;

#[derive(Clone, Debug)]
pub struct Clients {
    pub canvas: CanvasServiceClient<Channel>,
    pub payments: PaymentsServiceClient<Channel>,
    pub routing: PharmacyRoutingServiceClient<Channel>,
    pub notifications: NotificationsServiceClient<Channel>,
    pub scheduling: SchedulingServiceClient<Channel>,
    /// Every peer's channel with the gRPC service name it must report SERVING, for `/readyz`.
    pub health: Vec<(&'static str, Channel)>,
}

impl Clients {
    pub fn connect(peers: &Peers, mesh: &MeshConfig) -> anyhow::Result<Self> {
        let routing = mesh.channel(&peers.pharmacy_routing)?;
        let canvas = mesh.channel(&peers.canvas)?;
        let payments = mesh.channel(&peers.payments)?;
        let notifications = mesh.channel(&peers.notifications)?;
        let scheduling = mesh.channel(&peers.scheduling)?;
        // Readiness asks over the same channels the calls use, so it checks the paths calls take.
        let health = peers
            .all()
            .into_iter()
            .map(|(_, url, service)| {
                let channel = if url == peers.pharmacy_routing {
                    routing.clone()
                } else if url == peers.canvas {
                    canvas.clone()
                } else if url == peers.payments {
                    payments.clone()
                } else if url == peers.notifications {
                    notifications.clone()
                } else if url == peers.scheduling {
                    scheduling.clone()
                } else {
                    mesh.channel(url)?
                };
                Ok((service, channel))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self {
            canvas: CanvasServiceClient::new(canvas),
            payments: PaymentsServiceClient::new(payments),
            routing: PharmacyRoutingServiceClient::new(routing),
            notifications: NotificationsServiceClient::new(notifications),
            scheduling: SchedulingServiceClient::new(scheduling),
            health,
        })
    }
}
