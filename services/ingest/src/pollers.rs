//! The pollers of the polled sources, following the flows file: at start,
//! and after every reload, the pollers of sources removed or whose
//! `[[sources]]` table changed are stopped and those of sources added or
//! changed start from their saved positions ([`crate::poll`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use intops_flows::Flows;
use intops_kafka::ServiceContext;
use intops_kafka::backoff::retry_delays;
use intops_runtime::CancellationToken;
use intops_runtime::keyed::{after, first_ended};
use intops_runtime::reload::Shared;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::cursors;
use crate::poll::{Polled, Task};
use crate::sources::Sources;

/// One running poller.
struct Running {
    /// The flows file it polls with.
    flows: Arc<Flows>,
    stop: CancellationToken,
    handle: JoinHandle<()>,
}

/// Runs a poller per polled source of the current flows until `shutdown`,
/// following each `reloaded` notification. A stopped poller may capture
/// the page in hand again after its restart (at least once: its events
/// have the same ids, from the source's `dedupe_key`). Pollers that cannot
/// start (the broker unreachable while the cursors are read) are tried
/// again with backoff. Ends with an error when a poller panics (the
/// supervisor stops ingest: it would stop polling alone).
pub(crate) async fn run(
    sources: Shared<Sources>,
    reloaded: Arc<Notify>,
    ctx: ServiceContext,
    max_json_depth: usize,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    // Never follow redirects: a 3xx could send the source's secret
    // headers to another host. It is a refused run instead.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let starter = Starter {
        ctx,
        http,
        max_json_depth,
    };
    let mut running: BTreeMap<String, Running> = BTreeMap::new();
    let mut delays = None;
    let result = loop {
        if shutdown.is_cancelled() {
            break Ok(());
        }
        let current = sources.load_full();
        if let Err(e) = stop_stale(&current.flows, &mut running).await {
            break Err(e);
        }
        let retry = match starter.start_new(&current, &mut running, &shutdown).await {
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
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "starting pollers failed");
                Some(wait)
            }
        };
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break Ok(()),
            (id, result) = first_ended(&mut running, |r| &mut r.handle) => {
                running.remove(&id);
                if let Err(e) = result {
                    break Err(anyhow::anyhow!("poller {id}: {e}"));
                }
            }
            () = reloaded.notified() => {}
            () = after(retry) => {}
        }
    };
    for (_, r) in running {
        r.stop.cancel();
        let _ = r.handle.await;
    }
    result
}

/// Stops the pollers of sources removed from `current` or changed in it.
async fn stop_stale(
    current: &Flows,
    running: &mut BTreeMap<String, Running>,
) -> anyhow::Result<()> {
    let stale: Vec<String> = running
        .iter()
        .filter(|(id, r)| {
            r.flows.changed(current, "sources", id)
                || current.sources.get(*id).is_none_or(|s| s.poll.is_none())
        })
        .map(|(id, _)| id.clone())
        .collect();
    for id in stale {
        if let Some(r) = running.remove(&id) {
            r.stop.cancel();
            r.handle
                .await
                .map_err(|e| anyhow::anyhow!("poller {id}: {e}"))?;
            tracing::info!(source = %id, "poller stopped by a reload");
        }
    }
    Ok(())
}

/// What every poller shares.
struct Starter {
    ctx: ServiceContext,
    http: reqwest::Client,
    max_json_depth: usize,
}

impl Starter {
    /// Starts the pollers of `current`'s polled sources not polled yet,
    /// each from its saved position.
    async fn start_new(
        &self,
        current: &Sources,
        running: &mut BTreeMap<String, Running>,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        let wanted: Vec<&String> = current
            .flows
            .sources
            .values()
            .filter(|s| s.poll.is_some() && !running.contains_key(&s.id))
            .map(|s| &s.id)
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let ctx = &self.ctx;
        ctx.ensure_topics(&[ctx.topics.ingest_cursors()]).await?;
        let mut positions = cursors::load(ctx).await?;
        for id in wanted {
            let stop = shutdown.child_token();
            let task = Task {
                flows: current.flows.clone(),
                ctx: ctx.clone(),
                http: self.http.clone(),
                polled: Polled {
                    source_id: id.clone(),
                    headers: current.poll_headers.get(id).cloned().unwrap_or_default(),
                },
                max_json_depth: self.max_json_depth,
                shutdown: stop.clone(),
            };
            let handle = tokio::spawn(task.run(positions.remove(id)));
            running.insert(
                id.clone(),
                Running {
                    flows: current.flows.clone(),
                    stop,
                    handle,
                },
            );
        }
        Ok(())
    }
}
