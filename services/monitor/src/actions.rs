//! The console's API for dead letters and targets: browse dead letters,
//! replay them (the same replay as `intops dlq replay`, from
//! `intops_ops`), pause and resume targets; each action needs an operator
//! and is written to the audit topic under the caller's name.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use intops_kafka::ServiceContext;
use intops_ops::dlq::{Filters, Replay, summarize};
use intops_ops::target::{self, Command};
use serde_json::{Value, json};

use crate::access::{self, Access, Principal};
use crate::health::Health;

pub(crate) mod progress;

pub(crate) use progress::Replays;

/// What the action handlers use.
#[derive(Debug, Clone)]
pub(crate) struct Actions {
    pub access: Arc<Access>,
    /// The broker (`None` in tests without one).
    pub ctx: Option<ServiceContext>,
    /// The flows file's targets (for a clear 404), as health knows them.
    pub health: Arc<RwLock<Health>>,
    /// The replay running or last run.
    pub replays: Replays,
}

/// Dead letters shown by `GET /api/v1/dead-letters` unless `?show=`.
const SHOW: usize = 50;
/// At most this many.
const MAX_SHOW: usize = 500;
/// The fields of a replay's body besides the filters.
const REPLAY_FIELDS: [&str; 4] = ["dry_run", "again", "rate", "max_replays"];

pub(crate) fn routes(actions: Actions) -> Router {
    Router::new()
        .route("/api/v1/whoami", get(whoami))
        .route("/api/v1/dead-letters", get(dead_letters))
        .route("/api/v1/dead-letters/replay", post(replay_letters))
        .route("/api/v1/replays/latest", get(latest_replay))
        .route(
            "/api/v1/targets/{target_id}/{command}",
            post(target_command),
        )
        .with_state(actions)
}

fn error(status: StatusCode, kind: &str, detail: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"error": kind, "detail": detail.into()})),
    )
        .into_response()
}

fn bad_request(detail: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, "bad_request", detail)
}

fn broker_failed(e: &anyhow::Error) -> Response {
    tracing::warn!(error = %format!("{e:#}"), "console action failed");
    error(StatusCode::BAD_GATEWAY, "failed", format!("{e:#}"))
}

fn no_broker() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "the monitor has no broker connection",
    )
}

async fn whoami(Extension(p): Extension<Principal>, State(a): State<Actions>) -> Response {
    let may_act = access::may_act(&a.access, &p, &HeaderMap::new()).is_ok();
    Json(json!({"name": p.name, "role": p.role, "via": p.via, "may_act": may_act})).into_response()
}

/// `GET /api/v1/dead-letters?flow=..&target=..&since=2h&show=50`: the
/// filters of `intops dlq list`; the summary and the newest `show`.
async fn dead_letters(
    State(a): State<Actions>,
    Query(mut query): Query<BTreeMap<String, String>>,
) -> Response {
    let show = match query.remove("show").map(|s| s.parse::<usize>()) {
        None => SHOW,
        Some(Ok(n)) => n.min(MAX_SHOW),
        Some(Err(_)) => return bad_request("show must be a whole number"),
    };
    let filters: Filters = match from_strings(query) {
        Ok(f) => f,
        Err(e) => return bad_request(e),
    };
    let Some(ctx) = &a.ctx else {
        return no_broker();
    };
    let watch = progress::Log;
    match summarize(ctx, &filters, show, &watch).await {
        Ok(summary) => Json(summary).into_response(),
        Err(e) => broker_failed(&e),
    }
}

/// Query parameters into [`Filters`] (numbers given as text).
pub(crate) fn from_strings(query: BTreeMap<String, String>) -> Result<Filters, String> {
    let mut object = serde_json::Map::new();
    for (k, v) in query {
        let value = match k.as_str() {
            "status" | "limit" => v
                .parse::<i64>()
                .map(Value::from)
                .map_err(|_| format!("{k} must be a whole number"))?,
            _ => Value::String(v),
        };
        object.insert(k, value);
    }
    serde_json::from_value(Value::Object(object)).map_err(|e| e.to_string())
}

/// `POST /api/v1/dead-letters/replay` with `{"dry_run": true|false, ...
/// filters, "again", "rate", "max_replays"}`.
async fn replay_letters(
    State(a): State<Actions>,
    Extension(p): Extension<Principal>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Response {
    let Some(Json(Value::Object(mut body))) = body else {
        return bad_request(
            "send a JSON object with \"dry_run\": true or false (Content-Type: application/json)",
        );
    };
    let Some(dry_run) = body.remove("dry_run").and_then(|v| v.as_bool()) else {
        return bad_request(
            "\"dry_run\" must be given, true or false: a replay is never the default",
        );
    };
    if !dry_run && let Err(refusal) = access::may_act(&a.access, &p, &headers) {
        return refusal.into_response();
    }
    let request = match replay_request(body, dry_run, &p.name) {
        Ok(r) => r,
        Err(e) => return bad_request(e),
    };
    let Some(ctx) = a.ctx.clone() else {
        return no_broker();
    };
    match a.replays.run(ctx, request).await {
        Ok(report) => {
            let mut out = json!({"matched": report.matched(), "replayed": report.replayed(), "dry_run": dry_run, "operator": p.name});
            if let (Some(o), Value::Object(r)) = (out.as_object_mut(), report.to_json()) {
                for (k, v) in r {
                    o.entry(k).or_insert(v);
                }
            }
            Json(out).into_response()
        }
        Err(progress::RunError::Busy(id)) => error(
            StatusCode::CONFLICT,
            "busy",
            format!("replay {id} is running; one replay at a time (see /api/v1/replays/latest)"),
        ),
        Err(progress::RunError::Failed(e)) => broker_failed(&e),
    }
}

/// The replay a body (without `dry_run`) asks for.
fn replay_request(
    mut body: serde_json::Map<String, Value>,
    dry_run: bool,
    operator: &str,
) -> Result<Replay, String> {
    let again = match body.remove("again") {
        None => false,
        Some(Value::Bool(b)) => b,
        Some(_) => return Err("again must be true or false".into()),
    };
    let rate = take_number(&mut body, "rate", 1000, 1..=100_000)?;
    let max_replays = take_number(&mut body, "max_replays", 5, 0..=1000)?;
    let filters: Filters = serde_json::from_value(Value::Object(body)).map_err(|e| {
        format!(
            "{e} (a replay takes the filters of intops dlq replay and {})",
            REPLAY_FIELDS.join(", ")
        )
    })?;
    Ok(Replay {
        filters,
        dry_run,
        again,
        rate: u32::try_from(rate).map_err(|e| e.to_string())?,
        max_replays: i32::try_from(max_replays).map_err(|e| e.to_string())?,
        operator: operator.to_string(),
    })
}

fn take_number(
    body: &mut serde_json::Map<String, Value>,
    name: &str,
    default: i64,
    range: std::ops::RangeInclusive<i64>,
) -> Result<i64, String> {
    match body.remove(name) {
        None => Ok(default),
        Some(v) => v.as_i64().filter(|n| range.contains(n)).ok_or_else(|| {
            format!(
                "{name} must be a whole number from {} to {}",
                range.start(),
                range.end()
            )
        }),
    }
}

async fn latest_replay(State(a): State<Actions>) -> Response {
    Json(a.replays.latest()).into_response()
}

/// `POST /api/v1/targets/{id}/pause|resume` with `{"reason": "..."}`.
async fn target_command(
    State(a): State<Actions>,
    Extension(p): Extension<Principal>,
    Path((target_id, command)): Path<(String, String)>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Response {
    let command = match command.as_str() {
        "pause" => Command::Pause,
        "resume" => Command::Resume,
        other => {
            return error(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no target action {other:?}: pause or resume"),
            );
        }
    };
    if let Err(refusal) = access::may_act(&a.access, &p, &headers) {
        return refusal.into_response();
    }
    let reason = body
        .as_ref()
        .and_then(|Json(b)| b.get("reason"))
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|r| !r.is_empty());
    let Some(reason) = reason else {
        return bad_request(
            "send {\"reason\": \"...\"}: why, for the audit trail and the status page",
        );
    };
    let known = a
        .health
        .read()
        .is_ok_and(|h| h.target(&target_id).is_some());
    if !known {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no target {target_id} in the flows file"),
        );
    }
    let Some(ctx) = &a.ctx else {
        return no_broker();
    };
    match target::send(ctx, &target_id, command, Some(reason), &p.name).await {
        Ok(action_id) => {
            tracing::info!(target_id, command = command.as_str(), operator = %p.name, "target command sent");
            Json(json!({"target": target_id, "command": command.as_str(), "reason": reason, "operator": p.name, "action_id": action_id})).into_response()
        }
        Err(e) => broker_failed(&e),
    }
}

#[cfg(test)]
mod tests;
