//! `GET /events/{event_id}`: one event as a timeline (accepted → routed →
//! attempts with status and latency → delivered or dead-lettered), its
//! payload and each request body with the flows file's `redact` fields
//! masked, the target's answer excerpt of each dead letter, the flow
//! version, and the actions the caller's role allows.

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use intops_kafka::ServiceContext;
use maud::{Markup, html};

use super::layout;
use crate::access::{Principal, Role};
use crate::api::Shared;
use crate::bodies::{self, Bodies};
use crate::lineage::{StageView, Trace};

/// The payload and requests of `t`, masked with the current lists.
pub(crate) async fn bodies_of(s: &Shared, ctx: &ServiceContext, t: &Trace) -> Bodies {
    let redact = s.redact.read().map(|r| r.clone()).unwrap_or_default();
    // A broker that does not answer costs the page a few seconds, not a
    // wait per record.
    match tokio::time::timeout(BODIES_WAIT, bodies::read(ctx, t, &redact)).await {
        Ok(b) => b,
        Err(_) => Bodies {
            missing: vec![format!(
                "the payload and requests: the broker did not answer within {} s",
                BODIES_WAIT.as_secs()
            )],
            ..Bodies::default()
        },
    }
}

/// The longest the event page waits for its records.
const BODIES_WAIT: std::time::Duration = std::time::Duration::from_secs(8);

/// `GET /events/{event_id}`.
pub(crate) async fn page(
    State(s): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(event_id): Path<String>,
) -> (StatusCode, Markup) {
    let Some(mut t) = s.trace(&event_id) else {
        return (
            StatusCode::NOT_FOUND,
            layout(
                &format!("Event {event_id}"),
                html! { p.muted { "No such event in the monitor's window (its index holds the newest events only: see the message feed's limits)." } },
            ),
        );
    };
    if let Ok(redact) = s.redact.read() {
        bodies::mask_excerpts(&mut t, &redact);
    }
    let bodies = match &s.ctx {
        Some(ctx) => bodies_of(&s, ctx, &t).await,
        None => Bodies::default(),
    };
    (StatusCode::OK, render(&t, &bodies, &p))
}

fn render(t: &Trace, bodies: &Bodies, p: &Principal) -> Markup {
    layout(
        &format!("Event {}", t.event_id),
        html! {
            p {
                (t.source_id.as_deref().unwrap_or("-")) " · entity key "
                strong { (t.entity_key.as_deref().unwrap_or("-")) }
                " · " (t.event_type.as_deref().unwrap_or("-"))
                @if let Some(tenant) = &t.tenant { " · tenant " (tenant) }
                " · " span class={ "status status-" (crate::lineage::feed::status(t)) } { (crate::lineage::feed::status(t)) }
                " · " a href={ "/api/v1/events/" (t.event_id) "?payload=true" } { "json" }
            }
            h2 { "Timeline" }
            ol.timeline id="timeline" {
                @for st in &t.stages { (step(st)) }
            }
            (table(t))
            @if !t.dead_letters.is_empty() {
                h2 { "Dead letters" }
                table id="event-dead-letters" {
                    tr { th { "failed" } th { "stage" } th { "flow (version)" } th { "class" } th { "error" } th { "HTTP" } th { "target's answer" } th { "stored at" } }
                    @for d in &t.dead_letters {
                        tr {
                            td { (d.failed_at) } td { (d.stage) }
                            td {
                                (d.flow_id.as_deref().unwrap_or("-"))
                                @if let (Some(v), Some(url)) = (&d.flow_version, &d.flow_version_url) {
                                    " " a.muted href=(url) title="this version's definition" { (v) }
                                }
                            }
                            td { (d.error_class) }
                            td { (d.error_message) }
                            td { @if let Some(h) = d.http_status { (h) } }
                            td { code { (d.response_excerpt.as_deref().unwrap_or("")) } }
                            td { (d.original) }
                        }
                    }
                }
                p id="event-actions" {
                    a href={ "/dead-letters/preview?event_id=" (t.event_id) } {
                        @if p.role >= Role::Operator { "Replay its dead letters (preview, then confirm)" } @else { "Preview a replay of its dead letters" }
                    }
                    @if p.role < Role::Operator { " " span.muted { "(" (p.name) " may preview; an operator confirms)" } }
                }
            }
            h2 { "Payload" }
            @match &bodies.payload {
                Some(b) => { pre id="payload" { (b.pretty()) } }
                None => { p.muted { "Not available." } }
            }
            @for r in &bodies.requests {
                h2 { "Request of " (r.flow_id) " to " (r.target_id) }
                p { code { (r.method) " " (r.path) } }
                pre.request { (r.body.pretty()) }
            }
            @for m in &bodies.missing { p.muted { (m) } }
        },
    )
}

/// One step of the timeline.
fn step(s: &StageView) -> Markup {
    html! {
        li data-status=(s.status) {
            strong { (s.stage) " · " (s.status) } " " span.muted { (s.at) }
            @if let Some(f) = &s.flow_id { " · flow " (f) }
            @if let (Some(v), Some(url)) = (&s.flow_version, &s.flow_version_url) { " " a.muted href=(url) title="this version's definition" { (v) } }
            @if let Some(t) = &s.target_id { " → " (t) }
            @if let Some(a) = s.attempts { " · " (a) " attempt(s)" }
            @if let Some(h) = s.http_status { " · HTTP " (h) }
            @if let Some(ms) = s.latency_ms { " · " (ms) " ms after ingest" }
            @if let Some(l) = s.link_action { " · link " (l) }
            @if let Some(r) = &s.record_id { " · record " (r) }
            @if let Some(e) = &s.error { " · " span.error { (e) } }
        }
    }
}

/// The lineage as a table (what the page always showed; tests read it).
fn table(t: &Trace) -> Markup {
    html! {
        table id="lineage" {
            tr {
                th { "at" } th { "stage" } th { "status" } th { "flow" } th { "target" }
                th { "link action" } th { "record id" } th { "http" } th { "attempts" } th { "error" }
            }
            @for s in &t.stages {
                tr data-status=(s.status) {
                    td { (s.at) } td { (s.stage) } td { (s.status) }
                    td {
                        (s.flow_id.as_deref().unwrap_or("-"))
                        @if let (Some(v), Some(url)) = (&s.flow_version, &s.flow_version_url) {
                            " " a.muted href=(url) title="this version's definition" { (v) }
                        }
                    }
                    td { (s.target_id.as_deref().unwrap_or("-")) }
                    td { (s.link_action.unwrap_or("-")) }
                    td { (s.record_id.as_deref().unwrap_or("-")) }
                    td { @match s.http_status { Some(h) => { (h) }, None => { "-" } } }
                    td { @match s.attempts { Some(a) => { (a) }, None => { "-" } } }
                    td { (s.error.as_deref().unwrap_or("")) }
                }
            }
        }
    }
}
