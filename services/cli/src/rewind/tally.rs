//! The pure part of a rewind: which events it re-runs, the delivery
//! request each becomes, and the counts it reports.

use intops_events::{DeliveryRequest, IDEMPOTENCY_KEY, IntegrationEvent};
use intops_flows::Flow;
use intops_flows::route::plan_flow;

/// Records whose broker timestamp is this much older than `--since` are
/// skipped without decoding (the event's `ingested_at` decides the rest).
const TIMESTAMP_SLACK_MS: i64 = 60_000;

/// The events a rewind re-runs: of the flow's source, ingested in
/// `[since, until)` (microseconds).
#[derive(Debug, Clone, Copy)]
pub(super) struct Window {
    pub since: i64,
    pub until: i64,
}

impl Window {
    /// Whether a record with this broker timestamp (milliseconds) is
    /// certainly too old to decode.
    pub fn too_old(&self, stamp_ms: i64) -> bool {
        stamp_ms < self.since / 1000 - TIMESTAMP_SLACK_MS
    }

    /// Whether `event` is one the rewind re-runs.
    pub fn holds(&self, flow: &Flow, event: &IntegrationEvent) -> bool {
        event.source_id == flow.source
            && event.ingested_at >= self.since
            && event.ingested_at < self.until
    }
}

/// The idempotency key of a rewind's request: the same for every rewind
/// of one event by one flow version, and unlike the original's.
pub(super) fn idempotency_key(request: &DeliveryRequest) -> String {
    format!(
        "{}:{}:rewind:{}",
        request.event_id, request.flow_id, request.flow_version
    )
}

/// What a rewind counted.
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub scanned: i64,
    pub in_range: i64,
    pub matched: i64,
    pub failed: i64,
    pub samples: Vec<String>,
}

impl Tally {
    /// The delivery request `flow` makes of `event`, if the event is in
    /// `window` and the flow routes it; counts it either way.
    pub fn plan(
        &mut self,
        flow: &Flow,
        window: &Window,
        event: &IntegrationEvent,
    ) -> Option<DeliveryRequest> {
        if !window.holds(flow, event) {
            return None;
        }
        self.in_range += 1;
        let mut request = match plan_flow(flow, event) {
            Ok(Some(r)) => r,
            Ok(None) => return None,
            Err(e) => {
                self.failed += 1;
                eprintln!("warning: event {} fails the flow: {e}", event.event_id);
                return None;
            }
        };
        self.matched += 1;
        request
            .headers
            .insert(IDEMPOTENCY_KEY.to_string(), idempotency_key(&request));
        if self.samples.len() < 3 {
            self.samples.push(format!(
                "event {} -> {} {} {}",
                event.event_id, request.method, request.path, request.body
            ));
        }
        Some(request)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const FLOWS: &str = r#"
[[sources]]
id = "sn"
kind = "webhook"
auth = "none"
entity_key = ".id"

[[targets]]
id = "jira"
base_url = "http://jira"

[[flows]]
id = "p1"
source = "sn"
when = '.priority == "1"'
target = "jira"
path = "/issue"
map = '{summary: .title} | if .summary == "bad" then error("bad title") else . end'
"#;

    fn flows() -> intops_flows::Flows {
        intops_flows::load_str(FLOWS).expect("flows")
    }

    fn event(source: &str, ingested_at: i64, payload: &str) -> IntegrationEvent {
        IntegrationEvent {
            tenant: None,
            event_id: format!("e{ingested_at}"),
            source_id: source.into(),
            event_type: "created".into(),
            entity_key: "abc".into(),
            occurred_at: 1,
            ingested_at,
            correlation_id: None,
            attributes: HashMap::new(),
            payload: payload.into(),
        }
    }

    const WINDOW: Window = Window {
        since: 100_000_000,
        until: 200_000_000,
    };

    #[test]
    fn broker_timestamps_skip_only_well_before_since() {
        // since is 100 000 ms; a minute of slack for clocks.
        assert!(WINDOW.too_old(100_000 - TIMESTAMP_SLACK_MS - 1));
        assert!(!WINDOW.too_old(100_000 - TIMESTAMP_SLACK_MS));
        assert!(!WINDOW.too_old(i64::MAX));
    }

    #[test]
    fn the_window_is_the_flows_source_from_since_to_before_until() {
        let flows = flows();
        let f = &flows.flows[0];
        assert!(WINDOW.holds(f, &event("sn", 100_000_000, "{}")));
        assert!(WINDOW.holds(f, &event("sn", 199_999_999, "{}")));
        assert!(!WINDOW.holds(f, &event("sn", 99_999_999, "{}")));
        assert!(!WINDOW.holds(f, &event("sn", 200_000_000, "{}")));
        assert!(!WINDOW.holds(f, &event("other", 150_000_000, "{}")));
    }

    #[test]
    fn plan_counts_in_range_matched_and_failed() {
        let flows = flows();
        let f = &flows.flows[0];
        let mut t = Tally::default();
        let p1 = r#"{"priority": "1", "title": "disk full"}"#;
        assert!(t.plan(f, &WINDOW, &event("sn", 1, p1)).is_none());
        assert!(
            t.plan(
                f,
                &WINDOW,
                &event("sn", 150_000_000, r#"{"priority": "2"}"#)
            )
            .is_none()
        );
        let bad = r#"{"priority": "1", "title": "bad"}"#;
        assert!(t.plan(f, &WINDOW, &event("sn", 150_000_001, bad)).is_none());
        let request = t
            .plan(f, &WINDOW, &event("sn", 150_000_002, p1))
            .expect("a request");
        assert_eq!(
            request.headers.get(IDEMPOTENCY_KEY).map(String::as_str),
            Some(format!("e150000002:p1:rewind:{}", request.flow_version).as_str())
        );
        assert_eq!(
            (t.in_range, t.matched, t.failed, t.samples.len()),
            (3, 1, 1, 1)
        );
        assert!(
            t.samples[0].starts_with("event e150000002 -> POST /issue "),
            "{}",
            t.samples[0]
        );
    }

    #[test]
    fn plan_keeps_three_samples() {
        let flows = flows();
        let f = &flows.flows[0];
        let mut t = Tally::default();
        for n in 0..5 {
            let e = event("sn", 150_000_000 + n, r#"{"priority": "1", "title": "x"}"#);
            assert!(t.plan(f, &WINDOW, &e).is_some());
        }
        assert_eq!((t.matched, t.samples.len()), (5, 3));
    }
}
