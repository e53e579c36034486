//! The validated flows file that services use.

use std::collections::BTreeMap;
use std::time::Duration;

use intops_jq::JqProgram;

use crate::redact::FieldPath;
use crate::secret::SecretRef;
pub use crate::spec::{SignatureEncoding, SourceKind};
use crate::template::Template;

/// The current flows, shared by a service's tasks and replaced on reload
/// ([`intops_runtime::reload`]).
pub type SharedFlows = std::sync::Arc<arc_swap::ArcSwap<Flows>>;

/// A validated flows file.
#[derive(Debug)]
pub struct Flows {
    /// Sources by id.
    pub sources: BTreeMap<String, Source>,
    /// Targets by id.
    pub targets: BTreeMap<String, Target>,
    /// Flows, in file order.
    pub flows: Vec<Flow>,
    /// Alert webhooks of the monitor.
    pub alerts: Vec<Alert>,
    /// The payload fields each source's flows read, for sources whose
    /// flows read nothing else (see `route.rs`).
    pub(crate) fields_read: BTreeMap<String, Vec<String>>,
    /// Each source's and target's table as written, canonical TOML, by
    /// `sources.<id>` or `targets.<id>`: a reload compares them to find
    /// what changed ([`Flows::changed`]).
    pub(crate) tables: BTreeMap<String, String>,
}

impl Flows {
    /// Whether the `[[sources]]` (`kind` `"sources"`) or `[[targets]]`
    /// table of `id` differs between `self` and `other` (or exists in one
    /// only): any field, secret references included.
    pub fn changed(&self, other: &Flows, kind: &str, id: &str) -> bool {
        let key = format!("{kind}.{id}");
        self.tables.get(&key) != other.tables.get(&key)
    }
}

/// A validated `[[alerts]]` table.
#[derive(Debug, Clone)]
pub struct Alert {
    /// Unique id.
    pub id: String,
    /// Body format.
    pub kind: crate::spec::AlertKind,
    /// Where the URL is kept.
    pub url: crate::SecretRef,
    /// Least time between two alerts about one flow.
    pub cooldown: std::time::Duration,
    /// Only alerts about this tenant's flows (`None`: every flow's).
    pub tenant: Option<String>,
}

impl Flows {
    /// The flows that consider events of `source_id`, in file order.
    pub fn flows_for_source<'a>(&'a self, source_id: &'a str) -> impl Iterator<Item = &'a Flow> {
        self.flows.iter().filter(move |f| f.source == source_id)
    }
}

/// A validated source.
#[derive(Debug)]
pub struct Source {
    /// Unique id.
    pub id: String,
    /// The tenant whose instance of a template this is.
    pub tenant: Option<String>,
    /// Webhook or poll.
    pub kind: SourceKind,
    /// How ingest authenticates it.
    pub auth: SourceAuth,
    /// Gives the entity key.
    pub entity_key: JqProgram,
    /// Gives the event type; `None` means `"updated"`.
    pub event_type: Option<JqProgram>,
    /// Gives the dedupe key; `None` means random (UUIDv7) event ids.
    pub dedupe_key: Option<JqProgram>,
    /// Largest accepted body in bytes.
    pub max_body_bytes: usize,
    /// Events accepted per period at most.
    pub rate_limit: Option<RateLimit>,
    /// Events accepted per period at most from all of its tenant's
    /// sources together.
    pub tenant_quota: Option<RateLimit>,
    /// How to poll it, for `kind = "poll"`.
    pub poll: Option<Poll>,
    /// Payload fields masked wherever the monitor shows its events.
    pub redact: Vec<FieldPath>,
}

/// A validated `poll` table.
#[derive(Debug)]
pub struct Poll {
    /// URL with an optional `{{cursor}}`.
    pub url: String,
    /// Time between runs.
    pub interval: Duration,
    /// Cursor of the first run.
    pub initial_cursor: String,
    /// Yields each record of a page.
    pub records: JqProgram,
    /// Gives a record's cursor value.
    pub cursor: JqProgram,
    /// Gives the next page's URL, or null.
    pub next: Option<JqProgram>,
    /// Request headers by secret reference.
    pub headers: BTreeMap<String, SecretRef>,
}

/// How ingest authenticates a source.
#[derive(Debug, Clone)]
pub enum SourceAuth {
    /// Explicitly unauthenticated (`auth = "none"`).
    None,
    /// HMAC-SHA256 signature of the body.
    Hmac(HmacAuth),
    /// `Authorization: Bearer <secret>`.
    Bearer(SecretRef),
}

/// An HMAC-SHA256 signature scheme.
#[derive(Debug, Clone)]
pub struct HmacAuth {
    /// Where the shared secret lives.
    pub secret: SecretRef,
    /// Header carrying the signature.
    pub header: String,
    /// Hex or base64.
    pub encoding: SignatureEncoding,
    /// Text before the signature (`sha256=`), possibly empty.
    pub prefix: String,
    /// Header whose value is prepended to the body before signing.
    pub timestamp_header: Option<String>,
    /// How far that timestamp may be from now.
    pub tolerance: Duration,
}

/// A validated target.
#[derive(Debug)]
pub struct Target {
    /// Unique id.
    pub id: String,
    /// Base URL, without a trailing slash.
    pub base_url: String,
    /// Credentials.
    pub auth: TargetAuth,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Requests in flight at most.
    pub concurrency: u32,
    /// Requests per period at most.
    pub rate_limit: Option<RateLimit>,
    /// Retry policy.
    pub retry: Retry,
    /// Statuses worth another try; other non-2xx statuses are permanent.
    pub retryable_statuses: StatusSet,
    /// Statuses that pause the target (misconfiguration, not bad data).
    pub pause_statuses: StatusSet,
    /// How often a paused target's failed request is tried again.
    pub probe_interval: Duration,
    /// Longest time one record may keep its target paused; then it is
    /// dead-lettered and the target resumes.
    pub max_pause: Duration,
    /// When to stop calling a failing target for a while.
    pub circuit_breaker: CircuitBreaker,
    /// Request-body fields masked wherever the monitor shows a request.
    pub redact: Vec<FieldPath>,
}

/// Consecutive failures that open a target's circuit, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitBreaker {
    /// Consecutive retryable failures that open it; 0: never.
    pub failures: u32,
    /// Open time before a single probe.
    pub open_for: Duration,
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        Self {
            failures: 10,
            open_for: Duration::from_secs(30),
        }
    }
}

/// Credentials sent to a target.
#[derive(Debug, Clone)]
pub enum TargetAuth {
    /// None.
    None,
    /// `Authorization: Bearer <secret>`.
    Bearer(SecretRef),
    /// `Authorization: Basic` with this user and secret password.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: SecretRef,
    },
    /// A header carrying a secret.
    Header {
        /// Header name.
        name: String,
        /// Header value.
        value: SecretRef,
    },
    /// `Authorization: Bearer <token>` with a token from an OAuth2 token
    /// endpoint (client credentials).
    OAuth2(OAuth2),
}

/// OAuth2 client credentials.
#[derive(Debug, Clone)]
pub struct OAuth2 {
    /// The token endpoint.
    pub token_url: String,
    /// Client id.
    pub client_id: SecretRef,
    /// Client secret.
    pub client_secret: SecretRef,
    /// Scopes, space separated.
    pub scope: Option<String>,
}

/// A set of HTTP statuses, as inclusive ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusSet(pub Vec<(u16, u16)>);

impl StatusSet {
    /// Whether `status` is in the set.
    pub fn contains(&self, status: u16) -> bool {
        self.0.iter().any(|(lo, hi)| (*lo..=*hi).contains(&status))
    }
}

impl Default for StatusSet {
    /// 408, 425, 429 and 5xx: the statuses worth another try by default.
    fn default() -> Self {
        Self(vec![(408, 408), (425, 425), (429, 429), (500, 599)])
    }
}

/// `count` requests per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed per period.
    pub count: u32,
    /// The period.
    pub per: Duration,
}

/// A target's retry policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// First backoff.
    pub initial_backoff: Duration,
    /// Largest backoff.
    pub max_backoff: Duration,
    /// No retry starts this long after the first attempt.
    pub max_elapsed: Option<Duration>,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
            max_elapsed: None,
        }
    }
}

/// A validated flow.
#[derive(Debug)]
pub struct Flow {
    /// Unique id.
    pub id: String,
    /// Content hash of the flow's definition (12 hex digits).
    pub version: String,
    /// The definition the hash is of, as a TOML `[[flows]]` table.
    pub definition: String,
    /// The tenant whose instance of a template this is.
    pub tenant: Option<String>,
    /// Who answers for it.
    pub owner: Option<String>,
    /// What it is for.
    pub description: Option<String>,
    /// Free labels.
    pub tags: Vec<String>,
    /// Source id.
    pub source: String,
    /// Condition; `None` routes every event of the source.
    pub when: Option<JqProgram>,
    /// Target id.
    pub target: String,
    /// HTTP method, uppercase.
    pub method: String,
    /// Path on the target, possibly templated.
    pub path: Template,
    /// Extra headers, possibly templated.
    pub headers: Vec<(String, Template)>,
    /// Builds the body.
    pub map: JqProgram,
    /// How the flow uses links; `None` for flows without.
    pub link: Option<FlowLink>,
    /// Objectives the monitor evaluates (defaults when the file has none).
    pub slo: Slo,
}

/// A flow's `link`.
#[derive(Debug)]
pub enum FlowLink {
    /// Keeps the target's record id from a create's answer; later events
    /// of the entity use `update`.
    Capture {
        /// Finds the record id in the answer (input: the body; `$headers`).
        capture: JqProgram,
        /// The request once a link exists (boxed: a flow without a link
        /// stays small).
        update: Box<Update>,
        /// Links idle this long are removed.
        expire_after: Duration,
        /// Whether a request repeating the link's last write is skipped.
        skip_echoes: bool,
    },
    /// Writes back along another flow's links.
    From {
        /// The capture flow followed.
        flow: String,
        /// Links idle this long are removed.
        expire_after: Duration,
        /// Whether a request repeating the link's last write is skipped.
        skip_echoes: bool,
    },
}

/// A capture flow's `update`.
#[derive(Debug)]
pub struct Update {
    /// HTTP method, uppercase.
    pub method: String,
    /// Path, with `{{ $link }}`.
    pub path: Template,
    /// Headers; `None`: the flow's.
    pub headers: Option<Vec<(String, Template)>>,
    /// Body; `None`: the flow's `map`.
    pub map: Option<JqProgram>,
}

/// The jq variable (without `$`) holding the link in a flow's programs
/// and templates (see `route/link.rs`).
pub(crate) const LINK_VAR: &str = "link";

/// Default `expire_after` of links: 365 days.
pub const DEFAULT_LINK_EXPIRY: Duration = Duration::from_secs(365 * 24 * 3600);

/// A flow's service level objectives; `None` means not checked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slo {
    /// Share of final results that must be delivered.
    pub success_ratio: Option<f64>,
    /// Largest 95th percentile of ingested → delivered latency.
    pub latency_p95: Option<std::time::Duration>,
    /// Longest time without a delivery.
    pub max_silence: Option<std::time::Duration>,
    /// Largest consumer lag of the flow's target.
    pub max_lag: Option<i64>,
    /// Recent time the ratio and latency objectives look at.
    pub window: std::time::Duration,
    /// When a payload field the flow reads counts as drifting.
    pub drift: Drift,
}

impl Default for Slo {
    fn default() -> Self {
        Self {
            success_ratio: None,
            latency_p95: None,
            max_silence: None,
            max_lag: None,
            window: std::time::Duration::from_secs(300),
            drift: Drift::default(),
        }
    }
}

/// Payload drift (`slo.drift`): a field the flow reads that was present
/// (with one JSON type) in at least `baseline` of the events before the
/// last `window`, and is missing (or of another type) in at least `share`
/// of the events within it, each side with at least `min_events` events,
/// makes the flow degraded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Drift {
    /// Whether drift is checked.
    pub enabled: bool,
    /// The recent time.
    pub window: std::time::Duration,
    /// Events needed on each side.
    pub min_events: u64,
    /// Share of earlier events with the field as usual.
    pub baseline: f64,
    /// Share of recent events without it that degrades the flow.
    pub share: f64,
}

impl Default for Drift {
    fn default() -> Self {
        Self {
            enabled: true,
            window: std::time::Duration::from_secs(600),
            min_events: 20,
            baseline: 0.9,
            share: 0.2,
        }
    }
}
