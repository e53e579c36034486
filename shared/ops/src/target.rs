//! Pausing and resuming a target: a command on `<prefix>.control` that
//! every delivery replica applies to that target's lanes, and its audit
//! record.

use std::collections::BTreeMap;

use intops_events::{ControlCommand, RecordKind, now_micros};
use intops_kafka::ServiceContext;

use crate::audit::Audit;
use crate::send;

/// What an operator can tell a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Stop sending its records (they wait on its deliveries topic).
    Pause,
    /// Send them again.
    Resume,
}

impl Command {
    /// `pause` or `resume`, as the control record and audit name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pause => "pause",
            Self::Resume => "resume",
        }
    }
}

/// Writes `command` for `target_id`, then its audit record (action
/// `target.pause` or `target.resume`, by `operator`); returns the
/// action's id.
pub async fn send(
    ctx: &ServiceContext,
    target_id: &str,
    command: Command,
    reason: Option<&str>,
    operator: &str,
) -> anyhow::Result<String> {
    let topic = ctx.topics.control();
    ctx.ensure_topics(std::slice::from_ref(&topic)).await?;
    let record = ControlCommand {
        target_id: target_id.to_string(),
        command: command.as_str().to_string(),
        reason: reason.map(str::to_string),
        operator: operator.to_string(),
        at: now_micros(),
    };
    send::typed(
        ctx,
        &topic,
        RecordKind::ControlCommand,
        target_id.as_bytes(),
        &record,
    )
    .await?;
    let mut filters = BTreeMap::new();
    filters.insert("target".to_string(), target_id.to_string());
    if let Some(r) = reason {
        filters.insert("reason".to_string(), r.to_string());
    }
    let id = uuid::Uuid::now_v7().to_string();
    let mut trail = Audit::new(
        &format!("target.{}", command.as_str()),
        &id,
        operator,
        &filters,
    );
    trail.finished(ctx, &BTreeMap::new()).await?;
    Ok(id)
}
