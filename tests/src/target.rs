//! A target system stand-in: an HTTP server that records every request
//! and answers with a configurable status.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse as _, Response};
use tokio_util::sync::{CancellationToken, DropGuard};

/// One request the target received.
#[derive(Debug, Clone)]
pub struct Captured {
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers (names lowercase).
    pub headers: Vec<(String, String)>,
    /// Body text.
    pub body: String,
    /// When it arrived.
    pub at: std::time::Instant,
    /// The status the target answered (or, for a delayed answer, would
    /// have answered had the client waited).
    pub status: u16,
}

impl Captured {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

#[derive(Debug, Default)]
struct Shared {
    requests: Mutex<Vec<Captured>>,
    status: AtomicU16,
    /// (requests left, status) answered before `status` applies again.
    failing: Mutex<(u32, u16)>,
    /// Whether response bodies repeat the request's headers (a careless
    /// target echoing credentials back).
    echo: std::sync::atomic::AtomicBool,
    /// (requests left, delay) that answer only after the delay.
    slow: Mutex<(u32, std::time::Duration)>,
    /// Added to every answer (a target's own processing time).
    latency: Mutex<std::time::Duration>,
    /// `Retry-After` seconds sent with every 429 and 503 answer.
    retry_after: Mutex<Option<u64>>,
}

/// A running mock target; stops when dropped.
#[derive(Debug)]
pub struct MockTarget {
    addr: SocketAddr,
    shared: Arc<Shared>,
    _stop: DropGuard,
}

impl MockTarget {
    /// Starts on an ephemeral loopback port, answering 201.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_on("127.0.0.1:0".parse()?, false).await
    }

    /// Starts on `addr`; with `log`, prints each request (the demo target).
    pub async fn start_on(addr: SocketAddr, log: bool) -> anyhow::Result<Self> {
        let shared = Arc::new(Shared::default());
        shared.status.store(201, Ordering::SeqCst);
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let router = Router::new()
            .fallback(capture)
            .with_state((shared.clone(), log));
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async move { stopped.cancelled().await })
                .await;
        });
        Ok(Self {
            addr,
            shared,
            _stop: stop.drop_guard(),
        })
    }

    /// The base URL to put in a flows file.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many requests so far (without copying them).
    pub fn request_count(&self) -> usize {
        self.shared
            .requests
            .lock()
            .map(|r| r.len())
            .unwrap_or_default()
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Captured> {
        self.shared
            .requests
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// Answers the next `n` requests with `status`, then as before.
    pub fn fail_next(&self, n: u32, status: u16) {
        if let Ok(mut f) = self.shared.failing.lock() {
            *f = (n, status);
        }
    }

    /// Answers the next `n` requests only after `delay` (a target that
    /// hangs, for timeouts).
    pub fn delay_next(&self, n: u32, delay: std::time::Duration) {
        if let Ok(mut s) = self.shared.slow.lock() {
            *s = (n, delay);
        }
    }

    /// Answers every request only after `latency`.
    pub fn set_latency(&self, latency: std::time::Duration) {
        if let Ok(mut l) = self.shared.latency.lock() {
            *l = latency;
        }
    }

    /// Makes response bodies repeat the request's headers, credentials
    /// included, as some targets' error pages do.
    pub fn echo_headers(&self) {
        self.shared.echo.store(true, Ordering::SeqCst);
    }

    /// Sets the status later requests get.
    pub fn set_status(&self, status: u16) {
        self.shared.status.store(status, Ordering::SeqCst);
    }

    /// Sends `Retry-After: <seconds>` with every later 429 and 503 answer
    /// (`None`: no such header).
    pub fn set_retry_after(&self, seconds: Option<u64>) {
        if let Ok(mut r) = self.shared.retry_after.lock() {
            *r = seconds;
        }
    }
}

async fn capture(
    State((shared, log)): State<(Arc<Shared>, bool)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let failing = shared.failing.lock().ok().and_then(|mut f| {
        (f.0 > 0).then(|| {
            f.0 -= 1;
            f.1
        })
    });
    let status = failing.unwrap_or_else(|| shared.status.load(Ordering::SeqCst));
    let captured = Captured {
        method: method.to_string(),
        path: uri
            .path_and_query()
            .map(ToString::to_string)
            .unwrap_or_default(),
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
        at: std::time::Instant::now(),
        status,
    };
    if log {
        println!(
            "{} {} idempotency-key={} body={}",
            captured.method,
            captured.path,
            captured.header("idempotency-key").unwrap_or("-"),
            captured.body
        );
    }
    let echoed = if shared.echo.load(Ordering::SeqCst) {
        captured
            .headers
            .iter()
            .map(|(k, v)| format!("{k}: {v}\n"))
            .collect()
    } else {
        String::new()
    };
    if let Ok(mut r) = shared.requests.lock() {
        r.push(captured);
    }
    let delay = shared.slow.lock().ok().and_then(|mut s| {
        (s.0 > 0).then(|| {
            s.0 -= 1;
            s.1
        })
    });
    let latency = shared.latency.lock().map(|l| *l).unwrap_or_default();
    if let Some(delay) = delay.or((!latency.is_zero()).then_some(latency)) {
        tokio::time::sleep(delay).await;
    }
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (code, echoed).into_response();
    if let Ok(Some(seconds)) = shared.retry_after.lock().map(|r| *r)
        && matches!(status, 429 | 503)
    {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}
