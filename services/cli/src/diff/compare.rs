//! The pure part of `intops flows diff`: what the base flows and the new
//! ones make of one event, and the counts per flow.

use std::collections::BTreeMap;

use intops_events::{DeliveryRequest, IntegrationEvent};
use intops_flows::Flows;
use intops_flows::route::{FlowResult, Plan, plan};
use serde::Serialize;
use serde_json::{Value, json};

use super::changes::{Change, changes};

/// Changed places listed per example at most.
const CHANGES_PER_EXAMPLE: usize = 10;

/// What one side's flows made of an event for one flow.
#[derive(Debug)]
enum Made {
    NotRouted,
    Routed(Box<DeliveryRequest>),
    Failed(String),
}

/// The per-flow report (`--json`'s `flows[]`).
#[derive(Debug, Default, Serialize)]
pub struct FlowDiff {
    pub flow_id: String,
    /// The tenant whose instance of a template the flow is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The flow's version in the base (absent: the flow is new).
    pub version_before: Option<String>,
    /// The flow's version in the new file (absent: the flow is removed).
    pub version_after: Option<String>,
    /// The flow's source in the base (absent: the flow is new).
    pub source_before: Option<String>,
    /// The flow's source in the new file (absent: the flow is removed).
    pub source_after: Option<String>,
    /// Events of the flow's source (either side's) in the window.
    pub events: u64,
    pub routed_before: u64,
    pub routed_after: u64,
    pub newly_routed: u64,
    pub no_longer_routed: u64,
    /// Routed by both, with a different body.
    pub body_changed: u64,
    /// Routed by both, with a different target, method, path or headers.
    pub request_changed: u64,
    /// Events the flow did not fail on before and fails on now.
    pub new_errors: u64,
    /// Events the flow failed on before and no longer fails on: it routes
    /// them now, or no longer routes them (a narrower `when`, another
    /// source).
    pub fixed_errors: u64,
    pub examples: Vec<Example>,
}

impl FlowDiff {
    /// Whether any event would be treated differently.
    pub fn changed(&self) -> bool {
        self.newly_routed
            + self.no_longer_routed
            + self.body_changed
            + self.request_changed
            + self.new_errors
            + self.fixed_errors
            > 0
    }
}

/// One event that the change treats differently.
#[derive(Debug, Serialize)]
pub struct Example {
    /// `newly_routed`, `no_longer_routed`, `body_changed`,
    /// `request_changed`, `new_error` or `fixed_error`.
    pub kind: &'static str,
    pub event_id: String,
    pub entity_key: String,
    /// Method and path of the request made (for a newly or no longer
    /// routed event).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    /// The error (the new one, or the one fixed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What changed in the body or the request.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
}

/// Counts per flow over the events compared.
#[derive(Debug)]
pub struct Comparison<'f> {
    base: &'f Flows,
    new: &'f Flows,
    only: Option<&'f str>,
    examples: usize,
    pub events: u64,
    pub flows: BTreeMap<String, FlowDiff>,
}

impl<'f> Comparison<'f> {
    /// A comparison of `base` and `new`, for the flow `only` (or every
    /// flow), keeping `examples` examples of each kind per flow.
    pub fn new(base: &'f Flows, new: &'f Flows, only: Option<&'f str>, examples: usize) -> Self {
        let mut flows = BTreeMap::new();
        for (side, all) in [(false, base), (true, new)] {
            for flow in all.flows.iter().filter(|f| only.is_none_or(|o| o == f.id)) {
                let entry: &mut FlowDiff = flows.entry(flow.id.clone()).or_default();
                entry.flow_id = flow.id.clone();
                if flow.tenant.is_some() {
                    entry.tenant = flow.tenant.clone();
                }
                let (version, source) = (Some(flow.version.clone()), Some(flow.source.clone()));
                if side {
                    (entry.version_after, entry.source_after) = (version, source);
                } else {
                    (entry.version_before, entry.source_before) = (version, source);
                }
            }
        }
        Self {
            base,
            new,
            only,
            examples,
            events: 0,
            flows,
        }
    }

    /// Runs both sides on `event` and counts what differs.
    pub fn add(&mut self, event: &IntegrationEvent) {
        let before = made(self.base, event);
        let after = made(self.new, event);
        let of_source = |flows: &Flows, id: &str| {
            flows
                .flows
                .iter()
                .any(|f| f.id == id && f.source == event.source_id)
        };
        let mut counted = false;
        for (id, diff) in &mut self.flows {
            if !of_source(self.base, id) && !of_source(self.new, id) {
                continue;
            }
            counted = true;
            let b = before.get(id.as_str()).unwrap_or(&Made::NotRouted);
            let a = after.get(id.as_str()).unwrap_or(&Made::NotRouted);
            count(diff, event, b, a, self.examples);
        }
        if counted || self.only.is_none() {
            self.events += 1;
        }
    }

    /// Whether any flow would treat any event differently.
    pub fn changed(&self) -> bool {
        self.flows.values().any(FlowDiff::changed)
    }
}

/// What `flows` makes of `event`, per flow id (flows of other sources and
/// flows whose condition does not hold are absent).
fn made<'a>(flows: &'a Flows, event: &IntegrationEvent) -> BTreeMap<&'a str, Made> {
    let mut out = BTreeMap::new();
    match plan(flows, event) {
        Plan::Unrouted => {}
        Plan::BadPayload(e) => {
            for flow in flows.flows.iter().filter(|f| f.source == event.source_id) {
                out.insert(flow.id.as_str(), Made::Failed(e.to_string()));
            }
        }
        Plan::Routed(results) => {
            for result in results {
                match result {
                    FlowResult::Deliver(flow, request) => {
                        out.insert(flow.id.as_str(), Made::Routed(request))
                    }
                    FlowResult::Failed(flow, e) => {
                        out.insert(flow.id.as_str(), Made::Failed(e.to_string()))
                    }
                };
            }
        }
    }
    out
}

fn count(diff: &mut FlowDiff, event: &IntegrationEvent, before: &Made, after: &Made, keep: usize) {
    diff.events += 1;
    let routed = |m: &Made| matches!(m, Made::Routed(_));
    diff.routed_before += u64::from(routed(before));
    diff.routed_after += u64::from(routed(after));
    let example = |diff: &mut FlowDiff, kind: &'static str, build: &dyn Fn() -> Example| {
        if diff.examples.iter().filter(|e| e.kind == kind).count() < keep {
            diff.examples.push(build());
        }
    };
    let base = |kind| Example {
        kind,
        event_id: event.event_id.clone(),
        entity_key: event.entity_key.clone(),
        request: None,
        error: None,
        changes: Vec::new(),
    };
    match (before, after) {
        (Made::Failed(_), Made::Failed(_)) | (Made::NotRouted, Made::NotRouted) => {}
        (Made::Failed(e), _) => {
            diff.fixed_errors += 1;
            example(diff, "fixed_error", &|| Example {
                error: Some(e.clone()),
                ..base("fixed_error")
            });
        }
        (_, Made::Failed(e)) => {
            diff.new_errors += 1;
            example(diff, "new_error", &|| Example {
                error: Some(e.clone()),
                ..base("new_error")
            });
        }
        (Made::NotRouted, Made::Routed(r)) => {
            diff.newly_routed += 1;
            example(diff, "newly_routed", &|| Example {
                request: Some(format!("{} {}", r.method, r.path)),
                ..base("newly_routed")
            });
        }
        (Made::Routed(r), Made::NotRouted) => {
            diff.no_longer_routed += 1;
            example(diff, "no_longer_routed", &|| Example {
                request: Some(format!("{} {}", r.method, r.path)),
                ..base("no_longer_routed")
            });
        }
        (Made::Routed(b), Made::Routed(a)) => {
            let body = changes(&body_of(b), &body_of(a), CHANGES_PER_EXAMPLE);
            if !body.is_empty() {
                diff.body_changed += 1;
                example(diff, "body_changed", &|| Example {
                    changes: body.clone(),
                    ..base("body_changed")
                });
            }
            let request = changes(&request_of(b), &request_of(a), CHANGES_PER_EXAMPLE);
            if !request.is_empty() {
                diff.request_changed += 1;
                example(diff, "request_changed", &|| Example {
                    changes: request.clone(),
                    ..base("request_changed")
                });
            }
        }
    }
}

/// A request's body (and its update's, for a capture flow) as JSON; text
/// that is not JSON stays a string.
fn body_of(r: &DeliveryRequest) -> Value {
    let parse = |text: &str| {
        serde_json::from_str::<Value>(text).unwrap_or_else(|_| Value::String(text.into()))
    };
    match r.link.as_ref().and_then(|l| l.update_body.as_deref()) {
        None => parse(&r.body),
        Some(update) => json!({"create": parse(&r.body), "update": parse(update)}),
    }
}

/// Everything of a request but its body and what names the event or the
/// version: target, method, path, headers and the link plan.
fn request_of(r: &DeliveryRequest) -> Value {
    let mut view = json!({
        "target": r.target_id,
        "method": r.method,
        "path": r.path,
        "headers": r.headers,
    });
    if let Some(link) = &r.link {
        view["link"] = json!({
            "mode": link.mode,
            "link_flow": link.link_flow,
            "capture": link.capture,
            "update_method": link.update_method,
            "update_path": link.update_path,
            "update_headers": link.update_headers,
            "skip_echoes": link.skip_echoes,
        });
    }
    view
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const BASE: &str = r#"
[[sources]]
id = "servicenow"
kind = "webhook"
auth = "none"
entity_key = ".sys_id"

[[targets]]
id = "jira"
base_url = "http://jira"

[[flows]]
id = "p1-to-jira"
source = "servicenow"
when = '.priority == "1"'
target = "jira"
path = "/rest/api/3/issue"
map = '{fields: {summary: .short_description}}'

[[flows]]
id = "audit"
source = "servicenow"
target = "jira"
path = "/audit/{{ .number }}"
"#;

    fn event(n: u32, priority: &str, summary: Option<&str>) -> IntegrationEvent {
        let mut payload =
            json!({"sys_id": format!("s{n}"), "number": format!("INC{n}"), "priority": priority});
        if let Some(s) = summary {
            payload["short_description"] = json!(s);
        }
        IntegrationEvent {
            tenant: None,
            event_id: format!("e{n}"),
            source_id: "servicenow".into(),
            event_type: "updated".into(),
            entity_key: format!("s{n}"),
            occurred_at: 0,
            ingested_at: 0,
            correlation_id: None,
            attributes: HashMap::new(),
            payload: payload.to_string(),
        }
    }

    fn compare(new: &str, events: &[IntegrationEvent]) -> BTreeMap<String, FlowDiff> {
        let base = intops_flows::load_str(BASE).expect("base");
        let new = intops_flows::load_str(new).expect("new");
        let mut c = Comparison::new(&base, &new, None, 2);
        for e in events {
            c.add(e);
        }
        assert_eq!(c.events, events.len() as u64);
        c.flows
    }

    fn traffic() -> Vec<IntegrationEvent> {
        vec![
            event(1, "1", Some("disk full")),
            event(2, "1", Some("db down")),
            event(3, "2", Some("slow")),
            event(4, "3", None),
        ]
    }

    #[test]
    fn the_same_file_changes_nothing() {
        let flows = compare(BASE, &traffic());
        assert!(flows.values().all(|f| !f.changed()));
        assert_eq!(flows["p1-to-jira"].routed_before, 2);
        assert_eq!(flows["audit"].routed_after, 4);
        assert_eq!(flows["audit"].events, 4);
    }

    /// A wider condition routes more; a changed mapping changes bodies
    /// (with the jq path); a changed path changes requests; a flow only in
    /// the new file routes newly, one only in the base no longer.
    #[test]
    fn every_kind_of_difference_is_counted_per_flow() {
        let new = BASE
            .replace(
                r#"when = '.priority == "1"'"#,
                r#"when = '.priority == "1" or .priority == "2"'"#,
            )
            .replace(
                "map = '{fields: {summary: .short_description}}'",
                "map = '{fields: {summary: (\"[P\" + .priority + \"] \" + .short_description)}}'",
            )
            .replace("id = \"audit\"", "id = \"audit-v2\"");
        let flows = compare(&new, &traffic());
        let p1 = &flows["p1-to-jira"];
        assert_eq!(
            (
                p1.routed_before,
                p1.routed_after,
                p1.newly_routed,
                p1.no_longer_routed,
                p1.body_changed
            ),
            (2, 3, 1, 0, 2)
        );
        let body = p1
            .examples
            .iter()
            .find(|e| e.kind == "body_changed")
            .expect("example");
        assert_eq!(body.changes[0].path, ".fields.summary");
        assert_eq!(body.changes[0].after, Some(json!("[P1] disk full")));
        assert_eq!(
            p1.examples
                .iter()
                .filter(|e| e.kind == "body_changed")
                .count(),
            2
        );
        let audit = &flows["audit"];
        assert_eq!(
            (
                audit.routed_before,
                audit.routed_after,
                audit.no_longer_routed
            ),
            (4, 0, 4)
        );
        assert_eq!(audit.version_after, None);
        let v2 = &flows["audit-v2"];
        assert_eq!(
            (v2.routed_before, v2.newly_routed, v2.body_changed),
            (0, 4, 0)
        );
        assert_eq!(v2.examples.len(), 2, "examples are capped per kind");
    }

    /// A mapping that starts failing on some events counts new errors; the
    /// file that fixes it counts them fixed.
    #[test]
    fn errors_new_and_fixed() {
        let broken = BASE.replace(
            "map = '{fields: {summary: .short_description}}'",
            "map = '{fields: {summary: (.short_description | ascii_downcase)}}'",
        );
        let events = [event(1, "1", Some("Disk")), event(2, "1", None)];
        let flows = compare(&broken, &events);
        let p1 = &flows["p1-to-jira"];
        assert_eq!((p1.new_errors, p1.body_changed, p1.fixed_errors), (1, 1, 0));
        let error = p1
            .examples
            .iter()
            .find(|e| e.kind == "new_error")
            .expect("example");
        assert_eq!(error.event_id, "e2");
        assert!(error.error.is_some());
        let base = intops_flows::load_str(&broken).expect("base");
        let new = intops_flows::load_str(BASE).expect("new");
        let mut c = Comparison::new(&base, &new, Some("p1-to-jira"), 2);
        for e in &events {
            c.add(e);
        }
        assert_eq!(c.flows.len(), 1);
        assert_eq!(c.flows["p1-to-jira"].fixed_errors, 1);
        assert!(c.changed());
    }

    #[test]
    fn a_changed_path_is_a_changed_request() {
        let new = BASE.replace("/audit/{{ .number }}", "/audit/v2/{{ .number }}");
        let flows = compare(&new, &traffic());
        let audit = &flows["audit"];
        assert_eq!((audit.request_changed, audit.body_changed), (4, 0));
        let example = &audit.examples[0];
        assert_eq!(example.changes[0].path, ".path");
        assert_eq!(example.changes[0].after, Some(json!("/audit/v2/INC1")));
    }

    fn tenants(map: &str) -> String {
        format!(
            r#"
[[templates]]
id = "snow-to-jira"
params = ["url"]

  [[templates.sources]]
  id = "servicenow"
  kind = "webhook"
  auth = "none"
  entity_key = ".sys_id"

  [[templates.targets]]
  id = "jira"
  base_url = "{{{{ $params.url }}}}"

  [[templates.flows]]
  id = "p1"
  source = "servicenow"
  target = "jira"
  path = "/rest/api/3/issue"
  map = '{map}'

[[tenants]]
id = "acme"
template = "snow-to-jira"
params = {{ url = "http://acme" }}

[[tenants]]
id = "globex"
template = "snow-to-jira"
params = {{ url = "http://globex" }}
"#
        )
    }

    /// A template's change shows in each tenant's instance, named by its
    /// tenant.
    #[test]
    fn a_template_change_shows_per_tenant() {
        let base = intops_flows::load_str(&tenants("{summary: .short_description}")).expect("base");
        let new = intops_flows::load_str(&tenants("{title: .short_description}")).expect("new");
        let mut c = Comparison::new(&base, &new, None, 1);
        for (n, tenant) in [(1, "acme"), (2, "globex")] {
            let mut e = event(n, "1", Some("disk full"));
            e.source_id = format!("{tenant}.servicenow");
            e.tenant = Some(tenant.into());
            c.add(&e);
        }
        for tenant in ["acme", "globex"] {
            let f = &c.flows[&format!("{tenant}.p1")];
            assert_eq!(f.tenant.as_deref(), Some(tenant));
            assert_eq!(f.body_changed, 1, "{tenant}: {f:?}");
            assert_ne!(f.version_before, f.version_after);
        }
    }
}
