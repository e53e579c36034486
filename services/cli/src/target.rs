//! `intops target pause|resume ID`: a command on `<prefix>.control` that
//! every delivery replica applies to that target's lanes.

use std::collections::BTreeMap;

use intops_events::{ControlCommand, RecordKind, now_micros};
use intops_kafka::ServiceContext;

use crate::audit::{self, Audit};
use crate::send;

/// `intops target pause|resume` flags.
#[derive(Debug, clap::Args)]
pub struct TargetArgs {
    /// The target id.
    pub id: String,
    /// Why (kept with the command and in the audit record).
    #[arg(long)]
    pub reason: Option<String>,
    /// Who, for the audit record (default: the OS user).
    #[arg(long)]
    pub operator: Option<String>,
}

/// Writes `command` (`pause` or `resume`) for the target.
pub async fn run(ctx: &ServiceContext, command: &str, args: &TargetArgs) -> anyhow::Result<()> {
    let topic = ctx.topics.control();
    ctx.ensure_topics(std::slice::from_ref(&topic)).await?;
    let operator = audit::operator(args.operator.as_deref());
    let record = ControlCommand {
        target_id: args.id.clone(),
        command: command.to_string(),
        reason: args.reason.clone(),
        operator: operator.clone(),
        at: now_micros(),
    };
    send::typed(
        ctx,
        &topic,
        RecordKind::ControlCommand,
        args.id.as_bytes(),
        &record,
    )
    .await?;
    let mut filters = BTreeMap::new();
    filters.insert("target".to_string(), args.id.clone());
    if let Some(r) = &args.reason {
        filters.insert("reason".to_string(), r.clone());
    }
    let id = uuid::Uuid::now_v7().to_string();
    let mut trail = Audit::new(&format!("target.{command}"), &id, &operator, &filters);
    trail.finished(ctx, &BTreeMap::new()).await?;
    println!(
        "target {}: {command} sent; every delivery replica applies it within about a second (and after restarts, until the next command)",
        args.id
    );
    Ok(())
}
