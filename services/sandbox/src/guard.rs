//! Who may use `/_sandbox`: it shows every sign-in code and magic link the mesh sent and can reset
//! or break the vendors, so it answers only a caller with the control token
//! (`Authorization: Bearer <SANDBOX_CONTROL_TOKEN>`, or the cookie the inbox page sets once the token
//! is given to it), and only under a loopback or configured host name, so a web page the operator
//! visits cannot reach it by rebinding its own name to 127.0.0.1.

use axum::{
    extract::{Request, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    middleware::Next,
    response::{Html, IntoResponse, Response},
    Json,
};

use crate::{secret, Sandbox};

const COOKIE: &str = "era_sandbox_control";
const LOOPBACK: &[&str] = &["127.0.0.1", "localhost", "[::1]", "::1"];

fn host_allowed(sandbox: &Sandbox, headers: &HeaderMap, uri_host: Option<&str>) -> bool {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or(uri_host)
        .unwrap_or_default();
    // Without the port; an IPv6 literal keeps its brackets.
    let name = match host.rsplit_once(':') {
        Some((name, port)) if !name.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && !name.ends_with(':') => {
            name
        }
        _ => host,
    };
    LOOPBACK.contains(&name)
        || sandbox
            .config()
            .allowed_hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(name))
}

fn presented(headers: &HeaderMap) -> Option<String> {
    if let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some(token.trim().to_owned());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(&format!("{COOKIE}=")).map(str::to_owned))
}

fn refusal(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = serde_json::json!({ "error": { "type": kind, "message": message } });
    (status, Json(body)).into_response()
}

/// The middleware in front of every `/_sandbox` route but `/_sandbox/health`.
pub(crate) async fn control(State(sandbox): State<Sandbox>, req: Request, next: Next) -> Response {
    // Nested routes see their path without the prefix.
    if req.uri().path() == "/health" || req.uri().path() == "/_sandbox/health" {
        return next.run(req).await;
    }
    if !host_allowed(&sandbox, req.headers(), req.uri().host()) {
        return refusal(
            StatusCode::FORBIDDEN,
            "forbidden_host",
            "the sandbox's control plane answers only loopback or configured host names",
        );
    }
    let Some(expected) = sandbox.config().control_token.clone() else {
        return next.run(req).await;
    };
    let given = presented(req.headers());
    if given.as_deref().is_some_and(|g| secret::matches(g, &expected)) {
        return next.run(req).await;
    }
    if req.uri().path().ends_with("/inbox") {
        return inbox_sign_in(&req, &expected);
    }
    refusal(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "send Authorization: Bearer <SANDBOX_CONTROL_TOKEN>",
    )
}

/// The inbox page asks for the token once: `?token=` sets the cookie and redirects to the page
/// without it, so the token leaves the address bar and the history.
fn inbox_sign_in(req: &Request, expected: &str) -> Response {
    let token = req
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .find_map(|p| p.strip_prefix("token="))
        .map(crate::urlencoded::decode);
    match token {
        Some(t) if secret::matches(&t, expected) => {
            let cookie = format!("{COOKIE}={t}; Path=/_sandbox; HttpOnly; SameSite=Strict");
            let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, "/_sandbox/inbox")]).into_response();
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, v);
            }
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        given => {
            let note = if given.is_some() {
                "<p class=\"bad\">That token is not this sandbox's.</p>"
            } else {
                ""
            };
            let page = format!(
                "<!doctype html><html><head><meta charset=\"utf-8\"><title>Sandbox inbox</title>\
                 <style>body{{font-family:sans-serif;margin:2rem}}.bad{{color:#b00}}</style></head><body>\
                 <h1>Sandbox inbox</h1>{note}<form method=\"get\" action=\"/_sandbox/inbox\">\
                 <label>Control token (SANDBOX_CONTROL_TOKEN, printed by era-dev) \
                 <input name=\"token\" type=\"password\" autocomplete=\"off\" required></label> \
                 <button type=\"submit\">Open the inbox</button></form></body></html>"
            );
            (StatusCode::UNAUTHORIZED, Html(page)).into_response()
        }
    }
}
