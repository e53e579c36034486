//! How ingest authenticates each source's requests.

use std::collections::BTreeMap;
use std::time::SystemTime;

use axum::http::HeaderMap;
use intops_flows::{Flows, SourceAuth};
use intops_runtime::{ConfigError, Secret};

use crate::replay::Signed;
use crate::signature::Verifier;

/// One source's authentication, with its secret resolved.
#[derive(Debug, Clone)]
pub enum Authenticator {
    /// `auth = "none"`.
    None,
    /// HMAC signature of the body.
    Hmac(Verifier),
    /// `Authorization: Bearer <token>`.
    Bearer(Secret),
}

impl Authenticator {
    /// Checks a request; the error says what is wrong, never a secret.
    /// A signature with a timestamp is returned for replay protection.
    pub fn check(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Option<Signed>, String> {
        match self {
            Authenticator::None => Ok(None),
            Authenticator::Hmac(v) => v.verify(headers, body, now).map_err(|e| e.to_string()),
            Authenticator::Bearer(token) => {
                let given = headers
                    .get(axum::http::header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .ok_or("missing Authorization: Bearer header")?;
                if token.matches(given.trim()) {
                    Ok(None)
                } else {
                    Err("bearer token does not match".into())
                }
            }
        }
    }
}

/// Resolves every source's secret now, so a missing one fails start-up
/// (listing all of them) instead of failing requests.
pub fn authenticators(flows: &Flows) -> Result<BTreeMap<String, Authenticator>, ConfigError> {
    let mut out = BTreeMap::new();
    let mut problems = Vec::new();
    for (id, source) in &flows.sources {
        let auth = match &source.auth {
            SourceAuth::None => Ok(Authenticator::None),
            SourceAuth::Hmac(h) => h
                .secret
                .resolve()
                .map(|s| Authenticator::Hmac(Verifier::new(h.clone(), s))),
            SourceAuth::Bearer(r) => r.resolve().map(Authenticator::Bearer),
        };
        match auth {
            Ok(a) => {
                out.insert(id.clone(), a);
            }
            Err(e) => problems.push(format!("sources[{id}].auth: {e}")),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(ConfigError(problems))
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn bearer_tokens_must_match_exactly() {
        let a = Authenticator::Bearer(Secret::new("tok-1"));
        let mut h = HeaderMap::new();
        assert!(a.check(&h, b"", SystemTime::now()).is_err());
        h.insert("authorization", HeaderValue::from_static("Bearer tok-2"));
        let e = a.check(&h, b"", SystemTime::now()).expect_err("wrong");
        assert!(!e.contains("tok-1"), "{e}");
        h.insert("authorization", HeaderValue::from_static("Bearer tok-1"));
        assert_eq!(a.check(&h, b"", SystemTime::now()), Ok(None));
    }
}
