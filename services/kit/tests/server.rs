//! The kit's gRPC bootstrap over real loopback gRPC, with the bench echo contract as the service:
//! identity and request context reach the handler, health stays open, and shutdown lets calls in
//! flight finish.

use std::time::Duration;

use era_kit::{
    auth::{Authenticator, Caller},
    client,
    context::RequestContext,
    server::GrpcServer,
    testing,
};
use era_proto::bench::v1::{
    echo_service_client::EchoServiceClient,
    echo_service_server::{EchoService, EchoServiceServer},
    EchoRequest, EchoResponse,
};
use tokio::sync::oneshot;
use tonic::{Code, Request, Response, Status};

#[derive(Debug)]
struct Reflector;

#[tonic::async_trait]
impl EchoService for Reflector {
    /// Answers with what the handler sees: caller, request id and trace id; "slow" waits first.
    async fn echo(&self, request: Request<EchoRequest>) -> Result<Response<EchoResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        if request.get_ref().message == "slow" {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let ctx = RequestContext::current().ok_or_else(|| Status::internal("no request context"))?;
        let message = format!("{}|{}|{}", caller.subject, ctx.request_id, ctx.trace_id());
        Ok(Response::new(EchoResponse { message }))
    }
}

async fn start() -> (
    EchoServiceClient<tonic::transport::Channel>,
    String,
    oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let (listener, addr) = testing::listener().await;
    let auth = Authenticator::new(&testing::auth_config());
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(async move {
        GrpcServer::new(auth)
            .add_service(EchoServiceServer::new(Reflector))
            .serve(listener, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    let url = format!("http://{addr}");
    (
        EchoServiceClient::new(client::channel(&url, None).unwrap()),
        url,
        stop,
        served,
    )
}

fn tokens() -> era_kit::auth::InternalTokens {
    era_kit::auth::InternalTokens::new(&testing::auth_config().internal_token_secret)
}

#[tokio::test]
async fn the_handler_sees_the_caller_and_the_edges_request_context() {
    let (mut client, _, _stop, _) = start().await;
    let ctx = RequestContext::new_root();
    let req = client::request_in_context(
        EchoRequest { message: "hi".into() },
        &tokens(),
        &Caller::admin("ops@clinic.example"),
        &ctx,
    );
    let seen = client.echo(req).await.unwrap().into_inner().message;
    assert_eq!(
        seen,
        format!("ops@clinic.example|{}|{}", ctx.request_id, ctx.trace_id())
    );

    // Inside a served request, an outbound call carries the same request and trace.
    let inner = ctx
        .clone()
        .scope(async { client::request(EchoRequest::default(), &tokens(), &Caller::service("x")) })
        .await;
    let forwarded = RequestContext::from_headers(&inner.metadata().clone().into_headers());
    assert_eq!(forwarded.request_id, ctx.request_id);
    assert_eq!(forwarded.trace_id(), ctx.trace_id());
    assert_ne!(forwarded.traceparent, ctx.traceparent);
}

#[tokio::test]
async fn calls_need_credentials_but_health_does_not() {
    let (mut client, url, _stop, _) = start().await;
    let status = client.echo(EchoRequest { message: "hi".into() }).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(era_kit::server::check_health(&url, None, "era.bench.v1.EchoService")
        .await
        .unwrap());
}

#[tokio::test]
async fn shutdown_lets_calls_in_flight_finish_and_refuses_new_connections() {
    let (client, url, stop, served) = start().await;
    let mut slow_client = client.clone();
    let slow = tokio::spawn(async move {
        let req = client::request(
            EchoRequest { message: "slow".into() },
            &tokens(),
            &Caller::service("test"),
        );
        slow_client.echo(req).await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(()).unwrap();
    let answer = slow.await.unwrap().expect("the call in flight completes");
    assert!(answer.into_inner().message.starts_with("test|"));
    tokio::time::timeout(Duration::from_secs(5), served)
        .await
        .expect("the server stops")
        .unwrap();
    assert!(era_kit::server::check_health(&url, None, "").await.is_err());
}
