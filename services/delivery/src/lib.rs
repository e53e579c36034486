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
mod control;
mod credential;
mod gate;
mod handler;
pub mod links;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use intops_events::Stage;
use intops_kafka::{
    CapSettings, ConsumeOptions, DeadLetterCap, DeadLetterWriter, ServiceContext, consume,
    new_consumer,
};
use intops_runtime::{CancellationToken, CommonArgs, ConfigError, Readiness, Supervisor, admin};

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
    let selected: Vec<String> = if args.targets.is_empty() {
        flows.targets.keys().cloned().collect()
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
        args.targets.clone()
    };
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
    let mut targets = control::Targets::new();
    for target_id in &selected {
        // One cap per target (its own loop), scoped by source inside it;
        // cleared by `intops target resume` or a restart.
        let cap = Arc::new(DeadLetterCap::new(
            "delivery",
            format!("dead_letter_cap:{target_id}"),
            cap_settings,
            readiness.clone(),
        ));
        let target = handler::TargetRuntime::new(&flows, target_id, &readiness, cap)?;
        targets.insert(target_id.clone(), Arc::new(target));
    }
    // An operator's pause is in force before the first record is taken.
    control::catch_up(&ctx, &targets)
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
    let shared_links = links.links.clone();
    links.spawn(&mut tasks, &shutdown);
    for (target_id, target) in targets.clone() {
        let concurrency = flows
            .targets
            .get(&target_id)
            .map_or(1, |t| t.concurrency as usize);
        let topic = ctx.topics.deliveries(&target_id);
        let group = ctx.topics.group(&format!("delivery.{target_id}"));
        let consumer = new_consumer(&ctx.kafka, &group, &[&topic])?;
        tasks.spawn(
            format!("assignment {group}"),
            ctx.watch_assignment(
                &consumer,
                &group,
                &readiness,
                args.common.unassigned_grace,
                shutdown.clone(),
            )?,
        );
        let options = ConsumeOptions {
            stage: "delivery",
            cap: target.cap.clone(),
            dead_letters: dead_letters.clone(),
            shutdown: shutdown.clone(),
            min_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
            concurrency,
        };
        // Shared by the lanes: one reference count per record, no copy.
        let owned = links::Owned::new(intops_kafka::assignment_of(&consumer));
        let handler = Arc::new(
            handler::Handler::new(target, ctx.clone(), shared_links.clone(), shutdown.clone())
                .with_owned(owned),
        );
        tracing::info!(target = %target_id, %topic, "delivery consuming");
        tasks.spawn(format!("consumer {target_id}"), async move {
            let result = consume(&consumer, &options, move |message| {
                let handler = handler.clone();
                async move { handler.handle(message).await }
            })
            .await;
            result.with_context(|| format!("delivery consumer of target {target_id}"))
        });
    }
    tasks.spawn(
        "control",
        control::follow(ctx.clone(), targets, shutdown.clone()),
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
