//! `intops dlq replay`: the flags, and the report printed.

use std::sync::Arc;

use intops_kafka::ServiceContext;
use intops_ops::dlq::{Filters, Replay, Report, replay};
use intops_ops::{audit, watch};

/// `intops dlq replay` flags.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub filters: Filters,
    /// Report what would be replayed, and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Also send dead letters that an earlier replay already sent.
    #[arg(long)]
    pub again: bool,
    /// Records per second at most.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate: u32,
    /// Replays a record may have had before it is parked
    /// (`<prefix>.dlq.parked`) instead of replayed again.
    #[arg(long, env = "INTOPS_REPLAY_MAX", default_value_t = 5)]
    pub max_replays: i32,
    /// Who runs the replay, for the audit record (default: the OS user).
    #[arg(long)]
    pub operator: Option<String>,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Runs the replay (or the dry run) and prints its report.
pub async fn run(ctx: &ServiceContext, args: &ReplayArgs) -> anyhow::Result<()> {
    let request = Replay {
        filters: args.filters.clone(),
        dry_run: args.dry_run,
        again: args.again,
        rate: args.rate,
        max_replays: args.max_replays,
        operator: audit::operator(args.operator.as_deref()),
    };
    let report = replay::run(ctx, &request, Arc::new(watch::Stderr)).await?;
    if args.json {
        println!("{}", report.to_json());
    } else {
        match &report {
            Report::DryRun(d) => println!("{}", d.text()),
            Report::Done(d) => println!("{}", d.text()),
        }
    }
    Ok(())
}
