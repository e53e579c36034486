//! intops ingest: `POST /v1/sources/{source_id}/events` captures a source's
//! records as `IntegrationEvent`s on `<prefix>.events`, answering 202 only
//! after the broker acknowledged every one of them.

mod auth;
mod concurrency;
mod cursors;
mod error;
mod event;
mod handler;
mod limits;
mod poll;
mod poll_origin;
mod pollers;
mod record_size;
mod records;
mod replay;
mod settings;
mod signature;
mod sources;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use arc_swap::ArcSwap;
use axum::Router;
use axum::routing::post;
use intops_kafka::ServiceContext;
use intops_runtime::reload::{Shared, Watch};
use intops_runtime::{CancellationToken, CommonArgs, Readiness, Supervisor, admin};
use tokio::net::TcpListener;
use tokio::sync::Notify;

pub use auth::Authenticator;
pub use error::IngestError;
pub use replay::Signed;
pub use settings::RequestLimits;
pub use signature::{SignatureError, Verifier};

/// Settings of the ingest service.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "intops-ingest", version, about = "intops ingest service")]
pub struct IngestArgs {
    /// Settings every service takes.
    #[command(flatten)]
    pub common: CommonArgs,

    /// Address of the webhook API (and of /healthz, /readyz, /metrics).
    #[arg(long, env = "INTOPS_INGEST_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// How long the broker may take to acknowledge a request's events
    /// before the answer is 503 (the source should retry); records not
    /// acknowledged by then are given up, never written later.
    #[arg(long, env = "INTOPS_INGEST_ACK_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub ack_timeout: Duration,
}

/// Every setting of the ingest binary: [`IngestArgs`] and the request
/// limits.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "intops-ingest", version, about = "intops ingest service")]
pub struct IngestCli {
    /// Service settings.
    #[command(flatten)]
    pub args: IngestArgs,
    /// Limits on what one request may ask.
    #[command(flatten)]
    pub requests: RequestLimits,
}

/// Shared state of the request handlers.
#[derive(Debug)]
pub(crate) struct AppState {
    /// Replaced whole by a valid reload of the flows file.
    pub sources: Shared<sources::Sources>,
    pub requests: RequestLimits,
    pub replay: replay::ReplayGuard,
    pub ctx: ServiceContext,
}

/// Runs ingest on `listener` until `shutdown`, with the default request
/// limits.
pub async fn run(
    args: IngestArgs,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    run_with(args, RequestLimits::default(), listener, shutdown).await
}

/// Runs ingest on `listener` until `shutdown`.
pub async fn run_with(
    args: IngestArgs,
    requests: RequestLimits,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    requests.validate()?;
    let flows = intops_flows::load_flows(&args.common.flows)?;
    let first = sources::Sources::new(flows, None)?;
    let ctx = ServiceContext::new(&args.common.connect)?.with_delivery_timeout(args.ack_timeout)?;
    let readiness = Readiness::default();
    ctx.ensure_pipeline_topics(first.flows.targets.keys().map(String::as_str), &readiness)
        .await
        .context("creating topics")?;
    let broker_watch =
        ctx.watch_broker(readiness.clone(), Duration::from_secs(2), shutdown.clone());

    let shared: Shared<sources::Sources> = Arc::new(ArcSwap::from_pointee(first));
    let reloaded = Arc::new(Notify::new());
    let producer = ctx.producer.clone();
    let gate = concurrency::Gate::new(requests.max_concurrent_requests, shared.clone());
    let pollers = pollers::run(
        shared.clone(),
        reloaded.clone(),
        ctx.clone(),
        requests.max_json_depth,
        shutdown.clone(),
    );
    let previous = shared.clone();
    // Lookup tables' CSV files are relative to the flows file.
    let flows_dir = args.common.flows.parent().map(std::path::Path::to_path_buf);
    let watch = Watch {
        service: "ingest",
        what: "flows",
        metric: intops_runtime::metrics::FLOWS_RELOADS,
        path: args.common.flows.clone(),
        current: shared.clone(),
        parse: Arc::new(move |text| {
            let flows =
                intops_flows::load_str_in(text, flows_dir.as_deref()).map_err(|e| e.to_string())?;
            sources::Sources::new(flows, Some(&previous.load())).map_err(|e| e.to_string())
        }),
        every: Duration::from_secs(1),
        before_swap: Arc::new(|_| Box::pin(async { Ok(()) })),
        after_swap: Arc::new(move || reloaded.notify_one()),
    };
    let state = Arc::new(AppState {
        replay: replay::ReplayGuard::new(requests.replay_capacity),
        requests,
        sources: shared,
        ctx,
    });
    let router = Router::new()
        .route("/v1/sources/{source_id}/events", post(handler::accept))
        // Each source has its own limit, checked while reading the body.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .route_layer(axum::middleware::from_fn_with_state(
            gate,
            concurrency::limit,
        ))
        .with_state(state)
        .merge(admin::router(readiness.clone()));
    let mut tasks = Supervisor::new(readiness, shutdown.clone());
    tasks.spawn("broker watch", broker_watch);
    // A poller that panics stops ingest (it would stop polling alone).
    tasks.spawn("pollers", pollers);
    tasks.spawn("flows reload", watch.run(shutdown.clone()));
    tracing::info!(listen = %listener.local_addr()?, "ingest listening");
    tasks
        .run(async { Ok(admin::serve(listener, router, shutdown.clone()).await?) })
        .await?;
    shutdown.cancel();
    producer
        .flush(args.common.shutdown_timeout)
        .context("flushing the producer")?;
    tracing::info!("ingest stopped");
    Ok(())
}
