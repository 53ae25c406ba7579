//! Request id and W3C trace context, carried from the edge through every gRPC hop so one request can
//! be followed across the mesh's logs.

use std::future::Future;

use http::HeaderMap;
use rand::RngCore;

pub const REQUEST_ID_HEADER: &str = "x-request-id";
pub const TRACEPARENT_HEADER: &str = "traceparent";

tokio::task_local! {
    static CURRENT: RequestContext;
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestContext {
    pub request_id: String,
    /// `00-<trace id>-<span id>-<flags>`.
    pub traceparent: String,
}

impl RequestContext {
    /// A new request with a fresh id and a new trace.
    pub fn new_root() -> Self {
        Self {
            request_id: uuid::Uuid::new_v4().to_string(),
            traceparent: new_traceparent(&random_hex(16)),
        }
    }

    /// Takes the caller's id and trace when they are well formed; anything else starts afresh,
    /// so a client cannot inject arbitrary text into our logs.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let request_id = headers
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| is_valid_request_id(v))
            .map_or_else(new_request_id, str::to_owned);
        let traceparent = headers
            .get(TRACEPARENT_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| is_valid_traceparent(v))
            .map_or_else(|| new_traceparent(&random_hex(16)), str::to_owned);
        Self {
            request_id,
            traceparent,
        }
    }

    pub fn trace_id(&self) -> &str {
        self.traceparent.get(3..35).unwrap_or_default()
    }

    /// The context for an outbound call: same request and trace, a new span id.
    pub fn child(&self) -> Self {
        Self {
            request_id: self.request_id.clone(),
            traceparent: new_traceparent(self.trace_id()),
        }
    }

    /// The context of the request being served on this task, if any.
    pub fn current() -> Option<Self> {
        CURRENT.try_with(Clone::clone).ok()
    }

    /// Runs `fut` with `self` as the current context.
    pub async fn scope<F: Future>(self, fut: F) -> F::Output {
        CURRENT.scope(self, fut).await
    }
}

fn is_valid_request_id(v: &str) -> bool {
    !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

fn is_valid_traceparent(v: &str) -> bool {
    let parts: Vec<&str> = v.split('-').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    parts.len() == 4
        && hex(parts[0], 2)
        && hex(parts[1], 32)
        && hex(parts[2], 16)
        && hex(parts[3], 2)
        && parts[1].bytes().any(|b| b != b'0')
        && parts[2].bytes().any(|b| b != b'0')
}

/// A UUID v4 from the thread's CSPRNG: `Uuid::new_v4` asks the kernel each time, a syscall per request.
fn new_request_id() -> String {
    uuid::Builder::from_random_bytes(rand::random()).into_uuid().to_string()
}

fn new_traceparent(trace_id: &str) -> String {
    format!("00-{trace_id}-{}-01", random_hex(8))
}

fn random_hex(bytes: usize) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 16];
    let buf = &mut buf[..bytes.min(16)];
    rand::thread_rng().fill_bytes(buf);
    let mut out = String::with_capacity(buf.len() * 2);
    for b in buf.iter() {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed_headers_are_kept_and_children_share_the_trace() {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID_HEADER, "req-123".parse().unwrap());
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        headers.insert(TRACEPARENT_HEADER, tp.parse().unwrap());
        let ctx = RequestContext::from_headers(&headers);
        assert_eq!(ctx.request_id, "req-123");
        assert_eq!(ctx.traceparent, tp);
        let child = ctx.child();
        assert_eq!(child.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(child.traceparent, tp);
    }

    #[test]
    fn malformed_headers_are_replaced() {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID_HEADER, "bad id with spaces".parse().unwrap());
        headers.insert(TRACEPARENT_HEADER, "00-xyz-1-01".parse().unwrap());
        let ctx = RequestContext::from_headers(&headers);
        assert_ne!(ctx.request_id, "bad id with spaces");
        assert!(is_valid_traceparent(&ctx.traceparent));
    }
}
