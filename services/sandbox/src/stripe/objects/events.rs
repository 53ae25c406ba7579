//! `GET /v1/events` and `GET /v1/events/{id}`: every event the sandbox emitted, newest first.

use serde_json::Value;

use super::page;
use crate::stripe::{
    errors::{StripeError, StripeResult},
    form::Params,
    Ctx,
};

/// `type` filters take a trailing `*` wildcard (`charge.*`), as Stripe's do.
fn type_matches(pattern: &str, kind: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => kind.starts_with(prefix),
        None => pattern == kind,
    }
}

pub(crate) fn list(cx: &mut Ctx<'_>, p: &Params, _: &[String]) -> StripeResult<Value> {
    p.allow(&[
        "type",
        "types",
        "limit",
        "starting_after",
        "ending_before",
        "created",
        "delivery_success",
    ])?;
    let kind = p.str("type")?;
    let kinds = p.list("types")?;
    if kind.is_some() && !kinds.is_empty() {
        return Err(StripeError::param(
            "parameter_invalid_string",
            "You may only specify one of these parameters: type, types.".to_owned(),
            "types",
        ));
    }
    let items = cx
        .st
        .events
        .newest_first()
        .filter(|e| kind.as_deref().is_none_or(|k| type_matches(k, &e.kind)))
        .filter(|e| kinds.is_empty() || kinds.iter().any(|k| type_matches(k, &e.kind)))
        .map(|e| (e.id.clone(), e.event.clone()))
        .collect();
    page("/v1/events", "event", items, p)
}

pub(crate) fn retrieve(cx: &mut Ctx<'_>, p: &Params, path: &[String]) -> StripeResult<Value> {
    p.allow(&[])?;
    cx.st
        .events
        .get(&path[1])
        .map(|e| e.event.clone())
        .ok_or_else(|| StripeError::no_such("event", &path[1], "id"))
}
