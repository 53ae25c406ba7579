//! The Canvas plugin's request signature: `X-Signature` = lowercase hex
//! HMAC-SHA256(secret, `X-Timestamp` + "." + raw body), within ±300 s of our clock.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

pub const TIMESTAMP_HEADER: &str = "x-timestamp";
pub const SIGNATURE_HEADER: &str = "x-signature";
pub const TOLERANCE_SECS: i64 = 300;

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("X-Timestamp and X-Signature headers are required")]
    Missing,
    #[error("X-Timestamp must be Unix seconds or RFC 3339")]
    BadTimestamp,
    #[error("X-Timestamp is more than 300 seconds from the server's clock")]
    Stale,
    #[error("X-Signature does not match the request")]
    Mismatch,
}

impl SignatureError {
    pub fn code(self) -> &'static str {
        match self {
            Self::Missing => "missing_signature",
            Self::BadTimestamp => "invalid_timestamp",
            Self::Stale => "stale_timestamp",
            Self::Mismatch => "invalid_signature",
        }
    }
}

/// Parses `X-Timestamp` as Unix seconds or RFC 3339.
pub fn parse_timestamp(raw: &str) -> Result<i64, SignatureError> {
    let raw = raw.trim();
    if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) {
        return raw.parse().map_err(|_| SignatureError::BadTimestamp);
    }
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.timestamp())
        .map_err(|_| SignatureError::BadTimestamp)
}

/// Checks the window and the MAC (in constant time). Replays are the caller's next check.
pub fn verify(
    secret: &SecretString,
    timestamp: &str,
    signature: &str,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), SignatureError> {
    let at = parse_timestamp(timestamp)?;
    if (now.timestamp() - at).abs() > TOLERANCE_SECS {
        return Err(SignatureError::Stale);
    }
    let given = hex::decode(signature.trim()).map_err(|_| SignatureError::Mismatch)?;
    mac(secret, timestamp, body)
        .verify_slice(&given)
        .map_err(|_| SignatureError::Mismatch)
}

/// Signs a request as the plugin does (tests and the dev tools use it).
pub fn sign(secret: &SecretString, timestamp: &str, body: &[u8]) -> String {
    hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
}

fn mac(secret: &SecretString, timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_300_seconds_both_ways() {
        let secret = SecretString::from("k".repeat(40));
        let now = Utc::now();
        for (skew, ok) in [(300, true), (-300, true), (301, false), (-301, false)] {
            let ts = (now.timestamp() + skew).to_string();
            let sig = sign(&secret, &ts, b"{}");
            assert_eq!(verify(&secret, &ts, &sig, b"{}", now).is_ok(), ok, "skew {skew}");
        }
        let ts = now.to_rfc3339();
        let sig = sign(&secret, &ts, b"{}");
        assert!(verify(&secret, &ts, &sig, b"{}", now).is_ok());
        assert_eq!(verify(&secret, &ts, &sig, b"{ }", now), Err(SignatureError::Mismatch));
        assert_eq!(
            verify(&secret, "yesterday", &sig, b"{}", now),
            Err(SignatureError::BadTimestamp)
        );
    }
}
