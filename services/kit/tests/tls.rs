//! Mesh mTLS over real loopback gRPC: a caller with the mesh's certificate is served; plaintext, no
//! certificate and a certificate from another CA are refused in the handshake; a rotated certificate
//! is used by the next connection without a restart; the settings that cannot work are refused at
//! start, each naming its variable.

use std::{path::Path, time::Duration};

use era_kit::{
    auth::{Authenticator, Caller, InternalTokens},
    client,
    config::{Environment, MeshConfig},
    dev_ca::DevCa,
    server::GrpcServer,
    testing,
    tls::{MeshTls, PemSource, TlsConfig},
};
use era_proto::bench::v1::{
    echo_service_client::EchoServiceClient, echo_service_server::EchoServiceServer, EchoRequest,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn authority() -> DevCa {
    DevCa::generate().unwrap()
}

fn inline(ca: &DevCa) -> MeshTls {
    TlsConfig::inline(&ca.ca_pem, &ca.cert_pem, &ca.key_pem)
        .load()
        .unwrap()
        .unwrap()
}

fn write(dir: &Path, ca: &DevCa) {
    std::fs::write(dir.join("ca.pem"), &ca.ca_pem).unwrap();
    std::fs::write(dir.join("cert.pem"), &ca.cert_pem).unwrap();
    std::fs::write(dir.join("key.pem"), &ca.key_pem).unwrap();
}

fn files(dir: &Path) -> TlsConfig {
    TlsConfig {
        ca: Some(PemSource::File(dir.join("ca.pem"))),
        cert: Some(PemSource::File(dir.join("cert.pem"))),
        key: Some(PemSource::File(dir.join("key.pem"))),
        reload_secs: 1,
    }
}

/// Serves the echo contract over `tls` until the guard drops; answers the server's address.
async fn serve(tls: MeshTls) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let (listener, addr) = testing::listener().await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        GrpcServer::new(Authenticator::new(&testing::auth_config()))
            .tls(Some(tls))
            .add_service(EchoServiceServer::new(testing::Echo))
            .serve(listener, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    (addr, stop)
}

async fn echo(url: &str, tls: Option<&MeshTls>) -> Result<String, tonic::Status> {
    let mut client = EchoServiceClient::new(client::channel(url, tls).unwrap());
    let tokens = InternalTokens::new(&testing::auth_config().internal_token_secret);
    let req = client::request(
        EchoRequest {
            message: "over mTLS".into(),
        },
        &tokens,
        &Caller::admin("ops@clinic.example"),
    );
    client.echo(req).await.map(|r| r.into_inner().message)
}

#[tokio::test]
async fn a_caller_with_the_mesh_certificate_is_served_and_others_are_refused_in_the_handshake() {
    let mesh = authority();
    let (addr, _stop) = serve(inline(&mesh)).await;
    let url = format!("https://{addr}");

    assert_eq!(echo(&url, Some(&inline(&mesh))).await.unwrap(), "over mTLS");

    // A certificate the mesh's CA did not sign.
    let foreign = authority();
    let refused = echo(&url, Some(&inline(&foreign))).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");

    // Plaintext HTTP/2 to the TLS port: the connection breaks before any answer.
    let refused = echo(&format!("http://{addr}"), None).await.unwrap_err();
    assert!(
        matches!(refused.code(), tonic::Code::Unavailable | tonic::Code::Unknown),
        "{refused:?}"
    );

    // TLS that trusts the server but presents no certificate: the server ends the connection
    // instead of answering the HTTP/2 preface.
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(mesh.ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    let _ = tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf))
        .await
        .expect("the server decides within 5 s");
    assert!(
        matches!(read, Err(_) | Ok(0)),
        "a client without a certificate got an answer: {read:?}"
    );

    // The health service answers over the same TLS (the `healthcheck` command's path).
    assert!(era_kit::server::check_health(&url, Some(&inline(&mesh)), "")
        .await
        .unwrap());
}

#[tokio::test]
async fn a_rotated_certificate_is_used_by_the_next_connection_without_a_restart() {
    let dir = std::env::temp_dir().join(format!("era-kit-tls-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let old = authority();
    write(&dir, &old);
    let server = files(&dir).load().unwrap().unwrap();
    let (addr, _stop) = serve(server.clone()).await;
    let url = format!("https://{addr}");
    assert_eq!(echo(&url, Some(&inline(&old))).await.unwrap(), "over mTLS");

    // A new CA and certificate land in the files; the server's reloader (every second here) picks
    // them up, after which only callers of the new CA get through.
    let new = authority();
    write(&dir, &new);
    let mut rotated = false;
    for _ in 0..50 {
        if echo(&url, Some(&inline(&new))).await.is_ok() {
            rotated = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(rotated, "the server took the rotated certificate within 5 s");
    assert!(
        echo(&url, Some(&inline(&old))).await.is_err(),
        "the old CA's callers are refused"
    );
    assert!(!server.reload().unwrap(), "nothing changed since the reloader's read");

    // A file that no longer parses is reported and the working certificate stays.
    std::fs::write(dir.join("cert.pem"), "not a certificate").unwrap();
    let err = server.reload().unwrap_err();
    assert_eq!(err.var, "MESH_TLS_CERT");
    assert_eq!(echo(&url, Some(&inline(&new))).await.unwrap(), "over mTLS");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn settings_that_cannot_work_are_refused_naming_their_variable() {
    let DevCa {
        ca_pem: ca,
        cert_pem: cert,
        key_pem: key,
    } = authority();
    let development = |tls: TlsConfig| MeshConfig::development(tls);
    let production = |tls: TlsConfig| {
        let mut mesh = MeshConfig::development(tls);
        mesh.env = Environment::Production;
        mesh
    };

    // Half a TLS configuration.
    let mut half = TlsConfig::inline(&ca, &cert, &key);
    half.key = None;
    assert_eq!(development(half).validate().unwrap_err().var, "MESH_TLS_KEY");
    // Garbage and mismatched documents.
    let garbage = TlsConfig::inline(
        "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n",
        &cert,
        &key,
    );
    assert_eq!(development(garbage).validate().unwrap_err().var, "MESH_TLS_CA");
    let other_key = authority().key_pem;
    let mismatched = TlsConfig::inline(&ca, &cert, &other_key);
    assert_eq!(development(mismatched).validate().unwrap_err().var, "MESH_TLS_KEY");
    let missing = TlsConfig {
        cert: Some(PemSource::File("/nonexistent/cert.pem".into())),
        ..TlsConfig::inline(&ca, &cert, &key)
    };
    assert_eq!(development(missing).validate().unwrap_err().var, "MESH_TLS_CERT");

    // Production requires TLS; development may run plaintext.
    assert_eq!(
        production(TlsConfig::default()).validate().unwrap_err().var,
        "MESH_TLS_CA"
    );
    development(TlsConfig::default()).validate().unwrap();
    let tls = production(TlsConfig::inline(&ca, &cert, &key));
    tls.validate().unwrap();

    // Peer URLs follow TLS: https with it, http without.
    tls.peer_url("CANVAS_GRPC_URL", "https://canvas.era.internal:50051")
        .unwrap();
    assert_eq!(
        tls.peer_url("CANVAS_GRPC_URL", "http://canvas.era.internal:50051")
            .unwrap_err()
            .var,
        "CANVAS_GRPC_URL"
    );
    let plain = development(TlsConfig::default());
    plain.peer_url("CANVAS_GRPC_URL", "http://127.0.0.1:50051").unwrap();
    assert!(plain.peer_url("CANVAS_GRPC_URL", "https://127.0.0.1:50051").is_err());

    // Vendor URLs: production takes only https on a public name; development takes the sandbox.
    for sandbox in [
        "http://127.0.0.1:8090/stripe",
        "https://127.0.0.1:8090/stripe",
        "https://localhost/stripe",
        "https://sandbox:8090/stripe",
        "https://10.0.3.7/stripe",
        "https://[::1]:8090/stripe",
        "https://sandbox.era.internal/stripe",
        "http://api.stripe.com",
    ] {
        assert_eq!(
            tls.external_url("STRIPE_API_BASE", sandbox).unwrap_err().var,
            "STRIPE_API_BASE",
            "{sandbox} is refused in production"
        );
        if sandbox.starts_with("http://") {
            plain.external_url("STRIPE_API_BASE", sandbox).unwrap();
        }
    }
    tls.external_url("STRIPE_API_BASE", "https://api.stripe.com").unwrap();
    tls.external_url("CANVAS_FHIR_URL", "https://fumage-yourera.canvasmedical.com")
        .unwrap();
}
