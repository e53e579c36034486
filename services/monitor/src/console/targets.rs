//! `/targets`: each target's state as operators set it (the latest pause or
//! resume on `<prefix>.control`: who, why, when) with its window's figures,
//! and for an operator a pause and a resume form with a reason.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form, Json};
use intops_events::{ControlCommand, TargetState};
use intops_ops::target::{self, Command};
use maud::html;

use super::{problem, refused_form, see, token_field, who};
use crate::access::{self, Principal};
use crate::actions::Actions;
use crate::page::layout;

/// One target as the page and `GET /api/v1/targets` show it.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct TargetView {
    pub target_id: String,
    /// `paused` when an operator's pause is in force or any replica does
    /// not send; `circuit_open` when a replica's circuit is open or half
    /// open; else `delivering`.
    pub state: &'static str,
    /// The latest operator command (pause or resume).
    pub command: Option<ControlCommand>,
    /// Each delivery replica's own report.
    pub replicas: Vec<TargetState>,
    /// Over the monitor's window.
    pub delivered: u64,
    pub dead_lettered: u64,
}

/// Every target of the flows file, with what operators and replicas said.
pub(crate) async fn views(a: &Actions) -> Result<Vec<TargetView>, (StatusCode, String)> {
    let Some(ctx) = &a.ctx else {
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            "the monitor has no broker connection".into(),
        ));
    };
    let bad_gateway = |e: intops_kafka::KafkaError| (StatusCode::BAD_GATEWAY, e.to_string());
    let commands: BTreeMap<String, ControlCommand> =
        intops_kafka::latest::read(ctx, &ctx.topics.control())
            .await
            .map_err(bad_gateway)?;
    let states: BTreeMap<String, TargetState> =
        intops_kafka::latest::read(ctx, &ctx.topics.target_states())
            .await
            .map_err(bad_gateway)?;
    let h = a.health.read().map_err(|_| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the monitor's state is not readable".to_string(),
        )
    })?;
    Ok(h.target_ids()
        .into_iter()
        .map(|id| {
            let figures = h.target(&id);
            let command = commands.get(&id).cloned();
            let replicas: Vec<TargetState> = states
                .values()
                .filter(|s| s.target_id == id)
                .cloned()
                .collect();
            let paused = command.as_ref().is_some_and(|c| c.command == "pause")
                || replicas.iter().any(|r| r.paused.is_some());
            let circuit_open = replicas.iter().any(|r| r.circuit != "closed");
            TargetView {
                state: if paused {
                    "paused"
                } else if circuit_open {
                    "circuit_open"
                } else {
                    "delivering"
                },
                target_id: id,
                command,
                replicas,
                delivered: figures.as_ref().map_or(0, |f| f.delivered),
                dead_lettered: figures.as_ref().map_or(0, |f| f.dead_lettered),
            }
        })
        .collect())
}

/// `GET /api/v1/targets`.
pub(super) async fn api(State(a): State<Actions>) -> Response {
    match views(&a).await {
        Ok(targets) => Json(serde_json::json!({ "targets": targets })).into_response(),
        Err((status, detail)) => (
            status,
            Json(serde_json::json!({"error": "unavailable", "detail": detail})),
        )
            .into_response(),
    }
}

/// `GET /targets`.
pub(super) async fn list(State(a): State<Actions>, Extension(p): Extension<Principal>) -> Response {
    let rows = match views(&a).await {
        Ok(rows) => rows,
        Err((status, detail)) => return problem(status, "Targets", &detail),
    };
    let may_act = access::may_act(&a.access, &p, &HeaderMap::new()).is_ok();
    layout(
        "Targets",
        html! {
            (who(&p))
            table id="targets" {
                tr { th { "target" } th { "state" } th { "replicas" } th { "delivered / dead-lettered (window)" } @if may_act { th { "action" } } }
                @for t in &rows {
                    @let paused = t.state == "paused";
                    tr id={ "target-" (t.target_id) } {
                        td { (t.target_id) }
                        td {
                            @match t.state {
                                "paused" => { span.status.status-failing { "paused" } }
                                "circuit_open" => { span.status.status-degraded { "circuit open" } }
                                _ => { span.status.status-healthy { "delivering" } }
                            }
                            @if let Some(c) = &t.command {
                                " " span.muted { (c.command) " by " (c.operator) " at " (intops_ops::when::format(c.at)) @if let Some(r) = &c.reason { ": " (r) } }
                            }
                        }
                        td {
                            @for r in &t.replicas {
                                div.replica {
                                    (r.instance) ": "
                                    @match &r.paused { Some(why) => { "not sending: " (why) }, None => { "sending" } }
                                    ", circuit " (r.circuit)
                                    " " span.muted { "since " (intops_ops::when::format(r.at)) }
                                }
                            }
                        }
                        td { (t.delivered) " / " (t.dead_lettered) }
                        @if may_act {
                            td {
                                form method="post" action={ "/console/targets/" (t.target_id) "/" (if paused { "resume" } else { "pause" }) } {
                                    (token_field(&a, &p))
                                    input name="reason" placeholder="reason" required;
                                    " " button type="submit" { @if paused { "Resume" } @else { "Pause" } }
                                }
                            }
                        }
                    }
                }
            }
            @if !may_act { p.notice id="not-allowed" { (p.name) " is a " (super::role(&p)) ": pausing and resuming need an operator." } }
            p.muted {
                "Replicas report whether they send: paused by an operator, or by an answer such as 401 until a probe succeeds (resume resumes both), and their circuit breaker (open after repeated failures, half open while one probe is out)."
            }
        },
    )
    .into_response()
}

#[derive(Debug, serde::Deserialize)]
pub(super) struct CommandForm {
    reason: Option<String>,
    form_token: Option<String>,
}

/// `POST /console/targets/{id}/pause|resume`.
pub(super) async fn command(
    State(a): State<Actions>,
    Extension(p): Extension<Principal>,
    Path((target_id, command)): Path<(String, String)>,
    headers: HeaderMap,
    Form(form): Form<CommandForm>,
) -> Response {
    if let Some(refused) = refused_form(
        &a,
        &p,
        &headers,
        form.form_token.as_deref().unwrap_or_default(),
    ) {
        return refused;
    }
    let command = match command.as_str() {
        "pause" => Command::Pause,
        "resume" => Command::Resume,
        _ => return problem(StatusCode::NOT_FOUND, "Targets", "pause or resume"),
    };
    let Some(reason) = form
        .reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
    else {
        return problem(StatusCode::BAD_REQUEST, "Targets", "give a reason");
    };
    if !a
        .health
        .read()
        .is_ok_and(|h| h.target(&target_id).is_some())
    {
        return problem(
            StatusCode::NOT_FOUND,
            "Targets",
            &format!("no target {target_id} in the flows file"),
        );
    }
    let Some(ctx) = &a.ctx else {
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "Targets",
            "the monitor has no broker connection",
        );
    };
    match target::send(ctx, &target_id, command, Some(reason), &p.name).await {
        Ok(_) => see("/targets"),
        Err(e) => problem(StatusCode::BAD_GATEWAY, "Targets", &format!("{e:#}")),
    }
}
