//! Tests of the link part of delivery requests.

use std::collections::HashMap;

use intops_events::{IntegrationEvent, LINK_PLACEHOLDER, LinkMode, LinkPlan};

use crate::route::{FlowResult, Plan, plan, plan_flow, plan_from_fields, plan_whole};

const FLOWS: &str = r#"
[[sources]]
id = "servicenow"
kind = "webhook"
auth = "none"
entity_key = ".sys_id"

[[sources]]
id = "jira"
kind = "webhook"
auth = "none"
entity_key = ".issue.key"

[[targets]]
id = "jira"
base_url = "http://jira"

[[targets]]
id = "servicenow"
base_url = "http://servicenow"

[[flows]]
id = "snow-p1-to-jira"
source = "servicenow"
when = '.priority == "1"'
target = "jira"
method = "POST"
path = "/rest/api/3/issue"
map = '{fields: {summary: .short_description}}'
link = { capture = ".key" }
update = { method = "PUT", path = "/rest/api/3/issue/{{ $link }}" }

[[flows]]
id = "jira-to-snow"
source = "jira"
target = "servicenow"
link = { from = "snow-p1-to-jira" }
method = "PATCH"
path = "/api/now/table/incident/{{ $link }}"
map = '{work_notes: .comment.body}'
"#;

fn event(source: &str, payload: &str) -> IntegrationEvent {
    IntegrationEvent {
        tenant: None,
        event_id: "e1".into(),
        source_id: source.into(),
        event_type: "updated".into(),
        entity_key: "k1".into(),
        occurred_at: 1,
        ingested_at: 2,
        correlation_id: None,
        attributes: HashMap::new(),
        payload: payload.into(),
    }
}

const INCIDENT: &str =
    r#"{"sys_id": "abc", "priority": "1", "short_description": "Mail down", "number": "INC1"}"#;
const COMMENT: &str = r#"{"issue": {"key": "OPS-1"}, "comment": {"body": "on it"}}"#;

/// The one request `flows` plans for `e`.
fn request(flows: &crate::Flows, e: &IntegrationEvent) -> intops_events::DeliveryRequest {
    match plan(flows, e) {
        Plan::Routed(mut r) if r.len() == 1 => match r.remove(0) {
            FlowResult::Deliver(_, req) => *req,
            FlowResult::Failed(f, err) => panic!("{} failed: {err}", f.id),
        },
        other => panic!("one request: {other:?}"),
    }
}

fn load(text: &str) -> crate::Flows {
    crate::load_str(text).expect("valid")
}

#[test]
fn a_capture_flow_sends_the_create_and_carries_the_update() {
    let flows = load(FLOWS);
    let req = request(&flows, &event("servicenow", INCIDENT));
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("POST", "/rest/api/3/issue")
    );
    assert_eq!(req.body, r#"{"fields":{"summary":"Mail down"}}"#);
    assert_eq!(
        req.link,
        Some(LinkPlan {
            mode: LinkMode::Capture,
            link_flow: "snow-p1-to-jira".into(),
            capture: Some(".key".into()),
            update_method: Some("PUT".into()),
            update_path: Some(format!("/rest/api/3/issue/{LINK_PLACEHOLDER}")),
            update_headers: None,
            update_body: None,
            skip_echoes: true,
        })
    );
}

#[test]
fn a_from_flow_sends_the_write_back_with_the_placeholder() {
    let flows = load(FLOWS);
    let req = request(&flows, &event("jira", COMMENT));
    assert_eq!(req.method, "PATCH");
    assert_eq!(
        req.path,
        format!("/api/now/table/incident/{LINK_PLACEHOLDER}")
    );
    assert_eq!(req.body, r#"{"work_notes":"on it"}"#);
    assert_eq!(
        req.link,
        Some(LinkPlan {
            mode: LinkMode::From,
            link_flow: "snow-p1-to-jira".into(),
            capture: None,
            update_method: None,
            update_path: None,
            update_headers: None,
            update_body: None,
            skip_echoes: true,
        })
    );
}

/// `$link` in the flow's map: null in the create, the placeholder in the
/// update's own body; update headers and map replace the flow's.
#[test]
fn link_in_bodies_and_headers() {
    let text = FLOWS
        .replace(
            "map = '{fields: {summary: .short_description}}'",
            "map = '{fields: {summary: .short_description}, key: $link}'\nheaders = { \"X-Ticket\" = \"{{ .number }}\" }",
        )
        .replace(
            "map = '{work_notes: .comment.body}'",
            "map = '{work_notes: \"\\(.comment.body) (\\($link))\"}'\nheaders = { \"X-Incident\" = \"sys-{{ $link }}\" }",
        );
    let flows = load(&text);
    let create = request(&flows, &event("servicenow", INCIDENT));
    assert_eq!(
        create.body,
        r#"{"fields":{"summary":"Mail down"},"key":null}"#
    );
    assert_eq!(
        create.headers.get("X-Ticket").map(String::as_str),
        Some("INC1")
    );
    let link = create.link.expect("link");
    assert_eq!(
        link.update_body,
        Some(format!(
            r#"{{"fields":{{"summary":"Mail down"}},"key":"{LINK_PLACEHOLDER}"}}"#
        ))
    );
    assert_eq!(link.update_headers, None, "the request's headers");

    let back = request(&flows, &event("jira", COMMENT));
    assert_eq!(
        back.body,
        format!(r#"{{"work_notes":"on it ({LINK_PLACEHOLDER})"}}"#)
    );
    assert_eq!(
        back.headers.get("X-Incident"),
        Some(&format!("sys-{LINK_PLACEHOLDER}"))
    );

    let own = FLOWS.replace(
        r#"update = { method = "PUT", path = "/rest/api/3/issue/{{ $link }}" }"#,
        r#"update = { path = "/rest/api/3/issue/{{ $link }}", headers = { "X-Key" = "{{ $link }}-{{ .number }}" }, map = '{fields: {summary: "\(.number): \(.short_description)"}}' }"#,
    );
    let link = request(&load(&own), &event("servicenow", INCIDENT))
        .link
        .expect("link");
    assert_eq!(link.update_method.as_deref(), Some("PUT"));
    assert_eq!(
        link.update_headers,
        Some(HashMap::from([(
            "X-Key".to_string(),
            format!("{LINK_PLACEHOLDER}-INC1")
        )]))
    );
    assert_eq!(
        link.update_body.as_deref(),
        Some(r#"{"fields":{"summary":"INC1: Mail down"}}"#)
    );
}

/// The update is part of the flow's mapping: when it fails, the flow
/// fails for the event.
#[test]
fn a_failing_update_fails_the_flow() {
    let text = FLOWS.replace(
        r#"update = { method = "PUT", path = "/rest/api/3/issue/{{ $link }}" }"#,
        r#"update = { path = "/rest/api/3/issue/{{ $link }}", map = '.number | error("no update for " + .)' }"#,
    );
    let flows = load(&text);
    let Plan::Routed(results) = plan(&flows, &event("servicenow", INCIDENT)) else {
        panic!("routed")
    };
    assert!(
        matches!(&results[..], [FlowResult::Failed(f, e)] if f.id == "snow-p1-to-jira" && e.to_string().contains("no update for INC1")),
        "{results:?}"
    );
}

/// Programs and templates with `$link` keep the fields fast path, and it
/// plans what jq on the whole payload plans.
#[test]
fn link_flows_plan_from_fields_as_from_the_whole_payload() {
    let text = FLOWS.replace(
        r#"update = { method = "PUT", path = "/rest/api/3/issue/{{ $link }}" }"#,
        r#"update = { path = "/rest/api/3/issue/{{ $link }}", headers = { "X-Key" = "{{ $link }}" }, map = '{fields: {summary: .short_description, key: $link, n: .number}}' }"#,
    );
    let flows = load(&text);
    assert_eq!(
        flows.fields_read.get("servicenow").map(Vec::as_slice),
        Some(&["number", "priority", "short_description"].map(String::from)[..])
    );
    assert_eq!(
        flows.fields_read.get("jira").map(Vec::as_slice),
        Some(&["comment".to_string()][..])
    );
    let mut from_fields = 0;
    for (source, payload) in [
        ("servicenow", INCIDENT),
        ("servicenow", r#"{"priority": "1", "number": 7}"#),
        ("servicenow", r#"{"priority": "2"}"#),
        (
            "servicenow",
            r#"{"priority": "1", "short_description": {"a": 1}, "number": [1]}"#,
        ),
        ("jira", COMMENT),
        ("jira", r#"{"comment": "not an object"}"#),
        ("jira", "{}"),
    ] {
        let e = event(source, payload);
        let whole = without_time(plan_whole(&flows, &e));
        if let Some(direct) = plan_from_fields(&flows, &e) {
            from_fields += 1;
            assert_eq!(without_time(direct), whole, "{payload}");
        }
        assert_eq!(without_time(plan(&flows, &e)), whole, "{payload}");
    }
    assert!(from_fields >= 5, "only {from_fields} planned from fields");
}

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

/// `intops flow rewind` plans one flow at a time: the link comes along.
#[test]
fn rewind_plans_carry_the_link() {
    let flows = load(FLOWS);
    let req = plan_flow(&flows.flows[0], &event("servicenow", INCIDENT))
        .expect("plans")
        .expect("matches");
    assert_eq!(
        req.link.as_ref().map(|l| l.update_path.as_deref()),
        Some(Some(
            format!("/rest/api/3/issue/{LINK_PLACEHOLDER}").as_str()
        ))
    );
    let back = plan_flow(&flows.flows[1], &event("jira", COMMENT))
        .expect("plans")
        .expect("matches");
    assert!(back.path.ends_with(LINK_PLACEHOLDER));
    assert!(matches!(
        back.link,
        Some(LinkPlan {
            mode: LinkMode::From,
            ..
        })
    ));
}

/// Flows without links plan no link.
#[test]
fn flows_without_links_plan_none() {
    let text = FLOWS
        .replace("link = { capture = \".key\" }\n", "")
        .replace(
            "update = { method = \"PUT\", path = \"/rest/api/3/issue/{{ $link }}\" }\n",
            "",
        )
        .replace("link = { from = \"snow-p1-to-jira\" }\n", "")
        .replace("/{{ $link }}", "/{{ .issue.key }}");
    let flows = load(&text);
    assert_eq!(request(&flows, &event("servicenow", INCIDENT)).link, None);
    let back = request(&flows, &event("jira", COMMENT));
    assert_eq!(
        (back.path.as_str(), back.link),
        ("/api/now/table/incident/OPS-1", None)
    );
}
