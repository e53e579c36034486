//! Operators' commands (`<prefix>.control`, compacted, keyed by target):
//! `intops target pause|resume <id>` (resume also releases what the
//! target's dead-letter cap holds). Every delivery replica reads the
//! whole topic at start (the latest command per target is in force, also
//! after a restart), then follows it. No consumer group: each replica
//! applies every command to its own lanes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use intops_events::ControlCommand;
use intops_kafka::{Message, OwnedMessage, Scan, ServiceContext, Start};
use intops_runtime::CancellationToken;

use crate::gate::State;
use crate::handler::TargetRuntime;

/// The targets this replica delivers to, and the latest command per
/// target: a target started later (by a flows reload) gets the command in
/// force for it at once.
#[derive(Debug, Clone, Default)]
pub(crate) struct Targets {
    inner: Arc<Mutex<Registry>>,
}

#[derive(Debug, Default)]
struct Registry {
    running: HashMap<String, Arc<TargetRuntime>>,
    latest: HashMap<String, ControlCommand>,
}

impl Targets {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a target's runtime and applies the command in
    /// force for it.
    pub(crate) fn insert(&self, id: String, target: Arc<TargetRuntime>) {
        let Ok(mut registry) = self.inner.lock() else {
            return;
        };
        if let Some(command) = registry.latest.get(&id) {
            apply_to(&target, command);
        }
        registry.running.insert(id, target);
    }

    /// Forgets a target this replica no longer delivers to.
    pub(crate) fn remove(&self, id: &str) {
        if let Ok(mut registry) = self.inner.lock() {
            registry.running.remove(id);
        }
    }

    /// Keeps `command` as the one in force and applies it to its target,
    /// if this replica delivers to it.
    fn command(&self, command: ControlCommand) {
        let Ok(mut registry) = self.inner.lock() else {
            return;
        };
        if let Some(target) = registry.running.get(&command.target_id) {
            apply_to(target, &command);
        }
        registry.latest.insert(command.target_id.clone(), command);
    }
}

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
    targets.command(command);
}

/// Applies `command` to `target`'s lanes.
fn apply_to(target: &TargetRuntime, command: &ControlCommand) {
    match command.command.as_str() {
        "pause" => target.gate.pause(State::Operator(format!(
            "paused by {}{}",
            command.operator,
            command
                .reason
                .as_ref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
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

#[cfg(test)]
mod tests {
    use intops_kafka::DeadLetterCap;
    use intops_runtime::Readiness;

    use super::*;

    fn runtime() -> Arc<TargetRuntime> {
        let flows = intops_flows::load_str(
            "[[targets]]\nid = \"crm\"\nbase_url = \"http://127.0.0.1:9\"\n",
        )
        .expect("flows");
        Arc::new(
            TargetRuntime::new(
                &flows,
                "crm",
                &Readiness::default(),
                Arc::new(DeadLetterCap::disabled("delivery")),
                None,
            )
            .expect("target"),
        )
    }

    fn command(what: &str) -> ControlCommand {
        ControlCommand {
            target_id: "crm".into(),
            command: what.into(),
            reason: Some("maintenance".into()),
            operator: "ops".into(),
            at: 1,
        }
    }

    /// A target started after its pause (at start-up after the catch-up,
    /// or again by a flows reload) is paused before its first record; a
    /// resume after that opens it.
    #[test]
    fn a_target_started_later_gets_the_command_in_force() {
        let targets = Targets::new();
        targets.command(command("pause"));
        let first = runtime();
        targets.insert("crm".into(), first.clone());
        assert!(
            matches!(first.gate.state(), State::Operator(r) if r == "paused by ops: maintenance")
        );
        targets.remove("crm");
        let restarted = runtime();
        targets.insert("crm".into(), restarted.clone());
        assert!(matches!(restarted.gate.state(), State::Operator(_)));
        targets.command(command("resume"));
        assert_eq!(restarted.gate.state(), State::Open);
        let again = runtime();
        targets.insert("crm".into(), again.clone());
        assert_eq!(again.gate.state(), State::Open);
    }
}
