//! Who calls the monitor, and what they may do. A caller is named by a
//! bearer token (a user of `INTOPS_MONITOR_USERS_FILE`, or the read-only
//! `INTOPS_MONITOR_API_TOKEN_FILE`) or by a header that an authenticating
//! reverse proxy sets (`INTOPS_MONITOR_TRUSTED_USER_HEADER`). With any of
//! them set, every page and API call needs a caller; with none, reads are
//! open and actions refused.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use intops_runtime::Secret;
use serde::{Deserialize, Serialize};
use serde_json::json;

pub(crate) mod users;

use users::User;

/// What a caller may do: read (viewer), also act on dead letters and
/// targets (operator), everything (admin).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

/// Reads `viewer`, `operator` or `admin`.
pub fn parse_role(text: &str) -> Result<Role, String> {
    match text {
        "viewer" => Ok(Role::Viewer),
        "operator" => Ok(Role::Operator),
        "admin" => Ok(Role::Admin),
        other => Err(format!(
            "{other:?} is not a role: viewer, operator or admin"
        )),
    }
}

/// How a caller was named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Via {
    /// A users-file token.
    Token,
    /// A users-file token kept in the console's session cookie (signed in
    /// at `/login`).
    Cookie,
    /// The read-only API token.
    ApiToken,
    /// The trusted proxy's header.
    Header,
    /// Nobody: no access setting is made.
    Open,
}

/// The caller of one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Principal {
    pub name: String,
    pub role: Role,
    pub via: Via,
}

/// The access settings.
#[derive(Debug, Default)]
pub(crate) struct Access {
    pub api_token: Option<Secret>,
    pub users: Vec<User>,
    pub trusted_header: Option<HeaderName>,
    /// The role of a header-named user the users file does not list.
    pub trusted_role: Option<Role>,
    /// Signs the console's forms (random per process).
    pub form_key: FormKey,
}

/// The key that signs the console's forms; never printed.
#[derive(Default)]
pub(crate) struct FormKey(pub [u8; 32]);

impl std::fmt::Debug for FormKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FormKey(..)")
    }
}

/// The console's session cookie (the token given at `/login`).
pub(crate) const COOKIE: &str = "intops_session";

/// Names longer than this in the trusted header are refused.
const MAX_NAME: usize = 256;

impl Access {
    /// Whether actions can be allowed at all (someone can be named).
    pub fn names_users(&self) -> bool {
        !self.users.is_empty() || self.trusted_header.is_some()
    }

    /// Who sent `headers`: a user, the API token's reader, or (with no
    /// access setting) an anonymous viewer; refused for a token nobody
    /// holds or a caller missing where a setting asks for one.
    pub fn identify(&self, headers: &HeaderMap) -> Result<Principal, Refusal> {
        let given = bearer(headers)
            .map(|t| (t, Via::Token))
            .or_else(|| cookie(headers, COOKIE).map(|t| (t, Via::Cookie)));
        if let Some((token, via)) = given {
            if let Some(u) = users::find(&self.users, token) {
                return Ok(Principal {
                    name: u.name.clone(),
                    role: u.role,
                    via,
                });
            }
            if self.api_token.as_ref().is_some_and(|t| t.matches(token)) {
                return Ok(Principal {
                    name: "api-token".into(),
                    role: Role::Viewer,
                    via: Via::ApiToken,
                });
            }
            return Err(Refusal::Unauthorized("the bearer token is not known"));
        }
        if let Some(name) = self.header_name(headers)? {
            let role = self
                .users
                .iter()
                .find(|u| u.name == name)
                .map(|u| u.role)
                .or(self.trusted_role)
                .unwrap_or(Role::Viewer);
            return Ok(Principal {
                name,
                role,
                via: Via::Header,
            });
        }
        if self.api_token.is_some() || self.names_users() {
            return Err(Refusal::Unauthorized(
                "send Authorization: Bearer <token>, or come through the authenticating proxy",
            ));
        }
        Ok(Principal {
            name: "anonymous".into(),
            role: Role::Viewer,
            via: Via::Open,
        })
    }

    /// The token a console form carries for `p`: an HMAC of the user's
    /// name under this process's key, so a form made by another site (which
    /// cannot read the page) lacks it.
    pub fn form_token(&self, p: &Principal) -> String {
        use hmac::{Hmac, Mac};
        // HMAC takes a key of any length; were it to refuse, no form
        // token would ever match (closed, not open).
        <Hmac<sha2::Sha256> as Mac>::new_from_slice(&self.form_key.0)
            .map(|mut mac| {
                mac.update(p.name.as_bytes());
                hex::encode(mac.finalize().into_bytes())
            })
            .unwrap_or_default()
    }

    /// Whether `given` is `p`'s form token (compared in full).
    pub fn form_token_matches(&self, p: &Principal, given: &str) -> bool {
        let want = self.form_token(p);
        !want.is_empty()
            && want.len() == given.len()
            && want
                .bytes()
                .zip(given.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }

    fn header_name(&self, headers: &HeaderMap) -> Result<Option<String>, Refusal> {
        let Some(h) = &self.trusted_header else {
            return Ok(None);
        };
        let Some(value) = headers.get(h) else {
            return Ok(None);
        };
        let name = value
            .to_str()
            .map(str::trim)
            .map_err(|_| Refusal::Unauthorized("the user header is not text"))?;
        if name.is_empty() || name.len() > MAX_NAME || name.chars().any(char::is_control) {
            return Err(Refusal::Unauthorized(
                "the user header holds no usable name",
            ));
        }
        Ok(Some(name.to_string()))
    }
}

/// The value of cookie `name`.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Nobody, or nobody known, is calling (401).
    Unauthorized(&'static str),
    /// The caller may not do this (403).
    Forbidden(String),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Self::Unauthorized(detail) => (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                Json(json!({"error": "unauthorized", "detail": detail})),
            )
                .into_response(),
            Self::Forbidden(detail) => (
                StatusCode::FORBIDDEN,
                Json(json!({"error": "forbidden", "detail": detail})),
            )
                .into_response(),
        }
    }
}

/// Names the caller of every request (a [`Principal`] extension) or
/// refuses it.
pub(crate) async fn identify(
    State(access): State<Arc<Access>>,
    mut request: Request,
    next: Next,
) -> Response {
    match access.identify(request.headers()) {
        Ok(p) => {
            request.extensions_mut().insert(p);
            next.run(request).await
        }
        // Signing in needs nobody signed in; a stale cookie is no reason
        // to refuse the sign-in page.
        Err(_) if request.uri().path() == "/login" => next.run(request).await,
        Err(refusal) if request.uri().path().starts_with("/api/") => refusal.into_response(),
        Err(refusal) => {
            let detail = match refusal {
                Refusal::Unauthorized(d) => d.to_string(),
                Refusal::Forbidden(d) => d,
            };
            (
                StatusCode::UNAUTHORIZED,
                crate::page::layout(
                    "Sign in",
                    maud::html! {
                        p.error { (detail) }
                        p { a href="/login" { "Sign in" } " with your token." }
                    },
                ),
            )
                .into_response()
        }
    }
}

/// Whether `p` may act (replay, pause, resume) with `headers` as sent: an
/// operator or admin, named by a setting, from this site. A browser
/// carries a proxy's cookie to any site that asks, so a request whose
/// `Origin` is another site, or that a browser marks cross-site, is
/// refused (JSON bodies already need a preflight no one answers).
pub(crate) fn may_act(access: &Access, p: &Principal, headers: &HeaderMap) -> Result<(), Refusal> {
    if !access.names_users() && p.via == Via::Open {
        return Err(Refusal::Forbidden(
            "actions are off: the monitor names no users (set INTOPS_MONITOR_USERS_FILE or INTOPS_MONITOR_TRUSTED_USER_HEADER)".into(),
        ));
    }
    if p.role < Role::Operator {
        return Err(Refusal::Forbidden(format!(
            "{} is a {}; replay, pause and resume need an operator",
            p.name,
            serde_json::to_value(p.role)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        )));
    }
    if cross_site(headers) {
        return Err(Refusal::Forbidden(
            "a request from another site is refused (cross-site request forgery)".into(),
        ));
    }
    Ok(())
}

/// Whether a browser says the request comes from another site.
fn cross_site(headers: &HeaderMap) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site")
        && !matches!(site, "same-origin" | "none")
    {
        return true;
    }
    match (text("origin"), text("host")) {
        (Some(origin), Some(host)) => {
            let origin_host = origin
                .split_once("://")
                .map(|(_, rest)| rest)
                .unwrap_or(origin);
            !origin_host.eq_ignore_ascii_case(host)
        }
        (Some(_), None) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::users::tests::hash;
    use super::*;

    fn access() -> Access {
        let text = format!(
            "[[users]]\nname = \"olga\"\nrole = \"operator\"\ntoken_sha256 = \"{}\"\n[[users]]\nname = \"vic\"\nrole = \"viewer\"\ntoken_sha256 = \"{}\"\n[[users]]\nname = \"ada\"\nrole = \"admin\"\ntoken_sha256 = \"{}\"\n",
            hash("olga-t"),
            hash("vic-t"),
            hash("ada-t")
        );
        Access {
            users: users::parse(&text).expect("users"),
            trusted_header: Some(HeaderName::from_static("x-forwarded-user")),
            ..Access::default()
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).expect("value"));
        }
        h
    }

    #[test]
    fn tokens_and_the_proxy_header_name_the_caller() {
        let a = access();
        let who = |h: &[(&'static str, &str)]| a.identify(&headers(h));
        let olga = who(&[("authorization", "Bearer olga-t")]).expect("olga");
        assert_eq!(
            (olga.name.as_str(), olga.role, olga.via),
            ("olga", Role::Operator, Via::Token)
        );
        // A wrong token is refused, even beside a proxy header.
        assert!(
            who(&[
                ("authorization", "Bearer nope"),
                ("x-forwarded-user", "olga")
            ])
            .is_err()
        );
        // The header names a listed user with their role, others as viewers.
        let olga = who(&[("x-forwarded-user", "olga")]).expect("header");
        assert_eq!((olga.role, olga.via), (Role::Operator, Via::Header));
        assert_eq!(
            who(&[("x-forwarded-user", "zed")]).expect("zed").role,
            Role::Viewer
        );
        assert!(who(&[("x-forwarded-user", " ")]).is_err());
        // Settings made, nobody named: refused.
        assert!(who(&[]).is_err());
    }

    #[test]
    fn only_operators_act_and_only_from_this_site() {
        let a = access();
        let p = |token: &str| {
            a.identify(&headers(&[("authorization", token)]))
                .expect("known")
        };
        let plain = HeaderMap::new();
        assert!(may_act(&a, &p("Bearer olga-t"), &plain).is_ok());
        assert!(may_act(&a, &p("Bearer ada-t"), &plain).is_ok());
        let viewer = may_act(&a, &p("Bearer vic-t"), &plain).expect_err("viewer");
        assert!(
            matches!(&viewer, Refusal::Forbidden(d) if d.contains("vic is a viewer")),
            "{viewer:?}"
        );
        let olga = p("Bearer olga-t");
        let same = headers(&[
            ("origin", "http://mon:9100"),
            ("host", "mon:9100"),
            ("sec-fetch-site", "same-origin"),
        ]);
        assert!(may_act(&a, &olga, &same).is_ok());
        for h in [
            headers(&[("origin", "https://evil.example"), ("host", "mon:9100")]),
            headers(&[("sec-fetch-site", "cross-site")]),
            headers(&[("sec-fetch-site", "same-site")]),
            headers(&[("origin", "null"), ("host", "mon:9100")]),
        ] {
            assert!(may_act(&a, &olga, &h).is_err(), "{h:?}");
        }
    }

    #[test]
    fn with_no_settings_reads_are_open_and_actions_refused() {
        let open = Access::default();
        let anyone = open.identify(&HeaderMap::new()).expect("open");
        assert_eq!(anyone.via, Via::Open);
        let e = may_act(&open, &anyone, &HeaderMap::new()).expect_err("refused");
        assert!(matches!(&e, Refusal::Forbidden(d) if d.contains("INTOPS_MONITOR_USERS_FILE")));
        // The read-only API token never acts either.
        let read_only = Access {
            api_token: Some(Secret::new("r")),
            ..Access::default()
        };
        let reader = read_only
            .identify(&headers(&[("authorization", "Bearer r")]))
            .expect("reader");
        assert!(may_act(&read_only, &reader, &HeaderMap::new()).is_err());
        assert!(read_only.identify(&HeaderMap::new()).is_err());
    }
}
