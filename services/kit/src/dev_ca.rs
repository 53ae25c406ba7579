//! A throwaway mesh CA, made at each start of era-dev and of every test mesh, so the local mesh runs
//! over the same mTLS as production.

use std::path::Path;

use crate::{config::MeshConfig, tls::TlsConfig};
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};

/// The CA and the one certificate every component presents (serving and calling alike).
#[derive(Clone)]
pub struct DevCa {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for DevCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DevCa { .. }")
    }
}

/// The files [`DevCa::write`] leaves for grpcurl and other tools.
pub const CA_FILE: &str = "ca.pem";
pub const CERT_FILE: &str = "mesh.pem";
pub const KEY_FILE: &str = "mesh-key.pem";

impl DevCa {
    /// A CA and a certificate for `localhost` and the loopback addresses, where the mesh listens.
    pub fn generate() -> anyhow::Result<Self> {
        let ca_key = KeyPair::generate()?;
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca.distinguished_name
            .push(DnType::CommonName, "era-dev mesh CA (throwaway)");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key)?;

        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
        let key = KeyPair::generate()?;
        let mut leaf = CertificateParams::new(names)?;
        leaf.distinguished_name.push(DnType::CommonName, "era-dev mesh");
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let cert = leaf.signed_by(&key, &ca_cert, &ca_key)?;
        Ok(Self {
            ca_pem: ca_cert.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// The development mesh settings that present this certificate.
    pub fn mesh_config(&self) -> MeshConfig {
        MeshConfig::development(TlsConfig::inline(&self.ca_pem, &self.cert_pem, &self.key_pem))
    }

    /// Writes the CA, certificate and key into `dir` (the key readable by the owner only).
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join(CA_FILE), &self.ca_pem)?;
        std::fs::write(dir.join(CERT_FILE), &self.cert_pem)?;
        let key = dir.join(KEY_FILE);
        std::fs::write(&key, &self.key_pem)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
        }
        Ok(())
    }
}
