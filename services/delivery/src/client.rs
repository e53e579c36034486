//! One HTTP attempt and its classification.

use std::time::Duration;

use intops_events::{DeliveryRequest, IDEMPOTENCY_KEY};
use intops_flows::StatusSet;
use intops_flows::target_url;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use url::Url;

use crate::credential::{Credential, Token, TokenError};

/// How much of a response body a dead letter keeps.
const EXCERPT_BYTES: usize = 512;

/// How far past the excerpt's end a response body is redacted: any secret
/// shorter than this that starts inside the excerpt is hidden whole.
const REDACT_SLACK_BYTES: usize = 4096;

/// How much of a redirect's `Location` a dead letter keeps.
const LOCATION_CHARS: usize = 512;

/// A target's HTTP client: its timeout and pool, and never following a
/// redirect (a 3xx is an answer, dead-lettered with its `Location`: the
/// body and credentials never go to another host).
pub(crate) fn http_client(timeout: Duration, concurrency: u32) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .pool_max_idle_per_host(concurrency as usize)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("intops/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// How much of a 2xx answer a link's `capture` program reads.
const ANSWER_BYTES: usize = 1024 * 1024;

/// A 2xx answer, kept for a link's `capture` program.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Answer {
    /// The body, at most [`ANSWER_BYTES`]; longer bodies are cut there.
    pub body: Vec<u8>,
    /// Response headers, names lowercase.
    pub headers: Vec<(String, String)>,
}

/// The result of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// 2xx.
    Delivered {
        /// Status code.
        status: u16,
        /// The answer, when the caller asked to keep it.
        answer: Option<Answer>,
    },
    /// Worth another try: 408, 425, 429, 5xx, timeouts, connection errors.
    Retryable {
        /// Status code, if a response came.
        status: Option<u16>,
        /// Why.
        reason: String,
        /// The target's Retry-After, if it sent one.
        retry_after: Option<Duration>,
        /// Redacted start of the response body.
        excerpt: Option<String>,
    },
    /// Another try will fail the same way: a 3xx (redirects are not
    /// followed), other 4xx, or a request that cannot be built (among
    /// them a path that would leave the base URL, a header that could be
    /// split).
    Permanent {
        /// Status code, if a response came.
        status: Option<u16>,
        /// Why.
        reason: String,
        /// Redacted start of the response body.
        excerpt: Option<String>,
    },
}

impl Attempt {
    /// The HTTP status, when a response came.
    pub fn status(&self) -> Option<u16> {
        match self {
            Attempt::Delivered { status, .. } => Some(*status),
            Attempt::Retryable { status, .. } | Attempt::Permanent { status, .. } => *status,
        }
    }
}

impl Attempt {
    /// Why it failed; `None` when delivered.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Attempt::Delivered { .. } => None,
            Attempt::Retryable { reason, .. } | Attempt::Permanent { reason, .. } => Some(reason),
        }
    }

    /// The redacted start of the response body (or a redirect's
    /// `Location`), when one came.
    pub fn excerpt(&self) -> Option<&str> {
        match self {
            Attempt::Delivered { .. } => None,
            Attempt::Retryable { excerpt, .. } | Attempt::Permanent { excerpt, .. } => {
                excerpt.as_deref()
            }
        }
    }
}

/// How a target's answer is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    /// 2xx.
    Delivered,
    /// In the target's `retryable_statuses`.
    Retryable,
    /// Anything else, and every 3xx.
    Permanent,
}

/// Whether a status is delivered, retryable (in the target's
/// `retryable_statuses`) or permanent; a 3xx is always permanent.
pub fn classify_status(status: u16, retryable: &StatusSet) -> StatusClass {
    match status {
        200..=299 => StatusClass::Delivered,
        300..=399 => StatusClass::Permanent,
        s if retryable.contains(s) => StatusClass::Retryable,
        _ => StatusClass::Permanent,
    }
}

/// Makes one attempt of `request` against `base_url`; with `keep_answer`
/// a 2xx answer's body and headers come back too.
///
/// With an OAuth2 credential the attempt first gets a token (a token
/// endpoint failure is this attempt's failure: retryable, or the target's
/// 401 when the endpoint refuses the client); a 401 from the target is
/// answered by one token refresh and one more send, whose answer is the
/// attempt's.
pub(crate) async fn attempt(
    http: &reqwest::Client,
    base_url: &Url,
    credential: &Credential,
    retryable: &StatusSet,
    request: &DeliveryRequest,
    keep_answer: bool,
) -> Attempt {
    let parts = match build(base_url, credential, request) {
        Ok(parts) => parts,
        Err(reason) => return permanent(None, reason),
    };
    let token = match credential.token().await {
        Ok(token) => token,
        Err(e) => return token_failure(e),
    };
    let mut response = match send(http, credential, &parts, request, token.as_deref()).await {
        Ok(r) => r,
        Err(failed) => return failed,
    };
    if response.status() == reqwest::StatusCode::UNAUTHORIZED
        && let Some(rejected) = token
    {
        tracing::info!(target = %request.target_id, event_id = %request.event_id, "target answered 401, refreshing the oauth2 token and sending once more");
        drop(response);
        let fresh = match credential.refresh_rejected(&rejected).await {
            Ok(token) => token,
            Err(e) => return token_failure(e),
        };
        response = match send(http, credential, &parts, request, Some(&fresh)).await {
            Ok(r) => r,
            Err(failed) => return failed,
        };
    }
    classify(response, credential, retryable, keep_answer).await
}

/// Sends `request` once with the credential (and `token`) on it; `Err` is
/// the retryable attempt when no response came.
async fn send(
    http: &reqwest::Client,
    credential: &Credential,
    (method, url, headers): &(reqwest::Method, Url, HeaderMap),
    request: &DeliveryRequest,
    token: Option<&Token>,
) -> Result<reqwest::Response, Attempt> {
    let builder = http
        .request(method.clone(), url.clone())
        .headers(headers.clone())
        .header("content-type", "application/json")
        .header("idempotency-key", request.idempotency_key())
        .body(request.body.clone());
    let builder = credential.apply(builder, token);
    builder.send().await.map_err(|e| {
        let kind = if e.is_timeout() {
            "timed out"
        } else if e.is_connect() {
            "connection failed"
        } else {
            "request failed"
        };
        Attempt::Retryable {
            status: None,
            reason: format!(
                "{kind}: {}",
                credential.redact(&e.without_url().to_string())
            ),
            retry_after: None,
            excerpt: None,
        }
    })
}

/// The attempt a token endpoint failure makes: retryable, or, when the
/// endpoint refused the client (bad credentials or settings), the
/// target's 401, so the target's pause statuses apply as to a 401 from the
/// target itself.
fn token_failure(e: TokenError) -> Attempt {
    if e.rejected {
        Attempt::Permanent {
            status: Some(401),
            reason: format!("{}; no token, handled as the target's 401", e.reason),
            excerpt: e.excerpt,
        }
    } else {
        Attempt::Retryable {
            status: None,
            reason: e.reason,
            retry_after: e.retry_after,
            excerpt: e.excerpt,
        }
    }
}

/// The attempt a response makes.
async fn classify(
    response: reqwest::Response,
    credential: &Credential,
    retryable: &StatusSet,
    keep_answer: bool,
) -> Attempt {
    let status = response.status().as_u16();
    let class = classify_status(status, retryable);
    if class == StatusClass::Delivered {
        let answer = if keep_answer {
            Some(read_answer(response).await)
        } else {
            None
        };
        return Attempt::Delivered { status, answer };
    }
    if response.status().is_redirection() {
        // Not followed: the Location shows where the target wanted the
        // request to go (redacted, since a target may echo a credential).
        let location = response.headers().get(reqwest::header::LOCATION).map(|v| {
            // Redacted before it is cut: a cut secret is not recognised.
            credential
                .redact(&String::from_utf8_lossy(v.as_bytes()))
                .chars()
                .take(LOCATION_CHARS)
                .collect::<String>()
        });
        let reason = match &location {
            Some(l) => {
                format!("target answered {status} redirecting to {l:?}; redirects are not followed")
            }
            None => format!(
                "target answered {status} (a redirect without Location); redirects are not followed"
            ),
        };
        return Attempt::Permanent {
            status: Some(status),
            reason,
            excerpt: location.map(|l| format!("Location: {l}")),
        };
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
    let body = response.bytes().await.unwrap_or_default();
    let excerpt = Some(excerpt(credential, &body));
    let reason = format!("target answered {status}");
    if class == StatusClass::Retryable {
        Attempt::Retryable {
            status: Some(status),
            reason,
            retry_after,
            excerpt,
        }
    } else {
        Attempt::Permanent {
            status: Some(status),
            reason,
            excerpt,
        }
    }
}

/// A 2xx answer's headers and up to [`ANSWER_BYTES`] of its body; a body
/// that breaks off is kept as far as it came.
async fn read_answer(mut response: reqwest::Response) -> Answer {
    let headers = response
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = ANSWER_BYTES - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= ANSWER_BYTES {
            break;
        }
    }
    Answer { body, headers }
}

/// The method, URL and headers of `request`: its path joined under
/// `base_url` (never leaving it), its headers with values that cannot split
/// a header and names intops does not set itself; `Err` says why not.
fn build(
    base_url: &Url,
    credential: &Credential,
    request: &DeliveryRequest,
) -> Result<(reqwest::Method, Url, HeaderMap), String> {
    let method = reqwest::Method::from_bytes(request.method.as_bytes())
        .map_err(|_| format!("invalid method {:?}", request.method))?;
    let url = target_url::join(base_url, &request.path).map_err(|e| e.to_string())?;
    let mut headers = HeaderMap::new();
    for (k, v) in &request.headers {
        if k.eq_ignore_ascii_case(IDEMPOTENCY_KEY) {
            continue; // sent once, from request.idempotency_key()
        }
        if target_url::is_reserved_header(k) || credential.header_name_is(k) {
            return Err(target_url::UnsafeRequest::ReservedHeader(k.clone()).to_string());
        }
        target_url::check_header_value(v).map_err(|e| format!("header {k:?}: {e}"))?;
        match (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            (Ok(name), Ok(value)) => {
                headers.insert(name, value);
            }
            _ => return Err(format!("invalid header {k:?}")),
        }
    }
    Ok((method, url, headers))
}

/// `Retry-After` as delay-seconds or an HTTP date (RFC 9110); a date in
/// the past means now.
pub(crate) fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The redacted start of a response body, at most [`EXCERPT_BYTES`] long.
/// Redacted before it is cut (a secret cut in two is not recognised); the
/// slack covers any secret that starts inside the excerpt.
fn excerpt(credential: &Credential, body: &[u8]) -> String {
    let start = &body[..body.len().min(EXCERPT_BYTES + REDACT_SLACK_BYTES)];
    let redacted = credential.redact(&String::from_utf8_lossy(start));
    cut(&redacted, EXCERPT_BYTES).to_string()
}

/// The start of `text`, at most `max_bytes` long, cut at a character
/// boundary.
pub(crate) fn cut(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn permanent(status: Option<u16>, reason: String) -> Attempt {
    Attempt::Permanent {
        status,
        reason,
        excerpt: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(path: &str, headers: &[(&str, &str)]) -> DeliveryRequest {
        DeliveryRequest {
            tenant: None,
            link: None,
            event_id: "e1".into(),
            flow_id: "f".into(),
            flow_version: "v".into(),
            target_id: "crm".into(),
            entity_key: "k".into(),
            method: "POST".into(),
            path: path.into(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
            body: "{}".into(),
            created_at: 0,
            ingested_at: 0,
        }
    }

    #[test]
    fn requests_are_built_under_the_base_url_or_refused() {
        let base = Url::parse("https://crm.example/api").expect("url");
        let key = Credential::Header(
            HeaderName::from_static("x-api-key"),
            intops_runtime::Secret::new("k-1"),
        );
        let (method, url, headers) = build(
            &base,
            &key,
            &request(
                "/records/a%2Fb?x=1",
                &[("X-Ticket", "T-1"), ("Idempotency-Key", "ignored")],
            ),
        )
        .expect("built");
        assert_eq!(method, reqwest::Method::POST);
        assert_eq!(url.as_str(), "https://crm.example/api/records/a%2Fb?x=1");
        assert_eq!(headers.len(), 1);
        assert_eq!(headers["x-ticket"], "T-1");

        for (path, headers, why) in [
            ("@evil.example/x", vec![], "does not start with '/'"),
            ("//evil.example/x", vec![], "starts with '//'"),
            ("/../admin", vec![], "dot segment"),
            ("/%2e%2e/admin", vec![], "dot segment"),
            ("/a\\..\\admin", vec![], "backslash"),
            ("https://evil.example/x", vec![], "does not start with '/'"),
            (
                "/x",
                vec![("X-Line", "a\r\nX-Evil: 1")],
                "header value refused",
            ),
            ("/x", vec![("X-Line", "a\nb")], "header value refused"),
            ("/x", vec![("Host", "evil.example")], "\"Host\" refused"),
            ("/x", vec![("authorization", "Bearer x")], "refused"),
            ("/x", vec![("X-API-KEY", "other")], "refused"),
            ("/x", vec![("Bad Name", "v")], "invalid header"),
        ] {
            let e = build(&base, &key, &request(path, &headers)).expect_err(path);
            assert!(e.contains(why), "{path} {headers:?}: {e}");
        }
    }

    #[test]
    fn statuses_are_classified() {
        let set = StatusSet::default();
        assert_eq!(classify_status(201, &set), StatusClass::Delivered);
        for s in [300, 301, 302, 303, 307, 308] {
            assert_eq!(classify_status(s, &set), StatusClass::Permanent, "{s}");
            assert_eq!(
                classify_status(s, &StatusSet(vec![(300, 599)])),
                StatusClass::Permanent
            );
        }
        for s in [408, 425, 429, 500, 502, 503] {
            assert_eq!(classify_status(s, &set), StatusClass::Retryable, "{s}");
        }
        for s in [400, 401, 403, 404, 409, 422] {
            assert_eq!(classify_status(s, &set), StatusClass::Permanent, "{s}");
        }
        let custom = StatusSet(vec![(409, 409), (503, 503)]);
        assert_eq!(classify_status(409, &custom), StatusClass::Retryable);
        assert_eq!(classify_status(500, &custom), StatusClass::Permanent);
    }

    #[test]
    fn retry_after_takes_seconds_or_an_http_date() {
        let now = httpdate::parse_http_date("Sat, 28 Nov 2026 08:00:00 GMT").expect("date");
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sat, 28 Nov 2026 08:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sat, 28 Nov 2026 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn a_secret_across_the_excerpts_end_is_redacted_whole() {
        let bearer = Credential::Bearer(intops_runtime::Secret::new("tok-123456"));
        let body = format!("{}tok-123456 tail", "x".repeat(EXCERPT_BYTES - 4));
        let e = excerpt(&bearer, body.as_bytes());
        assert_eq!(e, format!("{}*** ", "x".repeat(EXCERPT_BYTES - 4)));
        assert!(!e.contains("tok-"), "{e}");
    }

    #[test]
    fn excerpts_are_cut_at_a_character_boundary() {
        assert_eq!(cut("abc", 5), "abc");
        assert_eq!(cut("aé", 2), "a");
        assert_eq!(cut("aéb", 3), "aé");
    }

    #[test]
    fn echoed_secrets_are_redacted() {
        let bearer = Credential::Bearer(intops_runtime::Secret::new("tok-123"));
        assert_eq!(
            bearer.redact("bad token tok-123 here"),
            "bad token *** here"
        );
    }
}
