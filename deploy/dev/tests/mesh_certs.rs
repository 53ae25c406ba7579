//! The certificates `deploy/scripts/mesh-certs.sh` makes (for compose and staging) are ones the
//! mesh's TLS accepts: a component serves with its own, another calls it with its own, and a
//! certificate from a second run's CA is refused.

use std::{path::Path, process::Command};

use era_kit::{
    auth::{Authenticator, Caller, InternalTokens},
    client,
    server::GrpcServer,
    testing,
    tls::{PemSource, TlsConfig},
};
use era_proto::bench::v1::{
    echo_service_client::EchoServiceClient, echo_service_server::EchoServiceServer, EchoRequest,
};

fn make(dir: &Path, names: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/mesh-certs.sh");
    let out = Command::new("bash").arg(script).arg(dir).args(names).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn identity(dir: &Path, name: &str) -> TlsConfig {
    TlsConfig {
        ca: Some(PemSource::File(dir.join("ca.pem"))),
        cert: Some(PemSource::File(dir.join(format!("{name}.pem")))),
        key: Some(PemSource::File(dir.join(format!("{name}-key.pem")))),
        ..TlsConfig::default()
    }
}

#[tokio::test]
async fn the_scripts_certificates_carry_the_mesh() {
    let base = std::env::temp_dir().join(format!("era-mesh-certs-{}", std::process::id()));
    let (ours, theirs) = (base.join("ours"), base.join("theirs"));
    make(&ours, &["canvas", "edge"]);
    make(&theirs, &["edge"]);

    let server = identity(&ours, "canvas").load().unwrap().unwrap();
    let (listener, addr) = testing::listener().await;
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(
        GrpcServer::new(Authenticator::new(&testing::auth_config()))
            .tls(Some(server))
            .add_service(EchoServiceServer::new(testing::Echo))
            .serve(listener, async {
                let _ = stopped.await;
            }),
    );
    // The certificate names 127.0.0.1, as each container's own health check dials it.
    let url = format!("https://127.0.0.1:{}", addr.port());
    let tokens = InternalTokens::new(&testing::auth_config().internal_token_secret);
    let call = |tls: TlsConfig| {
        let url = url.clone();
        let tokens = tokens.clone();
        async move {
            let tls = tls.load().unwrap().unwrap();
            let mut echo = EchoServiceClient::new(client::channel(&url, Some(&tls)).unwrap());
            let req = client::request(
                EchoRequest {
                    message: "hello".into(),
                },
                &tokens,
                &Caller::admin("ops@clinic.example"),
            );
            echo.echo(req).await.map(|r| r.into_inner().message)
        }
    };
    assert_eq!(call(identity(&ours, "edge")).await.unwrap(), "hello");
    let refused = call(identity(&theirs, "edge")).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    let _ = std::fs::remove_dir_all(&base);
}
