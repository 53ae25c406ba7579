//! A webhook receiver the delivery tests run on a loopback port, standing where the edge would: it
//! records every POST it gets and answers 500 to the first `fail_first`, then 200. Each suite reads
//! the requests as its own type (`From<Received>`).

use std::{
    marker::PhantomData,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode, Uri},
    Router,
};

/// One request as it arrived.
#[derive(Clone, Debug)]
#[allow(dead_code, reason = "each suite reads the fields it checks")]
pub(crate) struct Received {
    pub(crate) path: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
    /// The status the receiver answered.
    pub(crate) answered: u16,
}

impl Received {
    /// A header's value, or "" when absent.
    pub(crate) fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }
}

#[derive(Default)]
struct Shared {
    got: Mutex<Vec<Received>>,
    fail_first: AtomicUsize,
}

/// The receiver, reading what it got as `T`.
pub(crate) struct Receiver<T> {
    shared: Arc<Shared>,
    as_type: PhantomData<fn() -> T>,
}

impl<T: From<Received>> Receiver<T> {
    /// Listens for POSTs to any path; answers the URL of `base` on it.
    pub(crate) async fn start(base: &str, fail_first: usize) -> (String, Self) {
        let shared = Arc::new(Shared::default());
        shared.fail_first.store(fail_first, Ordering::SeqCst);
        let app = Router::new().fallback(receive).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}{base}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (
            url,
            Self {
                shared,
                as_type: PhantomData,
            },
        )
    }

    pub(crate) fn all(&self) -> Vec<T> {
        self.shared.got.lock().unwrap().iter().cloned().map(T::from).collect()
    }

    /// Waits until at least `n` requests arrived.
    pub(crate) async fn wait_for(&self, n: usize) -> Vec<T> {
        let started = Instant::now();
        loop {
            let got = self.shared.got.lock().unwrap().len();
            if got >= n {
                return self.all();
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "expected {n} deliveries, got {got}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn receive(State(shared): State<Arc<Shared>>, uri: Uri, headers: HeaderMap, body: Bytes) -> StatusCode {
    let failing = shared
        .fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let answered = if failing { 500 } else { 200 };
    shared.got.lock().unwrap().push(Received {
        path: uri.path().to_owned(),
        headers,
        body: body.to_vec(),
        answered,
    });
    StatusCode::from_u16(answered).unwrap()
}
