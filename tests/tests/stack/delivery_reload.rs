//! Delivery reloads its flows file (issue 18, item 4): a target's changed
//! URL applies to the next request, a new target starts, a removed target
//! stops being consumed and its records stay until it is back; a file
//! with an unreadable credential is refused, counted, and the last valid
//! targets keep running.

use std::time::Duration;

use intops_events::Topics;
use intops_tests::deliveries::{produce, received};
use intops_tests::pipeline::app_flows;
use intops_tests::{MockTarget, Pipeline, group, poll_until};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

/// `main` at `url`, and with `crm`: target `crm` at `crm_url` with a flow
/// posting `{event: .id}` to it.
fn flows(url: &str, crm_url: Option<&str>) -> String {
    let crm = crm_url.map_or(String::new(), |u| {
        format!(
            r#"
[[targets]]
id = "crm"
base_url = "{u}"

[[flows]]
id = "app-to-crm"
source = "app"
target = "crm"
path = "/records"
map = '{{event: .id}}'
"#
        )
    });
    app_flows(url, "main", "", &crm)
}

async fn post(p: &Pipeline, id: &str) {
    p.post_json("app", &json!([{"id": id, "n": 1}])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn targets_reload_without_a_restart_and_a_bad_file_is_refused() {
    let (first, second, crm) = (
        MockTarget::start().await.expect("target"),
        MockTarget::start().await.expect("target"),
        MockTarget::start().await.expect("target"),
    );
    let p = Pipeline::start("dreload", &flows(&first.base_url(), None), &[])
        .await
        .expect("pipeline");
    post(&p, "d0").await;
    poll_until("the first delivery", WAIT, || async {
        (first.request_count() == 1).then_some(())
    })
    .await;

    // `main` moves to the second URL; `crm` is new.
    let v2 = flows(&second.base_url(), Some(&crm.base_url()));
    std::fs::write(p.flows_path(), &v2).expect("reload");
    let mut n = 0;
    poll_until("a delivery to main's new URL", WAIT, || {
        n += 1;
        let id = format!("d{n}");
        let (p, first, second) = (&p, &first, &second);
        async move {
            post(p, &id).await;
            poll_until("that event's delivery", WAIT, || async {
                (first.request_count() + second.request_count() > n).then_some(())
            })
            .await;
            (second.request_count() > 0).then_some(())
        }
    })
    .await;
    post(&p, "to-crm").await;
    poll_until("a delivery to the new target", WAIT, || async {
        received(&crm).contains_key("to-crm").then_some(())
    })
    .await;

    // `crm` removed: its consumer leaves the group (a probe gets every
    // partition), records written to its topic meanwhile stay there and
    // are delivered once the target is back.
    std::fs::write(p.flows_path(), flows(&second.base_url(), None)).expect("reload");
    let topics = Topics::new(&p.prefix);
    group::wait_until_killed_member_is_gone(
        &topics.group("delivery.crm"),
        &topics.deliveries("crm"),
        3,
        WAIT,
    )
    .await;
    let waiting = produce(&topics, 3, 3).await;
    std::fs::write(p.flows_path(), &v2).expect("reload");
    poll_until(
        "the waiting records delivered after the target is back",
        WAIT,
        || async {
            let got = received(&crm);
            waiting.iter().all(|id| got.contains_key(id)).then_some(())
        },
    )
    .await;

    // An unreadable credential refuses the whole file: `main` keeps its URL.
    let refused = |result: &'static str| {
        let monitor = p.monitor;
        async move {
            intops_tests::metrics::sum(
                monitor,
                &format!("intops_flows_reloads_total{{service=\"delivery\",result=\"{result}\"}}"),
            )
            .await
            .unwrap_or(0.0)
        }
    };
    let before = refused("error").await;
    let broken = v2.replace(
        "id = \"main\"",
        "id = \"main\"\nauth = { bearer = { file = \"/nonexistent/token\" } }",
    );
    assert_ne!(broken, v2);
    std::fs::write(p.flows_path(), broken).expect("reload");
    poll_until("the refused reload counted", WAIT, || async {
        (refused("error").await > before).then_some(())
    })
    .await;
    let delivered = second.request_count();
    post(&p, "after-refusal").await;
    poll_until("delivery with the last valid targets", WAIT, || async {
        (second.request_count() > delivered).then_some(())
    })
    .await;
    p.stop().await.expect("clean stop");
}
