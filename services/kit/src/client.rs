//! Calling a peer service: a lazily connected channel, and requests that carry the caller's identity
//! as an internal token together with the current request id and trace context.

use std::time::Duration;

use tonic::{metadata::MetadataValue, transport::Channel};

use crate::{
    auth::{Caller, InternalTokens},
    context::{RequestContext, REQUEST_ID_HEADER, TRACEPARENT_HEADER},
    tls::{Connector, MeshTls},
};

/// How long one call may take before the caller gives up (DEADLINE_EXCEEDED, HTTP 504 at the edge).
pub const CALL_DEADLINE: Duration = Duration::from_secs(10);

/// A channel that connects on first use and reconnects by itself, so services can start in any order.
/// An `https://` URL is dialled over mesh TLS (`tls` must then be given); `http://` only without it.
pub fn channel(url: &str, tls: Option<&MeshTls>) -> anyhow::Result<Channel> {
    let endpoint = tonic::transport::Endpoint::from_shared(url.to_owned())?
        .connect_timeout(Duration::from_secs(5))
        // Backstop; each call also carries its own deadline (CALL_DEADLINE) that the server enforces.
        .timeout(CALL_DEADLINE + Duration::from_secs(5))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30));
    match (endpoint.uri().scheme_str(), tls) {
        (Some("https"), Some(tls)) => Ok(endpoint.connect_with_connector_lazy(Connector(tls.clone()))),
        (Some("http"), None) => Ok(endpoint.connect_lazy()),
        (Some("https"), None) => anyhow::bail!("{url} is https:// but mesh TLS is not set"),
        (Some("http"), Some(_)) => anyhow::bail!("{url} is plaintext http:// while mesh TLS is set"),
        _ => anyhow::bail!("{url} is not an http:// or https:// URL"),
    }
}

/// Wraps `message` for a call made on behalf of `caller`.
pub fn request<T>(message: T, tokens: &InternalTokens, caller: &Caller) -> tonic::Request<T> {
    let ctx = RequestContext::current().map_or_else(RequestContext::new_root, |c| c.child());
    request_in_context(message, tokens, caller, &ctx)
}

/// As [`request`], with an explicit context.
pub fn request_in_context<T>(
    message: T,
    tokens: &InternalTokens,
    caller: &Caller,
    ctx: &RequestContext,
) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    req.set_timeout(CALL_DEADLINE);
    let md = req.metadata_mut();
    if let Ok(v) = MetadataValue::try_from(format!("Bearer {}", tokens.mint(caller))) {
        md.insert("authorization", v);
    }
    if let Ok(v) = MetadataValue::try_from(ctx.request_id.as_str()) {
        md.insert(REQUEST_ID_HEADER, v);
    }
    if let Ok(v) = MetadataValue::try_from(ctx.traceparent.as_str()) {
        md.insert(TRACEPARENT_HEADER, v);
    }
    req
}
