//! The monitor's JSON API: flows with their health, one flow, one event's
//! lineage.

use std::sync::{Arc, RwLock};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use intops_events::now_micros;
use serde_json::json;

use crate::health::Health;
use crate::lineage::Lineage;

/// What the handlers read.
#[derive(Debug, Clone)]
pub(crate) struct Shared {
    pub lineage: Arc<RwLock<Lineage>>,
    pub health: Arc<RwLock<Health>>,
}

/// `/api/v1/...` routes.
pub(crate) fn router(shared: Shared) -> Router {
    Router::new()
        .route("/api/v1/flows", get(flows))
        .route("/api/v1/flows/{flow_id}", get(flow))
        .route("/api/v1/events/{event_id}", get(event))
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

async fn flows(State(s): State<Shared>) -> Response {
    match s.health.read() {
        Ok(h) => Json(json!({
            "flows": h.flows(now_micros()),
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

async fn event(State(s): State<Shared>, Path(event_id): Path<String>) -> Response {
    let trace = s
        .lineage
        .read()
        .ok()
        .and_then(|l| l.get(&event_id).cloned());
    match trace {
        Some(t) => Json(t).into_response(),
        None => not_found(format!("no event {event_id} in the monitor's window")),
    }
}
