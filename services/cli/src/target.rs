//! `intops target pause|resume ID`: a command on `<prefix>.control` that
//! every delivery replica applies to that target's lanes.

use intops_kafka::ServiceContext;
use intops_ops::audit;
use intops_ops::target::{self, Command};

/// `intops target pause|resume` flags.
#[derive(Debug, clap::Args)]
pub struct TargetArgs {
    /// The target id.
    pub id: String,
    /// Why (kept with the command and in the audit record).
    #[arg(long)]
    pub reason: Option<String>,
    /// Who, for the audit record (default: the OS user).
    #[arg(long)]
    pub operator: Option<String>,
}

/// Writes `command` for the target.
pub async fn run(ctx: &ServiceContext, command: Command, args: &TargetArgs) -> anyhow::Result<()> {
    let operator = audit::operator(args.operator.as_deref());
    target::send(ctx, &args.id, command, args.reason.as_deref(), &operator).await?;
    println!(
        "target {}: {} sent; every delivery replica applies it within about a second (and after restarts, until the next command)",
        args.id,
        command.as_str()
    );
    Ok(())
}
