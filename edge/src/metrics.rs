//! Prometheus metrics for `/metrics`: request counts and latency per route (the matched pattern, so
//! ids and other PHI in paths never become label values).

use std::{
    collections::{BTreeMap, HashMap},
    fmt::Write,
    sync::Mutex,
    time::{Duration, Instant},
};

use axum::{
    extract::{MatchedPath, Request, State},
    http::Method,
    middleware::Next,
    response::Response,
};

use crate::AppState;

const BUCKETS: [f64; 11] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

#[derive(Debug, Default, Clone)]
struct Series {
    count: u64,
    sum: f64,
    buckets: [u64; BUCKETS.len()],
}

impl Series {
    fn add(&mut self, other: &Series) {
        self.count += other.count;
        self.sum += other.sum;
        for (a, b) in self.buckets.iter_mut().zip(other.buckets) {
            *a += b;
        }
    }
}

/// One route's series by method and status.
type RouteSeries = HashMap<(&'static str, u16), Series>;

/// Route -> (method, status) -> series. Nested so that recording looks a route up by `&str` and
/// allocates only for its first request.
#[derive(Debug, Default)]
pub struct Metrics {
    series: Mutex<HashMap<String, RouteSeries>>,
}

impl Metrics {
    fn observe(&self, method: &'static str, route: &str, status: u16, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        if !series.contains_key(route) {
            series.insert(route.to_owned(), HashMap::new());
        }
        let s = series.get_mut(route).map(|r| r.entry((method, status)).or_default());
        let Some(s) = s else { return };
        s.count += 1;
        s.sum += secs;
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                s.buckets[i] += 1;
            }
        }
    }

    pub fn render(&self) -> String {
        // Sorted copies, so the output is stable and the lock is held briefly.
        let sorted: BTreeMap<(String, String, u16), Series> = {
            let series = self.series.lock().unwrap_or_else(|e| e.into_inner());
            series
                .iter()
                .flat_map(|(route, by)| {
                    by.iter()
                        .map(move |((m, status), s)| ((route.clone(), m.to_string(), *status), s.clone()))
                })
                .collect()
        };
        let mut out = String::new();
        out.push_str("# HELP era_edge_http_requests_total Requests answered, by method, route and status.\n");
        out.push_str("# TYPE era_edge_http_requests_total counter\n");
        for ((route, method, status), s) in &sorted {
            let _ = writeln!(
                out,
                "era_edge_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {}",
                s.count
            );
        }
        out.push_str("# HELP era_edge_http_request_duration_seconds Time to answer, by method and route.\n");
        out.push_str("# TYPE era_edge_http_request_duration_seconds histogram\n");
        let mut by_route: BTreeMap<(&str, &str), Series> = BTreeMap::new();
        for ((route, method, _), s) in &sorted {
            by_route.entry((method, route)).or_default().add(s);
        }
        for ((method, route), s) in by_route {
            let labels = format!("method=\"{method}\",route=\"{route}\"");
            for (le, n) in BUCKETS.iter().zip(s.buckets) {
                let _ = writeln!(
                    out,
                    "era_edge_http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "era_edge_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(out, "era_edge_http_request_duration_seconds_sum{{{labels}}} {}", s.sum);
            let _ = writeln!(
                out,
                "era_edge_http_request_duration_seconds_count{{{labels}}} {}",
                s.count
            );
        }
        out
    }
}

/// Any method outside HTTP's standard set is counted as `OTHER`, so callers cannot mint label values.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

pub(crate) async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(req.method());
    let route = req.extensions().get::<MatchedPath>().cloned();
    let response = next.run(req).await;
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    state
        .metrics
        .observe(method, route, response.status().as_u16(), started.elapsed());
    response
}
