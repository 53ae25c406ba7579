//! What the RPCs and the workers share: the store, the job queue, Zoom, the peers and the settings.

use std::sync::Arc;

use chrono_tz::Tz;
use era_kit::{
    auth::{Caller, InternalTokens},
    cache::ExpiringCache,
    jobs::{Failpoints, Queue},
};
use era_proto::{
    canvas::v1::canvas_service_client::CanvasServiceClient,
    notifications::v1::notifications_service_client::NotificationsServiceClient,
    pharmacy_routing::v1::pharmacy_routing_service_client::PharmacyRoutingServiceClient,
};
use tonic::transport::Channel;

use crate::{availability::Directory, config::Config, store::Store, zoom::Zoom};

pub(crate) const SERVICE: &str = "era-scheduling";

pub(crate) type Shared = Arc<App>;

/// A slot's start and end.
pub(crate) type Span = (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>);

pub(crate) struct App {
    pub store: Store,
    pub queue: Queue,
    pub zoom: Zoom,
    pub canvas: CanvasServiceClient<Channel>,
    pub routing: PharmacyRoutingServiceClient<Channel>,
    pub notifications: NotificationsServiceClient<Channel>,
    tokens: InternalTokens,
    pub visit_minutes: i64,
    pub clinic_zone: Tz,
    pub sync_wait: std::time::Duration,
    pub cache_secs: i64,
    /// Canvas's practitioners, schedules and slots, and the prescribers' licences, for seconds.
    pub directory: ExpiringCache<&'static str, Arc<Directory>>,
    pub slots: ExpiringCache<String, Arc<Vec<Span>>>,
    pub failpoints: Arc<Failpoints>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").finish_non_exhaustive()
    }
}

impl App {
    pub(crate) fn new(config: &Config, store: Store) -> anyhow::Result<Self> {
        let peers = &config.peers;
        Ok(Self {
            queue: era_kit::jobs::Queue::new(store.pool().clone()),
            store,
            zoom: Zoom::new(&config.zoom)?,
            canvas: CanvasServiceClient::new(config.service.mesh.channel(&peers.canvas_grpc_url)?),
            routing: PharmacyRoutingServiceClient::new(config.service.mesh.channel(&peers.pharmacy_routing_grpc_url)?),
            notifications: NotificationsServiceClient::new(config.service.mesh.channel(&peers.notifications_grpc_url)?),
            tokens: InternalTokens::new(&config.service.auth.internal_token_secret),
            visit_minutes: i64::from(config.engine.visit_minutes),
            clinic_zone: config.engine.clinic_zone(),
            sync_wait: std::time::Duration::from_millis(config.engine.sync_wait_ms),
            cache_secs: config.engine.availability_cache_secs as i64,
            directory: ExpiringCache::default(),
            slots: ExpiringCache::default(),
            failpoints: Arc::new(Failpoints::new(config.engine.failpoint.clone())),
        })
    }

    /// A call to a peer, made as this service.
    pub(crate) fn request<T>(&self, message: T) -> tonic::Request<T> {
        era_kit::client::request(message, &self.tokens, &Caller::service(SERVICE))
    }
}
