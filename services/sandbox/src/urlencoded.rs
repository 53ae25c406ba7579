//! `application/x-www-form-urlencoded` pairs, for the vendors whose parameters repeat (Twilio's
//! `MediaUrl`, HubSpot's `inboxId`) or carry operators in their names (Twilio's `DateSent>`), which
//! a serde struct cannot express.

/// The decoded `key=value` pairs of a query string or form body, in order; `+` is a space.
pub(crate) fn pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// The first value of `key`, if any.
pub(crate) fn first<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Every value of `key`, in order.
pub(crate) fn all<'a>(pairs: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    pairs
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// Percent-decodes `s`, reading `+` as a space; a malformed escape is kept as written.
pub(crate) fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `k=v&k=v`, each side encoded.
pub(crate) fn join<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k.as_ref()), encode(v.as_ref())))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_decode_keys_values_and_repeats() {
        let p = pairs("To=%2B15005550006&Body=Hi+there&MediaUrl=a&MediaUrl=b&DateSent%3E=2024-01-01&flag");
        assert_eq!(first(&p, "To"), Some("+15005550006"));
        assert_eq!(first(&p, "Body"), Some("Hi there"));
        assert_eq!(all(&p, "MediaUrl"), vec!["a", "b"]);
        assert_eq!(first(&p, "DateSent>"), Some("2024-01-01"));
        assert_eq!(first(&p, "flag"), Some(""));
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%4"), "%4");
        assert_eq!(decode("%41"), "A");
    }

    #[test]
    fn encode_round_trips() {
        let s = "unique_args['k']=\"v w\"&é";
        assert_eq!(decode(&encode(s)), s);
        assert_eq!(join(&[("DateSent>", "2024-01-01")]), "DateSent%3E=2024-01-01");
    }
}
