//! `intops tap TOPIC`: any topic's records as JSON lines. Joins no
//! consumer group and commits nothing, so it never disturbs the services.

use intops_flows::{JqProgram, parse_json};
use intops_kafka::{Scan, ServiceContext, Start, topics};

use crate::decode;

/// `intops tap` flags.
#[derive(Debug, clap::Args)]
pub struct TapArgs {
    /// The topic: its full name, or its name under the prefix (`events`,
    /// `outcomes`, `dlq.delivery`, `deliveries.jira`).
    pub topic: String,
    /// Start at the oldest record kept (default: only new records).
    #[arg(long)]
    pub from_beginning: bool,
    /// Keep waiting for new records (implied without --from-beginning).
    #[arg(long)]
    pub follow: bool,
    /// Print only records for which this jq condition holds; its input is
    /// the printed object (`.value.source_id == "servicenow"`).
    #[arg(long)]
    pub filter: Option<String>,
    /// Stop after printing this many records.
    #[arg(long)]
    pub limit: Option<usize>,
}

/// Runs the tap until its end, its limit, or Ctrl-C.
pub async fn run(ctx: &ServiceContext, args: &TapArgs) -> anyhow::Result<()> {
    let filter = args
        .filter
        .as_deref()
        .map(JqProgram::compile)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--filter: {e}"))?;
    let topic = resolve(ctx, &args.topic).await?;
    let (start, follow) = if args.from_beginning {
        (Start::Beginning, args.follow)
    } else {
        (Start::End, true)
    };
    let mut scan = Scan::open(&ctx.kafka, std::slice::from_ref(&topic), start, follow).await?;
    let mut printed = 0usize;
    while args.limit.is_none_or(|n| printed < n) {
        let Some(message) = scan.next().await? else {
            break;
        };
        let line = decode::record(&ctx.codec, &message).await?;
        if let Some(filter) = &filter {
            let input = parse_json(line.to_string().as_bytes())?;
            if !filter.holds(&input).unwrap_or(false) {
                continue;
            }
        }
        println!("{line}");
        printed += 1;
    }
    Ok(())
}

/// The topic as given if it exists, else under the configured prefix.
async fn resolve(ctx: &ServiceContext, name: &str) -> anyhow::Result<String> {
    if topics::exists(&ctx.kafka, name).await? {
        return Ok(name.to_string());
    }
    let prefixed = format!("{}.{name}", ctx.topics.prefix());
    if topics::exists(&ctx.kafka, &prefixed).await? {
        return Ok(prefixed);
    }
    anyhow::bail!("topic {name} does not exist (nor {prefixed})")
}
