//! intops delivery: one consumer group per target on
//! `<prefix>.deliveries.<target>`, HTTP with the flow's method, path and
//! body plus `Idempotency-Key`, retries with backoff, and a final result for
//! every request: an `Outcome` (delivered or dead_lettered) and, for
//! failures, a dead letter on `<prefix>.dlq.delivery`, written by the
//! shared consumer loop under each target's dead-letter cap (per source:
//! see `intops_kafka::cap`). Flows with links (conversations) create,
//! update, write back or skip echoes by the process's links index
//! ([`links`]), read from `<prefix>.links` before the first request.

mod breaker;
mod client;
mod consumers;
mod control;
mod credential;
mod gate;
mod handler;
pub mod links;
mod states;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use arc_swap::ArcSwap;
use intops_events::Stage;
use intops_flows::Flows;
use intops_kafka::{CapSettings, DeadLetterWriter, ServiceContext};
use intops_runtime::reload::{Shared, Watch};
use intops_runtime::{CancellationToken, CommonArgs, ConfigError, Readiness, Supervisor, admin};
use tokio::sync::Notify;

pub use client::{Attempt, classify_status};

/// Settings of the delivery service.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "intops-delivery", version, about = "intops delivery service")]
pub struct Args {
    /// Settings every service takes.
    #[command(flatten)]
    pub common: CommonArgs,

    /// Targets this instance delivers to (comma separated); default all
    /// targets in the flows file.
    #[arg(long, env = "INTOPS_DELIVERY_TARGETS", value_delimiter = ',')]
    pub targets: Vec<String>,

    /// Requests of one source to one target the dead-letter cap looks back
    /// over; 0 turns the ratio limit off.
    #[arg(long, env = "INTOPS_DELIVERY_DLQ_CAP_WINDOW", default_value_t = 100)]
    pub dlq_cap_window: usize,

    /// Share of that window (0 to 1, below 1) that may be dead-lettered
    /// before delivery holds that source's requests to the target and
    /// reports not ready.
    #[arg(long, env = "INTOPS_DELIVERY_DLQ_CAP_RATIO", default_value_t = 0.5)]
    pub dlq_cap_ratio: f64,

    /// Dead letters of one source to one target in a row that trip the cap
    /// too; 0 turns this limit off.
    #[arg(
        long,
        env = "INTOPS_DELIVERY_DLQ_CAP_CONSECUTIVE",
        default_value_t = 50
    )]
    pub dlq_cap_consecutive: usize,
}

/// Runs delivery until `shutdown` or a fatal error.
pub async fn run(args: Args, shutdown: CancellationToken) -> anyhow::Result<()> {
    let cap_settings = CapSettings::from_flags(
        args.dlq_cap_window,
        args.dlq_cap_ratio,
        args.dlq_cap_consecutive,
        "INTOPS_DELIVERY_DLQ_CAP",
    )?;
    let flows = intops_flows::load_flows(&args.common.flows)?;
    let only: Option<BTreeSet<String>> = if args.targets.is_empty() {
        None
    } else {
        let unknown: Vec<String> = args
            .targets
            .iter()
            .filter(|t| !flows.targets.contains_key(*t))
            .map(|t| format!("INTOPS_DELIVERY_TARGETS: unknown target {t:?}"))
            .collect();
        if !unknown.is_empty() {
            return Err(ConfigError(unknown).into());
        }
        Some(args.targets.iter().cloned().collect())
    };
    let selected: Vec<String> = flows
        .targets
        .keys()
        .filter(|t| only.as_ref().is_none_or(|o| o.contains(*t)))
        .cloned()
        .collect();
    check_targets(&flows, &selected).map_err(|e| ConfigError(vec![e]))?;
    let ctx = ServiceContext::new(&args.common.connect)?;
    let readiness = Readiness::default();
    // Not ready until the links index is read (registered before any
    // other check can make the service look ready).
    readiness.register(links::READINESS);
    let admin_task = admin::spawn_optional(
        args.common.admin_listen,
        readiness.clone(),
        shutdown.clone(),
    )
    .await?;
    ctx.ensure_pipeline_topics(flows.targets.keys().map(String::as_str), &readiness)
        .await
        .context("creating topics")?;

    let dead_letters = DeadLetterWriter::new(
        ctx.producer.clone(),
        ctx.codec.clone(),
        ctx.topics.dlq_delivery(),
        Stage::Delivery,
    );
    // The commands in force are known before any target starts: an
    // operator's pause holds from the first record.
    let control = control::Targets::new();
    control::catch_up(&ctx, &control)
        .await
        .context("reading control commands")?;
    // Every link is known before the first record is taken.
    let Some(links) = links::start(&ctx, &flows, &selected, &readiness, &shutdown)
        .await
        .context("reading links")?
    else {
        admin::join(admin_task).await;
        return Ok(());
    };
    // One target failing fatally stops the service: an operator must look,
    // and the other targets resume after restart.
    let mut tasks = Supervisor::new(readiness.clone(), shutdown.clone());
    let instance = args
        .common
        .connect
        .instance_id
        .clone()
        .unwrap_or_else(intops_runtime::host_name);
    let (states, state_changes) = states::Board::new(&instance);
    tasks.spawn(
        "target states",
        states
            .clone()
            .run(state_changes, ctx.clone(), shutdown.clone()),
    );
    let consumers = consumers::Consumers {
        ctx: ctx.clone(),
        readiness: readiness.clone(),
        states,
        cap_settings,
        dead_letters,
        links: links.links.clone(),
        only: only.clone(),
        unassigned_grace: args.common.unassigned_grace,
        control: control.clone(),
    };
    links.spawn(&mut tasks, &shutdown);
    let current: Shared<Flows> = Arc::new(ArcSwap::from_pointee(flows));
    let reloaded = Arc::new(Notify::new());
    let notify = reloaded.clone();
    let topics_ctx = ctx.clone();
    // Lookup tables' CSV files are relative to the flows file.
    let flows_dir = args.common.flows.parent().map(std::path::Path::to_path_buf);
    tasks.spawn(
        "flows reload",
        Watch {
            service: "delivery",
            what: "flows",
            metric: intops_runtime::metrics::FLOWS_RELOADS,
            path: args.common.flows.clone(),
            current: current.clone(),
            // Every selected target's credential and URL are read here: a
            // file with one missing is refused whole.
            parse: Arc::new(move |text| {
                let flows = intops_flows::load_str_in(text, flows_dir.as_deref())
                    .map_err(|e| e.to_string())?;
                let selected: Vec<String> = flows
                    .targets
                    .keys()
                    .filter(|t| only.as_ref().is_none_or(|o| o.contains(*t)))
                    .cloned()
                    .collect();
                check_targets(&flows, &selected)?;
                Ok(flows)
            }),
            every: Duration::from_secs(1),
            before_swap: Arc::new(move |new: Arc<Flows>| {
                let ctx = topics_ctx.clone();
                Box::pin(async move {
                    let names = ctx.topics.all(new.targets.keys().map(String::as_str));
                    ctx.ensure_topics(&names).await.map_err(|e| e.to_string())
                })
            }),
            after_swap: Arc::new(move || notify.notify_one()),
        }
        .run(shutdown.clone()),
    );
    tasks.spawn(
        "targets",
        consumers.run(current, reloaded, shutdown.clone()),
    );
    tasks.spawn(
        "control",
        control::follow(ctx.clone(), control, shutdown.clone()),
    );
    let first_error = tasks.join().await.err();
    shutdown.cancel();
    ctx.producer
        .flush(args.common.shutdown_timeout)
        .context("flushing the producer")?;
    admin::join(admin_task).await;
    if let Some(e) = first_error {
        return Err(e.into());
    }
    tracing::info!("delivery stopped");
    Ok(())
}

/// Reads the credential and parses the base URL of each of `selected`:
/// what a target's start would fail on.
fn check_targets(flows: &Flows, selected: &[String]) -> Result<(), String> {
    let problems: Vec<String> = selected
        .iter()
        .filter_map(|id| check_target(flows, id).err())
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// What [`handler::TargetRuntime::new`] would refuse in `flows`' target
/// `id`: an unreadable credential or a bad base URL.
fn check_target(flows: &Flows, id: &str) -> Result<(), String> {
    let target = flows
        .targets
        .get(id)
        .ok_or_else(|| format!("unknown target {id:?}"))?;
    credential::Credential::resolve(target)?;
    intops_flows::target_url::parse_base_url(&target.base_url)
        .map_err(|e| format!("targets[{id}].base_url: {e}"))?;
    Ok(())
}
