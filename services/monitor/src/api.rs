//! The monitor's JSON API (flows with their health, one flow, one event's
//! lineage, search) and the status page's routes (`/`, `/events/{id}`).

use std::sync::{Arc, RwLock};

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use intops_events::now_micros;
use intops_kafka::ServiceContext;
use serde_json::json;

use crate::health::Health;
use crate::lineage::Lineage;

/// What the handlers read.
#[derive(Debug, Clone)]
pub(crate) struct Shared {
    pub lineage: Arc<RwLock<Lineage>>,
    pub health: Arc<RwLock<Health>>,
    /// Reads `<prefix>.flow-versions` for `/api/v1/flow-versions/{v}`
    /// and the records behind the event page
    /// (`None` in tests without a broker).
    pub ctx: Option<ServiceContext>,
    /// The flows file's `redact` lists (replaced on reload).
    pub redact: Arc<RwLock<crate::bodies::Redactions>>,
}

impl Shared {
    /// A copy of the trace of `event_id`, when the index holds it.
    pub(crate) fn trace(&self, event_id: &str) -> Option<crate::lineage::Trace> {
        self.lineage
            .read()
            .ok()
            .and_then(|l| l.get(event_id).cloned())
    }
}

/// `/` and `/api/v1/...` routes (the console's actions among them), each
/// request's caller named by [`crate::access`] first; every answer carries
/// the pages' security headers.
pub(crate) fn router(shared: Shared, actions: crate::actions::Actions) -> Router {
    let access = actions.access.clone();
    routes(shared)
        .merge(crate::console::routes(actions.clone()))
        .merge(crate::actions::routes(actions))
        .layer(middleware::from_fn_with_state(
            access,
            crate::access::identify,
        ))
        .layer(middleware::from_fn(security_headers))
}

/// A strict content security policy (nothing but the page's own inline
/// style, no scripts, no frames, forms only to this site), no MIME
/// sniffing, a referrer only to this site (with none at all, browsers send
/// `Origin: null` on form posts and the console's forms would be refused).
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    if let Ok(policy) = HeaderValue::from_str(&crate::page::content_security_policy()) {
        h.insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

fn routes(shared: Shared) -> Router {
    Router::new()
        .route("/", get(crate::page::index))
        .route("/events/{event_id}", get(crate::page::event))
        .route("/feed", get(crate::page::feed))
        .route("/flows/{flow_id}", get(crate::page::flow))
        .route(
            "/api/v1/flows/{flow_id}/periods",
            get(crate::page::flow_periods),
        )
        .route("/api/v1/feed", get(feed))
        .route("/api/v1/flows", get(flows))
        .route("/api/v1/flows/{flow_id}", get(flow))
        .route("/api/v1/events/{event_id}", get(event))
        .route("/api/v1/search", get(search))
        .route("/api/v1/flow-versions/{version}", get(flow_version))
        .with_state(shared)
}

fn not_found(detail: String) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": "not_found", "detail": detail})),
    )
        .into_response()
}

fn unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"error": "unavailable", "detail": "monitor state is not readable"})),
    )
        .into_response()
}

/// `?tenant=` keeps one tenant's flows.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct FlowsQuery {
    tenant: Option<String>,
}

async fn flows(State(s): State<Shared>, Query(query): Query<FlowsQuery>) -> Response {
    match s.health.read() {
        Ok(h) => Json(json!({
            "flows": h
                .flows(now_micros())
                .into_iter()
                .filter(|f| of_tenant(query.tenant.as_deref(), f.owner.tenant.as_deref()))
                .collect::<Vec<_>>(),
            "unrouted": h.unrouted(),
        }))
        .into_response(),
        Err(_) => unavailable(),
    }
}

async fn flow(State(s): State<Shared>, Path(flow_id): Path<String>) -> Response {
    let Ok(h) = s.health.read() else {
        return unavailable();
    };
    match h.flow(&flow_id, now_micros()) {
        Some(f) => {
            let target = h.target(&f.target_id);
            Json(json!({"flow": f, "target": target})).into_response()
        }
        None => not_found(format!("no flow {flow_id} in the flows file")),
    }
}

/// The definition of a flow version (a hash from lineage or a dead
/// letter), read from `<prefix>.flow-versions` when asked.
async fn flow_version(State(s): State<Shared>, Path(version): Path<String>) -> Response {
    let Some(ctx) = &s.ctx else {
        return unavailable();
    };
    let kept = match intops_kafka::flow_versions::read(ctx).await {
        Ok(kept) => kept,
        Err(e) => {
            tracing::warn!(error = %e, "reading flow versions failed");
            return unavailable();
        }
    };
    let found: Vec<_> = kept
        .into_values()
        .filter(|v| v.version.eq_ignore_ascii_case(&version))
        .collect();
    if found.is_empty() {
        return not_found(format!(
            "no flow version {version} on {}",
            ctx.topics.flow_versions()
        ));
    }
    Json(json!({ "versions": found })).into_response()
}

/// `?q=` with optional `limit` (default 20, at most 100) and `offset`.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct SearchQuery {
    q: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
    /// Only this tenant's events.
    tenant: Option<String>,
}

/// Whether something of `have` passes the `?tenant=` filter `want`.
pub(crate) fn of_tenant(want: Option<&str>, have: Option<&str>) -> bool {
    want.is_none_or(|w| w.is_empty() || have == Some(w))
}

async fn search(State(s): State<Shared>, Query(query): Query<SearchQuery>) -> Response {
    let Some(q) = query.q.filter(|q| !q.trim().is_empty()) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "bad_request", "detail": "give the entity key, a business key (a ticket number) or a target's record id as ?q="})),
        )
            .into_response();
    };
    let limit = query.limit.unwrap_or(20).clamp(1, 100);
    let offset = query.offset.unwrap_or(0);
    let Ok(lineage) = s.lineage.read() else {
        return unavailable();
    };
    let found: Vec<_> = lineage
        .search(&q)
        .into_iter()
        .filter(|t| of_tenant(query.tenant.as_deref(), t.tenant.as_deref()))
        .collect();
    let total = found.len();
    let events: Vec<_> = found
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|t| {
            json!({
                "event_id": t.event_id,
                "source_id": t.source_id,
                "entity_key": t.entity_key,
                "event_type": t.event_type,
                "tenant": t.tenant,
                "matched_by": t.matched_by(&q),
                "at": t.stages.first().map(|s| s.at.clone()),
                "last": t.stages.last().map(|s| json!({"stage": s.stage, "status": s.status, "flow_id": s.flow_id, "target_id": s.target_id, "link_action": s.link_action, "record_id": s.record_id})),
                "links": t.link_results().map(|s| json!({"flow_id": s.flow_id, "target_id": s.target_id, "status": s.status, "link_action": s.link_action, "record_id": s.record_id, "at": s.at})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let next = (offset + events.len() < total).then_some(offset + events.len());
    Json(json!({"query": q, "total": total, "offset": offset, "next_offset": next, "events": events}))
        .into_response()
}

/// `GET /api/v1/feed`: events newest first, filtered (the `/feed` page's
/// data; [`crate::lineage::feed`]).
async fn feed(State(s): State<Shared>, Query(query): Query<crate::lineage::FeedQuery>) -> Response {
    let Ok(lineage) = s.lineage.read() else {
        return unavailable();
    };
    match lineage.feed(&query) {
        Ok(page) => Json(page).into_response(),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "bad_request", "detail": e.0})),
        )
            .into_response(),
    }
}

/// `?payload=true` adds the payload and request bodies (masked).
#[derive(Debug, serde::Deserialize)]
pub(crate) struct EventQuery {
    #[serde(default)]
    payload: bool,
}

async fn event(
    State(s): State<Shared>,
    Path(event_id): Path<String>,
    Query(query): Query<EventQuery>,
) -> Response {
    let Some(mut t) = s.trace(&event_id) else {
        return not_found(format!("no event {event_id} in the monitor's window"));
    };
    if let Ok(redact) = s.redact.read() {
        crate::bodies::mask_excerpts(&mut t, &redact);
    }
    let mut out = serde_json::to_value(&t).unwrap_or_default();
    if query.payload
        && let Some(ctx) = &s.ctx
    {
        let bodies = crate::page::bodies_of(&s, ctx, &t).await;
        if let (Some(o), Ok(serde_json::Value::Object(b))) =
            (out.as_object_mut(), serde_json::to_value(&bodies))
        {
            o.extend(b);
        }
    }
    Json(out).into_response()
}

#[cfg(test)]
pub(crate) mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;
    use crate::access::Access;
    use crate::actions::Actions;
    use intops_runtime::Secret;

    /// The actions of a monitor without a broker, with `access`.
    pub(crate) fn actions(access: Access) -> Actions {
        Actions {
            access: Arc::new(access),
            ctx: None,
            health: shared().health,
            replays: crate::actions::Replays::default(),
        }
    }

    fn open() -> Actions {
        actions(Access::default())
    }

    fn guarded(token: &str) -> Actions {
        actions(Access {
            api_token: Some(Secret::new(token)),
            ..Access::default()
        })
    }

    pub(crate) fn shared() -> Shared {
        let flows = crate::test_flows::one_flow("");
        Shared {
            ctx: None,
            redact: Arc::default(),
            lineage: Arc::new(RwLock::new(Lineage::new(10))),
            health: Arc::new(RwLock::new(Health::new(
                &flows,
                std::time::Duration::from_secs(60),
                now_micros(),
            ))),
        }
    }

    async fn body(router: Router, uri: &str) -> (StatusCode, String) {
        let answer = router
            .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
            .await
            .expect("answer");
        let status = answer.status();
        let bytes = axum::body::to_bytes(answer.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, String::from_utf8(bytes.to_vec()).expect("utf-8"))
    }

    /// A ServiceNow event created as Jira OPS-12, and a Jira comment on
    /// OPS-12 written back to it.
    fn conversation() -> Shared {
        use intops_events::{IntegrationEvent, LinkAction, Outcome, OutcomeStatus, Stage};
        let s = shared();
        let event = |id: &str, source: &str, key: &str, at: i64| IntegrationEvent {
            tenant: None,
            event_id: id.into(),
            source_id: source.into(),
            event_type: "updated".into(),
            entity_key: key.into(),
            occurred_at: at,
            ingested_at: at,
            correlation_id: None,
            attributes: Default::default(),
            payload: "{}".into(),
        };
        let outcome = |id: &str, flow: &str, action, record: &str, at| Outcome {
            tenant: None,
            event_id: id.into(),
            stage: Stage::Delivery,
            status: OutcomeStatus::Delivered,
            flow_id: Some(flow.into()),
            target_id: Some("jira".into()),
            attempts: 1,
            http_status: Some(201),
            latency_ms: Some(5),
            error: None,
            at,
            link_action: Some(action),
            record_id: Some(record.into()),
        };
        let mut l = s.lineage.write().expect("lineage");
        l.on_event(&event("e1", "servicenow", "sys-1", 1_000));
        l.on_outcome(&outcome(
            "e1",
            "snow-p1-to-jira",
            LinkAction::Create,
            "OPS-12",
            2_000,
        ));
        l.on_event(&event("e2", "jira", "OPS-12", 3_000));
        l.on_outcome(&outcome(
            "e2",
            "jira-to-snow",
            LinkAction::WriteBack,
            "sys-1",
            4_000,
        ));
        drop(l);
        s
    }

    #[tokio::test]
    async fn search_finds_the_conversation_by_either_side_and_shows_its_links() {
        let router = router(conversation(), open());
        let (status, text) = body(router.clone(), "/api/v1/search?q=OPS-12").await;
        assert_eq!(status, StatusCode::OK);
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(v["total"], 2, "{v}");
        assert_eq!(v["events"][0]["event_id"], "e2");
        assert_eq!(v["events"][0]["matched_by"], "entity_key");
        assert_eq!(v["events"][1]["event_id"], "e1");
        assert_eq!(v["events"][1]["matched_by"], "record_id");
        assert_eq!(v["events"][1]["links"][0]["link_action"], "create");
        assert_eq!(v["events"][1]["links"][0]["record_id"], "OPS-12");
        assert_eq!(v["events"][1]["last"]["link_action"], "create");
        let (_, text) = body(router.clone(), "/api/v1/search?q=sys-1").await;
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(
            v["total"], 2,
            "the source's key and the write-back's record: {v}"
        );

        let (status, page) = body(router.clone(), "/?q=ops-12").await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains("create OPS-12 (snow-p1-to-jira)"), "{page}");
        assert!(page.contains("write_back sys-1 (jira-to-snow)"), "{page}");
        assert!(page.contains(r#"href="/events/e1""#), "{page}");
        assert!(page.contains(r#"href="/api/v1/events/e1""#), "{page}");

        let (status, page) = body(router.clone(), "/events/e1").await;
        assert_eq!(status, StatusCode::OK);
        let lineage = &page[page.find(r#"id="lineage""#).expect("lineage table")..];
        assert!(
            lineage.contains("<td>create</td><td>OPS-12</td>"),
            "{lineage}"
        );
        let (status, _) = body(router, "/events/nope").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    async fn status(router: Router, uri: &str, auth: Option<&str>) -> StatusCode {
        let mut request = Request::get(uri);
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        router
            .oneshot(request.body(Body::empty()).expect("request"))
            .await
            .expect("answer")
            .status()
    }

    #[tokio::test]
    async fn a_token_guards_the_page_and_the_api() {
        let router = router(shared(), guarded("s3cret"));
        for uri in ["/", "/api/v1/flows", "/api/v1/search?q=x"] {
            assert_eq!(
                status(router.clone(), uri, None).await,
                StatusCode::UNAUTHORIZED,
                "{uri}"
            );
            assert_eq!(
                status(router.clone(), uri, Some("Bearer wrong")).await,
                StatusCode::UNAUTHORIZED,
                "{uri}"
            );
            assert_eq!(
                status(router.clone(), uri, Some("Bearer s3cret")).await,
                StatusCode::OK,
                "{uri}"
            );
        }
        let open = super::router(shared(), open());
        assert_eq!(
            status(open.clone(), "/api/v1/flows/app-to-crm", None).await,
            StatusCode::OK
        );
        assert_eq!(
            status(open.clone(), "/api/v1/flows/nope", None).await,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            status(open, "/api/v1/search", None).await,
            StatusCode::BAD_REQUEST
        );
    }
}
