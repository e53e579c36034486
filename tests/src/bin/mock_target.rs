//! The local demo's stand-in systems: a Jira-shaped and a
//! ServiceNow-shaped API on one address (`intops_tests::itsm`), printing
//! every request and webhook; with `--ingest-url`, each sends a signed
//! webhook to intops for every write it receives.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use intops_tests::itsm::{ItsmMocks, Options};

#[derive(Debug, Parser)]
#[command(
    name = "intops-mock-target",
    about = "Jira-shaped (/rest/api/3/issue) and ServiceNow-shaped (/api/now/table/incident) \
             stand-ins that print every request and send a webhook for every write"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// intops ingest's base URL; webhooks go to
    /// `<url>/v1/sources/<source>/events`. None are sent without it.
    #[arg(long, env = "MOCK_INGEST_URL")]
    ingest_url: Option<String>,
    /// The Jira source's id in the flows file.
    #[arg(long, default_value = "jira")]
    jira_source: String,
    /// The ServiceNow source's id in the flows file.
    #[arg(long, default_value = "servicenow")]
    servicenow_source: String,
    /// Environment variable holding the Jira webhook secret
    /// (`X-Hub-Signature: sha256=<hex>`).
    #[arg(long, default_value = "JIRA_SECRET")]
    jira_secret_env: String,
    /// Environment variable holding the ServiceNow webhook secret
    /// (`X-Intops-Signature: sha256=<hex>`).
    #[arg(long, default_value = "SNOW_SECRET")]
    servicenow_secret_env: String,
    /// Keep issues and incidents here (jira.json, servicenow.json) across
    /// restarts; in memory without it.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Answer a repeated Idempotency-Key with the first answer (real Jira
    /// does not).
    #[arg(long)]
    honour_idempotency_key: bool,
}

fn secret(var: &str) -> anyhow::Result<String> {
    std::env::var(var)
        .ok()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| anyhow::anyhow!("--ingest-url needs the webhook secret in ${var}"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let options = Options {
        log: true,
        state_dir: args.state_dir.clone(),
    };
    let mocks = ItsmMocks::start_on(args.listen, &options).await?;
    mocks
        .jira
        .honour_idempotency_key(args.honour_idempotency_key);
    if let Some(ingest) = &args.ingest_url {
        let ingest = ingest.trim_end_matches('/');
        let jira_url = format!("{ingest}/v1/sources/{}/events", args.jira_source);
        let snow_url = format!("{ingest}/v1/sources/{}/events", args.servicenow_source);
        mocks
            .jira
            .send_webhooks_to(&jira_url, &secret(&args.jira_secret_env)?);
        mocks
            .servicenow
            .send_webhooks_to(&snow_url, &secret(&args.servicenow_secret_env)?);
        println!("webhooks to {jira_url} and {snow_url}");
    }
    println!(
        "mock jira and servicenow listening on {} (jira /rest/api/3/issue, servicenow /api/now/table/incident)",
        mocks.jira.base_url()
    );
    // Ctrl-C on a terminal, SIGTERM from a container runtime.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}
