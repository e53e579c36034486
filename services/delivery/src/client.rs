//! One HTTP attempt and its classification.

use std::time::Duration;

use intops_events::{DeliveryRequest, IDEMPOTENCY_KEY};
use intops_flows::StatusSet;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use crate::credential::Credential;

/// How much of a response body a dead letter keeps.
const EXCERPT_BYTES: usize = 512;

/// The result of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// 2xx.
    Delivered {
        /// Status code.
        status: u16,
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
    /// Another try will fail the same way: other 4xx, or a request that
    /// cannot be built.
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
            Attempt::Delivered { status } => Some(*status),
            Attempt::Retryable { status, .. } | Attempt::Permanent { status, .. } => *status,
        }
    }
}

/// Whether a status is delivered, retryable (in the target's
/// `retryable_statuses`) or permanent.
pub fn classify_status(status: u16, retryable: &StatusSet) -> &'static str {
    match status {
        200..=299 => "delivered",
        s if retryable.contains(s) => "retryable",
        _ => "permanent",
    }
}

/// Makes one attempt of `request` against `base_url`.
pub(crate) async fn attempt(
    http: &reqwest::Client,
    base_url: &str,
    credential: &Credential,
    retryable: &StatusSet,
    request: &DeliveryRequest,
) -> Attempt {
    let method = match reqwest::Method::from_bytes(request.method.as_bytes()) {
        Ok(m) => m,
        Err(_) => return permanent(None, format!("invalid method {:?}", request.method)),
    };
    let mut headers = HeaderMap::new();
    for (k, v) in &request.headers {
        if k.eq_ignore_ascii_case(IDEMPOTENCY_KEY) {
            continue; // sent once below, from request.idempotency_key()
        }
        match (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            (Ok(name), Ok(value)) => {
                headers.insert(name, value);
            }
            _ => return permanent(None, format!("invalid header {k:?}")),
        }
    }
    let mut builder = http
        .request(method, format!("{base_url}{}", request.path))
        .headers(headers)
        .header("content-type", "application/json")
        .header("idempotency-key", request.idempotency_key())
        .body(request.body.clone());
    builder = credential.apply(builder);
    let response = match builder.send().await {
        Ok(r) => r,
        Err(e) => {
            let kind = if e.is_timeout() {
                "timed out"
            } else if e.is_connect() {
                "connection failed"
            } else {
                "request failed"
            };
            return Attempt::Retryable {
                status: None,
                reason: format!(
                    "{kind}: {}",
                    credential.redact(&e.without_url().to_string())
                ),
                retry_after: None,
                excerpt: None,
            };
        }
    };
    let status = response.status().as_u16();
    if classify_status(status, retryable) == "delivered" {
        return Attempt::Delivered { status };
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
    let body = response.bytes().await.unwrap_or_default();
    let cut = &body[..body.len().min(EXCERPT_BYTES)];
    let excerpt = Some(credential.redact(&String::from_utf8_lossy(cut)));
    let reason = format!("target answered {status}");
    if classify_status(status, retryable) == "retryable" {
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

/// `Retry-After` as delay-seconds or an HTTP date (RFC 9110); a date in
/// the past means now.
fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
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

    #[test]
    fn statuses_are_classified() {
        let set = StatusSet::default();
        assert_eq!(classify_status(201, &set), "delivered");
        for s in [408, 425, 429, 500, 502, 503] {
            assert_eq!(classify_status(s, &set), "retryable", "{s}");
        }
        for s in [400, 401, 403, 404, 409, 422] {
            assert_eq!(classify_status(s, &set), "permanent", "{s}");
        }
        let custom = StatusSet(vec![(409, 409), (503, 503)]);
        assert_eq!(classify_status(409, &custom), "retryable");
        assert_eq!(classify_status(500, &custom), "permanent");
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
    fn echoed_secrets_are_redacted() {
        let bearer = Credential::Bearer(intops_flows::Secret::new("tok-123"));
        assert_eq!(
            bearer.redact("bad token tok-123 here"),
            "bad token *** here"
        );
    }
}
