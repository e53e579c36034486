//! Webhook signatures: HMAC-SHA256 over the raw body (optionally prefixed
//! by a timestamp header's value), compared in constant time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::HeaderMap;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use intops_flows::{HmacAuth, SignatureEncoding};
use intops_runtime::Secret;
use sha2::Sha256;

use crate::replay::Signed;

/// Why a request's signature was refused. Messages never include the
/// secret or the expected signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The signature header is absent.
    #[error("missing signature header {0}")]
    Missing(String),
    /// The header is not in the configured format.
    #[error("malformed signature in {0}")]
    Malformed(String),
    /// The configured timestamp header is absent.
    #[error("missing timestamp header {0}")]
    MissingTimestamp(String),
    /// The signature does not match the body.
    #[error("signature does not match the body")]
    Mismatch,
    /// The timestamp header is not a Unix time or RFC 3339 date.
    #[error("timestamp header {0} is not a Unix time or RFC 3339 date")]
    BadTimestamp(String),
    /// The timestamp is further from now than the tolerance: a replayed
    /// or badly delayed request.
    #[error("timestamp in {0} is outside the accepted window")]
    Stale(String),
}

/// Checks one source's signatures.
#[derive(Debug, Clone)]
pub struct Verifier {
    auth: HmacAuth,
    secret: Secret,
}

impl Verifier {
    /// A verifier for `auth` with its resolved `secret`.
    pub fn new(auth: HmacAuth, secret: Secret) -> Self {
        Self { auth, secret }
    }

    /// Verifies `body` against the signature in `headers`, and the
    /// timestamp header (when configured) against `now`. With a timestamp
    /// header, returns the signature and when it leaves the tolerance
    /// window, for replay protection.
    pub fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Option<Signed>, SignatureError> {
        let header = &self.auth.header;
        let raw = headers
            .get(header)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| SignatureError::Missing(header.clone()))?;
        let encoded = raw
            .trim()
            .strip_prefix(self.auth.prefix.as_str())
            .ok_or_else(|| SignatureError::Malformed(header.clone()))?;
        let given = match self.auth.encoding {
            SignatureEncoding::Hex => hex::decode(encoded).ok(),
            SignatureEncoding::Base64 => base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .ok(),
        }
        .ok_or_else(|| SignatureError::Malformed(header.clone()))?;
        let mut mac = self.mac();
        if let Some(ts_header) = &self.auth.timestamp_header {
            let ts = headers
                .get(ts_header)
                .ok_or_else(|| SignatureError::MissingTimestamp(ts_header.clone()))?;
            mac.update(ts.as_bytes());
            mac.update(body);
            mac.verify_slice(&given)
                .map_err(|_| SignatureError::Mismatch)?;
            // Checked after the signature, so only the source can move it.
            let at = ts
                .to_str()
                .ok()
                .and_then(parse_timestamp)
                .ok_or_else(|| SignatureError::BadTimestamp(ts_header.clone()))?;
            let skew = match now.duration_since(at) {
                Ok(d) => d,
                Err(e) => e.duration(),
            };
            if skew > self.auth.tolerance {
                return Err(SignatureError::Stale(ts_header.clone()));
            }
            let expires = at
                .checked_add(self.auth.tolerance)
                .ok_or_else(|| SignatureError::BadTimestamp(ts_header.clone()))?;
            return Ok(Some(Signed {
                mac: given,
                expires,
            }));
        }
        mac.update(body);
        mac.verify_slice(&given)
            .map_err(|_| SignatureError::Mismatch)?;
        Ok(None)
    }

    /// Signs `body` the way this verifier expects (for tests and tools).
    pub fn sign(&self, timestamp: Option<&str>, body: &[u8]) -> String {
        let mut mac = self.mac();
        if let Some(ts) = timestamp {
            mac.update(ts.as_bytes());
        }
        mac.update(body);
        let bytes = mac.finalize().into_bytes();
        let encoded = match self.auth.encoding {
            SignatureEncoding::Hex => hex::encode(bytes),
            SignatureEncoding::Base64 => base64::engine::general_purpose::STANDARD.encode(bytes),
        };
        format!("{}{encoded}", self.auth.prefix)
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC accepts keys of any length, so this cannot fail.
        <Hmac<Sha256> as Mac>::new_from_slice(self.secret.expose().as_bytes())
            .unwrap_or_else(|_| unreachable!("hmac takes any key length"))
    }
}

/// Unix seconds (or milliseconds, when that large), or an RFC 3339 date.
fn parse_timestamp(text: &str) -> Option<SystemTime> {
    let text = text.trim();
    if let Ok(n) = text.parse::<u64>() {
        let secs = if n > 100_000_000_000 { n / 1000 } else { n };
        return UNIX_EPOCH.checked_add(Duration::from_secs(secs));
    }
    humantime::parse_rfc3339_weak(text).ok()
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;
    use intops_flows::SecretRef;

    use super::*;

    fn verifier(
        header: &str,
        encoding: SignatureEncoding,
        prefix: &str,
        ts: Option<&str>,
    ) -> Verifier {
        Verifier::new(
            HmacAuth {
                secret: SecretRef::Env("UNUSED".into()),
                header: header.into(),
                encoding,
                prefix: prefix.into(),
                timestamp_header: ts.map(Into::into),
                tolerance: Duration::from_secs(300),
            },
            Secret::new("s3cret"),
        )
    }

    impl Verifier {
        fn verify_now(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), SignatureError> {
            self.verify(headers, body, now()).map(|_| ())
        }
    }

    fn now() -> SystemTime {
        humantime::parse_rfc3339("2026-11-28T08:02:00Z").expect("time")
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).expect("header"));
        }
        h
    }

    #[test]
    fn default_scheme_matches_a_known_vector() {
        // printf '{"a":1}' | openssl dgst -sha256 -hmac s3cret
        let v = verifier(
            "X-Intops-Signature",
            SignatureEncoding::Hex,
            "sha256=",
            None,
        );
        let expected = "sha256=5910e62016ef5034272c926c27071992a465c2335cecf41851bda071577f4f6d";
        assert_eq!(v.sign(None, br#"{"a":1}"#), expected);
        let h = headers(&[("x-intops-signature", expected)]);
        assert_eq!(v.verify_now(&h, br#"{"a":1}"#), Ok(()));
        let upper = headers(&[(
            "x-intops-signature",
            &expected.to_uppercase().replace("SHA256=", "sha256="),
        )]);
        assert_eq!(v.verify_now(&upper, br#"{"a":1}"#), Ok(()));
    }

    #[test]
    fn tampered_body_or_wrong_secret_is_refused() {
        let v = verifier(
            "X-Intops-Signature",
            SignatureEncoding::Hex,
            "sha256=",
            None,
        );
        let sig = v.sign(None, b"body");
        let h = headers(&[("x-intops-signature", &sig)]);
        assert_eq!(v.verify_now(&h, b"body!"), Err(SignatureError::Mismatch));
        let other = Verifier::new(v.auth.clone(), Secret::new("other"));
        assert_eq!(other.verify_now(&h, b"body"), Err(SignatureError::Mismatch));
    }

    #[test]
    fn missing_and_malformed_headers_are_named() {
        let v = verifier(
            "X-Intops-Signature",
            SignatureEncoding::Hex,
            "sha256=",
            None,
        );
        assert_eq!(
            v.verify_now(&HeaderMap::new(), b"x"),
            Err(SignatureError::Missing("X-Intops-Signature".into()))
        );
        let h = headers(&[("x-intops-signature", "md5=abc")]);
        assert!(matches!(
            v.verify_now(&h, b"x"),
            Err(SignatureError::Malformed(_))
        ));
        let h = headers(&[("x-intops-signature", "sha256=zz")]);
        assert!(matches!(
            v.verify_now(&h, b"x"),
            Err(SignatureError::Malformed(_))
        ));
    }

    #[test]
    fn zendesk_style_base64_with_timestamp() {
        let v = verifier(
            "X-Zendesk-Webhook-Signature",
            SignatureEncoding::Base64,
            "",
            Some("X-Zendesk-Webhook-Signature-Timestamp"),
        );
        let sig = v.sign(Some("2026-11-28T08:00:00Z"), b"{}");
        let ok = headers(&[
            ("x-zendesk-webhook-signature", &sig),
            (
                "x-zendesk-webhook-signature-timestamp",
                "2026-11-28T08:00:00Z",
            ),
        ]);
        assert_eq!(v.verify_now(&ok, b"{}"), Ok(()));
        let shifted = headers(&[
            ("x-zendesk-webhook-signature", &sig),
            (
                "x-zendesk-webhook-signature-timestamp",
                "2026-11-28T08:00:01Z",
            ),
        ]);
        assert_eq!(v.verify_now(&shifted, b"{}"), Err(SignatureError::Mismatch));
        let no_ts = headers(&[("x-zendesk-webhook-signature", &sig)]);
        assert!(matches!(
            v.verify_now(&no_ts, b"{}"),
            Err(SignatureError::MissingTimestamp(_))
        ));
    }

    #[test]
    fn timestamps_outside_the_tolerance_are_refused() {
        let v = verifier("X-Sig", SignatureEncoding::Hex, "", Some("X-Ts"));
        let signed = |ts: &str| {
            let sig = v.sign(Some(ts), b"{}");
            headers(&[("x-sig", &sig), ("x-ts", ts)])
        };
        assert_eq!(v.verify_now(&signed("2026-11-28T08:00:00Z"), b"{}"), Ok(()));
        assert_eq!(
            v.verify_now(&signed("1795852800"), b"{}"),
            Ok(()),
            "unix seconds, 2 minutes ago"
        );
        assert_eq!(
            v.verify_now(&signed("2026-11-28T08:06:00Z"), b"{}"),
            Ok(()),
            "4 minutes ahead"
        );
        assert_eq!(
            v.verify_now(&signed("2026-11-28T07:50:00Z"), b"{}"),
            Err(SignatureError::Stale("X-Ts".into()))
        );
        assert_eq!(
            v.verify_now(&signed("yesterday"), b"{}"),
            Err(SignatureError::BadTimestamp("X-Ts".into()))
        );
    }

    #[test]
    fn timestamped_signatures_are_returned_for_replay_protection() {
        let v = verifier("X-Sig", SignatureEncoding::Hex, "", Some("X-Ts"));
        let sig = v.sign(Some("2026-11-28T08:00:00Z"), b"{}");
        let h = headers(&[("x-sig", &sig), ("x-ts", "2026-11-28T08:00:00Z")]);
        let signed = v.verify(&h, b"{}", now()).expect("valid").expect("signed");
        assert_eq!(hex::encode(&signed.mac), sig);
        assert_eq!(
            signed.expires,
            humantime::parse_rfc3339("2026-11-28T08:05:00Z").expect("time")
        );
        let plain = verifier("X-Sig", SignatureEncoding::Hex, "", None);
        let h = headers(&[("x-sig", &plain.sign(None, b"{}"))]);
        assert_eq!(plain.verify(&h, b"{}", now()), Ok(None));
    }
}
