//! Keyset paging over charges (era_kit::time): a token is the (created_at, id) of the last charge shown.

use era_proto::common::v1::PageResponse;

use crate::error::{Error, Result};

const DEFAULT: i32 = 50;
const MAX: i32 = 100;

pub(crate) fn size(requested: i32) -> i64 {
    i64::from(if requested <= 0 { DEFAULT } else { requested.min(MAX) })
}

pub(crate) fn cursor(token: &str) -> Result<Option<era_kit::time::Keyset>> {
    era_kit::time::parse_keyset(token).map_err(|_| Error::field("page.page_token", "is not a token this list issued"))
}

pub(crate) fn response(next: Option<era_kit::time::Keyset>) -> PageResponse {
    PageResponse {
        next_page_token: next.map(era_kit::time::keyset_token).unwrap_or_default(),
    }
}
