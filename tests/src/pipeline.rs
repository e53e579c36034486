//! The four services started in-process through their library `run`
//! functions, against the real local stack, on a random topic prefix.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use intops_runtime::{CancellationToken, CommonArgs, admin};
use tokio::task::JoinSet;

use crate::poll_until;
use crate::stack;

/// A small flows file: source `app` (webhook, no auth, entity key `.id`),
/// target `target_id` at `base_url` with `target_settings` (TOML lines),
/// and flow `app-to-<target_id>` posting `{id: .id, n: .n}` to `/records`;
/// `more` is appended (further flows).
pub fn app_flows(base_url: &str, target_id: &str, target_settings: &str, more: &str) -> String {
    format!(
        r#"
[[sources]]
id = "app"
kind = "webhook"
auth = "none"
entity_key = ".id"

[[targets]]
id = "{target_id}"
base_url = "{base_url}"
{target_settings}

[[flows]]
id = "app-to-{target_id}"
source = "app"
target = "{target_id}"
method = "POST"
path = "/records"
map = '{{id: .id, n: .n}}'
{more}
"#
    )
}

/// The shipped example flows file (`deploy/local/flows.toml`), pointed at
/// `target_base_url`, its secret read from `{secrets}/snow`.
pub fn example_flows(target_base_url: &str) -> String {
    let text = include_str!("../../deploy/local/flows.toml");
    for needle in [
        r#"{ env = "SNOW_SECRET" }"#,
        r#"{ env = "JIRA_SECRET" }"#,
        "http://127.0.0.1:8090",
    ] {
        assert!(
            text.contains(needle),
            "example flows file no longer contains {needle}"
        );
    }
    text.replace(
        r#"{ env = "SNOW_SECRET" }"#,
        r#"{ file = "{secrets}/snow" }"#,
    )
    .replace(
        r#"{ env = "JIRA_SECRET" }"#,
        r#"{ file = "{secrets}/snow" }"#,
    )
    .replace("http://127.0.0.1:8090", target_base_url)
}

/// Ingest alone, on a random topic prefix, against `bootstrap`.
#[derive(Debug)]
pub struct IngestOnly {
    /// The topic prefix.
    pub prefix: String,
    /// Ingest's address.
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

impl IngestOnly {
    /// Starts ingest with `flows` (`{secrets}` as in [`Pipeline::start`])
    /// and waits until it is ready.
    pub async fn start(
        name: &str,
        flows: &str,
        secrets: &[(&str, &str)],
        bootstrap: &str,
        ack_timeout: Duration,
    ) -> anyhow::Result<Self> {
        let prefix = stack::random_prefix(name);
        Self::start_on_prefix(&prefix, flows, secrets, bootstrap, ack_timeout).await
    }

    /// [`IngestOnly::start`] on a given topic prefix (a restart).
    pub async fn start_on_prefix(
        prefix: &str,
        flows: &str,
        secrets: &[(&str, &str)],
        bootstrap: &str,
        ack_timeout: Duration,
    ) -> anyhow::Result<Self> {
        intops_runtime::telemetry::init(intops_runtime::telemetry::LogFormat::Text);
        let dir = write_config(flows, secrets)?;
        let prefix = prefix.to_string();
        let mut common = CommonArgs::local(dir.path().join("flows.toml"), &prefix);
        common.connect.kafka_bootstrap = bootstrap.to_string();
        common.shutdown_timeout = Duration::from_secs(5);
        common.connect.schema_registry_url = stack::registry_url();
        let listener = admin::bind("127.0.0.1:0".parse()?).await?;
        let addr = listener.local_addr()?;
        let args = intops_ingest::IngestArgs {
            common,
            listen: addr,
            ack_timeout,
        };
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(intops_ingest::run(args, listener, shutdown.clone()));
        wait_ready(&format!("http://{addr}/readyz")).await;
        Ok(Self {
            prefix,
            addr,
            shutdown,
            task,
            _dir: dir,
        })
    }

    /// The URL of the webhook endpoint for `source`.
    pub fn url(&self, source: &str) -> String {
        format!("http://{}/v1/sources/{source}/events", self.addr)
    }

    /// Rewrites the flows file ingest runs with (`{secrets}` as in
    /// [`IngestOnly::start`]): ingest reloads it.
    pub fn rewrite_flows(&self, flows: &str) -> anyhow::Result<()> {
        let text = flows.replace("{secrets}", &self._dir.path().display().to_string());
        std::fs::write(self._dir.path().join("flows.toml"), text)?;
        Ok(())
    }

    /// Stops ingest; an error if it failed.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(60), self.task).await???;
        Ok(())
    }
}

fn write_config(flows: &str, secrets: &[(&str, &str)]) -> anyhow::Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    for (file, content) in secrets {
        std::fs::write(dir.path().join(file), content)?;
    }
    let text = flows.replace("{secrets}", &dir.path().display().to_string());
    std::fs::write(dir.path().join("flows.toml"), text)?;
    Ok(dir)
}

async fn wait_ready(url: &str) {
    let http = reqwest::Client::new();
    poll_until(
        &format!("{url} to answer 200"),
        Duration::from_secs(60),
        || {
            let http = http.clone();
            async move {
                let r = http.get(url).send().await.ok()?;
                r.status().is_success().then_some(())
            }
        },
    )
    .await;
}

/// A monitor started beside a running pipeline, on its topics.
#[derive(Debug)]
pub struct Monitor {
    /// Its address.
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Monitor {
    /// Stops it gracefully.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.task.await?
    }
}

/// Starts another monitor on `pipeline`'s topics and flows file and waits
/// until it has read them (ready).
pub async fn start_monitor(pipeline: &Pipeline) -> anyhow::Result<Monitor> {
    start_monitor_with_users(pipeline, None).await
}

/// [`start_monitor`] with a users file (`INTOPS_MONITOR_USERS_FILE`,
/// beside the flows file) naming `users` as (name, role, token).
pub async fn start_console(
    pipeline: &Pipeline,
    users: &[(&str, &str, &str)],
) -> anyhow::Result<Monitor> {
    use sha2::Digest as _;
    let text: String = users
        .iter()
        .map(|(name, role, token)| {
            format!(
                "[[users]]\nname = \"{name}\"\nrole = \"{role}\"\ntoken_sha256 = \"{}\"\n\n",
                hex::encode(sha2::Sha256::digest(token.as_bytes()))
            )
        })
        .collect();
    let file = pipeline.flows_path().with_file_name("users.toml");
    std::fs::write(&file, text)?;
    start_monitor_with_users(pipeline, Some(file)).await
}

/// [`start_monitor`] with the console's users file (`INTOPS_MONITOR_USERS_FILE`).
pub async fn start_monitor_with_users(
    pipeline: &Pipeline,
    users_file: Option<PathBuf>,
) -> anyhow::Result<Monitor> {
    let mut common = CommonArgs::local(pipeline.flows_path(), &pipeline.prefix);
    common.connect.kafka_bootstrap = stack::bootstrap();
    common.connect.schema_registry_url = stack::registry_url();
    let listener = admin::bind("127.0.0.1:0".parse()?).await?;
    let addr = listener.local_addr()?;
    let shutdown = CancellationToken::new();
    let args = intops_monitor::Args {
        common,
        listen: addr,
        max_events: 100_000,
        api_token_file: None,
        users_file,
        trusted_user_header: None,
        trusted_role: intops_monitor::access::Role::Viewer,
        window: Duration::from_secs(86_400),
        rollup_every: Duration::from_secs(1),
    };
    let task = tokio::spawn(intops_monitor::run(args, listener, shutdown.clone()));
    wait_ready(&format!("http://{addr}/readyz")).await;
    Ok(Monitor {
        addr,
        shutdown,
        task,
    })
}

/// Lanes of the in-process transform of [`Pipeline::start`] (the binary's
/// default is 1024): the benchmark prints this beside its end-to-end
/// figure.
pub const TRANSFORM_LANES: usize = 32;

/// How a [`Pipeline`] configures its services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// The tests' settings: topics of 3 partitions, [`TRANSFORM_LANES`]
    /// transform lanes, a transform dead-letter window of 20, ingest's
    /// default request limits, rollups written every second.
    Test,
    /// Every setting as the binaries parse it when given only the flows
    /// file, the topic prefix and the stack's addresses (and ephemeral
    /// listen ports); `INTOPS_*` variables in the environment count, as
    /// they do for the binaries.
    Defaults,
}

/// The four services' settings.
struct ServiceArgs {
    ingest: intops_ingest::IngestArgs,
    requests: intops_ingest::RequestLimits,
    transform: intops_transform::Args,
    delivery: intops_delivery::Args,
    monitor: intops_monitor::Args,
}

impl Profile {
    fn args(
        self,
        flows: &std::path::Path,
        prefix: &str,
        ingest: SocketAddr,
        monitor: SocketAddr,
    ) -> anyhow::Result<ServiceArgs> {
        match self {
            Profile::Test => {
                let mut common = CommonArgs::local(flows.to_path_buf(), prefix);
                common.connect.kafka_bootstrap = stack::bootstrap();
                common.connect.schema_registry_url = stack::registry_url();
                Ok(ServiceArgs {
                    ingest: intops_ingest::IngestArgs {
                        common: common.clone(),
                        listen: ingest,
                        ack_timeout: Duration::from_secs(10),
                    },
                    requests: intops_ingest::RequestLimits::default(),
                    transform: intops_transform::Args {
                        common: common.clone(),
                        concurrency: TRANSFORM_LANES,
                        dlq_cap_window: 20,
                        dlq_cap_ratio: 0.5,
                        dlq_cap_consecutive: 0,
                    },
                    delivery: intops_delivery::Args {
                        common: common.clone(),
                        targets: vec![],
                        dlq_cap_window: 100,
                        dlq_cap_ratio: 0.5,
                        dlq_cap_consecutive: 50,
                    },
                    monitor: intops_monitor::Args {
                        common,
                        listen: monitor,
                        max_events: 100_000,
                        api_token_file: None,
                        users_file: None,
                        trusted_user_header: None,
                        trusted_role: intops_monitor::access::Role::Viewer,
                        window: Duration::from_secs(86_400),
                        rollup_every: Duration::from_secs(1),
                    },
                })
            }
            Profile::Defaults => {
                use clap::Parser as _;
                let flows = flows.display().to_string();
                let (bootstrap, registry) = (stack::bootstrap(), stack::registry_url());
                let argv = |binary: &'static str, listen: Option<SocketAddr>| {
                    let mut argv = vec![
                        binary.to_string(),
                        "--flows".into(),
                        flows.clone(),
                        "--topic-prefix".into(),
                        prefix.to_string(),
                        "--kafka-bootstrap".into(),
                        bootstrap.clone(),
                        "--schema-registry-url".into(),
                        registry.clone(),
                    ];
                    if let Some(listen) = listen {
                        argv.extend(["--listen".into(), listen.to_string()]);
                    }
                    argv
                };
                let ingest =
                    intops_ingest::IngestCli::try_parse_from(argv("intops-ingest", Some(ingest)))?;
                Ok(ServiceArgs {
                    ingest: ingest.args,
                    requests: ingest.requests,
                    transform: intops_transform::Args::try_parse_from(argv(
                        "intops-transform",
                        None,
                    ))?,
                    delivery: intops_delivery::Args::try_parse_from(argv("intops-delivery", None))?,
                    monitor: intops_monitor::Args::try_parse_from(argv(
                        "intops-monitor",
                        Some(monitor),
                    ))?,
                })
            }
        }
    }
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
        Self::start_as(name, flows, secrets, Profile::Test).await
    }

    /// [`Pipeline::start`] with the services configured by `profile`.
    pub async fn start_as(
        name: &str,
        flows: &str,
        secrets: &[(&str, &str)],
        profile: Profile,
    ) -> anyhow::Result<Self> {
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
        let shutdown = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let ingest_listener = admin::bind("127.0.0.1:0".parse()?).await?;
        let monitor_listener = admin::bind("127.0.0.1:0".parse()?).await?;
        let ingest = ingest_listener.local_addr()?;
        let monitor = monitor_listener.local_addr()?;
        let args = profile.args(&flows_path, &prefix, ingest, monitor)?;

        let s = shutdown.clone();
        let (ingest_args, requests) = (args.ingest, args.requests);
        tasks.spawn(async move {
            (
                "ingest",
                intops_ingest::run_with(ingest_args, requests, ingest_listener, s).await,
            )
        });
        let s = shutdown.clone();
        let transform = args.transform;
        tasks.spawn(async move { ("transform", intops_transform::run(transform, s).await) });
        let s = shutdown.clone();
        let delivery = args.delivery;
        tasks.spawn(async move { ("delivery", intops_delivery::run(delivery, s).await) });
        let s = shutdown.clone();
        let monitor_args = args.monitor;
        tasks.spawn(async move {
            (
                "monitor",
                intops_monitor::run(monitor_args, monitor_listener, s).await,
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
        for addr in [ingest, monitor] {
            wait_ready(&format!("http://{addr}/readyz")).await;
        }
        Ok(pipeline)
    }

    /// The flows file the services run with (rewrite it to reload).
    pub fn flows_path(&self) -> PathBuf {
        self._dir.path().join("flows.toml")
    }

    /// The URL of ingest's webhook endpoint for `source`.
    pub fn ingest_url(&self, source: &str) -> String {
        format!("http://{}/v1/sources/{source}/events", self.ingest)
    }

    /// Posts `body` (an object or an array of objects) to `source`, which
    /// must accept unauthenticated requests; panics unless ingest answers
    /// 202. Returns the event ids in input order.
    pub async fn post_json(&self, source: &str, body: &serde_json::Value) -> Vec<String> {
        let response = reqwest::Client::new()
            .post(self.ingest_url(source))
            .json(body)
            .send()
            .await
            .expect("ingest answers");
        assert_eq!(response.status(), 202, "ingest accepts {body}");
        let answer: serde_json::Value = response.json().await.expect("json answer");
        answer["event_ids"]
            .as_array()
            .map(|ids| {
                ids.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
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
