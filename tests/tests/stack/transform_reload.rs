//! Transform reloads its flows file: a valid change takes effect without a
//! restart; an invalid one is refused, counted, and the last valid flows
//! keep running.

use std::time::Duration;

use intops_tests::pipeline::example_flows;
use intops_tests::sign::intops_signature;
use intops_tests::{MockTarget, Pipeline, poll_until};

const SECRET: &str = "reload-secret";
const WAIT: Duration = Duration::from_secs(60);

async fn send(pipeline: &Pipeline, body: &str) {
    let r = reqwest::Client::new()
        .post(pipeline.ingest_url("servicenow"))
        .header(
            "x-intops-signature",
            intops_signature(SECRET, body.as_bytes()),
        )
        .body(body.to_string())
        .send()
        .await
        .expect("ingest answers");
    assert_eq!(r.status(), 202);
}

fn incident(n: usize) -> String {
    serde_json::json!({
        "sys_id": format!("reload-{n}"), "number": format!("INC{n}"), "priority": "1",
        "short_description": "Mail down", "description": "", "sys_created_on": "2026-11-28 08:00:00"
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flows_reload_valid_changes_and_refuse_invalid_ones() {
    // Alone: the reload counters read below are the process's
    // (intops_tests::serial).
    let _turn = intops_tests::serial::alone().await;
    let target = MockTarget::start().await.expect("target");
    let original = example_flows(&target.base_url());
    let pipeline = Pipeline::start("reload", &original, &[("snow", SECRET)])
        .await
        .expect("pipeline");
    send(&pipeline, &incident(0)).await;
    poll_until("the first delivery", WAIT, || async {
        (!target.requests().is_empty()).then_some(())
    })
    .await;
    assert_eq!(
        target.requests()[0].json()["fields"]["summary"],
        "Mail down"
    );

    // The reload counters are the process's: count from here (this test
    // runs alone, so every reload from now on is this pipeline's).
    let reloads = |result: &'static str| {
        let line =
            format!("intops_flows_reloads_total{{service=\"transform\",result=\"{result}\"}}");
        let monitor = pipeline.monitor;
        async move { intops_tests::metrics::sum(monitor, &line).await }
    };
    let ok_before = reloads("ok").await.unwrap_or(0.0);
    let error_before = reloads("error").await.unwrap_or(0.0);

    // A valid change: the summary gets a prefix; no restart.
    let flows_path = pipeline.flows_path();
    let current = std::fs::read_to_string(&flows_path).expect("flows");
    let changed = current.replace(
        "summary: .short_description,",
        r#"summary: ("[P1] " + .short_description),"#,
    );
    assert_ne!(changed, current);
    std::fs::write(&flows_path, &changed).expect("write");
    let mut n = 1;
    poll_until("the changed mapping to be used", WAIT, || {
        n += 1;
        let id = n;
        let pipeline = &pipeline;
        let target = &target;
        async move {
            let delivered = target.requests().len();
            send(pipeline, &incident(id)).await;
            poll_until("that event's delivery", WAIT, || async {
                (target.requests().len() > delivered).then_some(())
            })
            .await;
            let last = target
                .requests()
                .last()
                .map(|r| r.json()["fields"]["summary"].clone())?;
            (last == "[P1] Mail down").then_some(())
        }
    })
    .await;
    let reloaded_ok = reloads("ok").await;
    assert!(reloaded_ok >= Some(ok_before + 1.0), "{reloaded_ok:?}");

    // An invalid change is refused and counted; the last valid flows stay.
    std::fs::write(
        &flows_path,
        changed.replace(r#"when = '.priority == "1"'"#, r#"when = '.priority =='"#),
    )
    .expect("write");
    poll_until("the refused reload to be counted", WAIT, || async {
        (reloads("error").await >= Some(error_before + 1.0)).then_some(())
    })
    .await;
    let before = target.requests().len();
    send(&pipeline, &incident(1000)).await;
    poll_until("delivery with the last valid flows", WAIT, || async {
        (target.requests().len() > before).then_some(())
    })
    .await;
    assert_eq!(
        target.requests().last().expect("request").json()["fields"]["summary"],
        "[P1] Mail down"
    );
    pipeline.stop().await.expect("clean stop");
}
