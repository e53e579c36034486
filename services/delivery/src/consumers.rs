//! One consumer per target, following the flows file: at start, and after
//! every reload, the targets whose `[[targets]]` table changed are stopped
//! and started again with their new settings, removed targets stop (their
//! records stay on their topic, offsets committed up to what finished),
//! new targets start. A stopping target's in-flight requests finish under
//! the old settings; a record waiting for its next retry is left for the
//! new consumer (the same `Idempotency-Key`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use intops_flows::Flows;
use intops_kafka::backoff::retry_delays;
use intops_kafka::{
    CapSettings, ConsumeOptions, DeadLetterCap, DeadLetterWriter, ServiceContext, consume,
    new_consumer,
};
use intops_runtime::keyed::{after, first_ended};
use intops_runtime::reload::Shared;
use intops_runtime::{CancellationToken, Readiness};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::control;
use crate::handler::{Handler, TargetRuntime};
use crate::links::{self, Links};

/// What every target's consumer shares.
#[derive(Debug)]
pub(crate) struct Consumers {
    pub ctx: ServiceContext,
    pub readiness: Readiness,
    /// Where targets report whether they send.
    pub states: crate::states::Board,
    pub cap_settings: CapSettings,
    pub dead_letters: DeadLetterWriter,
    pub links: Arc<Links>,
    /// `INTOPS_DELIVERY_TARGETS`: only these (`None`: every target).
    pub only: Option<BTreeSet<String>>,
    pub unassigned_grace: Duration,
    pub control: control::Targets,
}

/// One target's running consumer.
struct Running {
    /// The flows file it was started with.
    flows: Arc<Flows>,
    stop: CancellationToken,
    handle: JoinHandle<anyhow::Result<()>>,
}

impl Consumers {
    /// The targets of `flows` this replica delivers to.
    pub fn selected(&self, flows: &Flows) -> Vec<String> {
        flows
            .targets
            .keys()
            .filter(|t| self.only.as_ref().is_none_or(|only| only.contains(*t)))
            .cloned()
            .collect()
    }

    /// Runs the consumers of the current flows until `shutdown`, following
    /// each `reloaded` notification. A consumer's fatal error ends this
    /// with it (the supervisor stops delivery: an operator must look); a
    /// target that cannot start (the broker unreachable while its topic is
    /// created) is tried again with backoff while the others run.
    pub async fn run(
        self,
        flows: Shared<Flows>,
        reloaded: Arc<Notify>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let mut running: BTreeMap<String, Running> = BTreeMap::new();
        let mut delays = None;
        let result = loop {
            if shutdown.is_cancelled() {
                break Ok(());
            }
            let current = flows.load_full();
            if let Err(e) = self.stop_stale(&current, &mut running).await {
                break Err(e);
            }
            let retry = match self.start_new(&current, &mut running, &shutdown).await {
                Ok(()) => {
                    delays = None;
                    None
                }
                Err(e) => {
                    let wait = delays
                        .get_or_insert_with(|| {
                            retry_delays(Duration::from_millis(500), Duration::from_secs(30))
                        })
                        .next()
                        .unwrap_or(Duration::from_secs(30));
                    tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "starting target consumers failed");
                    Some(wait)
                }
            };
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break Ok(()),
                (id, ended) = first_ended(&mut running, |r| &mut r.handle) => {
                    running.remove(&id);
                    match ended {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => break Err(e),
                        Err(e) => break Err(anyhow::anyhow!("consumer of target {id}: {e}")),
                    }
                }
                () = reloaded.notified() => {}
                () = after(retry) => {}
            }
        };
        shutdown.cancel();
        for (_, r) in running {
            let _ = r.handle.await;
        }
        result
    }

    /// Stops the consumers of targets removed or changed in `current`,
    /// each after its in-flight records finished; a consumer that failed
    /// meanwhile is an error.
    async fn stop_stale(
        &self,
        current: &Arc<Flows>,
        running: &mut BTreeMap<String, Running>,
    ) -> anyhow::Result<()> {
        let wanted: BTreeSet<String> = self.selected(current).into_iter().collect();
        let stale: Vec<String> = running
            .iter()
            .filter(|(id, r)| !wanted.contains(*id) || r.flows.changed(current, "targets", id))
            .map(|(id, _)| id.clone())
            .collect();
        for id in stale {
            if let Some(r) = running.remove(&id) {
                r.stop.cancel();
                r.handle
                    .await
                    .map_err(|e| anyhow::anyhow!("consumer of target {id}: {e}"))??;
                self.control.remove(&id);
                self.forget(&id);
                tracing::info!(target = %id, "target consumer stopped by a flows reload");
            }
        }
        Ok(())
    }

    /// Starts the consumers of targets of `current` not running yet (their
    /// topics created first).
    async fn start_new(
        &self,
        current: &Arc<Flows>,
        running: &mut BTreeMap<String, Running>,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        let new: Vec<String> = self
            .selected(current)
            .into_iter()
            .filter(|t| !running.contains_key(t))
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = new.iter().map(|t| self.ctx.topics.deliveries(t)).collect();
        self.ctx.ensure_topics(&names).await?;
        for id in new {
            let started = self.start(current, &id, shutdown)?;
            running.insert(id, started);
        }
        Ok(())
    }

    /// Starts target `id`'s consumer with `flows`' settings.
    fn start(
        &self,
        flows: &Arc<Flows>,
        id: &str,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Running> {
        // One cap per target (its own loop), scoped by source inside it;
        // cleared by `intops target resume`, a restart or a reload that
        // changes the target.
        let cap = Arc::new(DeadLetterCap::new(
            "delivery",
            format!("dead_letter_cap:{id}"),
            self.cap_settings,
            self.readiness.clone(),
        ));
        let target = Arc::new(TargetRuntime::new(
            flows,
            id,
            &self.readiness,
            cap,
            Some(&self.states),
        )?);
        // An operator's pause is in force before the first record is taken.
        self.control.insert(id.to_string(), target.clone());
        let concurrency = flows.targets.get(id).map_or(1, |t| t.concurrency as usize);
        let topic = self.ctx.topics.deliveries(id);
        let group = self.ctx.topics.group(&format!("delivery.{id}"));
        let consumer = new_consumer(&self.ctx.kafka, &group, &[&topic])?;
        let stop = shutdown.child_token();
        let watch = self.ctx.watch_assignment(
            &consumer,
            &group,
            &self.readiness,
            self.unassigned_grace,
            stop.clone(),
        )?;
        let options = ConsumeOptions {
            stage: "delivery",
            cap: target.cap.clone(),
            dead_letters: self.dead_letters.clone(),
            shutdown: stop.clone(),
            min_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
            concurrency,
        };
        // Shared by the lanes: one reference count per record, no copy.
        let owned = links::Owned::new(intops_kafka::assignment_of(&consumer));
        let handler = Arc::new(
            Handler::new(target, self.ctx.clone(), self.links.clone(), stop.clone())
                .with_owned(owned),
        );
        tracing::info!(target = %id, %topic, concurrency, "delivery consuming");
        let target_id = id.to_string();
        let stop_watch = stop.clone();
        let handle = tokio::spawn(async move {
            let consumed = async {
                let result = consume(&consumer, &options, move |message| {
                    let handler = handler.clone();
                    async move { handler.handle(message).await }
                })
                .await
                .with_context(|| format!("delivery consumer of target {target_id}"));
                // A fatal error ends the partition watch too.
                stop_watch.cancel();
                result
            };
            let (result, ()) = tokio::join!(consumed, watch);
            result
        });
        Ok(Running {
            flows: flows.clone(),
            stop,
            handle,
        })
    }

    /// A target this replica no longer delivers to holds nothing back:
    /// its readiness checks are cleared.
    fn forget(&self, id: &str) {
        let group = self.ctx.topics.group(&format!("delivery.{id}"));
        for check in [
            format!("target:{id}"),
            format!("dead_letter_cap:{id}"),
            format!("partitions {group}"),
        ] {
            self.readiness.set(&check, true);
        }
    }
}
