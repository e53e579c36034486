//! Keeps `<prefix>.flow-versions` up to date: the versions of the flows
//! file transform started with, and of every file it reloads, each with
//! its definition ([`intops_kafka::flow_versions`]).

use std::sync::Arc;
use std::time::Duration;

use intops_flows::{Flows, SharedFlows};
use intops_kafka::ServiceContext;
use intops_kafka::backoff::retry_delays;
use intops_kafka::flow_versions::{self, Loaded};
use intops_runtime::CancellationToken;
use tokio::sync::Notify;

/// Records the current flows now and after every `loaded` notification,
/// retrying while the broker or registry is unavailable, until
/// `shutdown`. A failure to record never holds events: the versions are
/// recorded once the broker is back (or at the next load).
pub async fn keep(
    ctx: ServiceContext,
    flows: SharedFlows,
    loaded: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let host = intops_runtime::host_name();
    loop {
        let current = flows.load_full();
        let mut delays = retry_delays(Duration::from_millis(500), Duration::from_secs(30));
        loop {
            match flow_versions::record(&ctx, &loaded_flows(&current), &host).await {
                Ok(written) => {
                    tracing::info!(
                        written,
                        flows = current.flows.len(),
                        "flow versions recorded"
                    );
                    break;
                }
                Err(e) => {
                    let wait = delays.next().unwrap_or(Duration::from_secs(30));
                    tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "recording flow versions failed");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = loaded.notified() => {}
        }
    }
}

fn loaded_flows(flows: &Flows) -> Vec<Loaded<'_>> {
    flows
        .flows
        .iter()
        .map(|f| Loaded {
            flow_id: &f.id,
            version: &f.version,
            definition: &f.definition,
            source_id: &f.source,
            target_id: &f.target,
        })
        .collect()
}
