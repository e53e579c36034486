//! Operators' commands (`<prefix>.control`, compacted, keyed by target):
//! `intops target pause|resume <id>` (resume also releases what the
//! target's dead-letter cap holds). Every delivery replica reads the
//! whole topic at start (the latest command per target is in force, also
//! after a restart), then follows it. No consumer group: each replica
//! applies every command to its own lanes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use intops_events::ControlCommand;
use intops_kafka::{Message, OwnedMessage, Scan, ServiceContext, Start};
use intops_runtime::CancellationToken;

use crate::gate::State;
use crate::handler::TargetRuntime;

/// The targets this replica delivers to, by id.
pub(crate) type Targets = HashMap<String, Arc<TargetRuntime>>;

/// Creates the control topic if missing and applies every command in it.
pub(crate) async fn catch_up(ctx: &ServiceContext, targets: &Targets) -> anyhow::Result<()> {
    let topic = ctx.topics.control();
    ctx.ensure_topics(std::slice::from_ref(&topic)).await?;
    let mut scan = Scan::open(
        &ctx.kafka,
        std::slice::from_ref(&topic),
        Start::Beginning,
        false,
    )
    .await?;
    while let Some(message) = scan.next().await? {
        apply(ctx, targets, &message).await;
    }
    Ok(())
}

/// Applies commands written from now on, until `shutdown`.
pub(crate) async fn follow(
    ctx: ServiceContext,
    targets: Targets,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let topic = ctx.topics.control();
    // Prompt: an operator's pause must hold the records sent right after
    // it (one partition, so an idle fetch costs the broker little).
    let mut scan = Scan::open(&ctx.kafka, std::slice::from_ref(&topic), Start::End, true).await?;
    loop {
        let next = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            n = scan.next() => n,
        };
        match next {
            Ok(Some(message)) => apply(&ctx, &targets, &message).await,
            Ok(None) => return Ok(()),
            Err(e) => {
                tracing::warn!(error = %e, "reading control commands");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn apply(ctx: &ServiceContext, targets: &Targets, message: &OwnedMessage) {
    let Some(bytes) = message.payload() else {
        return;
    };
    let command: ControlCommand = match ctx.codec.decode(bytes).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(offset = message.offset(), error = %e, "skipping an undecodable control command");
            return;
        }
    };
    let Some(target) = targets.get(&command.target_id) else {
        return; // another replica's target
    };
    match command.command.as_str() {
        "pause" => target.gate.pause(State::Operator(format!(
            "paused by {}{}",
            command.operator,
            command.reason.map(|r| format!(": {r}")).unwrap_or_default()
        ))),
        "resume" => {
            target.gate.resume(false);
            // The operator says the cause is fixed: records the cap holds
            // for this target are sent again, in order.
            target.cap.reset();
        }
        other => tracing::warn!(command = other, "skipping an unknown control command"),
    }
}
