//! intops transform: consumes `<prefix>.events`, evaluates every flow of
//! the event's source, produces a `DeliveryRequest` per matching flow to
//! `<prefix>.deliveries.<target>`, and stores the event's offset only after
//! every output was acknowledged. Events no flow matches get an `unrouted`
//! outcome; failures go to `<prefix>.dlq.transform`, written by the shared
//! consumer loop under the dead-letter cap (per source: see
//! `intops_kafka::cap`).

mod handler;
mod versions;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use arc_swap::ArcSwap;
use intops_events::Stage;
use intops_flows::{Flows, SharedFlows};
use intops_kafka::{
    CapSettings, ConsumeOptions, DeadLetterCap, DeadLetterWriter, ServiceContext, consume,
    new_consumer,
};
use intops_runtime::reload::{AfterSwap, BeforeSwap, Watch};
use intops_runtime::{CancellationToken, CommonArgs, Readiness, Supervisor, admin};

/// Settings of the transform service.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "intops-transform", version, about = "intops transform service")]
pub struct Args {
    /// Settings every service takes.
    #[command(flatten)]
    pub common: CommonArgs,

    /// Events transformed in parallel (events of one entity key stay in
    /// order).
    #[arg(long, env = "INTOPS_TRANSFORM_CONCURRENCY", default_value_t = 1024)]
    pub concurrency: usize,

    /// Records of one source the dead-letter cap looks back over; 0 turns
    /// the ratio limit off.
    #[arg(long, env = "INTOPS_TRANSFORM_DLQ_CAP_WINDOW", default_value_t = 100)]
    pub dlq_cap_window: usize,

    /// Share of that window (0 to 1, below 1) that may be dead-lettered
    /// before transform holds the source's records and reports not ready.
    #[arg(long, env = "INTOPS_TRANSFORM_DLQ_CAP_RATIO", default_value_t = 0.5)]
    pub dlq_cap_ratio: f64,

    /// Dead letters of one source in a row that trip the cap too (before
    /// the window is full); 0 turns this limit off.
    #[arg(
        long,
        env = "INTOPS_TRANSFORM_DLQ_CAP_CONSECUTIVE",
        default_value_t = 50
    )]
    pub dlq_cap_consecutive: usize,
}

/// Runs transform until `shutdown` or a fatal error.
pub async fn run(args: Args, shutdown: CancellationToken) -> anyhow::Result<()> {
    let cap_settings = CapSettings::from_flags(
        args.dlq_cap_window,
        args.dlq_cap_ratio,
        args.dlq_cap_consecutive,
        "INTOPS_TRANSFORM_DLQ_CAP",
    )?;
    let flows = Arc::new(intops_flows::load_flows(&args.common.flows)?);
    let ctx = ServiceContext::new(&args.common.connect)?;
    let readiness = Readiness::default();
    let admin_task = intops_runtime::admin::spawn_optional(
        args.common.admin_listen,
        readiness.clone(),
        shutdown.clone(),
    )
    .await?;

    ctx.ensure_pipeline_topics(flows.targets.keys().map(String::as_str), &readiness)
        .await
        .context("creating topics")?;

    let events = ctx.topics.events();
    let group = ctx.topics.group("transform");
    let consumer = new_consumer(&ctx.kafka, &group, &[&events])?;
    let assignment_watch = ctx.watch_assignment(
        &consumer,
        &group,
        &readiness,
        args.common.unassigned_grace,
        shutdown.clone(),
    )?;
    let cap = Arc::new(DeadLetterCap::new(
        "transform",
        "dead_letter_cap",
        cap_settings,
        readiness.clone(),
    ));
    let options = ConsumeOptions {
        stage: "transform",
        cap: cap.clone(),
        dead_letters: DeadLetterWriter::new(
            ctx.producer.clone(),
            ctx.codec.clone(),
            ctx.topics.dlq_transform(),
            Stage::Transform,
        ),
        shutdown: shutdown.clone(),
        min_backoff: Duration::from_millis(200),
        max_backoff: Duration::from_secs(30),
        concurrency: args.concurrency,
    };
    tracing::info!(topic = %events, flows = flows.flows.len(), "transform consuming");
    let shared: SharedFlows = Arc::new(ArcSwap::new(flows));
    let topics_ctx = ctx.clone();
    let before_swap: BeforeSwap<Flows> = Arc::new(move |new: Arc<Flows>| {
        let ctx = topics_ctx.clone();
        Box::pin(async move {
            // Topics of new targets exist before any record is routed there.
            let names = ctx.topics.all(new.targets.keys().map(String::as_str));
            ctx.ensure_topics(&names).await.map_err(|e| e.to_string())?;
            Ok(())
        })
    });
    // A new flows file is the fix a tripped cap waits for. Reset only once
    // it is in place: a held record released earlier would meet the old
    // flows and be dead-lettered after all.
    let reload_cap = cap.clone();
    let loaded = Arc::new(tokio::sync::Notify::new());
    let reloaded = loaded.clone();
    let after_swap: AfterSwap = Arc::new(move || {
        reload_cap.reset();
        reloaded.notify_one();
    });
    let mut tasks = Supervisor::new(readiness.clone(), shutdown.clone());
    tasks.spawn(format!("assignment {group}"), assignment_watch);
    tasks.spawn(
        "flow versions",
        versions::keep(ctx.clone(), shared.clone(), loaded, shutdown.clone()),
    );
    // Lookup tables' CSV files are relative to the flows file.
    let flows_dir = args.common.flows.parent().map(std::path::Path::to_path_buf);
    tasks.spawn(
        "flows reload",
        Watch {
            service: "transform",
            what: "flows",
            metric: intops_runtime::metrics::FLOWS_RELOADS,
            path: args.common.flows.clone(),
            current: shared.clone(),
            parse: Arc::new(move |text| {
                intops_flows::load_str_in(text, flows_dir.as_deref()).map_err(|e| e.to_string())
            }),
            every: Duration::from_secs(1),
            before_swap,
            after_swap,
        }
        .run(shutdown.clone()),
    );
    // Shared by the lanes: one reference count per record, no copy.
    let handler = Arc::new(handler::Handler::new(shared, ctx.clone(), shutdown.clone()));
    let result = tasks
        .run(async {
            consume(&consumer, &options, move |message| {
                let handler = handler.clone();
                async move { handler.handle(message).await }
            })
            .await
            .context("transform consumer")
        })
        .await;
    shutdown.cancel();
    ctx.producer
        .flush(args.common.shutdown_timeout)
        .context("flushing the producer")?;
    admin::join(admin_task).await;
    result?;
    tracing::info!("transform stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    /// Bad cap settings stop transform at start-up, before it connects to
    /// anything, with an error naming the variable.
    #[tokio::test]
    async fn invalid_cap_settings_are_a_start_up_error() {
        let args = Args::try_parse_from([
            "intops-transform",
            "--flows",
            "/nonexistent/flows.toml",
            "--dlq-cap-ratio",
            "1.5",
            "--dlq-cap-window",
            "1000000",
        ])
        .expect("flags parse");
        let e = run(args, CancellationToken::new())
            .await
            .expect_err("refused");
        let config = e
            .downcast_ref::<intops_runtime::ConfigError>()
            .expect("a configuration error");
        let text = config.to_string();
        assert!(text.contains("INTOPS_TRANSFORM_DLQ_CAP_RATIO"), "{text}");
        assert!(text.contains("INTOPS_TRANSFORM_DLQ_CAP_WINDOW"), "{text}");
    }
}
