//! Keyset paging over charges: a token is the (created_at, id) of the last charge shown.

use chrono::{DateTime, Utc};
use era_proto::common::v1::PageResponse;
use uuid::Uuid;

use crate::error::{Error, Result};

const DEFAULT: i32 = 50;
const MAX: i32 = 100;

pub(crate) fn size(requested: i32) -> i64 {
    i64::from(if requested <= 0 { DEFAULT } else { requested.min(MAX) })
}

pub(crate) fn cursor(token: &str) -> Result<Option<(DateTime<Utc>, Uuid)>> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || Error::field("page.page_token", "is not a token this list issued");
    let (micros, id) = token.split_once('.').ok_or_else(bad)?;
    let at = DateTime::from_timestamp_micros(micros.parse().map_err(|_| bad())?).ok_or_else(bad)?;
    Ok(Some((at, Uuid::parse_str(id).map_err(|_| bad())?)))
}

pub(crate) fn response(next: Option<(DateTime<Utc>, Uuid)>) -> PageResponse {
    PageResponse {
        next_page_token: next
            .map(|(at, id)| format!("{}.{id}", at.timestamp_micros()))
            .unwrap_or_default(),
    }
}
