//! Re-evaluates every flow's health on a timer: status gauges, a log line
//! per change, and the changes handed to the alerter. Changes found while
//! the monitor is still reading its history are not reported (the history
//! decides the starting state, not a transition).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use intops_events::now_micros;
use intops_runtime::metrics as m;
use intops_runtime::{CancellationToken, Readiness};
use tokio::sync::mpsc;

use crate::health::{Change, Health, Status};
use crate::rollup::Rollups;

/// Evaluates every `every` until `shutdown`; sends reported changes to
/// `alerts`.
pub(crate) async fn run(
    health: Arc<RwLock<Health>>,
    rollups: Arc<RwLock<Rollups>>,
    readiness: Readiness,
    every: Duration,
    alerts: mpsc::UnboundedSender<Change>,
    shutdown: CancellationToken,
) {
    let mut reporting = false;
    let mut fields_before = std::collections::BTreeSet::new();
    loop {
        let now = now_micros();
        let (changes, views, fields) = match health.write() {
            Ok(mut h) => (h.evaluate(now), h.flows(now), h.field_figures(now)),
            Err(_) => return,
        };
        let mut reported = std::collections::BTreeSet::new();
        for (flow, field, missing, drifting) in fields {
            metrics::gauge!(m::FLOW_FIELD_MISSING, "flow" => flow.clone(), "field" => field.clone())
                .set(missing);
            metrics::gauge!(m::FLOW_FIELD_DRIFT, "flow" => flow.clone(), "field" => field.clone())
                .set(if drifting { 1.0 } else { 0.0 });
            reported.insert((flow, field));
        }
        // Fields a reload removed read 0, not their last value.
        for (flow, field) in fields_before.difference(&reported) {
            metrics::gauge!(m::FLOW_FIELD_MISSING, "flow" => flow.clone(), "field" => field.clone())
                .set(0.0);
            metrics::gauge!(m::FLOW_FIELD_DRIFT, "flow" => flow.clone(), "field" => field.clone())
                .set(0.0);
        }
        fields_before = reported;
        // Time in each state counts once the history decided the state.
        if readiness.is_ready()
            && let Ok(mut r) = rollups.write()
        {
            r.observe(views.iter().map(|f| (f.flow_id.clone(), f.status)), now);
        }
        for f in &views {
            // `tenant` is one of the flows file's tenants ("" for none).
            let tenant = f.owner.tenant.clone().unwrap_or_default();
            metrics::gauge!(m::FLOW_HEALTH, "flow" => f.flow_id.clone(), "tenant" => tenant.clone())
                .set(f.status.level());
            for (status, n) in [
                ("delivered", f.window.delivered),
                ("dead_lettered", f.window.dead_lettered),
                ("echo", f.window.echoes),
                ("no_link", f.window.no_link),
            ] {
                metrics::gauge!(m::FLOW_WINDOW_RESULTS, "flow" => f.flow_id.clone(), "status" => status, "tenant" => tenant.clone())
                    .set(n as f64);
            }
        }
        if reporting {
            for change in changes {
                match change.to {
                    Status::Healthy => {
                        tracing::info!(flow = %change.flow_id, from = change.from.as_str(), "flow healthy again")
                    }
                    to => {
                        tracing::warn!(flow = %change.flow_id, status = to.as_str(), reason = %change.reason, "flow health changed")
                    }
                }
                let _ = alerts.send(change);
            }
        } else if readiness.is_ready() {
            // Caught up: from now on a change is news. Flows that start
            // out unhealthy are reported once.
            reporting = true;
            for f in views.iter().filter(|f| f.status != Status::Healthy) {
                tracing::warn!(flow = %f.flow_id, status = f.status.as_str(), reason = %f.reason, "flow unhealthy at start");
                let _ = alerts.send(Change {
                    owner: f.owner.clone(),
                    flow_id: f.flow_id.clone(),
                    target_id: f.target_id.clone(),
                    from: Status::Healthy,
                    to: f.status,
                    reason: f.reason.clone(),
                });
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}
