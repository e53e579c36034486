//! OAuth2 client credentials (RFC 6749 section 4.4): a bearer token from
//! the target's token endpoint, cached, and refreshed before it expires.
//!
//! - A token is refreshed once less than `max(10% of its lifetime, 30 s)`
//!   (at most half its lifetime) remains; a token without `expires_in` is
//!   kept until the target rejects it with a 401.
//! - One token request at a time per target: requests that need a token
//!   while one is being fetched wait for it and share its result, also a
//!   failure (no stampede on the token endpoint).
//! - When a refresh fails while the cached token is still valid, that token
//!   is used on, and the endpoint asked again after [`REFRESH_COOLDOWN`].
//! - The client authenticates with HTTP Basic (RFC 6749 section 2.3.1,
//!   `client_secret_basic`) first; an endpoint that rejects that with a 400
//!   or 401 is asked once more with the credentials in the form body
//!   (`client_secret_post`), and the style that worked is kept for the
//!   process's lifetime (golang.org/x/oauth2's `AuthStyleAutoDetect`).

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use intops_runtime::Secret;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use url::Url;
use url::form_urlencoded;

#[cfg(test)]
mod tests;

/// Least time before expiry a token is refreshed.
const MIN_MARGIN: Duration = Duration::from_secs(30);

/// After a refresh failed while the cached token is still valid, how long
/// that token is used before the endpoint is asked again.
const REFRESH_COOLDOWN: Duration = Duration::from_secs(5);

/// Tokens remembered (the current one and those before it) for redaction:
/// an answer to a request that carried an older token may echo it.
const REMEMBERED_TOKENS: usize = 4;

/// Longest token endpoint answer read.
const ANSWER_BYTES: usize = 64 * 1024;

/// How much of a token endpoint's error answer an error keeps.
const EXCERPT_BYTES: usize = 512;

/// How much of the endpoint's `error_description` a reason keeps.
const DESCRIPTION_CHARS: usize = 200;

/// The time source (a test moves it by hand).
pub(crate) type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthStyle {
    /// `Authorization: Basic` with the form-encoded id and secret.
    Basic,
    /// `client_id` and `client_secret` in the form body.
    Post,
}

impl AuthStyle {
    fn as_str(self) -> &'static str {
        match self {
            AuthStyle::Basic => "basic",
            AuthStyle::Post => "post",
        }
    }
}

/// A target's OAuth2 client settings, secrets resolved.
pub(crate) struct Settings {
    /// The target's id (logs and metrics).
    pub(crate) target: String,
    /// The token endpoint.
    pub(crate) token_url: Url,
    /// Client id.
    pub(crate) client_id: Secret,
    /// Client secret.
    pub(crate) client_secret: Secret,
    /// Space-separated scopes, sent when given.
    pub(crate) scope: Option<String>,
    /// A fixed style; `None` detects it (Basic first).
    pub(crate) style: Option<AuthStyle>,
}

/// An access token and when to refresh it.
#[derive(Debug)]
pub(crate) struct Token {
    value: Secret,
    /// Which token this is: the n-th issued to this client.
    serial: u64,
    /// From then on a request refreshes it first; `None`: never.
    refresh_at: Option<Instant>,
    /// From then on it is not sent; `None`: until a 401.
    expires_at: Option<Instant>,
}

impl Token {
    /// The value for `Authorization: Bearer`.
    pub(crate) fn value(&self) -> &str {
        self.value.expose()
    }

    fn fresh(&self, now: Instant) -> bool {
        self.refresh_at.is_none_or(|at| now < at)
    }

    fn usable(&self, now: Instant) -> bool {
        self.expires_at.is_none_or(|at| now < at)
    }
}

/// Why no token came. Texts are redacted: never a secret or a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenError {
    /// The endpoint refused the client (any 4xx but 408, 425 and 429, a
    /// 3xx, or a 2xx without a usable token): the credentials or the
    /// settings are wrong, another try fails the same way.
    pub(crate) rejected: bool,
    /// The token endpoint's status, if it answered.
    pub(crate) status: Option<u16>,
    /// Why, naming the token endpoint.
    pub(crate) reason: String,
    /// The endpoint's Retry-After.
    pub(crate) retry_after: Option<Duration>,
    /// Redacted start of the endpoint's answer.
    pub(crate) excerpt: Option<String>,
}

/// What the token mutex guards: the last token request's result, shared
/// with the requests that waited for it.
#[derive(Default)]
struct Fetch {
    last: Option<Result<Arc<Token>, TokenError>>,
    /// While a refresh failed and the cached token is valid: no new try
    /// before this.
    cooldown_until: Option<Instant>,
}

/// A target's token source: caches one token and fetches a new one, one
/// request at a time.
pub(crate) struct TokenSource {
    settings: Settings,
    http: reqwest::Client,
    clock: Clock,
    /// The token requests use; read without waiting.
    current: RwLock<Option<Arc<Token>>>,
    /// Tokens issued lately, for redaction.
    issued: Mutex<VecDeque<Secret>>,
    /// Token requests finished (stored under `fetch`): a waiter that saw
    /// n before it queued and finds more takes that result.
    finished: AtomicU64,
    /// Tokens issued.
    serials: AtomicU64,
    /// Held while a token is requested.
    fetch: tokio::sync::Mutex<Fetch>,
    /// The detected style: 0 not yet, 1 basic, 2 post.
    detected: AtomicU8,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSource")
            .field("target", &self.settings.target)
            .field("token_url", &self.settings.token_url.as_str())
            .field("style", &self.settings.style)
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    /// A source with no token yet, requesting tokens through `http`.
    pub(crate) fn new(settings: Settings, http: reqwest::Client) -> Self {
        Self::with_clock(settings, http, Arc::new(Instant::now))
    }

    /// As [`TokenSource::new`], reading the time from `clock`.
    pub(crate) fn with_clock(settings: Settings, http: reqwest::Client, clock: Clock) -> Self {
        Self {
            settings,
            http,
            clock,
            current: RwLock::new(None),
            issued: Mutex::new(VecDeque::new()),
            finished: AtomicU64::new(0),
            serials: AtomicU64::new(0),
            fetch: tokio::sync::Mutex::new(Fetch::default()),
            detected: AtomicU8::new(0),
        }
    }

    /// A token for the next request: the cached one while fresh, else a
    /// new one (or the result of the request already under way).
    pub(crate) async fn token(&self) -> Result<Arc<Token>, TokenError> {
        // Read before the cache: a token stored after this shows up as a
        // changed count once queued.
        let seen = self.finished.load(Ordering::SeqCst);
        let cached = self.cached();
        if let Some(t) = &cached
            && t.fresh((self.clock)())
        {
            return Ok(t.clone());
        }
        let mut fetch = self.fetch.lock().await;
        if self.finished.load(Ordering::SeqCst) != seen
            && let Some(last) = &fetch.last
        {
            return last.clone();
        }
        let now = (self.clock)();
        let valid = cached.filter(|t| t.usable(now));
        if let Some(t) = &valid
            && fetch.cooldown_until.is_some_and(|until| now < until)
        {
            return Ok(t.clone());
        }
        let result = match (self.request().await, valid) {
            (Ok(token), _) => {
                fetch.cooldown_until = None;
                Ok(token)
            }
            (Err(e), Some(old)) => {
                tracing::warn!(target = %self.settings.target, error = %e.reason, "oauth2 token refresh failed, using the current token until it expires");
                fetch.cooldown_until = Some(now + REFRESH_COOLDOWN);
                Ok(old)
            }
            (Err(e), None) => Err(e),
        };
        self.finish(&mut fetch, result)
    }

    /// A new token after the target answered 401 to `rejected`: one token
    /// request, shared by every request that was rejected with the same
    /// token.
    pub(crate) async fn refresh_rejected(
        &self,
        rejected: &Token,
    ) -> Result<Arc<Token>, TokenError> {
        let seen = self.finished.load(Ordering::SeqCst);
        if self.cached().is_some_and(|t| t.serial != rejected.serial) {
            // Already replaced.
            return self.token().await;
        }
        let mut fetch = self.fetch.lock().await;
        if self.finished.load(Ordering::SeqCst) != seen
            && let Some(last) = &fetch.last
            && !matches!(last, Ok(t) if t.serial == rejected.serial)
        {
            return last.clone();
        }
        fetch.cooldown_until = None;
        let result = self.request().await;
        if result.is_err() {
            // The target refused it: no use sending it again.
            *self.current.write().unwrap_or_else(PoisonError::into_inner) = None;
        }
        self.finish(&mut fetch, result)
    }

    /// `text` with the client secret (in every form it is sent in) and
    /// every recent token replaced by `***`.
    pub(crate) fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        let mut hide = |value: &str| {
            if !value.is_empty() {
                out = out.replace(value, "***");
            }
        };
        let (id, secret) = (
            self.settings.client_id.expose(),
            self.settings.client_secret.expose(),
        );
        let b64 = base64::engine::general_purpose::STANDARD;
        hide(&b64.encode(format!("{}:{}", form(id), form(secret))));
        hide(&b64.encode(format!("{id}:{secret}")));
        hide(&form(secret));
        hide(secret);
        let issued = self.issued.lock().unwrap_or_else(PoisonError::into_inner);
        for token in issued.iter() {
            hide(token.expose());
        }
        out
    }

    fn cached(&self) -> Option<Arc<Token>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Records a token request's result for the requests that waited.
    fn finish(
        &self,
        fetch: &mut Fetch,
        result: Result<Arc<Token>, TokenError>,
    ) -> Result<Arc<Token>, TokenError> {
        if let Ok(token) = &result {
            let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
            if current.as_ref().is_none_or(|c| c.serial != token.serial) {
                *current = Some(token.clone());
            }
        }
        fetch.last = Some(result.clone());
        self.finished.fetch_add(1, Ordering::SeqCst);
        result
    }

    /// Asks the token endpoint for a token, detecting the style on the
    /// first success unless it is fixed.
    async fn request(&self) -> Result<Arc<Token>, TokenError> {
        let fixed = self
            .settings
            .style
            .or(match self.detected.load(Ordering::SeqCst) {
                1 => Some(AuthStyle::Basic),
                2 => Some(AuthStyle::Post),
                _ => None,
            });
        let sent = (self.clock)();
        let mut style = fixed.unwrap_or(AuthStyle::Basic);
        let mut result = self.exchange(style).await;
        if fixed.is_none()
            && let Err(e) = &result
            && matches!(e.status, Some(400 | 401))
        {
            style = AuthStyle::Post;
            let basic = e.status.unwrap_or_default();
            result = self.exchange(style).await.map_err(|post| TokenError {
                reason: format!(
                    "{} (credentials in the form body; in a Basic header it answered {basic})",
                    post.reason
                ),
                ..post
            });
        }
        let answer = result?;
        if fixed.is_none() {
            let code = if style == AuthStyle::Basic { 1 } else { 2 };
            self.detected.store(code, Ordering::SeqCst);
        }
        let lifetime = answer.expires_in;
        let token = Arc::new(Token {
            value: answer.value,
            serial: self.serials.fetch_add(1, Ordering::SeqCst) + 1,
            refresh_at: lifetime.and_then(|l| sent.checked_add(l - refresh_margin(l))),
            expires_at: lifetime.and_then(|l| sent.checked_add(l)),
        });
        let mut issued = self.issued.lock().unwrap_or_else(PoisonError::into_inner);
        issued.push_back(token.value.clone());
        if issued.len() > REMEMBERED_TOKENS {
            issued.pop_front();
        }
        tracing::debug!(target = %self.settings.target, style = style.as_str(), expires_in_s = lifetime.map(|l| l.as_secs()), "oauth2 token issued");
        Ok(token)
    }

    /// One POST to the token endpoint.
    async fn exchange(&self, style: AuthStyle) -> Result<Answer, TokenError> {
        let result = self.exchange_once(style).await;
        let label = match &result {
            Ok(_) => "issued",
            Err(e) if e.rejected => "rejected",
            Err(_) => "retryable",
        };
        metrics::counter!(intops_runtime::metrics::DELIVERY_TOKEN_REQUESTS, "target" => self.settings.target.clone(), "result" => label).increment(1);
        if let Err(e) = &result {
            tracing::warn!(target = %self.settings.target, status = e.status, style = style.as_str(), error = %e.reason, "oauth2 token request failed");
        }
        result
    }

    async fn exchange_once(&self, style: AuthStyle) -> Result<Answer, TokenError> {
        let s = &self.settings;
        let mut builder = self
            .http
            .post(s.token_url.clone())
            .header(ACCEPT, "application/json")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded");
        if style == AuthStyle::Basic {
            builder = builder.basic_auth(
                form(s.client_id.expose()),
                Some(form(s.client_secret.expose())),
            );
        }
        let mut response = builder
            .body(self.form_body(style))
            .send()
            .await
            .map_err(|e| {
                let kind = if e.is_timeout() {
                    "timed out"
                } else if e.is_connect() {
                    "connection failed"
                } else {
                    "request failed"
                };
                self.failure(
                    false,
                    None,
                    format!("token endpoint {kind}: {}", e.without_url()),
                )
            })?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| crate::client::parse_retry_after(v, std::time::SystemTime::now()));
        let mut bytes = Vec::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            bytes.extend_from_slice(&chunk[..chunk.len().min(ANSWER_BYTES - bytes.len())]);
            if bytes.len() >= ANSWER_BYTES {
                break;
            }
        }
        if (200..300).contains(&status) {
            let json = serde_json::from_slice::<serde_json::Value>(&bytes).ok();
            return parse_token(json.as_ref()).map_err(|why| {
                self.failure(
                    true,
                    Some(status),
                    format!("token endpoint answered {status} {why}"),
                )
            });
        }
        // Redacted before anything is cut from it: a cut secret would
        // no longer be recognised.
        let text = self.redact(&String::from_utf8_lossy(&bytes));
        let why = serde_json::from_str::<serde_json::Value>(&text)
            .map(|json| oauth_error(&json))
            .unwrap_or_default();
        let retryable = matches!(status, 408 | 425 | 429 | 500..=599);
        let mut e = self.failure(
            !retryable,
            Some(status),
            format!("token endpoint answered {status}{why}"),
        );
        e.retry_after = retry_after.filter(|_| retryable);
        e.excerpt = Some(crate::client::cut(&text, EXCERPT_BYTES).to_string());
        Err(e)
    }

    /// The token request's form: the grant, the scope, and with
    /// [`AuthStyle::Post`] the client's credentials.
    fn form_body(&self, style: AuthStyle) -> String {
        let s = &self.settings;
        let mut body = form_urlencoded::Serializer::new(String::new());
        body.append_pair("grant_type", "client_credentials");
        if let Some(scope) = &s.scope {
            body.append_pair("scope", scope);
        }
        if style == AuthStyle::Post {
            body.append_pair("client_id", s.client_id.expose());
            body.append_pair("client_secret", s.client_secret.expose());
        }
        body.finish()
    }

    /// An error, `reason` redacted.
    fn failure(&self, rejected: bool, status: Option<u16>, reason: String) -> TokenError {
        TokenError {
            rejected,
            status,
            reason: self.redact(&reason),
            retry_after: None,
            excerpt: None,
        }
    }
}

/// A token endpoint's 2xx answer.
struct Answer {
    value: Secret,
    expires_in: Option<Duration>,
}

/// `access_token` (non-empty, fit for a header) and `expires_in` (seconds,
/// a number or a numeric string; absent or 0: no expiry) of a 2xx answer;
/// `token_type` is not checked, the token is sent as `Bearer`.
fn parse_token(json: Option<&serde_json::Value>) -> Result<Answer, String> {
    let Some(json) = json else {
        return Err("with a body that is not JSON".into());
    };
    let value = match json.get("access_token") {
        Some(serde_json::Value::String(s)) if !s.is_empty() => s,
        _ => return Err("without an access_token".into()),
    };
    if HeaderValue::from_str(&format!("Bearer {value}")).is_err() {
        return Err("with an access_token that cannot be sent in a header".into());
    }
    let seconds = match json.get("expires_in") {
        Some(serde_json::Value::Number(n)) => n.as_f64(),
        Some(serde_json::Value::String(s)) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    let expires_in = seconds
        .filter(|s| s.is_finite() && *s >= 1.0)
        .map(|s| Duration::from_secs(s.min(u32::MAX as f64) as u64));
    Ok(Answer {
        value: Secret::new(value.clone()),
        expires_in,
    })
}

/// ` (invalid_client: <description>)` from an OAuth2 error answer (RFC 6749
/// section 5.2), or nothing.
fn oauth_error(json: &serde_json::Value) -> String {
    let Some(error) = json.get("error").and_then(|e| e.as_str()) else {
        return String::new();
    };
    let error: String = error.chars().take(DESCRIPTION_CHARS).collect();
    match json.get("error_description").and_then(|d| d.as_str()) {
        Some(d) if !d.is_empty() => {
            let d: String = d.chars().take(DESCRIPTION_CHARS).collect();
            format!(" ({error}: {d})")
        }
        _ => format!(" ({error})"),
    }
}

/// How long before expiry a token of `lifetime` is refreshed:
/// `max(10%, 30 s)`, at most half the lifetime.
pub(crate) fn refresh_margin(lifetime: Duration) -> Duration {
    (lifetime / 10).max(MIN_MARGIN).min(lifetime / 2)
}

/// `value` form-encoded (`application/x-www-form-urlencoded`), as RFC 6749
/// section 2.3.1 asks before Basic encoding.
fn form(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}
