//! The read-only status page at `/`: every flow with its health and
//! reason, recent dead letters, and the search box. Rendered on the server
//! (maud escapes every value), no scripts, refreshed by the browser every
//! 15 seconds.

use axum::extract::{Query, State};
use intops_events::now_micros;
use maud::{DOCTYPE, Markup, html};

use crate::api::Shared;
use crate::health::{FlowHealth, Status};

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
}

/// `GET /`.
pub(crate) async fn index(State(s): State<Shared>, Query(query): Query<PageQuery>) -> Markup {
    let now = now_micros();
    let (flows, dead, unrouted) = match s.health.read() {
        Ok(h) => (
            h.flows(now),
            h.recent_dead().take(20).cloned().collect::<Vec<_>>(),
            h.unrouted(),
        ),
        Err(_) => (Vec::new(), Vec::new(), 0),
    };
    let q = query.q.filter(|q| !q.trim().is_empty());
    let found = match (&q, s.lineage.read()) {
        (Some(q), Ok(l)) => Some(
            l.search(q)
                .into_iter()
                .take(50)
                .map(|t| {
                    (
                        t.event_id.clone(),
                        t.entity_key.clone().unwrap_or_default(),
                        t.stages.first().map(|s| s.at.clone()).unwrap_or_default(),
                        t.stages
                            .last()
                            .map(|s| format!("{} {}", s.stage, s.status))
                            .unwrap_or_default(),
                    )
                })
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
                    input type="search" name="q" placeholder="entity key or ticket number (INC0010023)" value=[q.as_deref()];
                    " "
                    button type="submit" { "Search" }
                }
                @if let (Some(q), Some(found)) = (&q, &found) {
                    h2 { "Events matching “" (q) "”" }
                    @if found.is_empty() {
                        p.muted { "No event in the monitor's window carries it." }
                    } @else {
                        table id="search" {
                            tr { th { "event" } th { "entity key" } th { "accepted" } th { "last stage" } }
                            @for (id, key, at, last) in found {
                                tr {
                                    td { a href={ "/api/v1/events/" (id) } { (id) } }
                                    td { (key) } td { (at) } td { (last) }
                                }
                            }
                        }
                    }
                }
                h2 { "Flows" }
                table id="flows" {
                    tr {
                        th { "flow" } th { "source → target" } th { "health" } th { "reason" }
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
            td { (f.source_id) " → " (f.target_id) }
            td { span class={ "status status-" (status) } { (status) } }
            td { (f.reason) }
            td { (f.since) }
            td { (f.window.delivered) " / " (f.window.dead_lettered) }
            td { @match f.recent.latency_ms.p95 { Some(ms) if ms < i64::MAX => { "≤ " (ms) " ms" }, Some(_) => { "slower than 1 h" }, None => { "-" } } }
            td { @match f.lag { Some(lag) => { (lag) }, None => { "-" } } }
        }
    }
}
