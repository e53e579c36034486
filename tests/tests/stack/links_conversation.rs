//! A conversation with the shipped example flows (`deploy/local/flows.toml`)
//! between the Jira- and ServiceNow-shaped mocks, both on one address and
//! both sending signed webhooks for every write, as real systems do: a P1
//! incident creates one Jira issue, its update updates that same issue, a
//! Jira comment comes back as a work note (and the incident's webhook about
//! that note stops as an echo), a comment on an issue intops never created
//! is `unrouted` with "no link"; `intops links` and the monitor's lineage
//! and search show all of it.

use std::collections::BTreeSet;
use std::time::Duration;

use intops_tests::conversation::{
    Between, delivery_outcomes, delivery_stages, latest_links, links_cli, search, trace,
    wait_quiet, webhook_event_ids,
};
use intops_tests::itsm::{ItsmMocks, Options};
use intops_tests::{Pipeline, poll_until};
use serde_json::{Value, json};

const SECRET: &str = "conversation-secret";
const WAIT: Duration = Duration::from_secs(60);
const CAPTURE: &str = "snow-p1-to-jira";
const WRITE_BACK: &str = "jira-to-snow";

fn fixture(name: &str) -> Value {
    let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).expect("fixture json")
}

/// `(method, path)` of every request a mock received.
fn calls(requests: &[intops_tests::Captured]) -> Vec<(String, String)> {
    requests
        .iter()
        .map(|r| (r.method.clone(), r.path.clone()))
        .collect()
}

/// The one delivery stage of `flow` in a lineage.
fn delivery_of<'a>(trace: &'a Value, flow: &str) -> &'a Value {
    let stages: Vec<&Value> = delivery_stages(trace)
        .into_iter()
        .filter(|s| s["flow_id"] == flow)
        .collect();
    assert_eq!(stages.len(), 1, "one delivery result of {flow}: {trace}");
    stages[0]
}

fn has_delivery(flow: &'static str) -> impl Fn(&Value) -> bool {
    move |t| delivery_stages(t).iter().any(|s| s["flow_id"] == flow)
}

fn ids(found: &Value) -> BTreeSet<String> {
    found["events"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .filter_map(|e| e["event_id"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn matched_by<'a>(found: &'a Value, event_id: &str) -> &'a Value {
    found["events"]
        .as_array()
        .and_then(|events| events.iter().find(|e| e["event_id"] == event_id))
        .map_or(&Value::Null, |e| &e["matched_by"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_incident_and_its_jira_issue_stay_one_conversation() {
    let _turn = intops_tests::serial::beside_others().await;
    let mocks = ItsmMocks::start_on("127.0.0.1:0".parse().expect("addr"), &Options::default())
        .await
        .expect("mocks");
    let (jira, snow) = (&mocks.jira, &mocks.servicenow);
    let flows = intops_tests::pipeline::example_flows(&jira.base_url());
    let pipeline = Pipeline::start("conv", &flows, &[("snow", SECRET)])
        .await
        .expect("pipeline");
    let prefix = pipeline.prefix.as_str();
    snow.send_webhooks_to(&pipeline.ingest_url("servicenow"), SECRET);
    jira.send_webhooks_to(&pipeline.ingest_url("jira"), SECRET);
    let between = Between {
        prefix,
        targets: &["jira", "servicenow"],
        jira,
        snow,
    };

    // A P1 incident is opened in ServiceNow: one Jira issue.
    let incident = snow
        .create_incident(fixture("servicenow-incident-created.json"))
        .expect("incident");
    let sys_id = incident.sys_id.clone();
    assert_eq!(sys_id, "9d385017c611228701d22104cc95c371");
    let issue = poll_until("the Jira issue", WAIT, || async {
        jira.issues().into_iter().next()
    })
    .await;
    let key = issue.key.clone();
    assert_eq!(
        issue.fields["summary"],
        "Email server down in Helsinki office"
    );
    // The link is on the topic before the next event of the incident needs
    // it (it is acknowledged before the record's offset is stored).
    wait_quiet(between, Duration::from_millis(500), WAIT).await;

    // The incident is updated: the same issue is updated, nothing created.
    snow.update_incident(
        &sys_id,
        json!({"state": "2", "short_description": "Email server down in Helsinki and Espoo"}),
    )
    .expect("update");
    wait_quiet(between, Duration::from_millis(500), WAIT).await;
    assert_eq!(
        calls(&jira.requests()),
        [
            ("POST".into(), "/rest/api/3/issue".into()),
            ("PUT".into(), format!("/rest/api/3/issue/{key}"))
        ],
        "one create, then an update of the same issue"
    );
    assert_eq!(jira.issues().len(), 1, "one incident, one issue");
    assert_eq!(
        jira.issue(&key).expect("issue").fields["summary"],
        "Email server down in Helsinki and Espoo"
    );
    let put = &jira.requests()[1];
    assert_eq!(put.status, 204);
    assert_eq!(
        put.json()["fields"]["summary"],
        "Email server down in Helsinki and Espoo"
    );

    // The link, as an analyst and an operator see it.
    let links = latest_links(prefix).await;
    let link = links
        .get(&format!("{CAPTURE}:{sys_id}"))
        .cloned()
        .flatten()
        .expect("the capture link on the links topic");
    assert_eq!(link.record_id.as_deref(), Some(key.as_str()));
    assert_eq!(link.target_id, "jira");
    let shown = links_cli(prefix, &["show", CAPTURE, &sys_id]).await;
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    assert_eq!(shown.links.len(), 1, "{:?}", shown.links);
    assert_eq!(shown.links[0]["record_id"], key.as_str());
    assert_eq!(shown.links[0]["mode"], "capture");
    assert_eq!(shown.links[0]["pending"], false);
    let found = links_cli(prefix, &["find", &key]).await;
    assert_eq!(found.code, 0, "{}", found.stderr);
    assert_eq!(found.links.len(), 1, "{:?}", found.links);
    assert_eq!(found.links[0]["entity_key"], sys_id.as_str());
    assert_eq!(found.links[0]["flow_id"], CAPTURE);
    assert_eq!(found.links[0]["matched"], "capture_record_id");
    let none = links_cli(prefix, &["show", CAPTURE, "no-such-incident"]).await;
    assert_eq!((none.code, none.links.len()), (1, 0), "{}", none.stderr);
    assert!(none.stderr.contains("no link"), "{}", none.stderr);
    let none = links_cli(prefix, &["find", "OPS-404"]).await;
    assert_eq!((none.code, none.links.len()), (1, 0), "{}", none.stderr);

    // A Jira user comments: the comment becomes a work note of the
    // incident. ServiceNow's webhook about that note maps to the update
    // Jira already has: an echo, not sent.
    let text = "Transport service restarted on EXCH-HEL-01; the queue is draining.";
    jira.add_comment(&key, text).expect("comment");
    poll_until("the work note", WAIT, || async {
        snow.incident(&sys_id)?
            .work_notes
            .iter()
            .any(|n| n.value == text)
            .then_some(())
    })
    .await;
    wait_quiet(between, Duration::from_millis(500), WAIT).await;
    let patches = snow.requests();
    assert_eq!(
        calls(&patches),
        [("PATCH".into(), format!("/api/now/table/incident/{sys_id}"))]
    );
    assert_eq!(patches[0].json(), json!({"work_notes": text}));
    assert_eq!(patches[0].status, 200);
    assert_eq!(jira.requests().len(), 2, "the echo was not sent to Jira");
    let back = links_cli(prefix, &["find", &sys_id]).await;
    assert_eq!(back.code, 0, "{}", back.stderr);
    assert_eq!(back.links.len(), 1, "{:?}", back.links);
    assert_eq!(back.links[0]["flow_id"], WRITE_BACK);
    assert_eq!(back.links[0]["entity_key"], key.as_str());
    assert_eq!(back.links[0]["via_flow"], CAPTURE);
    assert_eq!(back.links[0]["matched"], "from_record_id");

    // A comment on an issue intops did not create: no link, nothing sent.
    let stranger = jira
        .create_issue(json!({"project": {"key": "OPS"}, "summary": "Printer jam on floor 3"}))
        .expect("issue");
    jira.add_comment(&stranger.key, "Paper tray 2 replaced")
        .expect("comment");
    wait_quiet(between, Duration::from_millis(500), WAIT).await;
    assert_eq!(
        snow.requests().len(),
        1,
        "nothing sent for {}",
        stranger.key
    );

    // Lineage: every event of the conversation, what its request did.
    let snow_events = webhook_event_ids(&snow.webhooks(), &sys_id);
    assert_eq!(snow_events.len(), 3, "created, updated, the work note");
    let (created, updated, noted) = (&snow_events[0], &snow_events[1], &snow_events[2]);
    let jira_events = webhook_event_ids(&jira.webhooks(), &key);
    assert_eq!(jira_events.len(), 3, "issue created, updated, commented");
    let commented = &jira_events[2];
    let monitor = pipeline.monitor;
    let expected = [
        (created, CAPTURE, "delivered", "create", key.as_str(), 201),
        (updated, CAPTURE, "delivered", "update", key.as_str(), 204),
        (noted, CAPTURE, "echo", "echo", key.as_str(), 0),
        (
            commented,
            WRITE_BACK,
            "delivered",
            "write_back",
            sys_id.as_str(),
            200,
        ),
    ];
    for (event, flow, status, action, record, http) in expected {
        let t = trace(monitor, event, WAIT, has_delivery(flow)).await;
        let d = delivery_of(&t, flow);
        assert_eq!(
            (&d["status"], &d["link_action"], &d["record_id"]),
            (&json!(status), &json!(action), &json!(record)),
            "{t}"
        );
        if http > 0 {
            assert_eq!(d["http_status"], http, "{t}");
        }
    }
    let orphan = webhook_event_ids(&jira.webhooks(), &stranger.key);
    let orphan_comment = orphan.last().expect("the stranger's comment event");
    let t = trace(monitor, orphan_comment, WAIT, has_delivery(WRITE_BACK)).await;
    let d = delivery_of(&t, WRITE_BACK);
    assert_eq!(
        (&d["status"], &d["link_action"], &d["error"]),
        (&json!("unrouted"), &json!("no_link"), &json!("no link")),
        "{t}"
    );
    assert!(d.get("record_id").is_none(), "{t}");

    // The same from the outcomes topic: what delivery decided, per event.
    let outcomes = delivery_outcomes(prefix).await;
    let actions: Vec<(String, &str, &str)> = outcomes
        .iter()
        .map(|o| {
            (
                o.event_id.clone(),
                o.status.as_str(),
                o.link_action.map_or("-", |a| a.as_str()),
            )
        })
        .collect();
    for (event, want) in [
        (created, ("delivered", "create")),
        (updated, ("delivered", "update")),
        (noted, ("echo", "echo")),
        (commented, ("delivered", "write_back")),
        (orphan_comment, ("unrouted", "no_link")),
    ] {
        let got: Vec<(&str, &str)> = actions
            .iter()
            .filter(|(e, _, _)| e == event)
            .map(|(_, s, a)| (*s, *a))
            .collect();
        assert_eq!(got, [want], "delivery outcomes of {event}: {actions:?}");
    }

    // Search: the Jira key finds the ServiceNow events that created and
    // updated it (by record id) and the issue's own events (entity key);
    // the sys_id finds the incident's events and the write-back.
    let by_key = search(monitor, &key).await;
    let want: BTreeSet<String> = snow_events.iter().chain(&jira_events).cloned().collect();
    assert_eq!(ids(&by_key), want, "{by_key}");
    assert_eq!(matched_by(&by_key, created), "record_id", "{by_key}");
    assert_eq!(matched_by(&by_key, commented), "entity_key", "{by_key}");
    let by_sys_id = search(monitor, &sys_id).await;
    let want: BTreeSet<String> = snow_events
        .iter()
        .chain(std::iter::once(commented))
        .cloned()
        .collect();
    assert_eq!(ids(&by_sys_id), want, "{by_sys_id}");
    assert_eq!(
        matched_by(&by_sys_id, commented),
        "record_id",
        "{by_sys_id}"
    );
    assert_eq!(matched_by(&by_sys_id, updated), "entity_key", "{by_sys_id}");

    pipeline.stop().await.expect("clean stop");
}
