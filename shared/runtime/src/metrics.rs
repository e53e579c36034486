//! Every metric intops exports is named here, with its labels. Labels are
//! small fixed sets (service, source, flow, target, stage, status, class):
//! never an event id or a key.

#[cfg(feature = "admin")]
use metrics_exporter_prometheus::PrometheusHandle;

/// HTTP requests answered by ingest; labels `source`, `status`, `tenant`.
pub const INGEST_REQUESTS: &str = "intops_ingest_requests_total";
/// Events accepted by ingest; labels `source`, `tenant`.
pub const INGEST_EVENTS: &str = "intops_ingest_events_total";
/// Request body bytes received; label `source`.
pub const INGEST_BYTES: &str = "intops_ingest_bytes_total";
/// Seconds from request to broker acknowledgement; label `source`.
pub const INGEST_ACK_SECONDS: &str = "intops_ingest_ack_seconds";
/// Poll runs of polled sources; labels `source`, `result` (ok, error,
/// refused: an off-origin next link, a redirect, or a page over a limit).
pub const INGEST_POLL_RUNS: &str = "intops_ingest_poll_runs_total";
/// Unix time of a polled source's last successful run; label `source`.
/// `time() - intops_ingest_poll_last_success_seconds` is the cursor lag.
pub const INGEST_POLL_LAST_SUCCESS: &str = "intops_ingest_poll_last_success_seconds";
/// Flows-file reloads; labels `service`, `result` (ok, error).
pub const FLOWS_RELOADS: &str = "intops_flows_reloads_total";
/// 1 while transform's dead-letter cap holds any source's records, else 0
/// (kept for existing alerts; see [`DEAD_LETTER_CAP_TRIPPED`]).
pub const TRANSFORM_CAP_TRIPPED: &str = "intops_transform_dead_letter_cap_tripped";
/// 1 while a stage's dead-letter cap holds a scope's records, 0 after a
/// reset; labels `stage`, `scope` (a source id, `unknown` or `other`).
pub const DEAD_LETTER_CAP_TRIPPED: &str = "intops_dead_letter_cap_tripped";
/// Records a stage's dead-letter cap holds now; label `stage`.
pub const DEAD_LETTER_CAP_HELD: &str = "intops_dead_letter_cap_held";
/// Events transform read; label `source`.
pub const TRANSFORM_EVENTS: &str = "intops_transform_events_total";
/// Delivery requests produced; labels `flow`, `target`.
pub const TRANSFORM_ROUTED: &str = "intops_transform_routed_total";
/// Events no flow matched; label `source`.
pub const TRANSFORM_UNROUTED: &str = "intops_transform_unrouted_total";
/// Records dead-lettered; labels `stage`, `class`, `tenant`.
pub const DEAD_LETTERS: &str = "intops_dead_letters_total";
/// Delivery HTTP attempts; labels `target`, `status` (2xx, 4xx, 5xx, error).
pub const DELIVERY_ATTEMPTS: &str = "intops_delivery_attempts_total";
/// Requests to a target's OAuth2 token endpoint; labels `target`, `result`
/// (issued, retryable, rejected).
pub const DELIVERY_TOKEN_REQUESTS: &str = "intops_delivery_token_requests_total";
/// Delivery attempts that waited for the target's rate limit; label `target`.
pub const DELIVERY_RATE_LIMITED: &str = "intops_delivery_rate_limited_waits_total";
/// 1 while a target is paused (misconfiguration status or operator);
/// label `target`.
pub const DELIVERY_TARGET_PAUSED: &str = "intops_delivery_target_paused";
/// HTTP requests to a target in flight now; label `target`.
pub const DELIVERY_IN_FLIGHT: &str = "intops_delivery_in_flight";
/// A target's circuit: 0 closed, 1 open, 2 half-open; label `target`.
pub const DELIVERY_CIRCUIT_STATE: &str = "intops_delivery_circuit_state";
/// Final delivery results; labels `target`, `flow`, `status` (delivered,
/// dead_lettered; for flows with links also echo, and unrouted for a
/// write-back without a link), `tenant` (the flow's, empty for none).
/// Flow and tenant ids come from the flows file: a small fixed set.
pub const DELIVERY_RESULTS: &str = "intops_delivery_results_total";
/// Seconds per HTTP attempt; label `target`.
pub const DELIVERY_REQUEST_SECONDS: &str = "intops_delivery_request_seconds";
/// Seconds from ingest to delivery; labels `target`, `tenant`.
pub const END_TO_END_SECONDS: &str = "intops_end_to_end_seconds";
/// Requests of flows with links by what delivery did; labels `flow`,
/// `action` (create, update, write_back, echo, no_link).
pub const LINK_REQUESTS: &str = "intops_link_requests_total";
/// Creates whose 2xx answer gave the capture program no record id; label
/// `flow`.
pub const LINK_CAPTURE_MISSING: &str = "intops_link_capture_missing_total";
/// Creates sent while a pending link said an earlier create may have
/// reached the target (at most one duplicate each); label `flow`.
pub const LINK_UNCERTAIN_CREATES: &str = "intops_link_uncertain_creates_total";
/// Links held in a delivery process's index.
pub const LINKS: &str = "intops_links";
/// Seconds a lookup miss waited for the links index to reach the links
/// topic's end.
pub const LINK_SYNC_SECONDS: &str = "intops_link_sync_seconds";
/// Links expired (tombstones written) by the sweeper; label `flow`.
pub const LINK_EXPIRED: &str = "intops_link_expired_total";
/// Records the monitor folded; label `kind` (event, delivery_request,
/// outcome, dead_letter).
pub const MONITOR_RECORDS: &str = "intops_monitor_records_total";
/// Hourly rollups the monitor wrote to `<prefix>.rollups`.
pub const MONITOR_ROLLUPS_WRITTEN: &str = "intops_monitor_rollups_written_total";
/// Events the monitor holds in its lineage index.
pub const MONITOR_TRACKED_EVENTS: &str = "intops_monitor_tracked_events";
/// Share of a flow's recent events (its `slo.drift.window`) without a
/// payload field the flow reads; labels `flow`, `field` (fields named in
/// the flows file).
pub const FLOW_FIELD_MISSING: &str = "intops_flow_field_missing_ratio";
/// Whether a payload field a flow reads is drifting (missing or of another
/// type in a significant share of recent events): 0 or 1; labels `flow`,
/// `field`.
pub const FLOW_FIELD_DRIFT: &str = "intops_flow_field_drift";
/// A flow's health: 0 healthy, 1 degraded, 2 failing; labels `flow`,
/// `tenant` (the flow's tenant, empty for none).
pub const FLOW_HEALTH: &str = "intops_flow_health";
/// A flow's final results over the monitor's window; labels `flow`,
/// `status` (delivered, dead_lettered), `tenant`.
pub const FLOW_WINDOW_RESULTS: &str = "intops_flow_window_results";
/// Alert webhook posts; labels `webhook`, `result` (sent, failed).
pub const ALERTS: &str = "intops_alerts_total";
/// Records a consumer group has not committed yet; labels `group`, `topic`.
pub const CONSUMER_LAG: &str = "intops_consumer_lag";
/// Consumer errors by stage; labels `stage`, `class` (retryable, poison, fatal).
pub const CONSUMER_ERRORS: &str = "intops_consumer_errors_total";
/// Rebalances that waited for in-flight records of the partitions they took
/// away; labels `stage`, `result` (drained, timed_out).
pub const REBALANCE_DRAINS: &str = "intops_consumer_rebalance_drains_total";

#[cfg(feature = "admin")]
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

#[cfg(feature = "admin")]
static HANDLE: std::sync::OnceLock<Option<PrometheusHandle>> = std::sync::OnceLock::new();

/// How often the recorder folds the histogram samples recorded since the
/// last time into its buckets. A scrape of `/metrics` does it too, but
/// without one (no Prometheus, or a slow one) every sample would stay in
/// memory: 8 bytes each, a few per event (delivery grew 3 MB a minute at
/// 1,458 events/s before this, docs/benchmarks.md).
#[cfg(feature = "admin")]
const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// The name of the thread that runs the recorder's upkeep.
#[cfg(feature = "admin")]
const UPKEEP_THREAD: &str = "metrics-upkeep";

/// Runs `tick` every `interval` for the life of the process, on a thread
/// of its own named [`UPKEEP_THREAD`]: the recorder is process-wide and
/// may be installed before (or without) a tokio runtime. The wait is the
/// schedule itself, not a wait for a condition.
#[cfg(feature = "admin")]
fn every(
    interval: std::time::Duration,
    mut tick: impl FnMut() + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(UPKEEP_THREAD.into())
        .spawn(move || {
            loop {
                std::thread::sleep(interval);
                tick();
            }
        })
}

/// Installs the Prometheus recorder once per process and returns its
/// handle; `None` if another recorder was installed first (feature
/// `admin`).
#[cfg(feature = "admin")]
pub fn install() -> Option<PrometheusHandle> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .ok()?;
            let handle = builder.install_recorder().ok()?;
            let upkeep = handle.clone();
            if let Err(error) = every(UPKEEP_INTERVAL, move || upkeep.run_upkeep()) {
                // /metrics still works: each scrape folds the samples.
                tracing::warn!(%error, "metrics upkeep thread not started; histogram samples wait for a scrape");
            }
            describe();
            Some(handle)
        })
        .clone()
}

#[cfg(feature = "admin")]
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(
        FLOW_HEALTH,
        "flow health from the monitor: 0 healthy, 1 degraded, 2 failing"
    );
    describe_gauge!(
        FLOW_WINDOW_RESULTS,
        "a flow's final results over the monitor's window"
    );
    describe_counter!(ALERTS, "alert webhook posts after retries, by result");
    describe_gauge!(
        CONSUMER_LAG,
        "records of a topic an intops consumer group has not committed"
    );
    describe_counter!(
        INGEST_REQUESTS,
        "HTTP requests answered by ingest, by source and status"
    );
    describe_counter!(INGEST_EVENTS, "events accepted by ingest, by source");
    describe_gauge!(
        TRANSFORM_CAP_TRIPPED,
        "1 while transform's dead-letter cap holds processing"
    );
    describe_gauge!(
        DEAD_LETTER_CAP_TRIPPED,
        "1 while a stage's dead-letter cap holds a scope's records, by stage and scope"
    );
    describe_gauge!(
        DEAD_LETTER_CAP_HELD,
        "records a stage's dead-letter cap holds now, by stage"
    );
    describe_counter!(
        DELIVERY_TOKEN_REQUESTS,
        "requests to a target's OAuth2 token endpoint, by target and result"
    );
    describe_counter!(
        DELIVERY_RATE_LIMITED,
        "delivery attempts that waited for the target's rate limit"
    );
    describe_gauge!(
        DELIVERY_TARGET_PAUSED,
        "1 while a target is paused (401/403 or an operator), by target"
    );
    describe_gauge!(
        DELIVERY_IN_FLIGHT,
        "HTTP requests to a target in flight now"
    );
    describe_gauge!(
        DELIVERY_CIRCUIT_STATE,
        "a target's circuit: 0 closed, 1 open, 2 half-open"
    );
    describe_counter!(FLOWS_RELOADS, "flows-file reloads, by service and result");
    describe_counter!(
        INGEST_BYTES,
        "request body bytes received by ingest, by source"
    );
    describe_counter!(
        INGEST_POLL_RUNS,
        "poll runs of polled sources, by source and result"
    );
    describe_gauge!(
        INGEST_POLL_LAST_SUCCESS,
        "unix time of a polled source's last successful run"
    );
    describe_histogram!(
        INGEST_ACK_SECONDS,
        "seconds from request to broker acknowledgement"
    );
    describe_counter!(TRANSFORM_EVENTS, "events read by transform, by source");
    describe_counter!(
        TRANSFORM_ROUTED,
        "delivery requests produced, by flow and target"
    );
    describe_counter!(TRANSFORM_UNROUTED, "events that matched no flow, by source");
    describe_counter!(
        DEAD_LETTERS,
        "records dead-lettered, by stage and error class"
    );
    describe_counter!(
        DELIVERY_ATTEMPTS,
        "delivery HTTP attempts, by target and status class"
    );
    describe_counter!(
        DELIVERY_RESULTS,
        "final delivery results, by target and status"
    );
    describe_histogram!(
        DELIVERY_REQUEST_SECONDS,
        "seconds per delivery HTTP attempt"
    );
    describe_histogram!(END_TO_END_SECONDS, "seconds from ingest to delivery");
    describe_counter!(
        LINK_REQUESTS,
        "requests of flows with links, by flow and what delivery did"
    );
    describe_counter!(
        LINK_CAPTURE_MISSING,
        "creates whose answer held no record id for the capture program, by flow"
    );
    describe_counter!(
        LINK_UNCERTAIN_CREATES,
        "creates sent again after an unconfirmed one (at most one duplicate each), by flow"
    );
    describe_gauge!(LINKS, "links held in a delivery process's index");
    describe_histogram!(
        LINK_SYNC_SECONDS,
        "seconds a link lookup miss waited for the index to reach the links topic's end"
    );
    describe_counter!(LINK_EXPIRED, "links expired by the sweeper, by flow");
    describe_counter!(MONITOR_RECORDS, "records folded by the monitor, by kind");
    describe_counter!(
        MONITOR_ROLLUPS_WRITTEN,
        "hourly rollups written for sla reports"
    );
    describe_gauge!(
        FLOW_FIELD_MISSING,
        "share of a flow's recent events without a payload field it reads"
    );
    describe_gauge!(
        FLOW_FIELD_DRIFT,
        "1 while a payload field a flow reads is drifting (missing or of another type)"
    );
    describe_gauge!(
        MONITOR_TRACKED_EVENTS,
        "events held in the monitor's lineage index"
    );
    describe_counter!(
        CONSUMER_ERRORS,
        "consumer processing errors, by stage and class"
    );
    describe_counter!(
        REBALANCE_DRAINS,
        "rebalances that waited for in-flight records before giving partitions up"
    );
}

#[cfg(all(test, feature = "admin"))]
mod tests {
    use super::*;

    /// The names of this process's threads.
    fn threads() -> Vec<String> {
        std::fs::read_dir("/proc/self/task")
            .map(|dir| {
                dir.filter_map(Result::ok)
                    .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
                    .map(|name| name.trim().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn the_upkeep_runs_again_and_again() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let ticks = Arc::new(AtomicUsize::new(0));
        let counted = ticks.clone();
        every(std::time::Duration::from_millis(1), move || {
            counted.fetch_add(1, Ordering::Relaxed);
        })
        .expect("the thread starts");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while ticks.load(Ordering::Relaxed) < 3 {
            assert!(
                std::time::Instant::now() < deadline,
                "the upkeep ran {} times in 10 s",
                ticks.load(Ordering::Relaxed)
            );
            std::thread::yield_now();
        }
    }

    #[test]
    fn a_thread_runs_the_recorders_upkeep() {
        assert!(install().is_some(), "the recorder is installed");
        // A new thread names itself once it runs: poll with a deadline.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !threads().iter().any(|t| t == UPKEEP_THREAD) {
            assert!(
                std::time::Instant::now() < deadline,
                "no thread runs the recorder's upkeep: {:?}",
                threads()
            );
            std::thread::yield_now();
        }
    }
}
