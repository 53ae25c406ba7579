//! The sandbox's own accept loop. `axum::serve` cannot close one connection on demand, and a
//! "dropped connection" fault needs exactly that: each connection gets a kill switch that the fault
//! layer fires, and the connection is dropped without a response.

use std::{future::Future, sync::Arc};

use axum::{body::Body, Router};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::{net::TcpListener, sync::Notify};
use tower::ServiceExt;

/// Fired to close the connection a request arrived on.
#[derive(Clone, Debug)]
pub(crate) struct ConnectionKill(Arc<Notify>);

impl ConnectionKill {
    pub(crate) fn fire(&self) {
        self.0.notify_one();
    }
}

/// Serves `app` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "sandbox accept failed");
                    continue;
                }
            },
            () = &mut shutdown => return Ok(()),
        };
        let kill = ConnectionKill(Arc::new(Notify::new()));
        let app = app.clone();
        let for_requests = kill.clone();
        let service = hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(for_requests.clone());
            app.clone().oneshot(req.map(Body::new))
        });
        tokio::spawn(async move {
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = conn => {},
                // Dropping the connection future closes the socket mid-request.
                () = kill.0.notified() => {},
            }
        });
    }
}
