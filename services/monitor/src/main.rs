use std::process::ExitCode;

use clap::Parser;
use intops_runtime::{admin, shutdown, telemetry};

// mimalloc: the per-record work is allocation-heavy (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let args = intops_monitor::Args::parse();
    telemetry::init(args.common.log_format);
    let shutdown = shutdown::on_signal();
    let deadline = args.common.shutdown_timeout;
    let run = async {
        let listener = admin::bind(args.listen).await?;
        intops_monitor::run(args, listener, shutdown.clone()).await
    };
    intops_runtime::run_service("intops-monitor", shutdown.clone(), deadline, run).await
}
