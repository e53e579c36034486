//! The read-only status page at `/`: every flow with its health and
//! reason, recent dead letters, and the search box (results say what each
//! flow's request did through its link, with the target's record id); and
//! `/events/{event_id}`, one event's lineage. Rendered on the server (maud
//! escapes every value), no scripts; `/` is refreshed by the browser every
//! 15 seconds.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use intops_events::now_micros;
use maud::{DOCTYPE, Markup, html};

use crate::api::{Shared, of_tenant};
use crate::health::{FlowHealth, Status};
use crate::lineage::{StageView, Trace};

const STYLE: &str = "
body { font-family: system-ui, sans-serif; margin: 2rem; color: #1d2733; }
table { border-collapse: collapse; margin-bottom: 2rem; width: 100%; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid #dde3ea; vertical-align: top; }
th { background: #f3f6f9; }
.status { font-weight: 600; padding: .1rem .45rem; border-radius: .25rem; }
.status-healthy { background: #dff5e3; color: #135c22; }
.status-degraded { background: #fff2cc; color: #7a5200; }
.status-failing { background: #fde0e0; color: #8a1111; }
.muted { color: #6b7785; }
form { margin-bottom: 2rem; }
input[type=search] { width: 24rem; padding: .3rem; }
";

/// `?q=` searches as `/api/v1/search` does.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct PageQuery {
    q: Option<String>,
    /// Only this tenant's flows, dead letters and search results.
    tenant: Option<String>,
}

/// `GET /`.
pub(crate) async fn index(State(s): State<Shared>, Query(query): Query<PageQuery>) -> Markup {
    let now = now_micros();
    let tenant = query.tenant.as_deref().filter(|t| !t.is_empty());
    let (all_flows, dead, unrouted) = match s.health.read() {
        Ok(h) => (
            h.flows(now),
            h.recent_dead().cloned().collect::<Vec<_>>(),
            h.unrouted(),
        ),
        Err(_) => (Vec::new(), Vec::new(), 0),
    };
    let mut tenants: Vec<&str> = all_flows
        .iter()
        .filter_map(|f| f.owner.tenant.as_deref())
        .collect();
    tenants.sort_unstable();
    tenants.dedup();
    let tenants: Vec<String> = tenants.into_iter().map(str::to_string).collect();
    let flows: Vec<FlowHealth> = all_flows
        .into_iter()
        .filter(|f| of_tenant(tenant, f.owner.tenant.as_deref()))
        .collect();
    let dead: Vec<_> = dead
        .into_iter()
        .filter(|d| of_tenant(tenant, d.tenant.as_deref()))
        .take(20)
        .collect();
    let q = query.q.filter(|q| !q.trim().is_empty());
    let found = match (&q, s.lineage.read()) {
        (Some(q), Ok(l)) => Some(
            l.search(q)
                .into_iter()
                .filter(|t| of_tenant(tenant, t.tenant.as_deref()))
                .take(50)
                .map(|t| Found::of(t, q))
                .collect::<Vec<_>>(),
        ),
        _ => None,
    };
    let failing = flows.iter().filter(|f| f.status == Status::Failing).count();
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="refresh" content="15";
                title { "intops monitor" @if failing > 0 { " — " (failing) " failing" } }
                style { (STYLE) }
            }
            body {
                h1 { "intops monitor" }
                form method="get" action="/" {
                    input type="search" name="q" placeholder="entity key, ticket number or record id (INC0010023, OPS-12)" value=[q.as_deref()];
                    @if !tenants.is_empty() {
                        " "
                        select name="tenant" {
                            option value="" { "every tenant" }
                            @for t in &tenants {
                                option value=(t) selected[tenant == Some(t.as_str())] { (t) }
                            }
                        }
                    }
                    " "
                    button type="submit" { "Search" }
                }
                @if let (Some(q), Some(found)) = (&q, &found) {
                    h2 { "Events matching “" (q) "”" }
                    @if found.is_empty() {
                        p.muted { "No event in the monitor's window carries it." }
                    } @else {
                        table id="search" {
                            tr {
                                th { "event" } th { "entity key" } th { "found by" } th { "accepted" }
                                th { "last stage" } th { "link (action, record id)" }
                            }
                            @for f in found {
                                tr {
                                    td {
                                        a href={ "/events/" (f.event_id) } { (f.event_id) }
                                        " " a.muted href={ "/api/v1/events/" (f.event_id) } { "json" }
                                    }
                                    td { (f.entity_key) } td { (f.matched_by) } td { (f.at) } td { (f.last) }
                                    td { @for l in &f.links { div { (l) } } }
                                }
                            }
                        }
                    }
                }
                h2 { "Flows" }
                table id="flows" {
                    tr {
                        th { "flow" } th { "owner" } th { "source → target" } th { "health" } th { "reason" }
                        th { "since" } th { "delivered / dead-lettered (window)" } th { "p95" } th { "lag" }
                    }
                    @for f in &flows { (flow_row(f)) }
                }
                p.muted { (unrouted) " event(s) routed by no flow in the window." }
                h2 { "Recent dead letters" }
                @if dead.is_empty() {
                    p.muted { "None in the window." }
                } @else {
                    table id="dead-letters" {
                        tr { th { "at" } th { "stage" } th { "flow" } th { "target" } th { "error" } th { "event" } }
                        @for d in &dead {
                            tr {
                                td { (d.at) } td { (d.stage) }
                                td { (d.flow_id.as_deref().unwrap_or("-")) }
                                td { (d.target_id.as_deref().unwrap_or("-")) }
                                td { (d.error.as_deref().unwrap_or("")) }
                                td { a href={ "/api/v1/events/" (d.event_id) } { (d.event_id) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn flow_row(f: &FlowHealth) -> Markup {
    let status = f.status.as_str();
    html! {
        tr id={ "flow-" (f.flow_id) } data-status=(status) {
            td { a href={ "/api/v1/flows/" (f.flow_id) } { (f.flow_id) } }
            td {
                (f.owner.owner.as_deref().unwrap_or("-"))
                @if let Some(tenant) = &f.owner.tenant { br; span.muted { "tenant " (tenant) } }
            }
            td { (f.source_id) " → " (f.target_id) }
            td { span class={ "status status-" (status) } { (status) } }
            td { (f.reason) }
            td { (f.since) }
            td {
                (f.window.delivered) " / " (f.window.dead_lettered)
                @if f.window.echoes > 0 { " " span.muted { "· " (f.window.echoes) " echo" } }
                @if f.window.no_link > 0 { " " span.muted { "· " (f.window.no_link) " no link" } }
            }
            td { @match f.recent.latency_ms.p95 { Some(ms) if ms < i64::MAX => { "≤ " (ms) " ms" }, Some(_) => { "slower than 1 h" }, None => { "-" } } }
            td { @match f.lag { Some(lag) => { (lag) }, None => { "-" } } }
        }
    }
}

/// One search result as the page lists it.
#[derive(Debug)]
struct Found {
    event_id: String,
    entity_key: String,
    matched_by: &'static str,
    at: String,
    last: String,
    /// `create OPS-12 (snow-p1-to-jira)` per link result.
    links: Vec<String>,
}

impl Found {
    fn of(t: &Trace, q: &str) -> Self {
        Self {
            event_id: t.event_id.clone(),
            entity_key: t.entity_key.clone().unwrap_or_default(),
            matched_by: t.matched_by(q),
            at: t.stages.first().map(|s| s.at.clone()).unwrap_or_default(),
            last: t
                .stages
                .last()
                .map(|s| format!("{} {}", s.stage, s.status))
                .unwrap_or_default(),
            links: t.link_results().map(link_text).collect(),
        }
    }
}

/// `create OPS-12 (snow-p1-to-jira)`; `no_link (jira-to-snow)`.
fn link_text(s: &StageView) -> String {
    let mut text = s.link_action.unwrap_or_default().to_string();
    if let Some(id) = &s.record_id {
        text.push(' ');
        text.push_str(id);
    }
    if let Some(flow) = &s.flow_id {
        text.push_str(&format!(" ({flow})"));
    }
    text
}

/// `GET /events/{event_id}`: one event's lineage as a table (the page's
/// form of `/api/v1/events/{event_id}`).
pub(crate) async fn event(
    State(s): State<Shared>,
    Path(event_id): Path<String>,
) -> (StatusCode, Markup) {
    let trace = s
        .lineage
        .read()
        .ok()
        .and_then(|l| l.get(&event_id).cloned());
    let status = if trace.is_some() {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    (status, event_page(&event_id, trace.as_ref()))
}

fn event_page(event_id: &str, trace: Option<&Trace>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "intops monitor — event " (event_id) }
                style { (STYLE) }
            }
            body {
                p { a href="/" { "← intops monitor" } }
                h1 { "Event " (event_id) }
                @match trace {
                    None => { p.muted { "No such event in the monitor's window." } }
                    Some(t) => {
                        p {
                            (t.source_id.as_deref().unwrap_or("-")) " · entity key "
                            strong { (t.entity_key.as_deref().unwrap_or("-")) }
                            " · " (t.event_type.as_deref().unwrap_or("-")) " · "
                            a href={ "/api/v1/events/" (t.event_id) } { "json" }
                        }
                        table id="lineage" {
                            tr {
                                th { "at" } th { "stage" } th { "status" } th { "flow" } th { "target" }
                                th { "link action" } th { "record id" } th { "http" } th { "attempts" } th { "error" }
                            }
                            @for st in &t.stages { (stage_row(st)) }
                        }
                        @if !t.dead_letters.is_empty() {
                            h2 { "Dead letters" }
                            table id="event-dead-letters" {
                                tr { th { "failed" } th { "stage" } th { "flow" } th { "class" } th { "error" } th { "original" } }
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
                                        td { (d.error_message) } td { (d.original) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn stage_row(s: &StageView) -> Markup {
    html! {
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
