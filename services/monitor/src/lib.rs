//! intops monitor: folds the events, deliveries and outcomes topics into a
//! lineage index and answers `GET /api/v1/events/{event_id}` with what
//! every stage did; serves `/metrics`, `/healthz`, `/readyz`.

pub mod lineage;
mod reader;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use anyhow::Context as _;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use intops_kafka::ServiceContext;
use intops_runtime::{CancellationToken, CommonArgs, Readiness, admin};
use tokio::net::TcpListener;

use crate::lineage::Lineage;
use crate::reader::{Reader, TopicKind};

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
}

/// Runs the monitor on `listener` until `shutdown`.
pub async fn run(
    args: Args,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let flows = intops_runtime::load_flows(&args.common.flows)?;
    let ctx = ServiceContext::new(&args.common.connect)?;
    let readiness = Readiness::default();
    readiness.register("caught_up");
    ctx.ensure_pipeline_topics(flows.targets.keys().map(String::as_str), &readiness)
        .await
        .context("creating topics")?;

    let mut topics = vec![
        (ctx.topics.events(), TopicKind::Event),
        (ctx.topics.outcomes(), TopicKind::Outcome),
    ];
    topics.extend(
        flows
            .targets
            .keys()
            .map(|t| (ctx.topics.deliveries(t), TopicKind::Request)),
    );
    let lineage = Arc::new(RwLock::new(Lineage::new(args.max_events)));
    let reader = Reader {
        kafka: ctx.kafka.clone(),
        group: ctx.topics.group("monitor"),
        codec: ctx.codec.clone(),
        topics,
        lineage: lineage.clone(),
        readiness: readiness.clone(),
        shutdown: shutdown.clone(),
    };
    let reader_task = tokio::spawn(reader.run());

    let router = Router::new()
        .route("/api/v1/events/{event_id}", get(event))
        .with_state(lineage)
        .merge(admin::router(readiness));
    tracing::info!(listen = %listener.local_addr()?, "monitor listening");
    let served = admin::serve(listener, router, shutdown.clone()).await;
    shutdown.cancel();
    reader_task
        .await
        .context("monitor reader task")?
        .context("monitor reader")?;
    served?;
    tracing::info!("monitor stopped");
    Ok(())
}

async fn event(
    State(lineage): State<Arc<RwLock<Lineage>>>,
    Path(event_id): Path<String>,
) -> Response {
    let trace = lineage.read().ok().and_then(|l| l.get(&event_id).cloned());
    match trace {
        Some(t) => Json(t).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"error": "not_found", "detail": format!("no event {event_id} in the monitor's window")})),
        )
            .into_response(),
    }
}
