//! `intops`: the command line for operators and flow authors.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use intops_kafka::ServiceContext;
use intops_runtime::ConnectArgs;

mod cases;
mod decode;
mod diff;
mod dlq;
mod flows;
mod flows_test;
mod links;
mod report;
mod rewind;
mod tap;
mod target;
mod topics;
mod versions;

use intops_ops::{audit, lanes, pace, send, when};

/// The intops command line.
#[derive(Debug, Parser)]
#[command(name = "intops", version, about = "intops command line")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Work with flows files.
    Flows {
        #[command(subcommand)]
        command: FlowsCommand,
    },
    /// Inspect and replay dead letters.
    Dlq {
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Print any topic's records as JSON lines (joins no consumer group,
    /// commits nothing).
    Tap {
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(flatten)]
        args: tap::TapArgs,
    },
    /// Pause or resume delivery to a target.
    Target {
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(subcommand)]
        command: TargetCommand,
    },
    /// The topics a deployment needs (for clusters that forbid
    /// auto-creation).
    Topics {
        #[command(subcommand)]
        command: TopicsCommand,
    },
    /// Work with one flow's past events.
    Flow {
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(subcommand)]
        command: FlowCommand,
    },
    /// A tenant's service report over a period (per flow: received,
    /// delivered, dead-lettered, replayed, success ratio, latency, time
    /// healthy, objectives; per day: usage), from the monitor's hourly
    /// rollups (`<prefix>.rollups`, kept 400 days).
    Report {
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(flatten)]
        args: report::ReportArgs,
    },
    /// Conversations' links (`<prefix>.links`): which target record a
    /// flow's source entity is linked to (joins no consumer group).
    Links {
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(subcommand)]
        command: LinksCommand,
    },
}

#[derive(Debug, Subcommand)]
enum LinksCommand {
    /// The link of one flow and source entity key: the target's record id
    /// (or `pending`), the last event and write, when created and updated.
    /// Exit 0 when found, 1 when there is none.
    Show {
        /// The flow (its id in the flows file).
        flow: String,
        /// The source's entity key (for a `from` flow: its own source's,
        /// such as the Jira issue key).
        entity_key: String,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Every link whose record id is RECORD_ID (case-insensitive): capture
    /// links to that target record, and from links writing back to it.
    /// Exit 0 when any is found, 1 when none.
    Find {
        /// The target's record id (a Jira issue key, a ServiceNow sys_id).
        record_id: String,
        /// Print one JSON object per link.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum FlowsCommand {
    /// Validate a flows file: parse it, resolve references, compile every
    /// jq program; list every problem. Exit 0 when valid, 2 when not.
    Check {
        /// The flows file.
        file: PathBuf,
    },
    /// Run test cases (`*.toml` in CASES_DIR) through the flows' routing
    /// and mapping; print a diff for each mismatch. Exit 0 when all pass,
    /// 1 when any fails, 2 when the flows file or a case is invalid.
    Test {
        /// The flows file.
        file: PathBuf,
        /// Directory of case files.
        cases_dir: PathBuf,
    },
    /// Print the flows file with its templates instantiated for every
    /// tenant (`<tenant>.<id>`) and its lookup tables in the programs that
    /// use them: what the services load. Exit 0, or 2 when it does not
    /// expand (`flows check` validates the result).
    Expand {
        /// The flows file.
        file: PathBuf,
    },
    /// What a changed flows file would do to the events recorded in a
    /// window (default: the last 24 h), compared with the deployed flow
    /// versions (or `--base FILE`): per flow, events newly or no longer
    /// routed, bodies and requests changed, new and fixed errors. Exit 0
    /// when nothing would change, 1 when something would, 2 when an input
    /// is invalid or the events cannot be read.
    Diff {
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(flatten)]
        args: diff::DiffArgs,
    },
    /// Every flow version a transform loaded (`<prefix>.flow-versions`):
    /// when first and last loaded, by which host, which are current.
    History {
        #[command(flatten)]
        connect: ConnectArgs,
        /// Only this flow's versions.
        #[arg(long)]
        flow: Option<String>,
        /// Print one JSON object per version.
        #[arg(long)]
        json: bool,
    },
    /// Print one flow version's definition (a `[[flows]]` table to paste
    /// into the flows file: the way back to it).
    Show {
        #[command(flatten)]
        connect: ConnectArgs,
        /// The version hash (as in dead letters, lineage and history).
        #[arg(long)]
        version: String,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum DlqCommand {
    /// Count dead letters by stage, flow, target and error class, with the
    /// oldest and newest and how many no replay has sent on yet.
    List {
        #[command(flatten)]
        filters: dlq::Filters,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Print dead letters: provenance, error, attempts, the target's last
    /// answer and the decoded payload.
    Show {
        #[command(flatten)]
        filters: dlq::Filters,
        /// Print one JSON object per dead letter.
        #[arg(long)]
        json: bool,
    },
    /// Send dead letters back to the topic they failed from (only to this
    /// deployment's events and deliveries topics).
    Replay(dlq::ReplayArgs),
}

#[derive(Debug, Subcommand)]
enum TargetCommand {
    /// Stop delivering to the target (records wait; nothing is
    /// dead-lettered) until `intops target resume`.
    Pause(target::TargetArgs),
    /// Resume delivering to the target (also after a pause by one of its
    /// `pause_statuses`).
    Resume(target::TargetArgs),
}

#[derive(Debug, Subcommand)]
enum TopicsCommand {
    /// Print every topic the flows file needs with partitions,
    /// replication, cleanup policy and retention (reads no broker).
    Plan(topics::PlanArgs),
}

#[derive(Debug, Subcommand)]
enum FlowCommand {
    /// Re-run one flow over past events and deliver what it makes of them
    /// now.
    Rewind(rewind::RewindArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Flows {
            command: FlowsCommand::Check { file },
        } => flows::check(&file),
        Command::Flows {
            command: FlowsCommand::Test { file, cases_dir },
        } => flows_test::run(&file, &cases_dir),
        Command::Flows {
            command: FlowsCommand::Expand { file },
        } => flows::expand(&file),
        Command::Flows {
            command: FlowsCommand::Diff { connect, args },
            // Any failure is 2 (1 means: something would change).
        } => online_or(2, &connect, async |ctx| Ok(diff::run(ctx, &args).await)),
        Command::Flows {
            command:
                FlowsCommand::History {
                    connect,
                    flow,
                    json,
                },
        } => online(&connect, async |ctx| {
            versions::history(ctx, flow.as_deref(), json).await
        }),
        Command::Flows {
            command:
                FlowsCommand::Show {
                    connect,
                    version,
                    json,
                },
        } => online(&connect, async |ctx| {
            versions::show(ctx, &version, json).await
        }),
        Command::Dlq { connect, command } => online(&connect, async |ctx| match command {
            DlqCommand::List { filters, json } => dlq::list(ctx, &filters, json).await.map(ok),
            DlqCommand::Show { filters, json } => dlq::show(ctx, &filters, json).await.map(ok),
            DlqCommand::Replay(args) => dlq::replay(ctx, &args).await.map(ok),
        }),
        Command::Target { connect, command } => {
            let (name, args) = match command {
                TargetCommand::Pause(a) => (intops_ops::target::Command::Pause, a),
                TargetCommand::Resume(a) => (intops_ops::target::Command::Resume, a),
            };
            online(&connect, async |ctx| {
                target::run(ctx, name, &args).await.map(ok)
            })
        }
        Command::Topics {
            command: TopicsCommand::Plan(args),
        } => topics::plan(&args),
        Command::Links { connect, command } => {
            let (query, json) = match command {
                LinksCommand::Show {
                    flow,
                    entity_key,
                    json,
                } => (links::Query::show(&flow, &entity_key), json),
                LinksCommand::Find { record_id, json } => (links::Query::find(&record_id), json),
            };
            online(&connect, async |ctx| links::run(ctx, &query, json).await)
        }
        Command::Report { connect, args } => {
            online(&connect, async |ctx| report::run(ctx, &args).await)
        }
        Command::Tap { connect, args } => {
            online(&connect, async |ctx| tap::run(ctx, &args).await.map(ok))
        }
        Command::Flow {
            connect,
            command: FlowCommand::Rewind(args),
        } => {
            let flows = match intops_flows::load_flows(&args.flows) {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            };
            let Some(flow) = flows.flows.iter().find(|f| f.id == args.flow) else {
                let ids: Vec<&str> = flows.flows.iter().map(|f| f.id.as_str()).collect();
                eprintln!(
                    "error: no flow {:?} in {} (flows: {})",
                    args.flow,
                    args.flows.display(),
                    ids.join(", ")
                );
                return ExitCode::from(2);
            };
            online(&connect, async |ctx| {
                rewind::run(ctx, &args, flow).await.map(|clean| {
                    if clean {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                })
            })
        }
    }
}

fn ok(_: ()) -> ExitCode {
    ExitCode::SUCCESS
}

/// Runs a command that talks to the broker and registry; any error is
/// printed with its causes and exits 1.
fn online(
    connect: &ConnectArgs,
    command: impl AsyncFnOnce(&ServiceContext) -> anyhow::Result<ExitCode>,
) -> ExitCode {
    online_or(1, connect, command)
}

/// [`online`] exiting with `failure` on an error.
fn online_or(
    failure: u8,
    connect: &ConnectArgs,
    command: impl AsyncFnOnce(&ServiceContext) -> anyhow::Result<ExitCode>,
) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(failure);
        }
    };
    let result = runtime.block_on(async {
        let ctx = ServiceContext::new(connect)?;
        tokio::select! {
            r = command(&ctx) => r,
            _ = tokio::signal::ctrl_c() => Ok(ExitCode::from(130)),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(failure)
        }
    }
}
