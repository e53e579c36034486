//! A target's resolved credential: how it goes on a request, and how it
//! is kept out of anything a target echoes back. An OAuth2 credential's
//! token comes from its token endpoint ([`oauth2`]).

use std::sync::Arc;

use base64::Engine;
use intops_flows::{Target, TargetAuth};
use intops_runtime::Secret;

mod oauth2;

pub(crate) use oauth2::{Token, TokenError};

/// The credential sent with every request to one target.
#[derive(Debug)]
pub enum Credential {
    /// Nothing.
    None,
    /// `Authorization: Bearer <token>`.
    Bearer(Secret),
    /// `Authorization: Basic base64(user:password)`.
    Basic(String, Secret),
    /// A named header with a secret value.
    Header(reqwest::header::HeaderName, Secret),
    /// `Authorization: Bearer <token>` with a token from an OAuth2 token
    /// endpoint.
    OAuth2(Box<oauth2::TokenSource>),
}

impl Credential {
    /// Resolves `target`'s auth (environment or file); the error names the
    /// problem, never the value.
    pub fn resolve(target: &Target) -> Result<Self, String> {
        let at = format!("targets[{}].auth", target.id);
        let secret = |r: &intops_flows::SecretRef| r.resolve().map_err(|e| format!("{at}: {e}"));
        Ok(match &target.auth {
            TargetAuth::None => Credential::None,
            TargetAuth::Bearer(r) => Credential::Bearer(secret(r)?),
            TargetAuth::Basic { username, password } => {
                Credential::Basic(username.clone(), secret(password)?)
            }
            TargetAuth::Header { name, value } => Credential::Header(
                reqwest::header::HeaderName::from_bytes(name.as_bytes())
                    .map_err(|e| format!("{at}.header.name: {e}"))?,
                secret(value)?,
            ),
            TargetAuth::OAuth2(o) => {
                let at = format!("{at}.oauth2");
                let token_url =
                    url::Url::parse(&o.token_url).map_err(|e| format!("{at}.token_url: {e}"))?;
                let settings = oauth2::Settings {
                    target: target.id.clone(),
                    token_url,
                    client_id: o
                        .client_id
                        .resolve()
                        .map_err(|e| format!("{at}.client_id: {e}"))?,
                    client_secret: o
                        .client_secret
                        .resolve()
                        .map_err(|e| format!("{at}.client_secret: {e}"))?,
                    scope: o.scope.clone(),
                    style: None,
                };
                // Its own client: another host, the target's timeout, no
                // redirects (the credentials never go elsewhere).
                let http = crate::client::http_client(target.timeout, 1)
                    .map_err(|e| format!("{at}: cannot build the token client: {e}"))?;
                Credential::OAuth2(Box::new(oauth2::TokenSource::new(settings, http)))
            }
        })
    }

    /// The token the next request carries: `None` unless OAuth2; an OAuth2
    /// token from the cache or the token endpoint.
    pub(crate) async fn token(&self) -> Result<Option<Arc<Token>>, TokenError> {
        match self {
            Credential::OAuth2(source) => source.token().await.map(Some),
            _ => Ok(None),
        }
    }

    /// After the target answered 401 to a request carrying `rejected`: a
    /// new token (one token request for all requests rejected with it).
    pub(crate) async fn refresh_rejected(
        &self,
        rejected: &Token,
    ) -> Result<Arc<Token>, TokenError> {
        match self {
            Credential::OAuth2(source) => source.refresh_rejected(rejected).await,
            // Not reached: only OAuth2 hands out tokens.
            _ => Err(TokenError {
                rejected: true,
                status: None,
                reason: "no token endpoint to refresh from".into(),
                retry_after: None,
                excerpt: None,
            }),
        }
    }

    /// Puts the credential on `builder`; an OAuth2 credential puts `token`
    /// (from [`Credential::token`]).
    pub(crate) fn apply(
        &self,
        builder: reqwest::RequestBuilder,
        token: Option<&Token>,
    ) -> reqwest::RequestBuilder {
        match self {
            Credential::None => builder,
            Credential::Bearer(token) => builder.bearer_auth(token.expose()),
            Credential::Basic(user, password) => builder.basic_auth(user, Some(password.expose())),
            Credential::Header(name, value) => builder.header(name, value.expose()),
            Credential::OAuth2(_) => match token {
                Some(t) => builder.bearer_auth(t.value()),
                None => builder,
            },
        }
    }

    /// Whether `name` is the header carrying the credential.
    pub fn header_name_is(&self, name: &str) -> bool {
        matches!(self, Credential::Header(h, _) if h.as_str().eq_ignore_ascii_case(name))
    }

    /// `text` with every form of the secret replaced by `***`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        let mut hide = |value: &str| {
            if !value.is_empty() {
                out = out.replace(value, "***");
            }
        };
        match self {
            Credential::None => {}
            Credential::Bearer(s) | Credential::Header(_, s) => hide(s.expose()),
            Credential::Basic(user, password) => {
                let encoded = base64::engine::general_purpose::STANDARD
                    .encode(format!("{user}:{}", password.expose()));
                hide(&encoded);
                hide(password.expose());
            }
            Credential::OAuth2(source) => out = source.redact(&out),
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_of_a_secret_is_redacted() {
        let basic = Credential::Basic("svc".into(), Secret::new("pw-123"));
        let echoed = "got Authorization: Basic c3ZjOnB3LTEyMw== and pw-123";
        assert_eq!(basic.redact(echoed), "got Authorization: Basic *** and ***");
        let header = Credential::Header(
            reqwest::header::HeaderName::from_static("x-api-key"),
            Secret::new("k-9"),
        );
        assert_eq!(header.redact("bad key k-9"), "bad key ***");
        assert_eq!(Credential::None.redact("plain"), "plain");
    }
}
