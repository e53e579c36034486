//! A flow's link in its delivery request ([`LinkPlan`]). Transform does not
//! know the link: `$link` is [`LINK_PLACEHOLDER`] wherever it is known
//! (see `load/flows/link.rs`), and delivery puts the real link in its place
//! when it sends the request. A capture flow's request is the create
//! (`$link` is null there) and carries the update next to it; a from
//! flow's request is the write-back itself.

use std::collections::BTreeSet;

use intops_events::{LINK_PLACEHOLDER, LinkMode, LinkPlan};
use intops_jq::JqValue as Val;

use super::Run;
use crate::model::{Flow, FlowLink, LINK_VAR};

/// The values of the variables of a flow's own request: `$link` is the
/// placeholder in a from flow, and null (not given) otherwise.
pub(super) fn request_vars(flow: &Flow) -> Vec<Val> {
    match &flow.link {
        Some(FlowLink::From { .. }) => vec![placeholder()],
        _ => Vec::new(),
    }
}

/// The request's [`LinkPlan`]; `None` for a flow without a link.
pub(super) fn plan<R: Run>(flow: &Flow, run: &R) -> Result<Option<LinkPlan>, R::Error> {
    Ok(match &flow.link {
        None => None,
        Some(FlowLink::From {
            flow: via,
            skip_echoes,
            ..
        }) => Some(LinkPlan {
            mode: LinkMode::From,
            link_flow: via.clone(),
            capture: None,
            update_method: None,
            update_path: None,
            update_headers: None,
            update_body: None,
            skip_echoes: *skip_echoes,
        }),
        Some(FlowLink::Capture {
            capture,
            update,
            skip_echoes,
            ..
        }) => {
            let vars = [placeholder()];
            let update_headers = match &update.headers {
                Some(h) => Some(super::render_headers(h, run, &vars)?),
                None => None,
            };
            // The create's body serves the update too, unless the update
            // has its own map or the flow's map reads `$link`.
            let update_body = match &update.map {
                Some(map) => Some(run.json(map, &vars)?),
                None if flow.map.mentions_var(LINK_VAR) => Some(run.json(&flow.map, &vars)?),
                None => None,
            };
            Some(LinkPlan {
                mode: LinkMode::Capture,
                link_flow: flow.id.clone(),
                capture: Some(capture.code().to_string()),
                update_method: Some(update.method.clone()),
                update_path: Some(run.render(&update.path, &vars, true)?),
                update_headers,
                update_body,
                skip_echoes: *skip_echoes,
            })
        }
    })
}

/// Adds the top-level payload fields the flow's update reads to `keys`;
/// `false` when it needs more (see [`super::fields_read`]).
pub(super) fn input_fields(flow: &Flow, keys: &mut BTreeSet<String>) -> bool {
    let Some(FlowLink::Capture { update, .. }) = &flow.link else {
        return true;
    };
    update.path.input_fields(keys)
        && update
            .headers
            .iter()
            .flatten()
            .all(|(_, t)| t.input_fields(keys))
        && update.map.as_ref().is_none_or(|m| m.input_fields(keys))
}

/// `$link` in transform.
fn placeholder() -> Val {
    Val::from(LINK_PLACEHOLDER.to_string())
}

#[cfg(test)]
mod tests;
