//! Jira-shaped and ServiceNow-shaped stand-ins for the conversation tests
//! and the local demo (`intops-mock-target`). Each keeps its records, logs
//! every request, and sends a signed webhook for every write it receives —
//! intops's own writes included, as real systems do — plus for every "real
//! change" a test makes as a user of that system would.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use intops_tests::itsm::{JiraMock, ServiceNowMock};
//! let jira = JiraMock::start().await?;
//! let snow = ServiceNowMock::start().await?;
//! // flows point both targets at jira.base_url() / snow.base_url(); once ingest runs:
//! jira.send_webhooks_to("http://127.0.0.1:8080/v1/sources/jira/events", "secret");
//! snow.send_webhooks_to("http://127.0.0.1:8080/v1/sources/servicenow/events", "secret");
//! let incident = snow.create_incident(serde_json::json!({"priority": "1", "short_description": "Mail down"}))?;
//! // ... wait until jira.issues() has it, then comment as a Jira user:
//! jira.add_comment("OPS-1", "Restarted the transport service")?;
//! jira.wait_webhooks(std::time::Duration::from_secs(10)).await?;
//! let notes = snow.incident(&incident.sys_id).map(|i| i.work_notes);
//! # Ok(()) }
//! ```

mod jira;
mod recorder;
mod servicenow;
mod webhook;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use serde_json::Value;
use tokio_util::sync::{CancellationToken, DropGuard};

pub use jira::{Comment, Issue};
pub use recorder::Hold;
pub use servicenow::{Incident, JournalEntry};
pub use webhook::{SentWebhook, WebhookTarget};

use crate::target::Captured;
use jira::Jira;
use recorder::StateFile;
use servicenow::ServiceNow;

/// The user a test's direct Jira changes are made as.
pub const JIRA_USER: &str = "Mia Krystof";
/// The user a test's direct ServiceNow changes are made as.
pub const SNOW_USER: &str = "beth.anglin";

/// How the mocks run.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Print every request and webhook (the demo binary).
    pub log: bool,
    /// Keep records in `jira.json` and `servicenow.json` here across
    /// restarts (`None`: in memory only).
    pub state_dir: Option<PathBuf>,
}

struct Mounted {
    jira: Option<Arc<Jira>>,
    servicenow: Option<Arc<ServiceNow>>,
}

async fn dispatch(
    State(m): State<Arc<Mounted>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path();
    if path.starts_with("/rest/api/")
        && let Some(jira) = &m.jira
    {
        return jira.handle(method, uri, headers, body).await;
    }
    if path.starts_with("/api/now/")
        && let Some(snow) = &m.servicenow
    {
        return snow.handle(method, uri, headers, body).await;
    }
    recorder::json(
        404,
        &serde_json::json!({"message": "no such API on this mock"}),
    )
}

async fn bind(addr: SocketAddr) -> anyhow::Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

fn serve(listener: tokio::net::TcpListener, mounted: Mounted) -> Arc<DropGuard> {
    let router = Router::new()
        .fallback(dispatch)
        .with_state(Arc::new(mounted));
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async move { stopped.cancelled().await })
            .await;
    });
    Arc::new(stop.drop_guard())
}

async fn wait(webhooks: &webhook::Webhooks, within: Duration) -> anyhow::Result<()> {
    if webhooks.idle(within).await {
        Ok(())
    } else {
        anyhow::bail!("webhooks still queued after {within:?}")
    }
}

/// A running Jira-shaped system; stops when dropped (with every clone).
#[derive(Debug, Clone)]
pub struct JiraMock {
    inner: Arc<Jira>,
    addr: SocketAddr,
    _server: Arc<DropGuard>,
}

impl JiraMock {
    /// Starts on an ephemeral loopback port, in memory, quiet.
    pub async fn start() -> anyhow::Result<Self> {
        let (listener, addr) = bind("127.0.0.1:0".parse()?).await?;
        let inner = Arc::new(Jira::new(
            format!("http://{addr}"),
            false,
            StateFile::default(),
        )?);
        let server = serve(
            listener,
            Mounted {
                jira: Some(inner.clone()),
                servicenow: None,
            },
        );
        Ok(Self {
            inner,
            addr,
            _server: server,
        })
    }

    /// The base URL to put in a flows file.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sends later webhooks to `url` (ingest's `/v1/sources/<id>/events`),
    /// signed as Jira Cloud signs them: `X-Hub-Signature: sha256=<hex>`.
    pub fn send_webhooks_to(&self, url: &str, secret: &str) {
        self.send_webhooks(Some(WebhookTarget {
            url: url.into(),
            secret: secret.into(),
            header: "X-Hub-Signature".into(),
        }));
    }

    /// Sends later webhooks to `target` (`None`: stops sending them).
    pub fn send_webhooks(&self, target: Option<WebhookTarget>) {
        self.inner.webhooks.point_at(target);
    }

    /// Whether a repeated `Idempotency-Key` gets the first answer again
    /// instead of a new issue or comment. Real Jira does not: off by default.
    pub fn honour_idempotency_key(&self, on: bool) {
        self.inner.honour_idempotency.store(on, Ordering::SeqCst);
    }

    /// Holds the answer to the next create: the issue is made and its
    /// webhook queued, then the answer waits for [`Hold::release`].
    pub fn hold_next_create(&self) -> Hold {
        self.inner.recorder.hold_next()
    }

    /// Answers the next `n` writes with `status` without applying them.
    pub fn fail_next(&self, n: u32, status: u16) {
        self.inner.recorder.fail_next(n, status);
    }

    /// An issue by key or id.
    pub fn issue(&self, key: &str) -> Option<Issue> {
        self.inner.issue(key)
    }

    /// Every issue, in creation order.
    pub fn issues(&self) -> Vec<Issue> {
        self.inner.issues()
    }

    /// Every HTTP request received, with the status answered.
    pub fn requests(&self) -> Vec<Captured> {
        self.inner.recorder.requests()
    }

    /// A real change: a user creates an issue with these `fields`.
    pub fn create_issue(&self, fields: Value) -> anyhow::Result<Issue> {
        let (_, answer, _) = self
            .inner
            .create(&serde_json::json!({ "fields": fields }), JIRA_USER, None)
            .map_err(|r| anyhow::anyhow!("{r}"))?;
        let key = answer["key"].as_str().unwrap_or_default();
        self.issue(key)
            .ok_or_else(|| anyhow::anyhow!("issue {key} vanished"))
    }

    /// A real change: a user edits `fields` of issue `key`.
    pub fn edit_issue(&self, key: &str, fields: Value) -> anyhow::Result<()> {
        self.inner
            .edit(key, &serde_json::json!({ "fields": fields }), JIRA_USER)
            .map_err(|r| anyhow::anyhow!("{r}"))
    }

    /// A real change: a user comments `text` on issue `key`.
    pub fn add_comment(&self, key: &str, text: &str) -> anyhow::Result<Comment> {
        let (_, _, comment) = self
            .inner
            .comment(key, &serde_json::json!({ "body": text }), JIRA_USER, None)
            .map_err(|r| anyhow::anyhow!("{r}"))?;
        Ok(comment)
    }

    /// Every webhook sent (or given up) so far, in order.
    pub fn webhooks(&self) -> Vec<SentWebhook> {
        self.inner.webhooks.sent()
    }

    /// Waits until every queued webhook was sent.
    pub async fn wait_webhooks(&self, within: Duration) -> anyhow::Result<()> {
        wait(&self.inner.webhooks, within).await
    }
}

/// A running ServiceNow-shaped system; stops when dropped (with every clone).
#[derive(Debug, Clone)]
pub struct ServiceNowMock {
    inner: Arc<ServiceNow>,
    addr: SocketAddr,
    _server: Arc<DropGuard>,
}

impl ServiceNowMock {
    /// Starts on an ephemeral loopback port, in memory, quiet.
    pub async fn start() -> anyhow::Result<Self> {
        let (listener, addr) = bind("127.0.0.1:0".parse()?).await?;
        let inner = Arc::new(ServiceNow::new(false, StateFile::default())?);
        let server = serve(
            listener,
            Mounted {
                jira: None,
                servicenow: Some(inner.clone()),
            },
        );
        Ok(Self {
            inner,
            addr,
            _server: server,
        })
    }

    /// The base URL to put in a flows file.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sends later webhooks to `url` (ingest's `/v1/sources/<id>/events`),
    /// signed `X-Intops-Signature: sha256=<hex>` (a business rule's REST
    /// message computes it).
    pub fn send_webhooks_to(&self, url: &str, secret: &str) {
        self.send_webhooks(Some(WebhookTarget {
            url: url.into(),
            secret: secret.into(),
            header: "X-Intops-Signature".into(),
        }));
    }

    /// Sends later webhooks to `target` (`None`: stops sending them).
    pub fn send_webhooks(&self, target: Option<WebhookTarget>) {
        self.inner.webhooks.point_at(target);
    }

    /// Holds the answer to the next write (applied, webhook queued) until
    /// [`Hold::release`].
    pub fn hold_next_write(&self) -> Hold {
        self.inner.recorder.hold_next()
    }

    /// Answers the next `n` writes with `status` without applying them.
    pub fn fail_next(&self, n: u32, status: u16) {
        self.inner.recorder.fail_next(n, status);
    }

    /// An incident by sys_id.
    pub fn incident(&self, sys_id: &str) -> Option<Incident> {
        self.inner.incident(sys_id)
    }

    /// Every incident, in creation order.
    pub fn incidents(&self) -> Vec<Incident> {
        self.inner.incidents()
    }

    /// Every HTTP request received, with the status answered.
    pub fn requests(&self) -> Vec<Captured> {
        self.inner.recorder.requests()
    }

    /// A real change: a user opens an incident with these fields
    /// (`sys_id` and `number` are assigned unless given).
    pub fn create_incident(&self, fields: Value) -> anyhow::Result<Incident> {
        self.inner
            .create(&fields, SNOW_USER)
            .map_err(|r| anyhow::anyhow!("{r}"))
    }

    /// A real change: a user updates incident `sys_id` (fields merged;
    /// `work_notes` and `comments` append to their journals).
    pub fn update_incident(&self, sys_id: &str, fields: Value) -> anyhow::Result<Incident> {
        self.inner
            .update(sys_id, &fields, SNOW_USER)
            .map_err(|r| anyhow::anyhow!("{r}"))
    }

    /// Every webhook sent (or given up) so far, in order.
    pub fn webhooks(&self) -> Vec<SentWebhook> {
        self.inner.webhooks.sent()
    }

    /// Waits until every queued webhook was sent.
    pub async fn wait_webhooks(&self, within: Duration) -> anyhow::Result<()> {
        wait(&self.inner.webhooks, within).await
    }
}

/// Both systems on one address (the demo's `intops-mock-target`): Jira
/// under `/rest/api/`, ServiceNow under `/api/now/`.
#[derive(Debug, Clone)]
pub struct ItsmMocks {
    /// The Jira-shaped system.
    pub jira: JiraMock,
    /// The ServiceNow-shaped system.
    pub servicenow: ServiceNowMock,
}

impl ItsmMocks {
    /// Starts both on `addr`.
    pub async fn start_on(addr: SocketAddr, options: &Options) -> anyhow::Result<Self> {
        let (listener, addr) = bind(addr).await?;
        let dir = options.state_dir.as_deref();
        if let Some(dir) = dir {
            std::fs::create_dir_all(dir)?;
        }
        let jira = Arc::new(Jira::new(
            format!("http://{addr}"),
            options.log,
            StateFile::in_dir(dir, "jira.json"),
        )?);
        let servicenow = Arc::new(ServiceNow::new(
            options.log,
            StateFile::in_dir(dir, "servicenow.json"),
        )?);
        let server = serve(
            listener,
            Mounted {
                jira: Some(jira.clone()),
                servicenow: Some(servicenow.clone()),
            },
        );
        Ok(Self {
            jira: JiraMock {
                inner: jira,
                addr,
                _server: server.clone(),
            },
            servicenow: ServiceNowMock {
                inner: servicenow,
                addr,
                _server: server,
            },
        })
    }
}
