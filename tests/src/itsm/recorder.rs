//! What both mock systems share: the request log, injected failures,
//! held answers, timestamps in each vendor's format and saving state.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse as _, Response};
use tokio::sync::oneshot;

use crate::target::Captured;

/// A write whose answer the mock holds back (see [`Hold`]).
#[derive(Debug)]
pub(crate) struct HoldSlot {
    received: oneshot::Sender<Captured>,
    release: oneshot::Receiver<()>,
}

/// The test's side of a held answer: the mock applies the write (state
/// changed, webhook queued) as a real system that committed it, reports it
/// here, and answers only once released (or this is dropped).
#[derive(Debug)]
pub struct Hold {
    received: oneshot::Receiver<Captured>,
    release: oneshot::Sender<()>,
}

impl Hold {
    pub(crate) fn new() -> (Self, HoldSlot) {
        let (received_tx, received) = oneshot::channel();
        let (release, release_rx) = oneshot::channel();
        (
            Self { received, release },
            HoldSlot {
                received: received_tx,
                release: release_rx,
            },
        )
    }

    /// Waits until the held write arrived and was applied; its request.
    pub async fn received(&mut self, within: Duration) -> anyhow::Result<Captured> {
        Ok(tokio::time::timeout(within, &mut self.received)
            .await
            .map_err(|_| anyhow::anyhow!("no held write arrived within {within:?}"))??)
    }

    /// Lets the mock answer.
    pub fn release(self) {
        let _ = self.release.send(());
    }
}

impl HoldSlot {
    /// Reports the applied write, then waits until the test releases it.
    pub(crate) async fn hold(self, request: Captured) {
        let _ = self.received.send(request);
        let _ = self.release.await;
    }
}

/// The request log and injected failures of one mock.
#[derive(Debug)]
pub(crate) struct Recorder {
    pub(crate) system: &'static str,
    log: bool,
    requests: Mutex<Vec<Captured>>,
    /// (writes left, status) answered without applying them.
    failing: Mutex<(u32, u16)>,
    hold: Mutex<Option<HoldSlot>>,
}

impl Recorder {
    pub(crate) fn new(system: &'static str, log: bool) -> Self {
        Self {
            system,
            log,
            requests: Mutex::new(Vec::new()),
            failing: Mutex::new((0, 500)),
            hold: Mutex::new(None),
        }
    }

    pub(crate) fn capture(
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Captured {
        Captured {
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
            body: String::from_utf8_lossy(body).into_owned(),
            at: std::time::Instant::now(),
            status: 0,
        }
    }

    /// The status of an injected failure for this write, if any is left.
    pub(crate) fn take_failure(&self) -> Option<u16> {
        self.failing.lock().ok().and_then(|mut f| {
            (f.0 > 0).then(|| {
                f.0 -= 1;
                f.1
            })
        })
    }

    pub(crate) fn fail_next(&self, n: u32, status: u16) {
        if let Ok(mut f) = self.failing.lock() {
            *f = (n, status);
        }
    }

    pub(crate) fn hold_next(&self) -> Hold {
        let (hold, slot) = Hold::new();
        if let Ok(mut h) = self.hold.lock() {
            *h = Some(slot);
        }
        hold
    }

    pub(crate) fn take_hold(&self) -> Option<HoldSlot> {
        self.hold.lock().ok().and_then(|mut h| h.take())
    }

    /// Logs (when printing) and keeps the request with its answer status.
    pub(crate) fn record(&self, mut request: Captured, status: u16, note: &str) -> Captured {
        request.status = status;
        if self.log {
            let key = request
                .header("idempotency-key")
                .map(|k| format!(" idempotency-key={k}"))
                .unwrap_or_default();
            // One line per request: JSON bodies compacted.
            let body = if request.body.is_empty() {
                String::new()
            } else {
                let compact = serde_json::from_str::<serde_json::Value>(&request.body)
                    .map_or_else(|_| request.body.replace('\n', " "), |v| v.to_string());
                format!(" body={compact}")
            };
            let note = if note.is_empty() {
                String::new()
            } else {
                format!(" {note}")
            };
            println!(
                "{:<10} {} {} -> {status}{note}{key}{body}",
                self.system, request.method, request.path
            );
        }
        if let Ok(mut r) = self.requests.lock() {
            r.push(request.clone());
        }
        request
    }

    pub(crate) fn requests(&self) -> Vec<Captured> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

/// A JSON answer.
pub(crate) fn json(status: u16, body: &serde_json::Value) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// An empty answer.
pub(crate) fn empty(status: u16) -> Response {
    StatusCode::from_u16(status)
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
        .into_response()
}

/// Who made a write: the `X-Mock-User` header (the demo names its
/// users), else the system's API user.
pub(crate) fn actor(headers: &HeaderMap, default: &str) -> String {
    headers
        .get("x-mock-user")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty())
        .unwrap_or(default)
        .to_string()
}

/// Now as Jira writes it: `2026-11-28T08:20:11.000+0000`.
pub(crate) fn jira_now() -> String {
    let t = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    format!("{}+0000", t.trim_end_matches('Z'))
}

/// Now as ServiceNow writes it: `2026-11-28 08:20:11` (UTC).
pub(crate) fn snow_now() -> String {
    let t = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    t.trim_end_matches('Z').replacen('T', " ", 1)
}

/// Milliseconds since the epoch (Jira's webhook `timestamp`).
pub(crate) fn epoch_millis() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Where a mock keeps its records across restarts (`None`: in memory).
#[derive(Debug, Clone, Default)]
pub(crate) struct StateFile(pub(crate) Option<PathBuf>);

impl StateFile {
    pub(crate) fn in_dir(dir: Option<&Path>, name: &str) -> Self {
        Self(dir.map(|d| d.join(name)))
    }

    /// The saved state, or the default when there is none yet.
    pub(crate) fn load<T: serde::de::DeserializeOwned + Default>(&self) -> anyhow::Result<T> {
        let Some(path) = &self.0 else {
            return Ok(T::default());
        };
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
            Err(e) => Err(anyhow::anyhow!("{}: {e}", path.display())),
        }
    }

    /// Saves `state` (write beside, then rename); a failure is printed,
    /// the mock keeps answering from memory.
    pub(crate) fn save<T: serde::Serialize>(&self, state: &T) {
        let Some(path) = &self.0 else { return };
        let tmp = path.with_extension("json.tmp");
        let result = serde_json::to_vec_pretty(state)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(&tmp, bytes))
            .and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = result {
            eprintln!("cannot save mock state to {}: {e}", path.display());
        }
    }
}
