//! The tenants example (deploy/local/tenants.toml) on the real stack
//! (issue 19, items 1, 2 and 7): one template for two tenants, an
//! incident sent to each tenant's webhook reaches that tenant's Jira with
//! its own project and its own priority table.

use std::time::Duration;

use intops_tests::sign::intops_signature;
use intops_tests::{MockTarget, Pipeline, poll_until};
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
    p.stop().await.expect("clean stop");
}
