//! intops ingest: `POST /v1/sources/{source_id}/events` captures a source's
//! event as an `IntegrationEvent` on `<prefix>.events`, answering 202 only
//! after the broker acknowledged it.

mod error;
mod handler;
mod signature;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::routing::post;
use intops_flows::{Flows, SourceAuth};
use intops_kafka::ServiceContext;
use intops_runtime::{CancellationToken, CommonArgs, Readiness, admin};
use tokio::net::TcpListener;

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

    /// How long to wait for the broker's acknowledgement before answering
    /// 503 (the source should retry).
    #[arg(long, env = "INTOPS_INGEST_ACK_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub ack_timeout: Duration,

    /// Largest accepted request body in bytes.
    #[arg(long, env = "INTOPS_INGEST_MAX_BODY", default_value_t = 1024 * 1024)]
    pub max_body: usize,
}

/// Shared state of the request handlers.
#[derive(Debug)]
pub(crate) struct AppState {
    pub flows: Flows,
    pub verifiers: BTreeMap<String, Option<Verifier>>,
    pub ctx: ServiceContext,
    pub ack_timeout: Duration,
}

/// Runs ingest on `listener` until `shutdown`.
pub async fn run(
    args: IngestArgs,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let flows = intops_runtime::load_flows(&args.common.flows)?;
    let verifiers = verifiers(&flows)?;
    let ctx = ServiceContext::new(&args.common)?;
    let readiness = Readiness::default();
    ctx.ensure_pipeline_topics(flows.targets.keys().map(String::as_str), &readiness)
        .await
        .context("creating topics")?;

    let producer = ctx.producer.clone();
    let state = Arc::new(AppState {
        flows,
        verifiers,
        ctx,
        ack_timeout: args.ack_timeout,
    });
    let router = Router::new()
        .route("/v1/sources/{source_id}/events", post(handler::accept))
        .layer(axum::extract::DefaultBodyLimit::max(args.max_body))
        .with_state(state)
        .merge(admin::router(readiness));
    tracing::info!(listen = %listener.local_addr()?, "ingest listening");
    admin::serve(listener, router, shutdown).await?;
    producer
        .flush(args.common.shutdown_timeout)
        .context("flushing the producer")?;
    tracing::info!("ingest stopped");
    Ok(())
}

/// Resolves every source's secret now, so a missing one fails start-up
/// (listing all of them) instead of failing requests.
fn verifiers(flows: &Flows) -> anyhow::Result<BTreeMap<String, Option<Verifier>>> {
    let mut out = BTreeMap::new();
    let mut problems = Vec::new();
    for (id, source) in &flows.sources {
        match &source.auth {
            SourceAuth::None => {
                out.insert(id.clone(), None);
            }
            SourceAuth::Hmac(h) => match h.secret.resolve() {
                Ok(secret) => {
                    out.insert(id.clone(), Some(Verifier::new(h.clone(), secret)));
                }
                Err(e) => problems.push(format!("sources[{id}].auth: {e}")),
            },
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(intops_runtime::ConfigError(problems).into())
    }
}
