//! Routing and mapping of one event: which flows match, and what each
//! asks delivery to send. Pure: no I/O, so every rule is unit-tested.
//! A flow's link (the update variant, `$link`) is planned in `link.rs`.

mod link;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::model::{Flow, Flows};
use crate::template::Template;
use intops_events::{DeliveryRequest, IntegrationEvent, now_micros};
use intops_jq::{JqError, JqProgram, JqValue as Val, parse_json};

/// What one flow made of an event.
#[derive(Debug)]
pub enum FlowResult<'a> {
    /// The flow matched and mapped: deliver this.
    Deliver(&'a Flow, Box<DeliveryRequest>),
    /// The flow's `when` or `map` failed on this event.
    Failed(&'a Flow, JqError),
}

/// What transform makes of an event.
#[derive(Debug)]
pub enum Plan<'a> {
    /// The payload is not JSON: nothing can be evaluated.
    BadPayload(JqError),
    /// No flow of the event's source matched.
    Unrouted,
    /// One result per matching (or failing) flow, in file order.
    Routed(Vec<FlowResult<'a>>),
}

/// Evaluates every flow of the event's source.
pub fn plan<'a>(flows: &'a Flows, event: &IntegrationEvent) -> Plan<'a> {
    plan_from_fields(flows, event).unwrap_or_else(|| plan_whole(flows, event))
}

/// [`plan`] with jq on the whole payload.
fn plan_whole<'a>(flows: &'a Flows, event: &IntegrationEvent) -> Plan<'a> {
    let input = match parse_json(event.payload.as_bytes()) {
        Ok(v) => v,
        Err(e) => return Plan::BadPayload(e),
    };
    let mut results = Vec::new();
    for flow in flows.flows.iter().filter(|f| f.source == event.source_id) {
        match evaluate(flow, event, &Jq(&input)) {
            Ok(None) => {}
            Ok(Some(r)) => results.push(FlowResult::Deliver(flow, Box::new(r))),
            Err(e) => results.push(FlowResult::Failed(flow, e)),
        }
    }
    outcome(results)
}

/// The plan made from only the payload fields the source's flows read,
/// when every program of those flows is evaluated directly and knows its
/// answer ([`intops_jq::read_fields`], direct evaluation); `None` means:
/// evaluate the flows with jq on the whole payload, which also gives every
/// error.
fn plan_from_fields<'a>(flows: &'a Flows, event: &IntegrationEvent) -> Option<Plan<'a>> {
    let keys = flows.fields_read.get(&event.source_id)?;
    let input = intops_jq::read_fields(&event.payload, keys)?;
    let mut results = Vec::new();
    for flow in flows.flows.iter().filter(|f| f.source == event.source_id) {
        if let Some(r) = evaluate(flow, event, &Directly(&input)).ok()? {
            results.push(FlowResult::Deliver(flow, Box::new(r)));
        }
    }
    Some(outcome(results))
}

fn outcome(results: Vec<FlowResult<'_>>) -> Plan<'_> {
    if results.is_empty() {
        Plan::Unrouted
    } else {
        Plan::Routed(results)
    }
}

/// For each source whose flows' programs are all evaluated directly and
/// read only top-level fields of the payload: those fields, sorted.
pub(crate) fn fields_read(flows: &[Flow]) -> BTreeMap<String, Vec<String>> {
    let mut read: BTreeMap<String, Option<BTreeSet<String>>> = BTreeMap::new();
    for flow in flows {
        let entry = read
            .entry(flow.source.clone())
            .or_insert_with(|| Some(BTreeSet::new()));
        let Some(keys) = entry else { continue };
        let direct = flow.when.as_ref().is_none_or(|w| w.input_fields(keys))
            && flow.map.input_fields(keys)
            && flow.path.input_fields(keys)
            && flow.headers.iter().all(|(_, t)| t.input_fields(keys))
            && link::input_fields(flow, keys);
        if !direct {
            *entry = None;
        }
    }
    read.into_iter()
        .filter_map(|(source, keys)| Some((source, keys?.into_iter().collect())))
        .collect()
}

/// The top-level payload fields `flow`'s programs read, as far as direct
/// evaluation knows them (a program it cannot evaluate directly adds
/// nothing): what the monitor watches for payload drift.
pub fn flow_fields(flow: &Flow) -> Vec<String> {
    let mut keys = BTreeSet::new();
    if let Some(w) = &flow.when {
        w.input_fields(&mut keys);
    }
    flow.map.input_fields(&mut keys);
    flow.path.input_fields(&mut keys);
    for (_, t) in &flow.headers {
        t.input_fields(&mut keys);
    }
    link::input_fields(flow, &mut keys);
    keys.into_iter().collect()
}

/// What one flow makes of an event (of any source: the caller checks):
/// `None` when its condition does not hold. Used by `intops flow rewind`.
pub fn plan_flow(
    flow: &Flow,
    event: &IntegrationEvent,
) -> Result<Option<DeliveryRequest>, JqError> {
    let input = parse_json(event.payload.as_bytes())?;
    evaluate(flow, event, &Jq(&input))
}

/// How a flow's programs run on an event's payload; `vars` are the
/// values of the programs' variables (`$link`).
trait Run {
    type Error;
    /// The condition's answer.
    fn holds(&self, program: &JqProgram) -> Result<bool, Self::Error>;
    /// The mapping's output as JSON text.
    fn json(&self, program: &JqProgram, vars: &[Val]) -> Result<String, Self::Error>;
    /// A path or header template, rendered.
    fn render(
        &self,
        template: &Template,
        vars: &[Val],
        encode: bool,
    ) -> Result<String, Self::Error>;
}

/// jq on the whole payload: every answer and error.
struct Jq<'v>(&'v Val);

impl Run for Jq<'_> {
    type Error = JqError;

    fn holds(&self, program: &JqProgram) -> Result<bool, JqError> {
        program.holds(self.0)
    }

    fn json(&self, program: &JqProgram, vars: &[Val]) -> Result<String, JqError> {
        program.first_json_with_vars(self.0, vars)
    }

    fn render(&self, template: &Template, vars: &[Val], encode: bool) -> Result<String, JqError> {
        template.render(self.0, vars, encode)
    }
}

/// Direct evaluation on the fields read: an answer only where it knows
/// jq's; `Err(())` means: ask jq.
struct Directly<'v>(&'v Val);

impl Run for Directly<'_> {
    type Error = ();

    fn holds(&self, program: &JqProgram) -> Result<bool, ()> {
        program.direct_holds(self.0, &[]).ok_or(())
    }

    fn json(&self, program: &JqProgram, vars: &[Val]) -> Result<String, ()> {
        program.direct_json(self.0, vars).ok_or(())
    }

    fn render(&self, template: &Template, vars: &[Val], encode: bool) -> Result<String, ()> {
        template.render_direct(self.0, vars, encode).ok_or(())
    }
}

fn evaluate<R: Run>(
    flow: &Flow,
    event: &IntegrationEvent,
    run: &R,
) -> Result<Option<DeliveryRequest>, R::Error> {
    let matched = match &flow.when {
        None => true,
        Some(when) => run.holds(when)?,
    };
    if !matched {
        return Ok(None);
    }
    let vars = link::request_vars(flow);
    let body = run.json(&flow.map, &vars)?;
    let path = run.render(&flow.path, &vars, true)?;
    let headers = render_headers(&flow.headers, run, &vars)?;
    let link = link::plan(flow, run)?;
    Ok(Some(DeliveryRequest {
        // The flow's tenant, else its event's (as transform's outcomes and
        // dead letters): one rule for every record.
        tenant: flow.tenant.clone().or_else(|| event.tenant.clone()),
        link,
        event_id: event.event_id.clone(),
        flow_id: flow.id.clone(),
        flow_version: flow.version.clone(),
        target_id: flow.target.clone(),
        entity_key: event.entity_key.clone(),
        method: flow.method.clone(),
        path,
        headers,
        body,
        created_at: now_micros(),
        ingested_at: event.ingested_at,
    }))
}

/// Header templates, rendered.
fn render_headers<R: Run>(
    headers: &[(String, Template)],
    run: &R,
    vars: &[Val],
) -> Result<HashMap<String, String>, R::Error> {
    headers
        .iter()
        .map(|(name, t)| Ok((name.clone(), run.render(t, vars, false)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLOWS: &str = r#"
[[sources]]
id = "servicenow"
kind = "webhook"
auth = "none"
entity_key = ".sys_id"

[[targets]]
id = "jira"
base_url = "http://jira"

[[targets]]
id = "audit"
base_url = "http://audit"

[[flows]]
id = "p1-to-jira"
source = "servicenow"
when = '.priority == "1"'
target = "jira"
path = "/rest/api/3/issue"
map = '{fields: {summary: .short_description, labels: ["servicenow", .number]}}'

[[flows]]
id = "all-to-audit"
source = "servicenow"
target = "audit"
method = "put"
path = "/log/{{ .number }}"
headers = { "X-Ticket" = "{{ .number }} ({{ .priority }})" }

[[flows]]
id = "broken"
source = "servicenow"
when = '.priority == "9"'
target = "audit"
path = "/x"
map = '.a.b.c | error("no mapping for " + .)'
"#;

    fn event(payload: &str) -> IntegrationEvent {
        IntegrationEvent {
            tenant: None,
            event_id: "e1".into(),
            source_id: "servicenow".into(),
            event_type: "created".into(),
            entity_key: "abc".into(),
            occurred_at: 1,
            ingested_at: 2,
            correlation_id: None,
            attributes: HashMap::new(),
            payload: payload.into(),
        }
    }

    fn fixture() -> String {
        std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/servicenow-incident-created.json"
        ))
        .expect("fixture")
    }

    /// The monitor watches the top-level fields a flow's programs read
    /// (for payload drift), nested reads included.
    #[test]
    fn a_flows_fields_are_the_top_level_ones_its_programs_read() {
        let flows = crate::load_str(&FLOWS.replace(
            "map = '{fields: {summary: .short_description, labels: [\"servicenow\", .number]}}'",
            "map = '{fields: {summary: .short_description, group: .assignment_group.display_value}}'",
        ))
        .expect("valid");
        assert_eq!(
            flow_fields(&flows.flows[0]),
            ["assignment_group", "priority", "short_description"]
        );
        assert_eq!(flow_fields(&flows.flows[1]), ["number", "priority"]);
    }

    #[test]
    fn matching_flows_fan_out_with_mapped_bodies() {
        let flows = crate::load_str(FLOWS).expect("flows");
        let Plan::Routed(results) = plan(&flows, &event(&fixture())) else {
            panic!("routed")
        };
        assert_eq!(results.len(), 2);
        let FlowResult::Deliver(flow, req) = &results[0] else {
            panic!("deliver")
        };
        assert_eq!(flow.id, "p1-to-jira");
        assert_eq!(
            (
                req.method.as_str(),
                req.path.as_str(),
                req.target_id.as_str()
            ),
            ("POST", "/rest/api/3/issue", "jira")
        );
        let body: serde_json::Value = serde_json::from_str(&req.body).expect("json");
        assert_eq!(
            body,
            serde_json::json!({"fields": {"summary": "Email server down in Helsinki office", "labels": ["servicenow", "INC0010023"]}})
        );
        assert_eq!(req.flow_version, flow.version);
        assert_eq!(req.ingested_at, 2);
        let FlowResult::Deliver(_, audit) = &results[1] else {
            panic!("deliver")
        };
        assert_eq!(audit.method, "PUT");
        assert_eq!(audit.path, "/log/INC0010023");
        assert_eq!(
            audit.headers.get("X-Ticket").map(String::as_str),
            Some("INC0010023 (1)")
        );
        let original: serde_json::Value = serde_json::from_str(&fixture()).expect("json");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&audit.body).expect("json"),
            original
        );
    }

    #[test]
    fn unmatched_event_is_unrouted_and_bad_payload_is_reported() {
        let flows = crate::load_str(FLOWS).expect("flows");
        let mut e = event("{}");
        e.source_id = "other".into();
        assert!(matches!(plan(&flows, &e), Plan::Unrouted));
        assert!(matches!(
            plan(&flows, &event("not json")),
            Plan::BadPayload(_)
        ));
    }

    /// A payload nested far deeper than any stack survives, on both the
    /// fields path and the whole-payload path: a bad payload, not a crash.
    #[test]
    fn a_deeply_nested_payload_is_a_bad_payload() {
        let deep = |depth: usize| {
            format!(
                r#"{{"priority":"2","number":"INC1","x":{}{}}}"#,
                "[".repeat(depth),
                "]".repeat(depth)
            )
        };
        let head = FLOWS
            .split("[[targets]]\nid = \"audit\"")
            .next()
            .expect("head");
        let direct = crate::load_str(&format!("{head}{DIRECT_FLOWS}")).expect("flows");
        for flows in [crate::load_str(FLOWS).expect("flows"), direct] {
            // 100: deeper than the limit, in a field no flow reads.
            for depth in [100, 100_000] {
                assert!(
                    matches!(
                        plan(&flows, &event(&deep(depth))),
                        Plan::BadPayload(JqError::TooDeep { .. })
                    ),
                    "refused before jq parses it ({depth} levels)"
                );
            }
            assert!(matches!(plan(&flows, &event(&deep(10))), Plan::Routed(_)));
            let flow = &flows.flows[0];
            assert!(matches!(
                plan_flow(flow, &event(&deep(100_000))),
                Err(JqError::TooDeep { .. })
            ));
        }
    }

    #[test]
    fn a_failing_flow_does_not_stop_the_others() {
        let flows = crate::load_str(FLOWS).expect("flows");
        let Plan::Routed(results) = plan(
            &flows,
            &event(r#"{"priority":"9","number":"INC9","a":{"b":{"c":"x"}}}"#),
        ) else {
            panic!("routed")
        };
        assert_eq!(results.len(), 2);
        assert!(matches!(&results[0], FlowResult::Deliver(f, _) if f.id == "all-to-audit"));
        assert!(
            matches!(&results[1], FlowResult::Failed(f, JqError::Runtime(m)) if f.id == "broken" && m.contains("no mapping for x"))
        );
    }

    /// Flows whose programs all take the direct path (after [`FLOWS`]'s
    /// source and first target).
    const DIRECT_FLOWS: &str = r#"
[[flows]]
id = "p1"
source = "servicenow"
when = '.priority == "1" or .urgency == "1"'
target = "jira"
path = "/issue/{{ .number }}"
headers = { "X-Caller" = "{{ .caller_id.value // \"nobody\" }}" }
map = '''
{fields: {summary: "\(.number): \(.short_description)", state: (.state | value_map({"1": "New"}; "Other")),
 opened: (.opened_at | snow_to_iso), caller: .caller_id.value, tags: [.category, .subcategory]}}
'''

[[flows]]
id = "all"
source = "servicenow"
target = "jira"
path = "/all"
map = '{number}'
"#;

    fn without_time(plan: Plan<'_>) -> String {
        let mut plan = plan;
        if let Plan::Routed(results) = &mut plan {
            for r in results {
                if let FlowResult::Deliver(_, req) = r {
                    req.created_at = 0;
                }
            }
        }
        format!("{plan:?}")
    }

    /// Reading only the fields the flows need plans what jq on the whole
    /// payload plans, and leaves to jq whatever it cannot answer.
    #[test]
    fn plans_from_fields_as_from_the_whole_payload() {
        let head = FLOWS
            .split("[[targets]]\nid = \"audit\"")
            .next()
            .expect("head");
        let flows = crate::load_str(&format!("{head}{DIRECT_FLOWS}")).expect("flows");
        assert_eq!(
            flows.fields_read.get("servicenow").map(Vec::as_slice),
            Some(
                &[
                    "caller_id",
                    "category",
                    "number",
                    "opened_at",
                    "priority",
                    "short_description",
                    "state",
                    "subcategory",
                    "urgency"
                ]
                .map(String::from)[..]
            )
        );
        let mut from_fields = 0;
        for payload in [
            fixture(),
            fixture().replace(r#""priority": "1""#, r#""priority": "3""#),
            r#"{"priority": "1", "number": "INC1", "opened_at": "2026-01-02 03:04:05"}"#.into(),
            r#"{"priority": "1", "number": 7, "opened_at": "not a date"}"#.into(),
            r#"{"priority": "1", "number": null}"#.into(),
            r#"{"priority": "2", "number": "INC2", "caller_id": "not an object"}"#.into(),
            r#"{"priority": "2", "number": "I\"N\u00e9C"}"#.into(),
            r#"["not", "an object"]"#.into(),
            "not json".into(),
            "{}".into(),
        ] {
            let e = event(&payload);
            let whole = without_time(plan_whole(&flows, &e));
            if let Some(direct) = plan_from_fields(&flows, &e) {
                from_fields += 1;
                assert_eq!(without_time(direct), whole, "{payload}");
            }
            assert_eq!(without_time(plan(&flows, &e)), whole, "{payload}");
        }
        assert!(from_fields >= 4, "only {from_fields} planned from fields");
    }

    #[test]
    fn flows_that_read_the_whole_payload_get_no_fields() {
        let flows = crate::load_str(FLOWS).expect("flows");
        assert!(flows.fields_read.is_empty(), "{:?}", flows.fields_read);
    }
}
