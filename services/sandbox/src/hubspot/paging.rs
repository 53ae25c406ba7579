//! HubSpot's forward paging: `limit` and an opaque `after` cursor in, `{"results": [...],
//! "paging": {"next": {"after", "link"}}}` out, with `paging` absent on the last page. A cursor is
//! the sort key of the last result returned, so objects created between pages do not shift them.

use base64::Engine;
use serde_json::{json, Value};

use super::errors::{HubError, HubResult};
use crate::urlencoded;

/// `limit`: at least 1; larger than `max` is served as `max`.
pub(crate) fn limit(pairs: &[(String, String)], default: usize, max: usize) -> HubResult<usize> {
    match urlencoded::first(pairs, "limit") {
        None | Some("") => Ok(default),
        Some(raw) => match raw.parse::<usize>() {
            Ok(n) if n >= 1 => Ok(n.min(max)),
            _ => Err(HubError::invalid_field(
                "limit",
                format!("limit must be a positive integer, got '{raw}'"),
            )),
        },
    }
}

/// The sort key an `after` cursor stands for.
pub(crate) fn after(pairs: &[(String, String)]) -> HubResult<Option<String>> {
    let Some(raw) = urlencoded::first(pairs, "after").filter(|a| !a.is_empty()) else {
        return Ok(None);
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .map(Some)
        .ok_or_else(|| HubError::invalid_field("after", format!("'{raw}' is not a valid paging cursor")))
}

fn cursor(key: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)
}

/// `true`/`false`, absent meaning `default`.
pub(crate) fn boolean(pairs: &[(String, String)], name: &str, default: bool) -> HubResult<bool> {
    match urlencoded::first(pairs, name) {
        None | Some("") => Ok(default),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(v) => Err(HubError::invalid_field(
            name,
            format!("{name} must be true or false, got '{v}'"),
        )),
    }
}

/// One page of `items`, each with its sort key (keys compare as strings, so numbers in them are
/// zero-padded), in the order given: ascending keys, or descending when `descending`.
pub(crate) struct Page<T> {
    pub(crate) items: Vec<T>,
    /// The cursor for the next page, if there is one.
    pub(crate) next: Option<String>,
}

pub(crate) fn page<T>(mut items: Vec<(String, T)>, descending: bool, after: Option<&str>, limit: usize) -> Page<T> {
    items.sort_by(|a, b| a.0.cmp(&b.0));
    if descending {
        items.reverse();
    }
    let mut rest: Vec<(String, T)> = items
        .into_iter()
        .filter(|(key, _)| match after {
            None => true,
            Some(a) if descending => key.as_str() < a,
            Some(a) => key.as_str() > a,
        })
        .collect();
    let more = rest.len() > limit;
    rest.truncate(limit);
    let next = more.then(|| rest.last().map(|(key, _)| cursor(key))).flatten();
    Page {
        items: rest.into_iter().map(|(_, item)| item).collect(),
        next,
    }
}

/// The envelope; `link` repeats the request (`origin` + `path` + its query) with the new cursor.
pub(crate) fn envelope(
    results: Vec<Value>,
    next: Option<String>,
    origin: &str,
    path: &str,
    pairs: &[(String, String)],
) -> Value {
    let mut v = json!({ "results": results });
    if let Some(after) = next {
        let mut query: Vec<(String, String)> = pairs.iter().filter(|(k, _)| k != "after").cloned().collect();
        query.push(("after".into(), after.clone()));
        v["paging"] = json!({
            "next": { "after": after, "link": format!("{origin}{path}?{}", urlencoded::join(&query)) }
        });
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyed(n: u64) -> Vec<(String, u64)> {
        (1..=n).map(|i| (format!("{i:020}"), i)).collect()
    }

    #[test]
    fn pages_resume_after_the_cursor_until_none_is_left() {
        let first = page(keyed(5), false, None, 2);
        assert_eq!(first.items, vec![1, 2]);
        let key = after(&[("after".into(), first.next.unwrap())]).unwrap();
        let second = page(keyed(5), false, key.as_deref(), 2);
        assert_eq!(second.items, vec![3, 4]);
        let key = after(&[("after".into(), second.next.unwrap())]).unwrap();
        let last = page(keyed(5), false, key.as_deref(), 2);
        assert_eq!(last.items, vec![5]);
        assert!(last.next.is_none());
        // A page that ends exactly at the end has no next either.
        assert!(page(keyed(4), false, None, 4).next.is_none());
    }

    #[test]
    fn descending_pages_walk_down() {
        let first = page(keyed(3), true, None, 2);
        assert_eq!(first.items, vec![3, 2]);
        let key = after(&[("after".into(), first.next.unwrap())]).unwrap();
        assert_eq!(page(keyed(3), true, key.as_deref(), 2).items, vec![1]);
    }

    #[test]
    fn limits_and_cursors_are_checked() {
        let p = |k: &str, v: &str| vec![(k.to_owned(), v.to_owned())];
        assert_eq!(limit(&[], 20, 500).unwrap(), 20);
        assert_eq!(limit(&p("limit", "900"), 20, 500).unwrap(), 500);
        assert!(limit(&p("limit", "0"), 20, 500).is_err());
        assert!(after(&p("after", "not base64!")).is_err());
    }
}
