//! `intops topics plan` names exactly the topics a running deployment
//! creates, with the partitions and cleanup configs the broker reports.

use std::collections::BTreeMap;
use std::time::Duration;

use intops_tests::{Pipeline, cli, poll_until, stack};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);

/// Topic name → partition count, for the topics under `prefix`.
fn broker_topics(prefix: &str) -> BTreeMap<String, usize> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", stack::bootstrap())
        .create()
        .expect("consumer");
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("metadata");
    metadata
        .topics()
        .iter()
        .filter(|t| t.name().starts_with(&format!("{prefix}.")))
        .map(|t| (t.name().to_string(), t.partitions().len()))
        .collect()
}

/// The broker's `cleanup.policy` and `retention.ms` of `topic`.
async fn broker_configs(topic: &str) -> BTreeMap<String, String> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", stack::bootstrap())
        .create()
        .expect("admin");
    let results = admin
        .describe_configs(
            [&ResourceSpecifier::Topic(topic)],
            &AdminOptions::new().request_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("describe configs");
    let resource = results
        .into_iter()
        .next()
        .expect("one result")
        .unwrap_or_else(|e| panic!("configs of {topic}: {e}"));
    resource
        .entries
        .into_iter()
        .filter(|e| e.name == "cleanup.policy" || e.name == "retention.ms")
        .filter_map(|e| Some((e.name, e.value?)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn plan_matches_what_a_running_deployment_creates() {
    let _turn = intops_tests::serial::beside_others().await;
    let flows = intops_tests::pipeline::app_flows("http://127.0.0.1:9", "crm", "", "");
    let p = Pipeline::start("plan", &flows, &[])
        .await
        .expect("pipeline");
    // The command line creates the topics only replays use.
    cli::run(&p.prefix, &["dlq", "replay", "--operator", "test"]).await;

    let flows_path = p.flows_path().display().to_string();
    let plan = cli::json(
        &p.prefix,
        &["topics", "plan", "--flows", &flows_path, "--format", "json"],
    )
    .await;
    let planned: BTreeMap<String, &Value> = plan
        .as_array()
        .expect("array")
        .iter()
        .map(|t| (t["name"].as_str().expect("name").to_string(), t))
        .collect();
    assert!(planned.contains_key(&format!("{}.control", p.prefix)));

    // Delivery creates the control topic after it is ready: wait for it.
    let created = poll_until("every planned topic created", WAIT, || async {
        let created = broker_topics(&p.prefix);
        (created.len() >= planned.len()).then_some(created)
    })
    .await;
    assert_eq!(
        created.keys().collect::<Vec<_>>(),
        planned.keys().collect::<Vec<_>>(),
        "topics on the broker vs the plan"
    );
    for (name, topic) in &planned {
        assert_eq!(
            Some(created[name] as u64),
            topic["partitions"].as_u64(),
            "partitions of {name}"
        );
        let want: BTreeMap<String, String> = topic["configs"]
            .as_object()
            .expect("configs")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
        let have = broker_configs(name).await;
        for (key, value) in &want {
            assert_eq!(have.get(key), Some(value), "{key} of {name}: {have:?}");
        }
    }
    p.stop().await.expect("stop");
}
