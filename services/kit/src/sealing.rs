//! Encryption of stored rows that hold PHI (intake records, outbox messages): AES-256-GCM with a
//! random 96-bit nonce per row; the row id, the key version and the row's clear columns (its
//! `context`) bound in as associated data, so a ciphertext moved to another row, relabelled with
//! another version, or a row re-pointed at another patient fails to open. Keys are versioned so they
//! rotate: old versions keep opening what they sealed. HMAC-SHA256 blind indexes let a value (an
//! email, a date of birth, a one-time code) be matched without being stored in the clear.

use std::{collections::BTreeMap, fmt};

use base64::{engine::general_purpose::STANDARD as BASE64, Engine as _};
use secrecy::{ExposeSecret, SecretString};

use aes_gcm::{
    aead::{Aead, KeyInit, OsRng, Payload},
    AeadCore, Aes256Gcm, Key, Nonce,
};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

use crate::config::ConfigError;

/// Why a stored record cannot be opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    #[error("record {record_id} is encrypted under key version {version}, which is not configured")]
    UnknownKey { record_id: Uuid, version: u32 },
    #[error("record {record_id} failed its integrity check")]
    Integrity { record_id: Uuid },
}

/// A sealed record: what the table stores.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    pub key_version: u32,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

/// The versioned record keys and the blind-index key.
#[derive(Clone)]
pub struct Keyring {
    keys: BTreeMap<u32, Aes256Gcm>,
    active: u32,
    index_key: Vec<u8>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("versions", &self.keys.keys().collect::<Vec<_>>())
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

impl Keyring {
    /// `active` must be one of `keys` (the configuration checks it).
    pub fn new(keys: BTreeMap<u32, [u8; 32]>, active: u32, index_key: &[u8]) -> Self {
        let keys = keys
            .into_iter()
            .map(|(v, k)| (v, Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&k))))
            .collect();
        Self {
            keys,
            active,
            index_key: index_key.to_vec(),
        }
    }

    /// Encrypts `plaintext` for row `record_id` (with clear columns `context`) under the active key.
    pub fn seal(&self, record_id: Uuid, context: &[u8], plaintext: &[u8]) -> anyhow::Result<Sealed> {
        let cipher = self
            .keys
            .get(&self.active)
            .ok_or_else(|| anyhow::anyhow!("active key version {} missing", self.active))?;
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let aad = associated_data(record_id, self.active, context);
        let ciphertext = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| anyhow::anyhow!("encryption failed"))?;
        Ok(Sealed {
            key_version: self.active,
            nonce: nonce.to_vec(),
            ciphertext,
        })
    }

    /// Decrypts a stored record, checking that it belongs to `record_id` with these clear columns
    /// and was not altered.
    pub fn open(&self, record_id: Uuid, context: &[u8], sealed: &Sealed) -> Result<Vec<u8>, OpenError> {
        let cipher = self.keys.get(&sealed.key_version).ok_or(OpenError::UnknownKey {
            record_id,
            version: sealed.key_version,
        })?;
        if sealed.nonce.len() != 12 {
            return Err(OpenError::Integrity { record_id });
        }
        let aad = associated_data(record_id, sealed.key_version, context);
        cipher
            .decrypt(
                Nonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| OpenError::Integrity { record_id })
    }

    /// The blind index of a value of kind `kind` ("email", "birth_date"), normalised first so
    /// `Ann@X.com ` and `ann@x.com` match. Hex of HMAC-SHA256.
    pub fn blind_index(&self, kind: &str, value: &str) -> String {
        let normalised = value.trim().to_lowercase();
        // The keyed hash takes a key of any length; new_from_slice cannot fail for HMAC.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.index_key).expect("HMAC accepts any key length");
        mac.update(kind.as_bytes());
        mac.update(b":");
        mac.update(normalised.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

/// Record id, key version and the row's clear columns, so a ciphertext cannot be replayed into
/// another row or version, nor a row re-pointed at another patient.
fn associated_data(record_id: Uuid, version: u32, context: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(16 + 4 + context.len());
    aad.extend_from_slice(record_id.as_bytes());
    aad.extend_from_slice(&version.to_be_bytes());
    aad.extend_from_slice(context);
    aad
}

/// The parsed keys: version -> 32 bytes.
pub type KeyVersions = BTreeMap<u32, [u8; 32]>;

/// Parses a key list, `version:base64key` separated by commas (e.g. `1:<44 chars>,2:<44 chars>`),
/// and checks `active` is among them. Errors name `var` (and `active_var`) and never show a key.
pub fn parse_keys(
    var: &'static str,
    keys: &SecretString,
    active_var: &'static str,
    active: u32,
) -> Result<KeyVersions, ConfigError> {
    let mut out = KeyVersions::new();
    for (i, entry) in keys.expose_secret().split(',').enumerate() {
        let entry = entry.trim();
        let Some((version, key)) = entry.split_once(':') else {
            return Err(ConfigError::new(
                var,
                format!("entry {} is not `version:base64key`", i + 1),
            ));
        };
        let version: u32 = version
            .trim()
            .parse()
            .ok()
            .filter(|v| *v > 0)
            .ok_or_else(|| ConfigError::new(var, format!("entry {} has no positive integer version", i + 1)))?;
        let bytes = BASE64
            .decode(key.trim())
            .map_err(|_| ConfigError::new(var, format!("key version {version} is not base64")))?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| ConfigError::new(var, format!("key version {version} is not 32 bytes (AES-256)")))?;
        if out.insert(version, key).is_some() {
            return Err(ConfigError::new(var, format!("key version {version} is listed twice")));
        }
    }
    if !out.contains_key(&active) {
        return Err(ConfigError::new(
            active_var,
            format!("version {active} is not in {var}"),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(versions: &[u32], active: u32) -> Keyring {
        let keys = versions.iter().map(|v| (*v, [*v as u8; 32])).collect();
        Keyring::new(keys, active, b"index-key-index-key-index-key-xx")
    }

    #[test]
    fn a_record_opens_only_for_its_own_id() {
        let ring = ring(&[1], 1);
        let id = Uuid::new_v4();
        let sealed = ring.seal(id, b"ctx", b"intake").unwrap();
        assert_eq!(ring.open(id, b"ctx", &sealed).unwrap(), b"intake");
        let other = Uuid::new_v4();
        assert_eq!(
            ring.open(other, b"ctx", &sealed),
            Err(OpenError::Integrity { record_id: other })
        );
    }

    #[test]
    fn old_versions_still_open_after_rotation() {
        let id = Uuid::new_v4();
        let sealed = ring(&[1], 1).seal(id, b"ctx", b"v1 record").unwrap();
        let rotated = ring(&[1, 2], 2);
        assert_eq!(rotated.open(id, b"ctx", &sealed).unwrap(), b"v1 record");
        assert_eq!(rotated.seal(id, b"ctx", b"x").unwrap().key_version, 2);
        assert_eq!(
            ring(&[2], 2).open(id, b"ctx", &sealed),
            Err(OpenError::UnknownKey {
                record_id: id,
                version: 1
            })
        );
    }

    #[test]
    fn relabelling_the_version_or_flipping_a_bit_is_caught() {
        let ring = ring(&[1, 2], 1);
        let id = Uuid::new_v4();
        let sealed = ring.seal(id, b"ctx", b"intake").unwrap();
        let relabelled = Sealed {
            key_version: 2,
            ..sealed.clone()
        };
        assert!(ring.open(id, b"ctx", &relabelled).is_err());
        let mut flipped = sealed.clone();
        flipped.ciphertext[0] ^= 1;
        assert_eq!(
            ring.open(id, b"ctx", &flipped),
            Err(OpenError::Integrity { record_id: id })
        );
    }

    #[test]
    fn a_row_re_pointed_at_another_patient_fails_to_open() {
        let ring = ring(&[1], 1);
        let id = Uuid::new_v4();
        let sealed = ring.seal(id, b"patient-a", b"intake").unwrap();
        assert_eq!(
            ring.open(id, b"patient-b", &sealed),
            Err(OpenError::Integrity { record_id: id })
        );
    }

    #[test]
    fn nonces_are_fresh_per_record() {
        let ring = ring(&[1], 1);
        let id = Uuid::new_v4();
        assert_ne!(
            ring.seal(id, b"ctx", b"x").unwrap().nonce,
            ring.seal(id, b"ctx", b"x").unwrap().nonce
        );
    }

    #[test]
    fn blind_index_normalises_and_separates_kinds() {
        let ring = ring(&[1], 1);
        assert_eq!(
            ring.blind_index("email", " Ann@Example.com"),
            ring.blind_index("email", "ann@example.com")
        );
        assert_ne!(ring.blind_index("email", "x"), ring.blind_index("birth_date", "x"));
        assert_eq!(ring.blind_index("email", "a").len(), 64);
    }
}
