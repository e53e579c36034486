//! Tenant isolation on the real stack (issue 19, item 5): one template,
//! two tenants. Acme sends a burst of bad events (its source's dead-letter
//! cap trips), its target fails (its circuit opens) and is paused by an
//! operator, and it goes over its ingest quota; all the while every one of
//! globex's events is accepted and delivered. A second pair: hooli's
//! target is rate-limited to one request an hour while every one of
//! piedpiper's events is delivered.

use std::time::Duration;

use intops_tests::{MockTarget, Pipeline, cli, metrics, poll_until};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

fn flows(acme: &MockTarget, globex: &MockTarget) -> String {
    format!(
        r#"
[[templates]]
id = "app-to-crm"
params = ["url"]

  [[templates.sources]]
  id = "app"
  kind = "webhook"
  auth = "none"
  entity_key = ".id"

  [[templates.targets]]
  id = "crm"
  base_url = "{{{{ $params.url }}}}"
  retry = {{ max_attempts = 1 }}
  circuit_breaker = {{ failures = 2, open_for = "10m" }}

  [[templates.flows]]
  id = "sync"
  source = "app"
  target = "crm"
  path = "/records"
  map = '{{id: .id, name: (.name | ascii_downcase)}}'

[[tenants]]
id = "acme"
template = "app-to-crm"
params = {{ url = "{}" }}
quota = "60/h"

[[tenants]]
id = "globex"
template = "app-to-crm"
params = {{ url = "{}" }}
"#,
        acme.base_url(),
        globex.base_url()
    )
}

fn records(tag: &str, n: usize, good: bool) -> Value {
    Value::Array(
        (0..n)
            .map(|i| {
                if good {
                    json!({"id": format!("{tag}-{i}"), "name": "Ada"})
                } else {
                    json!({"id": format!("{tag}-{i}")})
                }
            })
            .collect(),
    )
}

async fn post(p: &Pipeline, source: &str, body: &Value) -> u16 {
    reqwest::Client::new()
        .post(p.ingest_url(source))
        .json(body)
        .send()
        .await
        .expect("ingest answers")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_tenants_trouble_never_holds_another_tenants_events() {
    let _turn = intops_tests::serial::beside_others().await;
    let (acme, globex) = (
        MockTarget::start().await.expect("target"),
        MockTarget::start().await.expect("target"),
    );
    let p = Pipeline::start("isolation", &flows(&acme, &globex), &[])
        .await
        .expect("pipeline");
    let gauge = |line: String| async move { metrics::sum(p.monitor, &line).await };

    // Acme's target fails: two failures open its circuit.
    acme.set_status(500);
    assert_eq!(post(&p, "acme.app", &records("fail", 2, true)).await, 202);
    poll_until("acme's circuit open", WAIT, || async {
        (gauge(r#"intops_delivery_circuit_state{target="acme.crm"}"#.into()).await == Some(1.0))
            .then_some(())
    })
    .await;

    // An operator pauses it too.
    cli::run(
        &p.prefix,
        &[
            "target",
            "pause",
            "acme.crm",
            "--reason",
            "acme maintenance",
        ],
    )
    .await;

    // A burst of bad events trips acme's source's dead-letter cap.
    assert_eq!(post(&p, "acme.app", &records("bad", 25, false)).await, 202);
    poll_until("acme's dead-letter cap tripped", WAIT, || async {
        (gauge(r#"intops_dead_letter_cap_tripped{stage="transform",scope="acme.app"}"#.into())
            .await
            == Some(1.0))
        .then_some(())
    })
    .await;

    // Acme is over its quota (2 + 25 + 40 > 60).
    assert_eq!(post(&p, "acme.app", &records("over", 40, true)).await, 429);

    // Globex: every event accepted and delivered.
    for round in 0..3 {
        assert_eq!(
            post(&p, "globex.app", &records(&format!("g{round}"), 30, true)).await,
            202
        );
    }
    poll_until("every globex event delivered", WAIT, || async {
        (globex.request_count() == 90).then_some(())
    })
    .await;
    let acme_requests = acme.request_count();
    assert!(
        acme_requests <= 2,
        "acme's target was called {acme_requests} times"
    );
    // Ingest counts each tenant's events under its tenant: acme's 27
    // accepted (the 40 over its quota were refused), globex's 90.
    let accepted = |source: &str, tenant: &str| {
        gauge(format!(
            r#"intops_ingest_events_total{{source="{source}",tenant="{tenant}"}}"#
        ))
    };
    assert_eq!(accepted("globex.app", "globex").await, Some(90.0));
    assert_eq!(accepted("acme.app", "acme").await, Some(27.0));
    p.stop().await.expect("clean stop");
}

/// One template for hooli and piedpiper; hooli's target is limited to one
/// request an hour (an override of the tenant's own).
fn rate_limited_flows(hooli: &MockTarget, piedpiper: &MockTarget) -> String {
    format!(
        r#"
[[templates]]
id = "app-to-crm"
params = ["url"]

  [[templates.sources]]
  id = "app"
  kind = "webhook"
  auth = "none"
  entity_key = ".id"

  [[templates.targets]]
  id = "crm"
  base_url = "{{{{ $params.url }}}}"

  [[templates.flows]]
  id = "sync"
  source = "app"
  target = "crm"
  path = "/records"
  map = '{{id: .id}}'

[[tenants]]
id = "hooli"
template = "app-to-crm"
params = {{ url = "{}" }}
overrides = {{ targets = {{ crm = {{ rate_limit = "1/h" }} }} }}

[[tenants]]
id = "piedpiper"
template = "app-to-crm"
params = {{ url = "{}" }}
"#,
        hooli.base_url(),
        piedpiper.base_url()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_tenants_rate_limit_never_holds_another_tenants_events() {
    let _turn = intops_tests::serial::beside_others().await;
    let (hooli, piedpiper) = (
        MockTarget::start().await.expect("target"),
        MockTarget::start().await.expect("target"),
    );
    let p = Pipeline::start("ratelimit", &rate_limited_flows(&hooli, &piedpiper), &[])
        .await
        .expect("pipeline");
    assert_eq!(post(&p, "hooli.app", &records("h", 5, true)).await, 202);
    poll_until(
        "hooli's requests waiting for its rate limit",
        WAIT,
        || async {
            let waits = metrics::sum(
                p.monitor,
                r#"intops_delivery_rate_limited_waits_total{target="hooli.crm"}"#,
            )
            .await?;
            (waits >= 1.0).then_some(())
        },
    )
    .await;
    assert_eq!(
        post(&p, "piedpiper.app", &records("p", 30, true)).await,
        202
    );
    poll_until("every piedpiper event delivered", WAIT, || async {
        (piedpiper.request_count() == 30).then_some(())
    })
    .await;
    assert_eq!(hooli.request_count(), 1, "one request an hour");
    p.stop().await.expect("clean stop");
}
