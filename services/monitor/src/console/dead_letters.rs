//! `/dead-letters`: browse with `intops dlq list`'s filters, preview the
//! replay of the filtered set (a dry run), confirm it (at most the
//! previewed count), and follow it at `/replays/latest`.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use intops_ops::dlq::{Filters, Replay, Report, summarize};
use maud::{Markup, html};

use super::{problem, refused_form, see, token_field, who};
use crate::access::{self, Principal};
use crate::actions::{Actions, from_strings, progress};
use crate::page::layout;

/// The filters, in the form's order.
const FIELDS: [(&str, &str); 10] = [
    ("stage", "transform or delivery"),
    ("flow", "flow"),
    ("target", "target"),
    ("tenant", "tenant"),
    ("error_class", "error class (http_4xx, mapping, ...)"),
    ("status", "HTTP status"),
    ("since", "since (2h, RFC 3339)"),
    ("until", "until"),
    ("key", "key (source:entity)"),
    ("event_id", "event id"),
];
/// Dead letters listed on the page.
const SHOWN: usize = 50;

/// The filters given (empty values dropped) and as [`Filters`].
fn filters_of(
    query: &BTreeMap<String, String>,
) -> Result<(BTreeMap<String, String>, Filters), String> {
    let given: BTreeMap<String, String> = query
        .iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| (k.clone(), v.trim().to_string()))
        .collect();
    let filters = from_strings(given.clone())?;
    Ok((given, filters))
}

fn filter_form(given: &BTreeMap<String, String>) -> Markup {
    html! {
        form method="get" action="/dead-letters" id="dlq-filters" {
            @for (name, hint) in FIELDS {
                input name=(name) placeholder=(hint) value=[given.get(name)];
                " "
            }
            button type="submit" { "Filter" }
        }
    }
}

fn query_string(given: &BTreeMap<String, String>) -> String {
    given
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}={}",
                percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// `GET /dead-letters`.
pub(super) async fn list(
    State(a): State<Actions>,
    Extension(p): Extension<Principal>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let (given, filters) = match filters_of(&query) {
        Ok(f) => f,
        Err(e) => return problem(StatusCode::BAD_REQUEST, "Dead letters", &e),
    };
    let Some(ctx) = &a.ctx else {
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "Dead letters",
            "the monitor has no broker connection",
        );
    };
    let summary = match summarize(ctx, &filters, SHOWN, &progress::Log).await {
        Ok(s) => s,
        Err(e) => return problem(StatusCode::BAD_GATEWAY, "Dead letters", &format!("{e:#}")),
    };
    layout(
        "Dead letters",
        html! {
            (who(&p))
            (filter_form(&given))
            p id="dlq-total" { (summary.total) " dead letter(s), " (summary.pending) " not replayed yet." }
            @if summary.pending > 0 {
                p { a id="preview-replay" href={ "/dead-letters/preview?" (query_string(&given)) } { "Preview the replay of these" } }
            }
            @if !summary.groups.is_empty() {
                table id="dlq-groups" {
                    tr { th { "stage" } th { "flow" } th { "target" } th { "error" } th { "count" } th { "pending" } th { "oldest" } th { "newest" } }
                    @for g in &summary.groups {
                        tr {
                            td { (g.stage) } td { (g.flow.as_deref().unwrap_or("-")) } td { (g.target.as_deref().unwrap_or("-")) }
                            td { (g.error_class) } td { (g.count) } td { (g.pending) } td { (g.oldest) } td { (g.newest) }
                        }
                    }
                }
            }
            h2 { "Newest" }
            table id="dlq-letters" {
                tr { th { "failed" } th { "event" } th { "flow" } th { "target" } th { "error" } th { "HTTP" } th { "replays" } th { "replayed" } }
                @for l in &summary.letters {
                    tr {
                        td { (l.failed_at) }
                        td { @if let Some(e) = &l.event_id { a href={ "/events/" (e) } { (e) } } @else { "-" } }
                        td { (l.flow.as_deref().unwrap_or("-")) }
                        td { (l.target.as_deref().unwrap_or("-")) }
                        td { (l.error_class) ": " (l.error_message) }
                        td { (l.http_status.map(|s| s.to_string()).unwrap_or_default()) }
                        td { (l.replay_count) }
                        td { @if l.replayed { "yes" } @else { "no" } }
                    }
                }
            }
        },
    )
    .into_response()
}

/// `GET /dead-letters/preview`: the dry run, and for an operator the
/// confirm button.
pub(super) async fn preview(
    State(a): State<Actions>,
    Extension(p): Extension<Principal>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let (given, filters) = match filters_of(&query) {
        Ok(f) => f,
        Err(e) => return problem(StatusCode::BAD_REQUEST, "Replay preview", &e),
    };
    let Some(ctx) = a.ctx.clone() else {
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "Replay preview",
            "the monitor has no broker connection",
        );
    };
    let (request_since, request_until) = (filters.since, filters.until);
    let request = Replay {
        filters,
        dry_run: true,
        again: false,
        rate: 1000,
        max_replays: 5,
        operator: p.name.clone(),
    };
    let dry = match a.replays.run(ctx, request).await {
        Ok(Report::DryRun(d)) => d,
        Ok(Report::Done(_)) => {
            return problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Replay preview",
                "a preview wrote records",
            );
        }
        Err(progress::RunError::Failed(e)) => {
            return problem(StatusCode::BAD_GATEWAY, "Replay preview", &format!("{e:#}"));
        }
        Err(progress::RunError::Busy(id)) => {
            return problem(
                StatusCode::CONFLICT,
                "Replay preview",
                &format!("replay {id} is running"),
            );
        }
    };
    let may_act = access::may_act(&a.access, &p, &HeaderMap::new()).is_ok();
    let sendable = dry.would_replay + dry.would_park;
    // The confirm replays what was previewed: a time given as a duration
    // ago (`2h`) is fixed to the instant the preview used.
    let mut confirmed = given.clone();
    for (name, at) in [("since", request_since), ("until", request_until)] {
        if let Some(at) = at {
            confirmed.insert(name.to_string(), intops_ops::when::format(at));
        }
    }
    layout(
        "Replay preview",
        html! {
            (who(&p))
            p id="preview-counts" {
                (dry.selected) " selected: " (dry.would_replay) " would be replayed, " (dry.would_park)
                " parked (replayed too often), " (dry.skipped_already_replayed) " skipped as already replayed, "
                (dry.unreplayable) " unreplayable. Nothing has been written."
            }
            @if !dry.groups.is_empty() {
                table id="preview-groups" {
                    tr { th { "flow" } th { "target" } th { "error" } th { "count" } }
                    @for g in &dry.groups { tr { td { (g.flow) } td { (g.target) } td { (g.error_class) } td { (g.count) } } }
                }
            }
            @if !dry.first.is_empty() {
                h2 { "First records" }
                ul { @for line in &dry.first { li { code { (line) } } } }
            }
            @if sendable == 0 {
                p.muted { "Nothing to replay." }
            } @else if may_act {
                form method="post" action="/console/replay" id="confirm-replay" {
                    @for (k, v) in &confirmed { input type="hidden" name=(k) value=(v); }
                    // At most the letters the preview selected (those it
                    // would skip as unreplayable count towards the limit).
                    input type="hidden" name="expect" value=(dry.selected);
                    (token_field(&a, &p))
                    button.danger type="submit" { "Replay " (sendable) " dead letter(s)" }
                }
            } @else {
                p.notice id="not-allowed" { (p.name) " is a " (super::role(&p)) ": replaying needs an operator." }
            }
            p { a href={ "/dead-letters?" (query_string(&given)) } { "Back to the dead letters" } }
        },
    )
    .into_response()
}

/// `POST /console/replay`: the confirmed replay, at most the previewed
/// count; then its progress page.
pub(super) async fn replay(
    State(a): State<Actions>,
    Extension(p): Extension<Principal>,
    headers: HeaderMap,
    Form(mut form): Form<BTreeMap<String, String>>,
) -> Response {
    let token = form.remove("form_token").unwrap_or_default();
    if let Some(refused) = refused_form(&a, &p, &headers, &token) {
        return refused;
    }
    let expect = form.remove("expect").and_then(|n| n.parse::<usize>().ok());
    let (_, mut filters) = match filters_of(&form) {
        Ok(f) => f,
        Err(e) => return problem(StatusCode::BAD_REQUEST, "Replay", &e),
    };
    let Some(expect) = expect.filter(|n| *n > 0) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "Replay",
            "the form names no previewed count: preview the replay first",
        );
    };
    filters.limit = Some(filters.limit.map_or(expect, |l| l.min(expect)));
    let Some(ctx) = a.ctx.clone() else {
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "Replay",
            "the monitor has no broker connection",
        );
    };
    let request = Replay {
        filters,
        dry_run: false,
        again: false,
        rate: 1000,
        max_replays: 5,
        operator: p.name.clone(),
    };
    match a.replays.start(ctx, request) {
        Ok(_) => see("/replays/latest"),
        Err(progress::RunError::Busy(id)) => problem(
            StatusCode::CONFLICT,
            "Replay",
            &format!("replay {id} is running: one at a time"),
        ),
        Err(progress::RunError::Failed(e)) => {
            problem(StatusCode::BAD_GATEWAY, "Replay", &format!("{e:#}"))
        }
    }
}

/// `GET /replays/latest`: the replay running (refreshed every 2 s) or
/// last run.
pub(super) async fn latest(State(a): State<Actions>) -> Response {
    let l = a.replays.latest();
    let body = html! {
        @if l.running { meta http-equiv="refresh" content="2"; }
        p id="replay-state" {
            @if l.running { "Running" } @else if l.error.is_some() { "Failed" } @else if l.finished_at.is_some() { "Finished" } @else { "No replay has run in this monitor." }
            @if let Some(id) = &l.replay_id { ": replay " code { (id) } }
            @if let Some(op) = &l.operator { " by " (op) }
        }
        p id="replay-counts" { (l.sent) " sent, " (l.parked) " parked." }
        @if let Some(e) = &l.error { p.error { (e) } }
        @if let Some(r) = &l.result { pre { (serde_json::to_string_pretty(r).unwrap_or_default()) } }
        @if !l.warnings.is_empty() { h2 { "Skipped" } ul { @for w in &l.warnings { li { (w) } } } }
        p { a href="/dead-letters" { "Dead letters" } }
    };
    layout("Replay", body).into_response()
}
