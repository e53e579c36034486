//! The mock systems' behaviour: answers, state, webhooks, idempotency,
//! held and failed writes, state kept across restarts.

use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::MockTarget;
use crate::sign::intops_signature;

const WAIT: Duration = Duration::from_secs(10);

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

async fn send(method: &str, url: &str, body: Option<Value>, key: Option<&str>) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut r = http().request(method, url);
    if let Some(body) = body {
        r = r.json(&body);
    }
    if let Some(key) = key {
        r = r.header("idempotency-key", key);
    }
    let answer = r.send().await.expect("mock answers");
    let status = answer.status().as_u16();
    let text = answer.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn issue_body(summary: &str) -> Value {
    json!({"fields": {"project": {"key": "OPS"}, "issuetype": {"name": "Incident"}, "summary": summary}})
}

/// A stand-in for ingest: records the webhooks, answers 201.
async fn ingest() -> MockTarget {
    MockTarget::start().await.expect("ingest stand-in")
}

#[tokio::test]
async fn jira_creates_issues_with_keys_and_shows_them() {
    let jira = JiraMock::start().await.expect("jira");
    let url = format!("{}/rest/api/3/issue", jira.base_url());
    let (status, first) = send("POST", &url, Some(issue_body("Mail down")), None).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["key"], "OPS-1");
    assert_eq!(
        first["self"],
        format!(
            "{}/rest/api/3/issue/{}",
            jira.base_url(),
            first["id"].as_str().expect("id")
        )
    );
    let (_, second) = send("POST", &url, Some(issue_body("Printer on fire")), None).await;
    assert_eq!(second["key"], "OPS-2");
    assert_ne!(first["id"], second["id"]);

    let (status, shown) = send("GET", &format!("{url}/OPS-1"), None, None).await;
    assert_eq!(status, 200);
    assert_eq!(shown["fields"]["summary"], "Mail down");
    assert_eq!(shown["fields"]["status"]["name"], "To Do");
    assert_eq!(shown["fields"]["comment"]["total"], 0);

    let (status, refused) = send(
        "POST",
        &url,
        Some(json!({"fields": {"project": {"key": "OPS"}}})),
        None,
    )
    .await;
    assert_eq!(status, 400);
    assert!(refused["errors"]["summary"].is_string(), "{refused}");
    assert_eq!(jira.issues().len(), 2);
    assert_eq!(jira.requests().len(), 4);
}

#[tokio::test]
async fn jira_edits_known_issues_and_refuses_unknown_ones() {
    let jira = JiraMock::start().await.expect("jira");
    let url = format!("{}/rest/api/3/issue", jira.base_url());
    send("POST", &url, Some(issue_body("Mail down")), None).await;
    let (status, _) = send(
        "PUT",
        &format!("{url}/OPS-7"),
        Some(json!({"fields": {"summary": "x"}})),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, body) = send(
        "PUT",
        &format!("{url}/OPS-1"),
        Some(json!({"fields": {"summary": "Mail back"}})),
        None,
    )
    .await;
    assert_eq!((status, body), (204, Value::Null));
    let issue = jira.issue("OPS-1").expect("issue");
    assert_eq!(issue.fields["summary"], "Mail back");
    assert_eq!(
        issue.fields["issuetype"]["name"], "Incident",
        "other fields kept"
    );
    // Addressed by id too, as Jira allows.
    let (status, _) = send(
        "PUT",
        &format!("{url}/{}", issue.id),
        Some(json!({"fields": {"labels": ["a"]}})),
        None,
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(
        jira.issue("OPS-1").expect("issue").fields["labels"],
        json!(["a"])
    );
}

#[tokio::test]
async fn jira_appends_comments() {
    let jira = JiraMock::start().await.expect("jira");
    let url = format!("{}/rest/api/3/issue", jira.base_url());
    send("POST", &url, Some(issue_body("Mail down")), None).await;
    let adf = json!({"type": "doc", "version": 1, "content": [
        {"type": "paragraph", "content": [{"type": "text", "text": "Queue is stuck."}]},
        {"type": "paragraph", "content": [{"type": "text", "text": "Restarting."}]}
    ]});
    let (status, answer) = send(
        "POST",
        &format!("{url}/OPS-1/comment"),
        Some(json!({"body": adf})),
        None,
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["body"], adf);
    assert!(answer["id"].is_string());
    let (status, _) = send(
        "POST",
        &format!("{url}/OPS-9/comment"),
        Some(json!({"body": "x"})),
        None,
    )
    .await;
    assert_eq!(status, 404);
    jira.add_comment("OPS-1", "Done.").expect("user comment");

    let comments = jira.issue("OPS-1").expect("issue").comments;
    let texts: Vec<&str> = comments.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(texts, ["Queue is stuck.\nRestarting.", "Done."]);
    assert_eq!(comments[1].author, JIRA_USER);
    let (_, shown) = send("GET", &format!("{url}/OPS-1"), None, None).await;
    assert_eq!(shown["fields"]["comment"]["total"], 2);
}

#[tokio::test]
async fn jira_sends_a_signed_webhook_for_every_write_in_order() {
    let ingest = ingest().await;
    let jira = JiraMock::start().await.expect("jira");
    jira.send_webhooks_to(
        &format!("{}/v1/sources/jira/events", ingest.base_url()),
        "s3cret",
    );
    let url = format!("{}/rest/api/3/issue", jira.base_url());
    send("POST", &url, Some(issue_body("Mail down")), None).await;
    send(
        "PUT",
        &format!("{url}/OPS-1"),
        Some(json!({"fields": {"summary": "Mail back"}})),
        None,
    )
    .await;
    send(
        "PUT",
        &format!("{url}/OPS-5"),
        Some(json!({"fields": {}})),
        None,
    )
    .await;
    send(
        "POST",
        &format!("{url}/OPS-1/comment"),
        Some(json!({"body": "Restarted."})),
        None,
    )
    .await;
    jira.add_comment("OPS-1", "Confirmed.")
        .expect("user comment");
    jira.wait_webhooks(WAIT).await.expect("sent");

    let received = ingest.requests();
    let events: Vec<(String, String)> = received
        .iter()
        .map(|r| {
            let v = r.json();
            (
                v["webhookEvent"].as_str().unwrap_or_default().to_string(),
                v["issue"]["key"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            ("jira:issue_created".into(), "OPS-1".into()),
            ("jira:issue_updated".into(), "OPS-1".into()),
            ("comment_created".into(), "OPS-1".into()),
            ("comment_created".into(), "OPS-1".into()),
        ],
        "one per applied write, none for the refused one"
    );
    for r in &received {
        assert_eq!(r.path, "/v1/sources/jira/events");
        assert_eq!(
            r.header("x-hub-signature"),
            Some(intops_signature("s3cret", r.body.as_bytes()).as_str())
        );
    }
    let updated = received[1].json();
    assert_eq!(updated["issue"]["fields"]["summary"], "Mail back");
    assert_eq!(updated["changelog"]["items"][0]["field"], "summary");
    assert_eq!(updated["changelog"]["items"][0]["fromString"], "Mail down");
    let commented = received[2].json();
    assert_eq!(commented["comment"]["body"], "Restarted.");
    assert_eq!(
        received[3].json()["comment"]["author"]["displayName"],
        JIRA_USER
    );
    let sent = jira.webhooks();
    assert_eq!(sent.len(), 4);
    assert!(sent.iter().all(|w| w.status == Some(201)));
}

#[tokio::test]
async fn jira_honours_idempotency_keys_only_when_told() {
    let jira = JiraMock::start().await.expect("jira");
    let url = format!("{}/rest/api/3/issue", jira.base_url());
    let (_, a) = send("POST", &url, Some(issue_body("Mail down")), Some("e1:f")).await;
    let (_, b) = send("POST", &url, Some(issue_body("Mail down")), Some("e1:f")).await;
    assert_eq!(
        (a["key"].as_str(), b["key"].as_str()),
        (Some("OPS-1"), Some("OPS-2")),
        "off: like real Jira"
    );

    jira.honour_idempotency_key(true);
    let ingest = ingest().await;
    jira.send_webhooks_to(
        &format!("{}/v1/sources/jira/events", ingest.base_url()),
        "s",
    );
    let (s1, c) = send("POST", &url, Some(issue_body("Disk full")), Some("e2:f")).await;
    let (s2, d) = send("POST", &url, Some(issue_body("Disk full")), Some("e2:f")).await;
    assert_eq!((s1, s2), (201, 201));
    assert_eq!(c, d, "the first answer again");
    assert_eq!(jira.issues().len(), 3);
    let (_, n1) = send(
        "POST",
        &format!("{url}/OPS-3/comment"),
        Some(json!({"body": "x"})),
        Some("e3:g"),
    )
    .await;
    let (_, n2) = send(
        "POST",
        &format!("{url}/OPS-3/comment"),
        Some(json!({"body": "x"})),
        Some("e3:g"),
    )
    .await;
    assert_eq!(n1["id"], n2["id"]);
    assert_eq!(jira.issue("OPS-3").expect("issue").comments.len(), 1);
    jira.wait_webhooks(WAIT).await.expect("sent");
    assert_eq!(jira.webhooks().len(), 2, "no webhook for a replayed answer");
}

#[tokio::test]
async fn a_held_create_is_applied_and_answered_once_released() {
    let ingest = ingest().await;
    let jira = JiraMock::start().await.expect("jira");
    jira.send_webhooks_to(&ingest.base_url(), "s");
    let mut hold = jira.hold_next_create();
    let url = format!("{}/rest/api/3/issue", jira.base_url());
    let mut answer =
        tokio::spawn(async move { send("POST", &url, Some(issue_body("Mail down")), None).await });
    let request = hold.received(WAIT).await.expect("held");
    assert_eq!(request.path, "/rest/api/3/issue");
    assert!(jira.issue("OPS-1").is_some(), "applied before the answer");
    jira.wait_webhooks(WAIT).await.expect("sent");
    assert_eq!(
        jira.webhooks().len(),
        1,
        "webhook sent while the answer is held"
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(200), &mut answer)
            .await
            .is_err(),
        "answered while held"
    );
    hold.release();
    let (status, body) = answer.await.expect("joins");
    assert_eq!((status, body["key"].as_str()), (201, Some("OPS-1")));
}

#[tokio::test]
async fn failed_writes_change_nothing_and_send_no_webhook() {
    let ingest = ingest().await;
    let jira = JiraMock::start().await.expect("jira");
    jira.send_webhooks_to(&ingest.base_url(), "s");
    jira.fail_next(2, 503);
    let url = format!("{}/rest/api/3/issue", jira.base_url());
    for _ in 0..2 {
        assert_eq!(
            send("POST", &url, Some(issue_body("Mail down")), None)
                .await
                .0,
            503
        );
    }
    assert_eq!(
        send("POST", &url, Some(issue_body("Mail down")), None)
            .await
            .0,
        201
    );
    assert_eq!(jira.issues().len(), 1);
    jira.wait_webhooks(WAIT).await.expect("sent");
    assert_eq!(jira.webhooks().len(), 1);
    let statuses: Vec<u16> = jira.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [503, 503, 201]);
}

#[tokio::test]
async fn webhooks_are_retried_until_ingest_answers() {
    // A port nobody listens on yet: ingest "starting".
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let snow = ServiceNowMock::start().await.expect("snow");
    snow.send_webhooks_to(&format!("http://{addr}/v1/sources/servicenow/events"), "s");
    let created = snow
        .create_incident(json!({"priority": "1", "short_description": "Mail down"}))
        .expect("created");
    snow.update_incident(&created.sys_id, json!({"state": "2"}))
        .expect("updated");
    // Not sent yet: nothing listens.
    assert!(!snow.inner.webhooks.idle(Duration::from_millis(300)).await);
    let ingest = MockTarget::start_on(addr, false)
        .await
        .expect("ingest comes up");
    ingest.fail_next(1, 503);
    snow.wait_webhooks(WAIT).await.expect("sent");
    let sent = snow.webhooks();
    assert_eq!(sent.len(), 2);
    assert!(sent[0].attempts >= 2, "{:?}", sent[0]);
    let types: Vec<String> = ingest
        .requests()
        .iter()
        .filter(|r| r.status == 201)
        .map(|r| {
            r.json()["event_type"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(types, ["created", "updated"], "in order");
}

#[tokio::test]
async fn servicenow_merges_fields_and_appends_work_notes() {
    let ingest = ingest().await;
    let snow = ServiceNowMock::start().await.expect("snow");
    snow.send_webhooks_to(
        &format!("{}/v1/sources/servicenow/events", ingest.base_url()),
        "k",
    );
    let incident = snow
        .create_incident(
            json!({"sys_id": "abc123", "number": "INC0010023", "priority": "1",
            "short_description": "Mail down", "event_type": "created"}),
        )
        .expect("created");
    assert_eq!(incident.sys_id, "abc123");
    assert!(
        !incident.fields.contains_key("event_type"),
        "the webhook's field, not the record's"
    );
    let url = format!("{}/api/now/table/incident/abc123", snow.base_url());
    let (status, answer) = send(
        "PATCH",
        &url,
        Some(json!({"work_notes": "From Jira: restarted", "state": "2"})),
        None,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"]["state"], "2");
    assert_eq!(answer["result"]["short_description"], "Mail down");
    assert!(
        answer["result"]["work_notes"]
            .as_str()
            .is_some_and(|t| t.contains("rest.api (Work notes)\nFrom Jira: restarted")),
        "{answer}"
    );
    send("PATCH", &url, Some(json!({"work_notes": "second"})), None).await;
    let (status, _) = send(
        "PATCH",
        &format!("{}/api/now/table/incident/nope", snow.base_url()),
        Some(json!({"state": "2"})),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let notes: Vec<String> = snow
        .incident("abc123")
        .expect("incident")
        .work_notes
        .into_iter()
        .map(|e| e.value)
        .collect();
    assert_eq!(notes, ["From Jira: restarted", "second"]);
    let (status, shown) = send("GET", &url, None, None).await;
    assert_eq!(
        (status, shown["result"]["number"].as_str()),
        (200, Some("INC0010023"))
    );

    snow.wait_webhooks(WAIT).await.expect("sent");
    let received = ingest.requests();
    let seen: Vec<(String, String)> = received
        .iter()
        .map(|r| {
            let v = r.json();
            (
                v["event_type"].as_str().unwrap_or_default().into(),
                v["work_notes"].as_str().unwrap_or_default().into(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("created".into(), String::new()),
            ("updated".into(), "From Jira: restarted".into()),
            ("updated".into(), "second".into()),
        ]
    );
    for r in &received {
        assert_eq!(
            r.header("x-intops-signature"),
            Some(intops_signature("k", r.body.as_bytes()).as_str())
        );
        let v = r.json();
        assert_eq!(
            (v["sys_id"].as_str(), v["priority"].as_str()),
            (Some("abc123"), Some("1"))
        );
    }
}

#[tokio::test]
async fn servicenow_assigns_ids_to_new_incidents() {
    let snow = ServiceNowMock::start().await.expect("snow");
    let (status, answer) = send(
        "POST",
        &format!("{}/api/now/table/incident", snow.base_url()),
        Some(json!({"short_description": "Mail down", "priority": "1"})),
        None,
    )
    .await;
    assert_eq!(status, 201);
    let sys_id = answer["result"]["sys_id"].as_str().expect("sys_id");
    assert_eq!(sys_id.len(), 32);
    assert_eq!(answer["result"]["number"], "INC0010101");
    assert_eq!(answer["result"]["state"], "1");
    let again = json!({"sys_id": sys_id, "short_description": "dup"});
    assert_eq!(
        send(
            "POST",
            &format!("{}/api/now/table/incident", snow.base_url()),
            Some(again),
            None
        )
        .await
        .0,
        403
    );
}

#[tokio::test]
async fn both_systems_share_one_port_and_keep_state_across_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = Options {
        log: false,
        state_dir: Some(dir.path().to_path_buf()),
    };
    let mocks = ItsmMocks::start_on("127.0.0.1:0".parse().expect("addr"), &options)
        .await
        .expect("mocks");
    let base = mocks.jira.base_url();
    assert_eq!(base, mocks.servicenow.base_url());
    send(
        "POST",
        &format!("{base}/rest/api/3/issue"),
        Some(issue_body("Mail down")),
        None,
    )
    .await;
    let incident = mocks
        .servicenow
        .create_incident(json!({"short_description": "x"}))
        .expect("incident");
    drop(mocks);

    let again = ItsmMocks::start_on("127.0.0.1:0".parse().expect("addr"), &options)
        .await
        .expect("restarted");
    let base = again.jira.base_url();
    let (_, next) = send(
        "POST",
        &format!("{base}/rest/api/3/issue"),
        Some(issue_body("Disk full")),
        None,
    )
    .await;
    assert_eq!(next["key"], "OPS-2", "keys are never reused");
    assert!(again.servicenow.incident(&incident.sys_id).is_some());
    let (status, _) = send(
        "GET",
        &format!("{base}/api/now/table/incident/{}", incident.sys_id),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200);
}
