//! `GET /feed`: the message feed as a page — events newest first with a
//! filter form, each row linking to the event's page, and the index's
//! limits stated under the table.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use maud::{DOCTYPE, Markup, html};

use super::STYLE;
use crate::api::Shared;
use crate::lineage::{FeedPage, FeedQuery, STATUSES};

/// `GET /feed?flow=&source=&target=&tenant=&status=&since=&until=&q=`.
pub(crate) async fn page(
    State(s): State<Shared>,
    Query(query): Query<FeedQuery>,
) -> (StatusCode, Markup) {
    let found = match s.lineage.read() {
        Ok(l) => l.feed(&query).map_err(|e| e.0),
        Err(_) => Err("the monitor's index is not readable".to_string()),
    };
    let status = match &found {
        Ok(_) => StatusCode::OK,
        Err(_) => StatusCode::BAD_REQUEST,
    };
    (status, render(&query, &found))
}

fn render(query: &FeedQuery, found: &Result<FeedPage, String>) -> Markup {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "intops — message feed" }
                style { (STYLE) }
            }
            body {
                (super::nav())
                h1 { "Message feed" }
                form method="get" action="/feed" id="feed-filters" {
                    input type="search" name="q" placeholder="event id, entity key, ticket number, record id" value=(text(&query.q));
                    " " input name="flow" placeholder="flow" value=(text(&query.flow));
                    " " input name="source" placeholder="source" value=(text(&query.source));
                    " " input name="target" placeholder="target" value=(text(&query.target));
                    " " input name="tenant" placeholder="tenant" value=(text(&query.tenant));
                    " " select name="status" {
                        option value="" { "any status" }
                        @for st in STATUSES {
                            option value=(st) selected[query.status.as_deref() == Some(st)] { (st) }
                        }
                    }
                    " " input name="since" placeholder="since (2h, RFC 3339)" value=(text(&query.since));
                    " " input name="until" placeholder="until" value=(text(&query.until));
                    " " button type="submit" { "Filter" }
                }
                @match found {
                    Err(e) => p.error { (e) },
                    Ok(page) => (rows(query, page)),
                }
            }
        }
    }
}

fn rows(query: &FeedQuery, page: &FeedPage) -> Markup {
    html! {
        p.muted { (page.total) " event(s) match." }
        table id="feed" {
            tr {
                th { "accepted" } th { "status" } th { "event" } th { "source" } th { "entity key" }
                th { "flows" } th { "targets" } th { "record ids" } th { "tenant" }
            }
            @for r in &page.events {
                tr {
                    td { (r.at.as_deref().unwrap_or("-")) }
                    td { span class={ "status status-" (r.status) } { (r.status) } }
                    td { a href={ "/events/" (r.event_id) } { (r.event_id) } }
                    td { (r.source_id.as_deref().unwrap_or("-")) }
                    td { (r.entity_key.as_deref().unwrap_or("-")) }
                    td { (r.flows.join(", ")) }
                    td { (r.targets.join(", ")) }
                    td { (r.record_ids.join(", ")) }
                    td { (r.tenant.as_deref().unwrap_or("")) }
                }
            }
        }
        p {
            @if page.offset > 0 {
                a href=(link(query, page.offset.saturating_sub(query.limit.unwrap_or(crate::lineage::feed::PAGE).clamp(1, crate::lineage::feed::MAX_PAGE)))) { "← newer" }
                " "
            }
            @if let Some(next) = page.next_offset {
                a href=(link(query, next)) { "older →" }
            }
        }
        p.muted id="index-limits" {
            "The feed shows what the monitor's index holds: " (page.index.held) " of at most "
            (page.index.capacity) " events (INTOPS_MONITOR_MAX_EVENTS), the oldest first seen forgotten first"
            @if let Some(oldest) = &page.index.oldest { "; the oldest held was accepted at " (oldest) }
            ". Older events are in the topics: intops tap, intops dlq list."
        }
    }
}

/// The feed's address with `query`'s filters at `offset`.
fn link(query: &FeedQuery, offset: usize) -> String {
    let mut pairs: Vec<(&str, String)> = Vec::new();
    for (k, v) in [
        ("q", &query.q),
        ("flow", &query.flow),
        ("source", &query.source),
        ("target", &query.target),
        ("tenant", &query.tenant),
        ("status", &query.status),
        ("since", &query.since),
        ("until", &query.until),
    ] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            pairs.push((k, v.to_string()));
        }
    }
    if let Some(l) = query.limit {
        pairs.push(("limit", l.to_string()));
    }
    pairs.push(("offset", offset.to_string()));
    let encoded: Vec<String> = pairs
        .into_iter()
        .map(|(k, v)| {
            format!(
                "{k}={}",
                percent_encoding::utf8_percent_encode(&v, percent_encoding::NON_ALPHANUMERIC)
            )
        })
        .collect();
    format!("/feed?{}", encoded.join("&"))
}
