//! intops monitor: folds the events, deliveries and outcomes topics into a
//! lineage index and each flow's health; answers `/api/v1/flows`,
//! `/api/v1/flows/{flow_id}`, `/api/v1/events/{event_id}` and
//! `/api/v1/search`; serves the status page (`/`, `/events/{event_id}`);
//! measures consumer lag; writes hourly rollups per flow and tenant to
//! `<prefix>.rollups` (what `intops report` reads); serves `/metrics`,
//! `/healthz`, `/readyz`.

pub mod access;
mod actions;
mod alert;
mod api;
mod bodies;
mod console;
mod evaluate;
pub mod health;
mod lag;
pub mod lineage;
mod page;
mod reader;
pub mod rollup;
#[cfg(test)]
mod test_flows;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use arc_swap::ArcSwap;
use intops_events::now_micros;
use intops_flows::Flows;
use intops_kafka::ServiceContext;
use intops_runtime::reload::{Shared, Watch};
use intops_runtime::{CancellationToken, CommonArgs, Readiness, Supervisor, admin};
use tokio::net::TcpListener;

use crate::health::Health;
use crate::lineage::Lineage;
use crate::reader::{Reader, TopicKind};
use crate::rollup::Rollups;

/// Settings of the monitor service.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "intops-monitor", version, about = "intops monitor service")]
pub struct Args {
    /// Settings every service takes.
    #[command(flatten)]
    pub common: CommonArgs,

    /// Address of the API (and of /healthz, /readyz, /metrics).
    #[arg(long, env = "INTOPS_MONITOR_LISTEN", default_value = "127.0.0.1:9100")]
    pub listen: SocketAddr,

    /// Events held in the lineage index; the oldest are forgotten first.
    #[arg(long, env = "INTOPS_MONITOR_MAX_EVENTS", default_value_t = 100_000)]
    pub max_events: usize,

    /// File holding a bearer token that `/` and `/api/...` then require
    /// (health, readiness and metrics stay open).
    #[arg(long, env = "INTOPS_MONITOR_API_TOKEN_FILE")]
    pub api_token_file: Option<std::path::PathBuf>,

    /// Users of the console and API, with roles and hashed tokens
    /// (docs/console.md). Without it (and without a trusted header)
    /// actions are refused.
    #[arg(long, env = "INTOPS_MONITOR_USERS_FILE")]
    pub users_file: Option<std::path::PathBuf>,

    /// A header naming the user, set by an authenticating reverse proxy
    /// in front of the monitor (oauth2-proxy: `X-Forwarded-User`); trusted
    /// only when nothing else can reach the monitor.
    #[arg(long, env = "INTOPS_MONITOR_TRUSTED_USER_HEADER")]
    pub trusted_user_header: Option<axum::http::HeaderName>,

    /// The role of a user named by the trusted header whom the users file
    /// does not list.
    #[arg(long, env = "INTOPS_MONITOR_TRUSTED_ROLE", default_value = "viewer", value_parser = access::parse_role)]
    pub trusted_role: access::Role,

    /// How far back flow figures reach (records older are forgotten).
    #[arg(long, env = "INTOPS_MONITOR_WINDOW", default_value = "24h", value_parser = humantime::parse_duration)]
    pub window: Duration,

    /// How often the hours whose figures changed are written to
    /// `<prefix>.rollups` (what `intops report` reads).
    #[arg(long, env = "INTOPS_MONITOR_ROLLUP_EVERY", default_value = "60s", value_parser = humantime::parse_duration)]
    pub rollup_every: Duration,
}

/// Runs the monitor on `listener` until `shutdown`.
pub async fn run(
    args: Args,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let flows = intops_flows::load_flows(&args.common.flows)?;
    let webhooks: Shared<Vec<alert::Webhook>> = Arc::new(ArcSwap::from_pointee(
        webhooks_of(&flows).map_err(|e| intops_runtime::ConfigError(vec![e]))?,
    ));
    let token = args
        .api_token_file
        .as_ref()
        .map(|path| intops_flows::SecretRef::File(path.display().to_string()).resolve())
        .transpose()
        .map_err(|e| {
            intops_runtime::ConfigError(vec![format!("INTOPS_MONITOR_API_TOKEN_FILE: {e}")])
        })?;
    let users = args
        .users_file
        .as_ref()
        .map(|path| {
            std::fs::read_to_string(path)
                .map_err(|e| e.to_string())
                .and_then(|text| access::users::parse(&text))
                .map_err(|e| {
                    intops_runtime::ConfigError(vec![format!(
                        "INTOPS_MONITOR_USERS_FILE {}: {e}",
                        path.display()
                    )])
                })
        })
        .transpose()?
        .unwrap_or_default();
    let access = Arc::new(access::Access {
        api_token: token,
        users,
        trusted_header: args.trusted_user_header.clone(),
        trusted_role: Some(args.trusted_role),
        form_key: access::FormKey(rand::random()),
    });
    tracing::info!(
        users = access.users.len(),
        trusted_header = access.trusted_header.as_ref().map(|h| h.as_str()),
        actions = access.names_users(),
        "console access"
    );
    let listen = listener.local_addr()?;
    if access.api_token.is_none() && !access.names_users() && !listen.ip().is_loopback() {
        // The cluster manifests always set a token (deploy/k8s/base); this
        // is for hand-made deployments that forgot it.
        tracing::warn!(
            %listen,
            "monitor api is open to the network without a token: set INTOPS_MONITOR_API_TOKEN_FILE or listen on loopback"
        );
    }
    let ctx = ServiceContext::new(&args.common.connect)?;
    let readiness = Readiness::default();
    readiness.register("caught_up");
    ctx.ensure_pipeline_topics(flows.targets.keys().map(String::as_str), &readiness)
        .await
        .context("creating topics")?;

    let mut topics = vec![
        (ctx.topics.events(), TopicKind::Event),
        (ctx.topics.outcomes(), TopicKind::Outcome),
        (ctx.topics.dlq_transform(), TopicKind::DeadLetter),
        (ctx.topics.dlq_delivery(), TopicKind::DeadLetter),
    ];
    topics.extend(
        flows
            .targets
            .keys()
            .map(|t| (ctx.topics.deliveries(t), TopicKind::Request)),
    );
    let redact = Arc::new(RwLock::new(bodies::Redactions::of(&flows)));
    let lineage = {
        let mut l = Lineage::new(args.max_events);
        l.set_redactions(bodies::Redactions::of(&flows));
        Arc::new(RwLock::new(l))
    };
    let health = Arc::new(RwLock::new(Health::new(&flows, args.window, now_micros())));
    let rollups = Arc::new(RwLock::new(Rollups::new(&flows)));
    let kept = rollup::load(&ctx, &rollups)
        .await
        .context("reading the rollups topic")?;
    tracing::info!(hours = kept, "rollups read");
    let reader = Reader {
        kafka: ctx.kafka.clone(),
        codec: ctx.codec.clone(),
        topics,
        lineage: lineage.clone(),
        health: health.clone(),
        rollups: rollups.clone(),
        readiness: readiness.clone(),
        shutdown: shutdown.clone(),
    };
    let mut tasks = Supervisor::new(readiness.clone(), shutdown.clone());
    tasks.spawn("reader", reader.run());
    let mut watched = vec![lag::Watched {
        group: ctx.topics.group("transform"),
        topic: ctx.topics.events(),
        target: None,
    }];
    watched.extend(flows.targets.keys().map(|t| lag::Watched {
        group: ctx.topics.group(&format!("delivery.{t}")),
        topic: ctx.topics.deliveries(t),
        target: Some(t.clone()),
    }));
    tasks.spawn(
        "lag",
        lag::run(
            ctx.kafka.clone(),
            watched,
            health.clone(),
            Duration::from_secs(5),
            shutdown.clone(),
        ),
    );
    let (changes_tx, changes_rx) = tokio::sync::mpsc::unbounded_channel();
    tasks.spawn(
        "evaluate",
        evaluate::run(
            health.clone(),
            rollups.clone(),
            readiness.clone(),
            Duration::from_secs(1),
            changes_tx,
            shutdown.clone(),
        ),
    );
    let current: Shared<Loaded> = Arc::new(ArcSwap::from_pointee(Loaded {
        flows,
        webhooks: webhooks.load_full(),
    }));
    tasks.spawn(
        "rollups",
        rollup::Publisher {
            ctx: ctx.clone(),
            rollups: rollups.clone(),
            readiness: readiness.clone(),
            every: args.rollup_every,
            shutdown: shutdown.clone(),
        }
        .run(),
    );
    let (reload_health, reload_rollups, reload_webhooks, reload_redact, reload_lineage, loaded) = (
        health.clone(),
        rollups.clone(),
        webhooks.clone(),
        redact.clone(),
        lineage.clone(),
        current.clone(),
    );
    // Lookup tables' CSV files are relative to the flows file.
    let flows_dir = args.common.flows.parent().map(std::path::Path::to_path_buf);
    tasks.spawn(
        "flows reload",
        Watch {
            service: "monitor",
            what: "flows",
            metric: intops_runtime::metrics::FLOWS_RELOADS,
            path: args.common.flows.clone(),
            current,
            // The alert URLs are read here: a missing one refuses the file.
            parse: Arc::new(move |text| {
                let flows = intops_flows::load_str_in(text, flows_dir.as_deref())
                    .map_err(|e| e.to_string())?;
                let webhooks = Arc::new(webhooks_of(&flows)?);
                Ok(Loaded { flows, webhooks })
            }),
            every: Duration::from_secs(1),
            before_swap: Arc::new(|_| Box::pin(async { Ok(()) })),
            after_swap: Arc::new(move || {
                let now = loaded.load();
                if let Ok(mut h) = reload_health.write() {
                    h.reconfigure(&now.flows, now_micros());
                }
                if let Ok(mut r) = reload_rollups.write() {
                    r.reconfigure(&now.flows);
                }
                reload_webhooks.store(now.webhooks.clone());
                if let Ok(mut r) = reload_redact.write() {
                    *r = bodies::Redactions::of(&now.flows);
                }
                if let Ok(mut l) = reload_lineage.write() {
                    l.set_redactions(bodies::Redactions::of(&now.flows));
                }
            }),
        }
        .run(shutdown.clone()),
    );
    tasks.spawn(
        "alerts",
        alert::run(
            webhooks,
            changes_rx,
            format!("http://{}/", listener.local_addr()?),
            shutdown.clone(),
        ),
    );

    let actions = actions::Actions {
        access,
        ctx: Some(ctx.clone()),
        health: health.clone(),
        replays: actions::Replays::default(),
    };
    let router = api::router(
        api::Shared {
            lineage,
            health,
            ctx: Some(ctx.clone()),
            redact: redact.clone(),
        },
        actions,
    )
    .merge(admin::router(readiness));
    tracing::info!(listen = %listener.local_addr()?, "monitor listening");
    tasks
        .run(async {
            admin::serve(listener, router, shutdown.clone())
                .await
                .context("monitor api")
        })
        .await?;
    tracing::info!("monitor stopped");
    Ok(())
}

/// What the monitor takes from the flows file; a reload replaces it.
struct Loaded {
    /// Flows and their objectives.
    flows: Flows,
    /// The alert webhooks, URLs read.
    webhooks: Arc<Vec<alert::Webhook>>,
}

/// The alert webhooks of `flows`, URLs read.
fn webhooks_of(flows: &Flows) -> Result<Vec<alert::Webhook>, String> {
    flows.alerts.iter().map(alert::Webhook::resolve).collect()
}
