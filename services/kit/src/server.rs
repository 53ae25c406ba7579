//! The gRPC server every service runs: its own services behind the auth and context layer, plus
//! `grpc.health.v1.Health` and server reflection, which stay open so probes and grpcurl work.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{body::Body, server::NamedService, service::Routes};
use tonic_health::ServingStatus;
use tower::{Layer, Service};
use tracing::Instrument;

use crate::{auth::Authenticator, context::RequestContext, tls::MeshTls};

/// Health and reflection answer without credentials: load balancers and grpcurl need them, and they
/// reveal nothing but the contracts.
fn is_open_path(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/") || path.starts_with("/grpc.reflection.")
}

/// Attaches the caller identity (or refuses the call) and the request context to every RPC.
#[derive(Clone, Debug)]
pub struct MeshLayer {
    auth: Arc<Authenticator>,
}

impl MeshLayer {
    pub fn new(auth: Authenticator) -> Self {
        Self { auth: Arc::new(auth) }
    }
}

impl<S> Layer<S> for MeshLayer {
    type Service = MeshService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MeshService {
            inner,
            auth: Arc::clone(&self.auth),
        }
    }
}

#[derive(Clone, Debug)]
pub struct MeshService<S> {
    inner: S,
    auth: Arc<Authenticator>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> Service<http::Request<B>> for MeshService<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let ctx = RequestContext::from_headers(req.headers());
        let span = tracing::info_span!(
            "rpc",
            method = %req.uri().path(),
            request_id = %ctx.request_id,
            trace_id = %ctx.trace_id(),
        );
        if !is_open_path(req.uri().path()) {
            match self.auth.authenticate(req.headers()) {
                Ok(caller) => {
                    req.extensions_mut().insert(caller);
                }
                Err(status) => {
                    span.in_scope(|| tracing::info!(code = ?status.code(), "rpc refused"));
                    return Box::pin(async move { Ok(status.into_http()) });
                }
            }
        }
        // The service that was polled ready is the one to call; leave a fresh clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(ctx.scope(inner.call(req)).instrument(span))
    }
}

/// Builds a service's server: its own gRPC services, health, reflection.
#[derive(Debug)]
pub struct GrpcServer {
    routes: Routes,
    service_names: Vec<&'static str>,
    auth: Authenticator,
    tls: Option<MeshTls>,
}

impl GrpcServer {
    pub fn new(auth: Authenticator) -> Self {
        Self {
            routes: Routes::default(),
            service_names: Vec::new(),
            auth,
            tls: None,
        }
    }

    /// Serves over mesh TLS, requiring a client certificate from every caller.
    pub fn tls(mut self, tls: Option<MeshTls>) -> Self {
        self.tls = tls;
        self
    }

    pub fn add_service<S>(mut self, service: S) -> Self
    where
        S: Service<http::Request<Body>, Response = http::Response<Body>, Error = std::convert::Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.service_names.push(S::NAME);
        self.routes = self.routes.add_service(service);
        self
    }

    /// Serves until `shutdown` resolves, then reports NOT_SERVING and lets in-flight calls finish.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (reporter, health) = tonic_health::server::health_reporter();
        for name in &self.service_names {
            reporter.set_service_status(*name, ServingStatus::Serving).await;
        }
        reporter.set_service_status("", ServingStatus::Serving).await;

        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(era_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(era_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;

        let routes = self
            .routes
            .add_service(health)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha);
        let names = self.service_names.clone();
        let draining = async move {
            shutdown.await;
            tracing::info!("shutting down: refusing new work, finishing calls in flight");
            for name in names {
                reporter.set_service_status(name, ServingStatus::NotServing).await;
            }
            reporter.set_service_status("", ServingStatus::NotServing).await;
        };
        let server = tonic::transport::Server::builder()
            .layer(MeshLayer::new(self.auth))
            .add_routes(routes);
        match self.tls {
            Some(tls) => {
                let reloader = tls.spawn_reloader();
                let served = server
                    .serve_with_incoming_shutdown(tls.incoming(listener), draining)
                    .await;
                reloader.abort();
                served?;
            }
            None => server.serve_with_incoming_shutdown(nodelay(listener), draining).await?,
        }
        Ok(())
    }
}

/// Accepted connections with Nagle's algorithm off: tonic sets this only on listeners it binds
/// itself, and without it small responses wait for delayed ACKs (tens of milliseconds at p99).
fn nodelay(listener: TcpListener) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use futures::StreamExt;
    TcpListenerStream::new(listener).map(|conn| {
        let conn = conn?;
        conn.set_nodelay(true)?;
        Ok(conn)
    })
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// Asks a gRPC server whether it is SERVING, over a fresh connection (the `healthcheck` subcommand).
pub async fn check_health(url: &str, tls: Option<&MeshTls>, service: &str) -> anyhow::Result<bool> {
    let channel = crate::client::channel(url, tls)?;
    let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
    let mut request = tonic::Request::new(tonic_health::pb::HealthCheckRequest {
        service: service.to_owned(),
    });
    request.set_timeout(std::time::Duration::from_secs(2));
    let resp = tokio::time::timeout(std::time::Duration::from_secs(4), client.check(request))
        .await
        .map_err(|_| anyhow::anyhow!("{url} did not answer within 4 s"))??;
    Ok(resp.into_inner().status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32)
}
