//! `/targets`: each target's state as operators set it (the latest pause or
//! resume on `<prefix>.control`: who, why, when) with its window's figures,
//! and for an operator a pause and a resume form with a reason.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use intops_events::ControlCommand;
use intops_ops::target::{self, Command};
use maud::html;

use super::{problem, refused_form, see, token_field, who};
use crate::access::{self, Principal};
use crate::actions::Actions;
use crate::page::layout;

/// `GET /targets`.
pub(super) async fn list(State(a): State<Actions>, Extension(p): Extension<Principal>) -> Response {
    let Some(ctx) = &a.ctx else {
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "Targets",
            "the monitor has no broker connection",
        );
    };
    let commands: BTreeMap<String, ControlCommand> =
        match intops_kafka::latest::read(ctx, &ctx.topics.control()).await {
            Ok(c) => c,
            Err(e) => return problem(StatusCode::BAD_GATEWAY, "Targets", &e.to_string()),
        };
    let rows: Vec<_> = match a.health.read() {
        Ok(h) => h
            .target_ids()
            .into_iter()
            .map(|id| {
                let figures = h.target(&id);
                (id, figures)
            })
            .collect(),
        Err(_) => {
            return problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "Targets",
                "the monitor's state is not readable",
            );
        }
    };
    let may_act = access::may_act(&a.access, &p, &HeaderMap::new()).is_ok();
    layout(
        "Targets",
        html! {
            (who(&p))
            table id="targets" {
                tr { th { "target" } th { "state (set by operators)" } th { "delivered / dead-lettered (window)" } @if may_act { th { "action" } } }
                @for (id, figures) in &rows {
                    @let command = commands.get(id);
                    @let paused = command.is_some_and(|c| c.command == "pause");
                    tr id={ "target-" (id) } {
                        td { (id) }
                        td {
                            @if paused { span.status.status-failing { "paused" } } @else { span.status.status-healthy { "delivering" } }
                            @if let Some(c) = command {
                                " " span.muted { (c.command) " by " (c.operator) " at " (intops_ops::when::format(c.at)) @if let Some(r) = &c.reason { ": " (r) } }
                            }
                        }
                        td { @if let Some(f) = figures { (f.delivered) " / " (f.dead_lettered) } }
                        @if may_act {
                            td {
                                form method="post" action={ "/console/targets/" (id) "/" (if paused { "resume" } else { "pause" }) } {
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
                "A target that delivery paused by itself (after a 401 or 403, until a probe succeeds) or whose circuit is open shows in delivery's metrics "
                code { "intops_delivery_target_paused" } " and " code { "intops_delivery_circuit_state" } ", not here."
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
