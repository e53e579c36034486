//! `/login` and `/logout`: a browser signs in with a user's token, kept in
//! an HttpOnly, SameSite=Strict session cookie (the token itself, checked
//! against the users file on every request like a bearer token).

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::html;

use super::{problem, see};
use crate::access::{self, COOKIE};
use crate::actions::Actions;
use crate::page::layout;

/// Hours a sign-in lasts.
const HOURS: u64 = 12;

/// `GET /login`.
pub(super) async fn form(State(a): State<Actions>) -> Response {
    let users = !a.access.users.is_empty();
    layout(
        "Sign in",
        html! {
            @if users {
                form method="post" action="/login" id="login" {
                    label { "Token " input type="password" name="token" autocomplete="current-password" required; }
                    " " button type="submit" { "Sign in" }
                }
                p.muted { "Your token is the one whose SHA-256 is in the monitor's users file (INTOPS_MONITOR_USERS_FILE)." }
            } @else {
                p.muted { "This monitor has no users file: sign-in is off. Reads are open only without access settings; behind an authenticating proxy you are signed in by the proxy." }
            }
        },
    )
    .into_response()
}

#[derive(serde::Deserialize)]
pub(super) struct SignIn {
    token: String,
}

impl std::fmt::Debug for SignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SignIn { token: *** }")
    }
}

/// `POST /login`: a known user's token sets the session cookie.
pub(super) async fn sign_in(
    State(a): State<Actions>,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Response {
    let token = form.token.trim();
    let usable = !token.is_empty()
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b));
    if !usable || access::users::find(&a.access.users, token).is_none() {
        return problem(
            StatusCode::UNAUTHORIZED,
            "Sign in",
            "that token belongs to no user of this monitor",
        );
    }
    let secure = headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let cookie = format!(
        "{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{}",
        HOURS * 3600,
        if secure { "; Secure" } else { "" }
    );
    with_cookie(&cookie, "/")
}

/// `POST /logout`: the cookie is cleared.
pub(super) async fn sign_out() -> Response {
    with_cookie(
        &format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
        "/login",
    )
}

fn with_cookie(cookie: &str, location: &str) -> Response {
    let mut response = see(location);
    match HeaderValue::from_str(cookie) {
        Ok(v) => {
            response.headers_mut().insert(header::SET_COOKIE, v);
            response
        }
        Err(_) => problem(
            StatusCode::BAD_REQUEST,
            "Sign in",
            "that token cannot be kept in a cookie",
        ),
    }
}
