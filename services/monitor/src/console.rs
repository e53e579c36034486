//! The console's pages for actions: sign-in (`/login`), dead letters
//! (`/dead-letters`: browse with `intops dlq list`'s filters, preview a
//! replay, confirm it, follow its progress) and targets (`/targets`: state
//! and pause or resume with a reason). Plain HTML forms, no scripts: each
//! form that acts carries the caller's form token, and the page offers an
//! action only to a caller who may take it; the handlers check again.

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};

use crate::access::{self, Principal, Refusal};
use crate::actions::Actions;
use crate::page::layout;

mod dead_letters;
mod login;
mod targets;

pub(crate) fn routes(actions: Actions) -> Router {
    Router::new()
        .route("/login", get(login::form).post(login::sign_in))
        .route("/logout", post(login::sign_out))
        .route("/dead-letters", get(dead_letters::list))
        .route("/dead-letters/preview", get(dead_letters::preview))
        .route("/console/replay", post(dead_letters::replay))
        .route("/replays/latest", get(dead_letters::latest))
        .route("/targets", get(targets::list))
        .route("/api/v1/targets", get(targets::api))
        .route(
            "/console/targets/{target_id}/{command}",
            post(targets::command),
        )
        .with_state(actions)
}

/// Who is signed in, for the top of a page, with a sign-out button.
fn who(p: &Principal) -> Markup {
    html! {
        div.who {
            "signed in as " strong { (p.name) } " (" (role(p)) ")"
            @if p.via == access::Via::Cookie {
                form method="post" action="/logout" { button type="submit" { "Sign out" } }
            }
        }
    }
}

fn role(p: &Principal) -> &'static str {
    match p.role {
        access::Role::Viewer => "viewer",
        access::Role::Operator => "operator",
        access::Role::Admin => "admin",
    }
}

/// A page saying why something was refused or failed.
fn problem(status: StatusCode, title: &str, detail: &str) -> Response {
    (
        status,
        layout(title, html! { p.error id="problem" { (detail) } }),
    )
        .into_response()
}

/// Why the caller may not act through a form, as a page; `None` when they
/// may: an operator, from this site, with the form token of the page they
/// were shown.
fn refused_form(a: &Actions, p: &Principal, headers: &HeaderMap, token: &str) -> Option<Response> {
    if let Err(refusal) = access::may_act(&a.access, p, headers) {
        let detail = match refusal {
            Refusal::Unauthorized(d) => d.to_string(),
            Refusal::Forbidden(d) => d,
        };
        return Some(problem(StatusCode::FORBIDDEN, "Refused", &detail));
    }
    if !a.access.form_token_matches(p, token) {
        return Some(problem(
            StatusCode::FORBIDDEN,
            "Refused",
            "the form's token is missing or stale (cross-site request forgery, or the monitor restarted): reload the page and try again",
        ));
    }
    None
}

/// The hidden field that carries the caller's form token.
fn token_field(a: &Actions, p: &Principal) -> Markup {
    html! { input type="hidden" name="form_token" value=(a.access.form_token(p)); }
}

/// A redirect after a form's action (303: the browser then GETs).
fn see(location: &str) -> Response {
    Redirect::to(location).into_response()
}

#[cfg(test)]
mod tests;
