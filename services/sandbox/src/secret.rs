//! Comparing a presented credential with the configured one.

use sha2::{Digest, Sha256};

/// True when `given` equals `expected`. Both are hashed first, so the comparison takes the same
/// time wherever (and whether) they differ, lengths included.
pub(crate) fn matches(given: &str, expected: &str) -> bool {
    let (a, b) = (Sha256::digest(given.as_bytes()), Sha256::digest(expected.as_bytes()));
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_string_matches() {
        assert!(matches("SG.key", "SG.key"));
        assert!(!matches("SG.kex", "SG.key"));
        assert!(!matches("SG.ke", "SG.key"));
        assert!(!matches("", "SG.key"));
    }
}
