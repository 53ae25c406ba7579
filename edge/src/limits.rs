//! Per-client rate limits on the routes anyone may call: each public route has a budget of requests
//! per client per minute, counted in the edge's database so that every edge replica shares one
//! count. A client is its address: the peer's, or, behind `TRUSTED_PROXY_HOPS` proxies that append to
//! `X-Forwarded-For`, the address the outermost of them saw (what a client writes into the header
//! itself is never trusted). Over budget is 429 with `Retry-After`; the counts hold hashed addresses.

use std::net::{IpAddr, SocketAddr};

use axum::{
    extract::{ConnectInfo, MatchedPath, Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::{error::ApiError, AppState};

/// One minute: every budget below is per client per window.
const WINDOW_SECS: i64 = 60;

/// The public routes' budgets (requests per client per minute), before `RATE_LIMIT_MULTIPLIER`.
/// Sign-in sends are the tightest: each costs an email and could flood a stranger's inbox.
const POLICIES: &[(Method, &str, i64)] = &[
    (Method::POST, "/api/intake/submit", 10),
    (Method::POST, "/api/intake/discount/validate", 20),
    (Method::POST, "/api/intake/setup-intent", 10),
    (Method::POST, "/api/intake/payment-method", 10),
    (Method::POST, "/api/auth/otp/send", 5),
    (Method::POST, "/api/auth/otp/verify", 10),
    (Method::POST, "/api/auth/magic-link", 5),
    (Method::GET, "/api/auth/magic-link", 20),
    (Method::POST, "/api/auth/magic-link/consume", 10),
    (Method::POST, "/api/auth/session", 10),
    (Method::POST, "/api/patient/auth/send-code", 5),
    (Method::POST, "/api/patient/auth/verify", 10),
    (Method::POST, "/api/auth/canvas", 20),
];

/// Routes whose failures are budgeted on top of their request budget: once a client has spent a
/// failure budget, the routes refuse it with 429 before doing any work.
struct FailureBudget {
    routes: &'static [(Method, &'static str)],
    /// Which answers count as failures.
    failed: fn(StatusCode) -> bool,
    /// `(bucket prefix, failures allowed, window seconds, per client)`.
    budgets: &'static [(&'static str, i64, i64, bool)],
    code: &'static str,
}

const FAILURE_BUDGETS: &[FailureBudget] = &[
    // Sign-in checks: a wrong code or an unknown link (401) counts per client and across all
    // clients, on top of the per-code and per-email limits notifications keeps, so that guessing
    // across many accounts stops too (the arithmetic is in the README).
    FailureBudget {
        routes: &[
            (Method::POST, "/api/auth/otp/verify"),
            (Method::POST, "/api/auth/magic-link/consume"),
            (Method::POST, "/api/auth/session"),
            (Method::POST, "/api/patient/auth/verify"),
        ],
        failed: |s| s == StatusCode::UNAUTHORIZED,
        budgets: &[
            ("failed-sign-in", 10, 3600, true),
            ("failed-sign-in", 20, WINDOW_SECS, false),
        ],
        code: "too_many_failed_sign_ins",
    },
    // Signed routes (the Canvas plugin's HMAC, Stripe's and the pharmacies' webhooks): a bad
    // signature costs a verification and a replay-table lookup; a client that keeps sending them is
    // probing. Per client only, so no one can lock the real vendors out.
    FailureBudget {
        routes: &[
            (Method::POST, "/api/auth/canvas"),
            (Method::POST, "/api/webhooks/stripe"),
            (Method::POST, "/api/webhooks/pharmacy/{pharmacy}"),
            (Method::POST, "/api/webhooks/canvas/patient-created"),
        ],
        failed: |s| s == StatusCode::UNAUTHORIZED || s == StatusCode::BAD_REQUEST,
        budgets: &[("bad-signature", 10, WINDOW_SECS, true)],
        code: "too_many_bad_signatures",
    },
];

/// The budget of a route, if it is limited.
pub fn budget(method: &Method, route: &str) -> Option<i64> {
    POLICIES
        .iter()
        .find(|(m, r, _)| m == method && *r == route)
        .map(|(_, _, n)| *n)
}

/// Whether a route can answer 429: it has a request budget or a failure budget.
pub fn is_limited(method: &Method, route: &str) -> bool {
    budget(method, route).is_some()
        || FAILURE_BUDGETS
            .iter()
            .any(|f| f.routes.iter().any(|(m, r)| m == method && *r == route))
}

/// The client a request comes from: with `hops` trusted proxies in front, the address the
/// outermost one recorded in `X-Forwarded-For` (the `hops`-th entry from the right); without,
/// the peer itself.
pub fn client_address(peer: Option<IpAddr>, headers: &HeaderMap, hops: usize) -> Option<IpAddr> {
    if hops == 0 {
        return peer;
    }
    let forwarded: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    match forwarded.len().checked_sub(hops) {
        Some(i) => forwarded[i].parse().ok(),
        // Fewer entries than proxies: the request did not come through them all.
        None => peer,
    }
}

/// Counts one request of `bucket` in the current window of `window` seconds; answers the seconds
/// to wait when the budget is spent.
async fn hit(pool: &PgPool, bucket: &str, budget: i64, window: i64) -> sqlx::Result<Option<i64>> {
    let (hits, wait): (i32, f64) = sqlx::query_as(
        "insert into rate_limits (bucket, window_start, hits)
         values ($1, to_timestamp(floor(extract(epoch from now()) / $2) * $2), 1)
         on conflict (bucket, window_start) do update set hits = rate_limits.hits + 1
         returning hits, extract(epoch from window_start + make_interval(secs => $2) - now())::float8",
    )
    .bind(bucket)
    .bind(window as f64)
    .fetch_one(pool)
    .await?;
    if hits == 1 {
        // A new window: clear a few expired ones, so the table stays small without a sweeper.
        sqlx::query(
            "delete from rate_limits where ctid in
                 (select ctid from rate_limits where window_start < now() - interval '2 hours' limit 200)",
        )
        .execute(pool)
        .await?;
    }
    Ok((i64::from(hits) > budget).then(|| wait.ceil().max(1.0) as i64))
}

/// The seconds to wait when `bucket` has spent `budget` in its current window; nothing is counted.
async fn spent(pool: &PgPool, bucket: &str, budget: i64, window: i64) -> sqlx::Result<Option<i64>> {
    let row: Option<(i32, f64)> = sqlx::query_as(
        "select hits, extract(epoch from window_start + make_interval(secs => $2) - now())::float8
         from rate_limits where bucket = $1 and window_start = to_timestamp(floor(extract(epoch from now()) / $2) * $2)",
    )
    .bind(bucket)
    .bind(window as f64)
    .fetch_optional(pool)
    .await?;
    Ok(row.and_then(|(hits, wait)| (i64::from(hits) >= budget).then(|| wait.ceil().max(1.0) as i64)))
}

fn too_many(wait: i64, code: &str, message: String) -> Response {
    let mut response = ApiError::new(StatusCode::TOO_MANY_REQUESTS, code, message).into_response();
    if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
        response.headers_mut().insert("retry-after", v);
    }
    response
}

/// The middleware: limits the public routes, passes everything else untouched.
pub async fn limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(route) = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()) else {
        return next.run(req).await;
    };
    let budget = budget(req.method(), &route);
    let failure = FAILURE_BUDGETS
        .iter()
        .find(|f| f.routes.iter().any(|(m, r)| m == req.method() && *r == route));
    if budget.is_none() && failure.is_none() {
        return next.run(req).await;
    }
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let client = client_address(peer, req.headers(), state.config.trusted_proxy_hops)
        .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
    // Addresses are personal data: the table holds a digest.
    let digest = hex::encode(&Sha256::digest(client.as_bytes())[..12]);
    let bucket = format!("{} {route}:{digest}", req.method());
    let multiplier = i64::from(state.config.rate_limit_multiplier);
    let failures: Vec<(String, i64, i64)> = failure
        .map(|f| {
            f.budgets
                .iter()
                .map(|(prefix, allowed, window, per_client)| {
                    let who = if *per_client { digest.as_str() } else { "all" };
                    (format!("{prefix}:{who}"), *allowed, *window)
                })
                .collect()
        })
        .unwrap_or_default();
    let checked = async {
        if let Some(f) = failure {
            for (failure_bucket, allowed, window) in &failures {
                if let Some(wait) =
                    spent(&state.pool, failure_bucket, allowed.saturating_mul(multiplier), *window).await?
                {
                    return Ok::<_, sqlx::Error>(Some((wait, f.code)));
                }
            }
        }
        if let Some(budget) = budget {
            let budget = budget.saturating_mul(multiplier);
            if let Some(wait) = hit(&state.pool, &bucket, budget, WINDOW_SECS).await? {
                return Ok::<_, sqlx::Error>(Some((wait, "rate_limited")));
            }
        }
        Ok::<_, sqlx::Error>(None)
    };
    match checked.await {
        Ok(None) => {}
        Ok(Some((wait, code))) => {
            return too_many(wait, code, format!("too many requests; try again in {wait} seconds"));
        }
        // The counter's database is down: serve rather than refuse everyone (the services keep
        // their own caps on what costs money or mail).
        Err(e) => tracing::warn!(error = %e, "rate limit not checked"),
    }
    let response = next.run(req).await;
    if failure.is_some_and(|f| (f.failed)(response.status())) {
        for (failure_bucket, _, window) in &failures {
            if let Err(e) = hit(&state.pool, failure_bucket, i64::MAX, *window).await {
                tracing::warn!(error = %e, "a failure was not counted");
            }
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_is_the_address_the_outermost_trusted_proxy_saw() {
        let peer: IpAddr = "10.0.0.9".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 203.0.113.7, 10.0.0.2"),
        );
        // Without trusted proxies the header is the client's own word: ignored.
        assert_eq!(client_address(Some(peer), &headers, 0), Some(peer));
        assert_eq!(
            client_address(Some(peer), &headers, 1),
            Some("10.0.0.2".parse().unwrap())
        );
        assert_eq!(
            client_address(Some(peer), &headers, 2),
            Some("203.0.113.7".parse().unwrap())
        );
        assert_eq!(
            client_address(Some(peer), &headers, 5),
            Some(peer),
            "fewer hops than proxies"
        );
        assert_eq!(budget(&Method::POST, "/api/patient/auth/send-code"), Some(5));
        assert_eq!(budget(&Method::GET, "/api/admin/orders"), None);
        assert!(is_limited(&Method::POST, "/api/webhooks/pharmacy/{pharmacy}"));
        assert!(!is_limited(&Method::GET, "/api/admin/orders"));
    }
}
