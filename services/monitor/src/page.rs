//! The read-only status page at `/`: every flow with its health and
//! reason, recent dead letters, and the search box (results say what each
//! flow's request did through its link, with the target's record id); and
//! `/events/{event_id}`, one event's lineage. Rendered on the server (maud
//! escapes every value), no scripts; `/` is refreshed by the browser every
//! 15 seconds.

use axum::extract::{Query, State};
use intops_events::now_micros;
use maud::{DOCTYPE, Markup, html};

use crate::api::{Shared, of_tenant};
use crate::health::{FlowHealth, Status};
use crate::lineage::{StageView, Trace};

mod chart;
mod event;
mod feed;
mod flow;

pub(crate) use event::{bodies_of, page as event};
pub(crate) use feed::page as feed;
pub(crate) use flow::{page as flow, periods as flow_periods};

/// The links at the top of every page.
pub(crate) fn nav() -> Markup {
    html! {
        nav {
            a href="/" { "Status" } " · " a href="/feed" { "Message feed" } " · "
            a href="/dead-letters" { "Dead letters" } " · " a href="/targets" { "Targets" } " · "
            a href="/login" { "Sign in" }
        }
    }
}

/// A console page: the shared head and stylesheet, the navigation, then
/// `body`.
pub(crate) fn layout(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "intops — " (title) }
                style { (STYLE) }
            }
            body {
                (nav())
                h1 { (title) }
                (body)
            }
        }
    }
}

/// The pages' content security policy: nothing loads but the page's own
/// stylesheet (allowed by its hash), no scripts, no frames, forms post only
/// here.
pub(crate) fn content_security_policy() -> String {
    static POLICY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        use base64::Engine as _;
        use sha2::Digest as _;
        let hash = base64::engine::general_purpose::STANDARD
            .encode(sha2::Sha256::digest(STYLE.as_bytes()));
        format!(
            "default-src 'none'; style-src 'sha256-{hash}'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        )
    });
    POLICY.clone()
}

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
.error { color: #8a1111; font-weight: 600; }
.status-delivered { background: #dff5e3; color: #135c22; }
.status-dead_lettered { background: #fde0e0; color: #8a1111; }
.status-in_flight, .status-echo, .status-unrouted { background: #eef1f5; color: #1d2733; }
nav { margin-bottom: 1rem; }
ol.timeline li { margin-bottom: .3rem; }
pre { background: #f3f6f9; padding: .6rem; overflow-x: auto; }
.who { float: right; }
fieldset { border: 1px solid #dde3ea; margin-bottom: 1rem; }
button.danger { background: #8a1111; color: #fff; border: 0; padding: .35rem .8rem; border-radius: .25rem; }
.notice { background: #fff2cc; padding: .5rem .8rem; }
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
                (nav())
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
            td { a href={ "/flows/" (f.flow_id) } { (f.flow_id) } " " a.muted href={ "/api/v1/flows/" (f.flow_id) } { "json" } }
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
