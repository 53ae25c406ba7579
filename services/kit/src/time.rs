//! Times between chrono and protobuf, and the keyset paging newest-first lists share.

use chrono::{DateTime, Utc};
use uuid::Uuid;

pub fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

/// `None` for a timestamp no date can hold (negative nanos, out of range).
pub fn from_timestamp(t: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?)
}

/// A keyset position: the (time, id) of the last item shown, newest-first lists.
pub type Keyset = (DateTime<Utc>, Uuid);

/// The page token of a keyset position: `<micros>.<uuid>`.
pub fn keyset_token((at, id): Keyset) -> String {
    format!("{}.{id}", at.timestamp_micros())
}

/// A page token no list issued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadToken;

/// The position a token names: `Ok(None)` for the first page.
pub fn parse_keyset(token: &str) -> Result<Option<Keyset>, BadToken> {
    if token.is_empty() {
        return Ok(None);
    }
    let (micros, id) = token.split_once('.').ok_or(BadToken)?;
    let at = DateTime::from_timestamp_micros(micros.parse().map_err(|_| BadToken)?).ok_or(BadToken)?;
    Ok(Some((at, Uuid::parse_str(id).map_err(|_| BadToken)?)))
}

/// A newest-first list's page size: what was asked for, at most 100; 50 when nothing was.
pub fn page_size(requested: i32) -> i64 {
    i64::from(if requested <= 0 { 50 } else { requested.min(100) })
}

/// The position a request's page token names, or the violation to answer.
pub fn page_cursor(token: &str) -> Result<Option<Keyset>, crate::error::FieldViolation> {
    parse_keyset(token)
        .map_err(|_| crate::error::FieldViolation::new("page.page_token", "is not a token this list issued"))
}

/// The page part of a list's answer.
pub fn next_page(next: Option<Keyset>) -> era_proto::common::v1::PageResponse {
    era_proto::common::v1::PageResponse {
        next_page_token: next.map(keyset_token).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyset_tokens_round_trip_and_refuse_others() {
        let at = DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
        let id = Uuid::new_v4();
        assert_eq!(parse_keyset(&keyset_token((at, id))), Ok(Some((at, id))));
        assert_eq!(parse_keyset(""), Ok(None));
        assert!(parse_keyset("o50").is_err());
        assert!(parse_keyset("12.not-a-uuid").is_err());
    }
}
