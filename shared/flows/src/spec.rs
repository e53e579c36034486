//! The flows file as written: every table and field, before validation.
//! Field names are a stable interface (see docs/flows.md).

use serde::Deserialize;

use crate::secret::SecretRef;

/// The whole flows file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowsFile {
    /// Systems that send (or are polled for) events.
    #[serde(default)]
    pub sources: Vec<SourceSpec>,
    /// Systems that receive delivery requests.
    #[serde(default)]
    pub targets: Vec<TargetSpec>,
    /// Routing and mapping rules from a source to a target.
    #[serde(default)]
    pub flows: Vec<FlowSpec>,
    /// Webhooks the monitor notifies when a flow's health changes.
    #[serde(default)]
    pub alerts: Vec<AlertSpec>,
}

/// An `[[alerts]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSpec {
    /// Unique id.
    pub id: String,
    /// Body format: `slack` (an incoming-webhook `text` message) or
    /// `generic` (the change as JSON fields).
    pub kind: AlertKind,
    /// The webhook URL, by secret reference (it often embeds a token).
    pub url: SecretRef,
    /// Least time between two alerts about one flow; default `10m`.
    pub cooldown: Option<String>,
    /// Only alerts about this tenant's flows (a customer's channel);
    /// default every flow's.
    pub tenant: Option<String>,
}

/// An alert webhook's body format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertKind {
    /// `{"text": "..."}`, which Slack and compatible chat tools accept.
    Slack,
    /// The change's fields as one JSON object.
    Generic,
}

/// A `[[sources]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// Unique id; part of the ingest URL and of every event key.
    pub id: String,
    /// The tenant whose instance of a template this is (set by expansion).
    #[serde(default)]
    pub tenant: Option<String>,
    /// `webhook` (pushes to ingest) or `poll` (ingest polls it).
    pub kind: SourceKind,
    /// How ingest authenticates the source: a table, or `"none"`.
    pub auth: Option<SourceAuthSpec>,
    /// jq expression giving the entity's key from the payload (`.sys_id`).
    pub entity_key: String,
    /// jq expression giving the event type; default `"updated"`.
    pub event_type: Option<String>,
    /// jq expression identifying a record across retries (for example
    /// `.sys_id + "@" + .sys_updated_on`); the event id is derived from it.
    pub dedupe_key: Option<String>,
    /// Largest accepted request body in bytes; default 900,000 (a
    /// one-record body that size fits in one Kafka record).
    pub max_body_bytes: Option<usize>,
    /// Events accepted per period at most (`100/s`); default unlimited.
    pub rate_limit: Option<String>,
    /// Events accepted per period at most from all sources of this
    /// source's tenant together (the tenant's `quota`, set by expansion).
    pub tenant_quota: Option<String>,
    /// How to poll a `kind = "poll"` source.
    pub poll: Option<PollSpec>,
    /// Payload fields the monitor masks wherever it shows the event
    /// (plain jq paths: `.caller.email`, `.items[].card`).
    #[serde(default)]
    pub redact: Vec<String>,
}

/// The `poll` table of a polled source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollSpec {
    /// URL to GET; `{{cursor}}` is replaced by the URL-encoded cursor.
    pub url: String,
    /// Time between runs (`30s`); default 60s.
    pub interval: Option<String>,
    /// Cursor of the first run; default empty.
    pub initial_cursor: Option<String>,
    /// jq program yielding each record of a page (`.issues[]`).
    pub records: String,
    /// jq expression giving a record's cursor value (`.fields.updated`);
    /// records must come in ascending cursor order.
    pub cursor: String,
    /// jq expression giving the next page's URL from a page, or null on
    /// the last page.
    pub next: Option<String>,
    /// Request headers; values are secrets (`{ env = "NAME" }`).
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, SecretRef>,
}

/// Source kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// The source POSTs to ingest.
    Webhook,
    /// Ingest polls the source.
    Poll,
}

/// `auth` of a source: `"none"` or a table.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SourceAuthSpec {
    /// Only `"none"` is accepted: an explicit opt-out of authentication.
    Keyword(String),
    /// An HMAC signature scheme.
    Table(SourceAuthTable),
}

/// The table form of a source's `auth`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceAuthTable {
    /// HMAC-SHA256 over the raw body with this secret.
    pub hmac_sha256: Option<SecretRef>,
    /// `Authorization: Bearer <secret>` instead of a signature.
    pub bearer: Option<SecretRef>,
    /// How far the timestamp header may be from now (`5m`); default 5m.
    pub tolerance: Option<String>,
    /// Header carrying the signature; default `X-Intops-Signature`.
    pub header: Option<String>,
    /// `hex` (default) or `base64`.
    pub encoding: Option<SignatureEncoding>,
    /// Text before the signature in the header; default `sha256=` for the
    /// default header, none otherwise.
    pub prefix: Option<String>,
    /// Header whose value is prepended to the body before signing.
    pub timestamp_header: Option<String>,
}

/// How a signature is written in its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureEncoding {
    /// Lowercase or uppercase hex.
    Hex,
    /// Standard base64.
    Base64,
}

/// A `[[targets]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    /// Unique id; names the target's deliveries topic.
    pub id: String,
    /// The tenant whose instance of a template this is (set by expansion).
    #[serde(default)]
    pub tenant: Option<String>,
    /// Scheme, host and optional base path (`https://jira.example.com`).
    pub base_url: String,
    /// Credentials sent with every request.
    pub auth: Option<TargetAuthSpec>,
    /// Per-request timeout (`10s`); default 10s.
    pub timeout: Option<String>,
    /// Requests in flight at most; default 16.
    pub concurrency: Option<u32>,
    /// Requests per second at most (`50/s`, `600/m`); default unlimited.
    pub rate_limit: Option<String>,
    /// Retry policy.
    pub retry: Option<RetrySpec>,
    /// Statuses worth another try (codes, or classes like `"5xx"`);
    /// default 408, 425, 429 and 5xx. Other non-2xx statuses are permanent.
    pub retryable_statuses: Option<Vec<StatusSpec>>,
    /// Statuses meaning the target is misconfigured (credentials): pause
    /// the target instead of dead-lettering; default 401 only (add 403
    /// where the target answers 403 only for bad credentials).
    pub pause_statuses: Option<Vec<StatusSpec>>,
    /// While paused by such a status, retry the failed request this often
    /// (`30s`) and resume when it gets another answer; default `30s`.
    pub probe_interval: Option<String>,
    /// Longest time one record may keep its target paused (`15m`): then
    /// it is dead-lettered with its last answer and the target resumes
    /// with the next record; default `15m`.
    pub max_pause: Option<String>,
    /// Stop calling a failing target for a while.
    pub circuit_breaker: Option<CircuitBreakerSpec>,
    /// Request-body fields the monitor masks wherever it shows a request
    /// to this target (plain jq paths).
    #[serde(default)]
    pub redact: Vec<String>,
}

/// A target's `circuit_breaker` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CircuitBreakerSpec {
    /// Consecutive retryable failures (any lane) that open the circuit;
    /// default 10; 0 turns the breaker off.
    pub failures: Option<u32>,
    /// How long the circuit stays open before one probe; default `30s`.
    pub open_for: Option<String>,
}

/// One entry of `retryable_statuses`: a code (`503`) or a class (`"5xx"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum StatusSpec {
    /// One status code.
    Code(u16),
    /// A class, `"4xx"` or `"5xx"`.
    Class(String),
}

/// A target's `auth` table: one of its keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetAuthSpec {
    /// `Authorization: Bearer <secret>`.
    pub bearer: Option<SecretRef>,
    /// `Authorization: Basic` with a user name and a secret password.
    pub basic: Option<BasicAuthSpec>,
    /// A header whose value is a secret (`X-Api-Key`).
    pub header: Option<HeaderAuthSpec>,
    /// OAuth2 client credentials: a bearer token from a token endpoint.
    pub oauth2: Option<OAuth2Spec>,
}

/// `auth = { oauth2 = { token_url = "...", client_id = "...",
/// client_secret = { env = "SECRET" }, scope = "..." } }`: the client
/// credentials grant (RFC 6749 section 4.4).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth2Spec {
    /// The token endpoint (`https://login.example.com/oauth2/token`).
    pub token_url: String,
    /// Client id, by secret reference.
    pub client_id: SecretRef,
    /// Client secret, by secret reference.
    pub client_secret: SecretRef,
    /// Space-separated scopes; default none.
    pub scope: Option<String>,
}

/// `auth = { basic = { username = "svc", password = { env = "PW" } } }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuthSpec {
    /// User name (not secret).
    pub username: String,
    /// Password.
    pub password: SecretRef,
}

/// `auth = { header = { name = "X-Api-Key", value = { env = "KEY" } } }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderAuthSpec {
    /// Header name.
    pub name: String,
    /// Header value.
    pub value: SecretRef,
}

/// A target's `retry` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    /// Attempts in all, the first included; default 8.
    pub max_attempts: Option<u32>,
    /// First backoff; default `200ms`.
    pub initial_backoff: Option<String>,
    /// Largest backoff; default `30s`.
    pub max_backoff: Option<String>,
    /// Time after the first attempt past which no retry starts
    /// (`10m`); default unlimited (only `max_attempts` bounds retries).
    pub max_elapsed: Option<String>,
}

/// A `[[flows]]` table.
#[derive(Debug, Clone, serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowSpec {
    /// Unique id; part of every Idempotency-Key it produces.
    pub id: String,
    /// The tenant whose instance of a template this is (set by expansion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The source whose events the flow considers.
    pub source: String,
    /// jq condition; the flow routes the event when its first output is
    /// truthy. Default: every event of the source.
    pub when: Option<String>,
    /// The target to deliver to.
    pub target: String,
    /// HTTP method; default `POST`.
    pub method: Option<String>,
    /// Path appended to the target's base URL; `{{ jq }}` parts are filled
    /// from the payload (percent-encoded).
    pub path: String,
    /// Extra request headers; values may contain `{{ jq }}` parts.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// jq program building the body from the payload; default `.`.
    pub map: Option<String>,
    /// Links of a conversation: `{ capture = "<jq>" }` keeps the target's
    /// record id from a create's answer; `{ from = "<flow id>" }` writes
    /// back along that flow's links.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<LinkSpec>,
    /// The request sent instead once a link exists (`capture` flows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<UpdateSpec>,
    /// Service level objectives the monitor evaluates; not part of the
    /// flow's version (they change no request).
    #[serde(default, skip_serializing)]
    pub slo: Option<SloSpec>,
    /// Who answers for the flow (a team, a person, a channel); not part
    /// of the version.
    #[serde(default, skip_serializing)]
    pub owner: Option<String>,
    /// What the flow is for; not part of the version.
    #[serde(default, skip_serializing)]
    pub description: Option<String>,
    /// Free labels (`customer:acme`, `p1`); not part of the version.
    #[serde(default, skip_serializing)]
    pub tags: Vec<String>,
}

/// A flow's `link` table: `capture` or `from`.
#[derive(Debug, Clone, serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSpec {
    /// jq program finding the target's record id in a create's 2xx answer
    /// (input: the answer's JSON body; `$headers`: its headers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture: Option<String>,
    /// The flow whose links this flow follows backwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Links idle this long are removed (`365d`); default 365 days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire_after: Option<String>,
    /// Skip a request that repeats the link's last write (an echo);
    /// default true. `false` for flows that append (comments, work notes),
    /// where the same text twice is two changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub echo: Option<bool>,
}

/// A flow's `update` table: the request once a link exists.
#[derive(Debug, Clone, serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateSpec {
    /// HTTP method; default `PUT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Path with `{{ $link }}` where the record id goes.
    pub path: String,
    /// Extra headers; default the flow's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<std::collections::BTreeMap<String, String>>,
    /// jq program building the update's body; default the flow's `map`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map: Option<String>,
}

/// A flow's `slo` table: each objective is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloSpec {
    /// Share of final results that must be delivered (0 to 1).
    pub success_ratio: Option<f64>,
    /// 95th percentile of ingested → delivered latency (`30s`).
    pub latency_p95: Option<String>,
    /// Longest time without a delivery (`15m`).
    pub max_silence: Option<String>,
    /// Largest consumer lag of the flow's target (records).
    pub max_lag: Option<i64>,
    /// Recent time the ratio and latency objectives look at; default `5m`.
    pub window: Option<String>,
    /// Payload drift of the fields the flow reads (`slo.drift`).
    pub drift: Option<DriftSpec>,
}

/// A flow's `slo.drift` table: when a payload field the flow reads counts
/// as drifting. Every key is optional (defaults in `model::Drift`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriftSpec {
    /// `false` turns drift detection off for the flow.
    pub enabled: Option<bool>,
    /// The recent time compared with what came before (`10m`).
    pub window: Option<String>,
    /// Events needed, before and within the window, to judge (20).
    pub min_events: Option<u64>,
    /// Share of earlier events that had the field (with its usual type)
    /// for it to count as expected (0.9).
    pub baseline: Option<f64>,
    /// Share of recent events missing it (or with another type) that
    /// makes the flow degraded (0.2).
    pub share: Option<f64>,
}
