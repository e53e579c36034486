//! The four services started in-process through their library `run`
//! functions, against the real local stack, on a random topic prefix.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use intops_runtime::{CancellationToken, CommonArgs, admin};
use tokio::task::JoinSet;

use crate::poll_until;
use crate::stack;

/// The shipped example flows file (`deploy/local/flows.toml`), pointed at
/// `target_base_url`, its secret read from `{secrets}/snow`.
pub fn example_flows(target_base_url: &str) -> String {
    let text = include_str!("../../deploy/local/flows.toml");
    for needle in [r#"{ env = "SNOW_SECRET" }"#, "http://127.0.0.1:8090"] {
        assert!(
            text.contains(needle),
            "example flows file no longer contains {needle}"
        );
    }
    text.replace(
        r#"{ env = "SNOW_SECRET" }"#,
        r#"{ file = "{secrets}/snow" }"#,
    )
    .replace("http://127.0.0.1:8090", target_base_url)
}

/// A running pipeline; [`Pipeline::stop`] shuts it down gracefully.
#[derive(Debug)]
pub struct Pipeline {
    /// The topic prefix of this pipeline.
    pub prefix: String,
    /// Ingest's address.
    pub ingest: SocketAddr,
    /// The monitor's address.
    pub monitor: SocketAddr,
    shutdown: CancellationToken,
    tasks: JoinSet<(&'static str, anyhow::Result<()>)>,
    _dir: tempfile::TempDir,
}

impl Pipeline {
    /// Writes `flows` (a flows file's text) and `secrets` (file name,
    /// content) to a temporary directory, starts ingest, transform,
    /// delivery and monitor, and waits until ingest and the monitor are
    /// ready. In `flows`, `{secrets}` stands for that directory.
    pub async fn start(name: &str, flows: &str, secrets: &[(&str, &str)]) -> anyhow::Result<Self> {
        intops_runtime::telemetry::init(intops_runtime::telemetry::LogFormat::Text);
        let dir = tempfile::tempdir()?;
        for (file, content) in secrets {
            std::fs::write(dir.path().join(file), content)?;
        }
        let flows_path: PathBuf = dir.path().join("flows.toml");
        std::fs::write(
            &flows_path,
            flows.replace("{secrets}", &dir.path().display().to_string()),
        )?;
        let prefix = stack::random_prefix(name);
        let mut common = CommonArgs::local(flows_path, &prefix);
        common.kafka_bootstrap = stack::bootstrap();
        common.schema_registry_url = stack::registry_url();

        let shutdown = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let ingest_listener = admin::bind("127.0.0.1:0".parse()?).await?;
        let monitor_listener = admin::bind("127.0.0.1:0".parse()?).await?;
        let ingest = ingest_listener.local_addr()?;
        let monitor = monitor_listener.local_addr()?;

        let ingest_args = intops_ingest::IngestArgs {
            common: common.clone(),
            listen: ingest,
            ack_timeout: Duration::from_secs(10),
            max_body: 1024 * 1024,
        };
        let s = shutdown.clone();
        tasks.spawn(async move {
            (
                "ingest",
                intops_ingest::run(ingest_args, ingest_listener, s).await,
            )
        });
        let s = shutdown.clone();
        let args = intops_transform::Args {
            common: common.clone(),
            concurrency: 32,
        };
        tasks.spawn(async move { ("transform", intops_transform::run(args, s).await) });
        let s = shutdown.clone();
        let args = intops_delivery::Args {
            common: common.clone(),
            targets: vec![],
        };
        tasks.spawn(async move { ("delivery", intops_delivery::run(args, s).await) });
        let s = shutdown.clone();
        let args = intops_monitor::Args {
            common,
            listen: monitor,
            max_events: 100_000,
        };
        tasks.spawn(async move {
            (
                "monitor",
                intops_monitor::run(args, monitor_listener, s).await,
            )
        });

        let pipeline = Self {
            prefix,
            ingest,
            monitor,
            shutdown,
            tasks,
            _dir: dir,
        };
        let http = reqwest::Client::new();
        for addr in [ingest, monitor] {
            let url = format!("http://{addr}/readyz");
            poll_until(
                &format!("{url} to answer 200"),
                Duration::from_secs(60),
                || {
                    let http = http.clone();
                    let url = url.clone();
                    async move {
                        let r = http.get(&url).send().await.ok()?;
                        r.status().is_success().then_some(())
                    }
                },
            )
            .await;
        }
        Ok(pipeline)
    }

    /// The URL of ingest's webhook endpoint for `source`.
    pub fn ingest_url(&self, source: &str) -> String {
        format!("http://{}/v1/sources/{source}/events", self.ingest)
    }

    /// The URL of the monitor's event endpoint.
    pub fn event_url(&self, event_id: &str) -> String {
        format!("http://{}/api/v1/events/{event_id}", self.monitor)
    }

    /// Stops every service and returns how each ended; a service that
    /// failed makes this an error naming it.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        let mut failures = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while let Ok(Some(joined)) = tokio::time::timeout_at(deadline, self.tasks.join_next()).await
        {
            match joined {
                Ok((_, Ok(()))) => {}
                Ok((name, Err(e))) => failures.push(format!("{name}: {e:#}")),
                Err(e) => failures.push(format!("task: {e}")),
            }
        }
        if !self.tasks.is_empty() {
            failures.push(format!(
                "{} service(s) did not stop within 60s",
                self.tasks.len()
            ));
        }
        anyhow::ensure!(
            failures.is_empty(),
            "services failed: {}",
            failures.join("; ")
        );
        Ok(())
    }
}
