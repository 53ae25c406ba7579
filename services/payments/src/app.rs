//! What the service's parts share: the Stripe client and the store; and the checks every write
//! makes of ids and keys before they reach Stripe.

use era_kit::error::FieldViolation;

use crate::{config::Config, store::Store, stripe::StripeClient};

#[derive(Debug)]
pub(crate) struct App {
    pub(crate) stripe: StripeClient,
    pub(crate) store: Store,
}

impl App {
    pub(crate) fn new(config: &Config, store: Store) -> anyhow::Result<Self> {
        Ok(Self {
            stripe: StripeClient::new(&config.stripe)?,
            store,
        })
    }
}

/// Canvas and Stripe ids: letters, digits, `_`, `-`, `.`; they end up in URLs.
pub(crate) fn check_id(bad: &mut Vec<FieldViolation>, field: &str, id: &str) {
    let ok = !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if !ok {
        bad.push(FieldViolation::new(field, "is required and must be an id"));
    }
}

/// Idempotency keys and references: 1-200 of letters, digits, `.`, `_`, `:`, `-`.
pub(crate) fn check_key(bad: &mut Vec<FieldViolation>, field: &str, key: &str) {
    let ok = (1..=200).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    if !ok {
        bad.push(FieldViolation::new(
            field,
            "is required: 1-200 characters of letters, digits, '.', '_', ':' or '-'",
        ));
    }
}

/// An idempotency key for Stripe derived from durable values: `<kind>-<sha256 hex>`, short enough
/// for Stripe's 255 characters whatever the inputs.
pub(crate) fn derived_key(kind: &str, parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for part in parts {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    format!("{kind}-{}", hex::encode(hash.finalize()))
}
