//! A target's resolved credential: how it goes on a request, and how it
//! is kept out of anything a target echoes back.

use base64::Engine;
use intops_flows::{Target, TargetAuth};
use intops_runtime::Secret;

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
            TargetAuth::OAuth2(_) => return Err(format!("{at}.oauth2: not supported yet")),
        })
    }

    /// Puts the credential on `builder`.
    pub fn apply(&self, builder: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Credential::None => builder,
            Credential::Bearer(token) => builder.bearer_auth(token.expose()),
            Credential::Basic(user, password) => builder.basic_auth(user, Some(password.expose())),
            Credential::Header(name, value) => builder.header(name, value.expose()),
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
