//! The secret key check: `Authorization: Bearer <key>` (what the SDKs send) or HTTP Basic with the
//! key as user name and an empty password (`curl -u sk_test_...:`), stripe.md §1.2.

use base64::Engine;
use http::{header::AUTHORIZATION, HeaderMap};
use sha2::{Digest, Sha256};

use super::errors::{StripeError, StripeResult};

/// The key a request presents, if any.
fn presented(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.to_owned());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD.decode(rest).ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let user = decoded.split_once(':').map_or(decoded.as_str(), |(u, _)| u);
        return Some(user.to_owned());
    }
    None
}

/// 401 unless the request carries `expected`; the key is compared in constant time.
pub(crate) fn check(headers: &HeaderMap, expected: &str) -> StripeResult<()> {
    let Some(key) = presented(headers).filter(|k| !k.is_empty()) else {
        return Err(StripeError::no_api_key());
    };
    if constant_time_eq(&key, expected) {
        Ok(())
    } else {
        Err(StripeError::invalid_api_key(&mask(&key)))
    }
}

/// Hashing first makes the comparison independent of where (and whether) the lengths differ.
fn constant_time_eq(given: &str, expected: &str) -> bool {
    let (a, b) = (Sha256::digest(given.as_bytes()), Sha256::digest(expected.as_bytes()));
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `sk_test_****1234`: the key's kind is kept, only the last four characters are shown.
pub(crate) fn mask(key: &str) -> String {
    const KINDS: &[&str] = &["sk_test_", "sk_live_", "rk_test_", "rk_live_", "pk_test_", "pk_live_"];
    let prefix = KINDS.iter().find(|p| key.starts_with(*p)).copied().unwrap_or("");
    let rest: Vec<char> = key[prefix.len()..].chars().collect();
    let last4: String = if rest.len() > 4 {
        rest[rest.len() - 4..].iter().collect()
    } else {
        String::new()
    };
    format!("{prefix}****{last4}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, auth.parse().unwrap());
        h
    }

    #[test]
    fn bearer_and_basic_are_accepted() {
        assert!(check(&headers("Bearer sk_test_abc"), "sk_test_abc").is_ok());
        // base64("sk_test_abc:")
        assert!(check(&headers("Basic c2tfdGVzdF9hYmM6"), "sk_test_abc").is_ok());
        assert!(check(&headers("Bearer sk_test_abd"), "sk_test_abc").is_err());
        assert!(check(&HeaderMap::new(), "sk_test_abc").is_err());
    }

    #[test]
    fn keys_are_masked_to_their_kind_and_last_four() {
        assert_eq!(mask("sk_test_51Habcdef1234"), "sk_test_****1234");
        assert_eq!(mask("sk_test_12"), "sk_test_****");
        assert_eq!(mask("whatever-key"), "****-key");
    }
}
