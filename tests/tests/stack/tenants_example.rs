//! The tenants example (deploy/local/tenants.toml) on the real stack
//! (issue 19, items 1, 2, 3, 5 and 7): one template for two tenants, an
//! incident sent to each tenant's webhook reaches that tenant's Jira with
//! its own project and its own priority table; records, the monitor and
//! the dead-letter CLI carry and filter by the tenant; one tenant's Jira
//! refusing everything dead-letters only that tenant's events.

use std::time::Duration;

use intops_tests::sign::intops_signature;
use intops_tests::{MockTarget, Pipeline, cli, poll_until, topic};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);
const EXAMPLE: &str = include_str!("../../../deploy/local/tenants.toml");
const FIXTURE: &str = include_str!("../../fixtures/servicenow-incident-created.json");

fn flows(acme: &MockTarget, globex: &MockTarget) -> String {
    let replaced = [
        (
            r#"{ env = "ACME_SNOW_SECRET" }"#,
            r#"{ file = "{secrets}/acme" }"#.to_string(),
        ),
        (
            r#"{ env = "GLOBEX_SNOW_SECRET" }"#,
            r#"{ file = "{secrets}/globex" }"#.to_string(),
        ),
        (
            r#"jira_url = "http://127.0.0.1:8090", project = "ACME""#,
            format!(r#"jira_url = "{}", project = "ACME""#, acme.base_url()),
        ),
        (
            r#"jira_url = "http://127.0.0.1:8090", project = "GLX""#,
            format!(r#"jira_url = "{}", project = "GLX""#, globex.base_url()),
        ),
    ];
    let mut text = EXAMPLE.to_string();
    for (from, to) in replaced {
        assert!(text.contains(from), "the example no longer contains {from}");
        text = text.replace(from, &to);
    }
    text
}

async fn send(p: &Pipeline, source: &str, secret: &str, body: &str) {
    let r = reqwest::Client::new()
        .post(p.ingest_url(source))
        .header(
            "x-intops-signature",
            intops_signature(secret, body.as_bytes()),
        )
        .body(body.to_string())
        .send()
        .await
        .expect("ingest answers");
    assert_eq!(r.status(), 202, "{source}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_tenant_gets_its_own_target_and_mapping() {
    let (acme, globex) = (
        MockTarget::start().await.expect("target"),
        MockTarget::start().await.expect("target"),
    );
    let p = Pipeline::start(
        "tenants",
        &flows(&acme, &globex),
        &[("acme", "acme-secret"), ("globex", "globex-secret")],
    )
    .await
    .expect("pipeline");
    send(&p, "acme.servicenow", "acme-secret", FIXTURE).await;
    let second = FIXTURE.replace(r#""priority": "1""#, r#""priority": "2""#);
    send(&p, "globex.servicenow", "globex-secret", &second).await;
    // A tenant's secret does not open another tenant's webhook.
    let wrong = reqwest::Client::new()
        .post(p.ingest_url("globex.servicenow"))
        .header(
            "x-intops-signature",
            intops_signature("acme-secret", FIXTURE.as_bytes()),
        )
        .body(FIXTURE)
        .send()
        .await
        .expect("ingest answers");
    assert_eq!(wrong.status(), 401);

    let fields = |t: &MockTarget| -> Option<Value> {
        t.requests().first().map(|r| r.json()["fields"].clone())
    };
    let a = poll_until("acme's issue", WAIT, || async { fields(&acme) }).await;
    let g = poll_until("globex's issue", WAIT, || async { fields(&globex) }).await;
    assert_eq!(a["project"]["key"], "ACME", "{a}");
    assert_eq!(a["priority"]["name"], "Highest", "{a}");
    assert_eq!(g["project"]["key"], "GLX", "{g}");
    assert_eq!(g["priority"]["name"], "Critical", "globex's own table: {g}");
    assert_eq!((acme.request_count(), globex.request_count()), (1, 1));

    // The records carry the tenant.
    let outcomes = format!("{}.outcomes", p.prefix);
    let codec = intops_tests::stack::codec();
    let delivered: Vec<intops_events::Outcome> = {
        let mut out = Vec::new();
        for m in topic::read(&outcomes, 2, WAIT) {
            let bytes = rdkafka::message::Message::payload(&m).expect("value");
            out.push(codec.decode(bytes).await.expect("outcome"));
        }
        out
    };
    let mut tenants: Vec<Option<&str>> = delivered.iter().map(|o| o.tenant.as_deref()).collect();
    tenants.sort();
    assert_eq!(tenants, [Some("acme"), Some("globex")]);

    // The monitor filters by tenant.
    let flows: Value = reqwest::get(format!("http://{}/api/v1/flows?tenant=globex", p.monitor))
        .await
        .expect("monitor")
        .json()
        .await
        .expect("json");
    let ids: Vec<&str> = flows["flows"]
        .as_array()
        .map(|f| f.iter().filter_map(|f| f["flow_id"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(ids, ["globex.p1"], "{flows}");

    // Globex's Jira refuses everything: globex's events are dead-lettered
    // under its tenant, acme's still arrive.
    globex.set_status(400);
    for n in 0..3 {
        let body = FIXTURE.replace("9d385017c611228701d22104cc95c371", &format!("g{n}"));
        send(&p, "globex.servicenow", "globex-secret", &body).await;
        let body = FIXTURE.replace("9d385017c611228701d22104cc95c371", &format!("a{n}"));
        send(&p, "acme.servicenow", "acme-secret", &body).await;
    }
    poll_until("acme's three new issues", WAIT, || async {
        (acme.request_count() == 4).then_some(())
    })
    .await;
    let listed = poll_until("globex's dead letters", WAIT, || async {
        let l = cli::json(&p.prefix, &["dlq", "list", "--tenant", "globex", "--json"]).await;
        (l["total"] == 3).then_some(l)
    })
    .await;
    assert_eq!(listed["groups"][0]["flow"], "globex.p1", "{listed}");
    let none = cli::json(&p.prefix, &["dlq", "list", "--tenant", "acme", "--json"]).await;
    assert_eq!(none["total"], 0, "{none}");
    p.stop().await.expect("clean stop");
}
