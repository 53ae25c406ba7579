//! TLS with client certificates on every gRPC hop of the mesh.
//!
//! Each service holds one certificate signed by the mesh's CA and presents it both when it serves
//! and when it calls a peer; a peer without such a certificate is refused during the handshake,
//! before a single gRPC frame is read. TLS 1.3 only, ALPN `h2` (grpcurl and other gRPC clients
//! insist on it).
//!
//! The CA, certificate and key are read from files (or given inline as PEM, as a secrets manager
//! injects them) and files are read again every `MESH_TLS_RELOAD_SECS`: a rotated certificate is
//! used by the next connection, without a restart. A file that no longer parses is reported and
//! the previous certificate stays in use.

use std::{
    fmt, io,
    path::PathBuf,
    pin::Pin,
    str::FromStr,
    sync::{Arc, RwLock},
    task::{Context, Poll},
    time::Duration,
};

use rustls::{
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer, ServerName},
    server::WebPkiClientVerifier,
    ClientConfig, RootCertStore, ServerConfig,
};
use secrecy::{ExposeSecret, SecretString};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::mpsc,
};
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::config::ConfigError;

/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a PEM document comes from: a file, or the PEM text itself.
#[derive(Clone)]
pub enum PemSource {
    File(PathBuf),
    Inline(SecretString),
}

impl FromStr for PemSource {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(if s.trim_start().starts_with("-----BEGIN") {
            Self::Inline(SecretString::from(s.to_owned()))
        } else {
            Self::File(PathBuf::from(s))
        })
    }
}

impl fmt::Debug for PemSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "File({})", path.display()),
            Self::Inline(_) => f.write_str("Inline(..)"),
        }
    }
}

impl PemSource {
    fn read(&self) -> io::Result<Vec<u8>> {
        match self {
            Self::File(path) => std::fs::read(path),
            Self::Inline(pem) => Ok(pem.expose_secret().as_bytes().to_vec()),
        }
    }
}

/// The mesh's TLS settings: all three set, or none (plaintext, refused when `ERA_ENV=production`).
#[derive(Clone, Debug, clap::Args)]
pub struct TlsConfig {
    /// The mesh CA's certificate (PEM file path, or the PEM itself; several during a CA rotation):
    /// peers must present a certificate it signed.
    #[arg(long = "mesh-tls-ca", env = "MESH_TLS_CA", value_name = "PATH_OR_PEM")]
    pub ca: Option<PemSource>,
    /// This component's certificate chain, presented when it serves and when it calls a peer. Its
    /// names must include the host peers dial it by, and 127.0.0.1 for the `healthcheck` command.
    #[arg(long = "mesh-tls-cert", env = "MESH_TLS_CERT", value_name = "PATH_OR_PEM")]
    pub cert: Option<PemSource>,
    /// The certificate's private key (PKCS#8, SEC1 or PKCS#1 PEM).
    #[arg(
        long = "mesh-tls-key",
        env = "MESH_TLS_KEY",
        value_name = "PATH_OR_PEM",
        hide_env_values = true
    )]
    pub key: Option<PemSource>,
    /// Seconds between re-reads of the files above, so rotated certificates are picked up.
    #[arg(long = "mesh-tls-reload-secs", env = "MESH_TLS_RELOAD_SECS", default_value_t = 60)]
    pub reload_secs: u64,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            ca: None,
            cert: None,
            key: None,
            reload_secs: 60,
        }
    }
}

impl TlsConfig {
    /// The same PEM documents given inline (era-dev and the tests hand their throwaway CA over this way).
    pub fn inline(ca: &str, cert: &str, key: &str) -> Self {
        let inline = |s: &str| Some(PemSource::Inline(SecretString::from(s.to_owned())));
        Self {
            ca: inline(ca),
            cert: inline(cert),
            key: inline(key),
            reload_secs: 60,
        }
    }

    pub fn is_set(&self) -> bool {
        self.ca.is_some() || self.cert.is_some() || self.key.is_some()
    }

    /// Reads and checks the documents: `None` when none is set.
    pub fn load(&self) -> Result<Option<MeshTls>, ConfigError> {
        let (ca, cert, key) = match (&self.ca, &self.cert, &self.key) {
            (None, None, None) => return Ok(None),
            (Some(ca), Some(cert), Some(key)) => (ca, cert, key),
            (ca, cert, _) => {
                let missing = if ca.is_none() {
                    "MESH_TLS_CA"
                } else if cert.is_none() {
                    "MESH_TLS_CERT"
                } else {
                    "MESH_TLS_KEY"
                };
                return Err(ConfigError::new(
                    missing,
                    "is required when any of MESH_TLS_CA, MESH_TLS_CERT, MESH_TLS_KEY is set",
                ));
            }
        };
        if !(1..=86_400).contains(&self.reload_secs) {
            return Err(ConfigError::new("MESH_TLS_RELOAD_SECS", "must be between 1 and 86400"));
        }
        let sources = Sources {
            ca: ca.clone(),
            cert: cert.clone(),
            key: key.clone(),
        };
        let documents = sources.read()?;
        let configs = Configs::build(&documents)?;
        Ok(Some(MeshTls {
            inner: Arc::new(Inner {
                sources,
                reload: Duration::from_secs(self.reload_secs),
                current: RwLock::new((documents, configs)),
            }),
        }))
    }
}

#[derive(Clone)]
struct Sources {
    ca: PemSource,
    cert: PemSource,
    key: PemSource,
}

/// The three documents as read, to tell whether a re-read changed anything.
#[derive(PartialEq, Eq)]
struct Documents {
    ca: Vec<u8>,
    cert: Vec<u8>,
    key: Vec<u8>,
}

impl Sources {
    fn read(&self) -> Result<Documents, ConfigError> {
        let read = |var: &'static str, source: &PemSource| {
            source
                .read()
                .map_err(|e| ConfigError::new(var, format!("cannot be read: {}", e.kind())))
        };
        Ok(Documents {
            ca: read("MESH_TLS_CA", &self.ca)?,
            cert: read("MESH_TLS_CERT", &self.cert)?,
            key: read("MESH_TLS_KEY", &self.key)?,
        })
    }
}

#[derive(Clone)]
struct Configs {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
}

impl Configs {
    fn build(documents: &Documents) -> Result<Self, ConfigError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&documents.ca) {
            let cert = cert.map_err(|e| ConfigError::new("MESH_TLS_CA", format!("is not PEM: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| ConfigError::new("MESH_TLS_CA", format!("holds an unusable certificate: {e}")))?;
        }
        if roots.is_empty() {
            return Err(ConfigError::new("MESH_TLS_CA", "holds no certificate"));
        }
        let chain = CertificateDer::pem_slice_iter(&documents.cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ConfigError::new("MESH_TLS_CERT", format!("is not PEM: {e}")))?;
        if chain.is_empty() {
            return Err(ConfigError::new("MESH_TLS_CERT", "holds no certificate"));
        }
        let key = PrivateKeyDer::from_pem_slice(&documents.key)
            .map_err(|e| ConfigError::new("MESH_TLS_KEY", format!("holds no usable private key: {e}")))?;
        let roots = Arc::new(roots);

        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::clone(&roots), Arc::clone(&provider))
            .build()
            .map_err(|e| ConfigError::new("MESH_TLS_CA", format!("cannot verify clients: {e}")))?;
        let mut server = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| ConfigError::new("MESH_TLS_CERT", e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(|e| ConfigError::new("MESH_TLS_KEY", format!("does not fit MESH_TLS_CERT: {e}")))?;
        server.alpn_protocols = vec![b"h2".to_vec()];

        let mut client = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| ConfigError::new("MESH_TLS_CERT", e.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| ConfigError::new("MESH_TLS_KEY", format!("does not fit MESH_TLS_CERT: {e}")))?;
        client.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Self {
            server: Arc::new(server),
            client: Arc::new(client),
        })
    }
}

/// A component's loaded mesh identity: what its server accepts and what its channels present.
#[derive(Clone)]
pub struct MeshTls {
    inner: Arc<Inner>,
}

struct Inner {
    sources: Sources,
    reload: Duration,
    current: RwLock<(Documents, Configs)>,
}

impl fmt::Debug for MeshTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeshTls")
            .field("ca", &self.inner.sources.ca)
            .field("cert", &self.inner.sources.cert)
            .finish_non_exhaustive()
    }
}

impl MeshTls {
    fn configs(&self) -> Configs {
        self.inner
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .1
            .clone()
    }

    /// Reads the sources again; true when they changed and the new documents are now in use.
    pub fn reload(&self) -> Result<bool, ConfigError> {
        let documents = self.inner.sources.read()?;
        {
            let current = self
                .inner
                .current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if current.0 == documents {
                return Ok(false);
            }
        }
        let configs = Configs::build(&documents)?;
        *self
            .inner
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = (documents, configs);
        Ok(true)
    }

    /// Re-reads the sources every `MESH_TLS_RELOAD_SECS` for as long as the returned task runs.
    pub fn spawn_reloader(&self) -> tokio::task::JoinHandle<()> {
        let tls = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(tls.inner.reload);
            tick.tick().await;
            loop {
                tick.tick().await;
                match tls.reload() {
                    Ok(true) => tracing::info!("mesh TLS certificate reloaded"),
                    Ok(false) => {}
                    Err(e) => {
                        tracing::error!(error = %e, "mesh TLS files changed but cannot be used; keeping the previous ones")
                    }
                }
            }
        })
    }

    /// Accepts TLS connections on `listener`: handshakes run concurrently, each bounded in time, and
    /// only finished ones reach the server. The accept loop ends when the stream is dropped.
    pub fn incoming(&self, listener: TcpListener) -> TlsIncoming {
        let (tx, rx) = mpsc::channel(64);
        let tls = self.clone();
        let accept = tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(conn) => conn,
                    Err(e) => {
                        // Out of descriptors and the like: pause rather than spin.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                if tx.is_closed() {
                    break;
                }
                let _ = tcp.set_nodelay(true);
                let acceptor = tokio_rustls::TlsAcceptor::from(tls.configs().server);
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let _ = tx.send(Ok(TlsConnection(stream))).await;
                        }
                        Ok(Err(e)) => tracing::info!(%peer, error = %e, "mesh TLS handshake refused"),
                        Err(_) => tracing::info!(%peer, "mesh TLS handshake timed out"),
                    }
                });
            }
        });
        TlsIncoming { rx, accept }
    }

    /// Opens a TLS connection to `uri`'s host, presenting this component's certificate.
    async fn connect(&self, uri: http::Uri) -> io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let host = uri
            .host()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "peer URL has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(443);
        let name = ServerName::try_from(host.clone())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "peer URL's host is not a valid TLS name"))?;
        let tcp = TcpStream::connect((host.as_str(), port)).await?;
        tcp.set_nodelay(true)?;
        tokio_rustls::TlsConnector::from(self.configs().client)
            .connect(name, tcp)
            .await
    }
}

/// The TLS connections a server accepts.
pub struct TlsIncoming {
    rx: mpsc::Receiver<io::Result<TlsConnection>>,
    accept: tokio::task::JoinHandle<()>,
}

impl futures::Stream for TlsIncoming {
    type Item = io::Result<TlsConnection>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

impl Drop for TlsIncoming {
    fn drop(&mut self) {
        // Frees the listening socket with the server.
        self.accept.abort();
    }
}

/// One accepted TLS connection, as tonic's server reads it.
pub struct TlsConnection(tokio_rustls::server::TlsStream<TcpStream>);

impl Connected for TlsConnection {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.0.get_ref().0.connect_info()
    }
}

impl AsyncRead for TlsConnection {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

/// The connector a TLS channel dials with (tonic's own TLS is not compiled in: this one re-reads the
/// certificate for each new connection).
#[derive(Clone, Debug)]
pub(crate) struct Connector(pub(crate) MeshTls);

impl tower::Service<http::Uri> for Connector {
    type Response = hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;
    type Error = io::Error;
    type Future = Pin<Box<dyn std::future::Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let tls = self.0.clone();
        Box::pin(async move { tls.connect(uri).await.map(hyper_util::rt::TokioIo::new) })
    }
}
