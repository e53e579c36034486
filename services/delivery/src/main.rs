use std::process::ExitCode;

use clap::Parser;
use intops_runtime::{shutdown, telemetry};

// mimalloc: the per-record work is allocation-heavy (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let args = intops_delivery::Args::parse();
    telemetry::init(args.common.log_format);
    let shutdown = shutdown::on_signal();
    let deadline = args.common.shutdown_timeout;
    intops_runtime::run_service(
        "intops-delivery",
        shutdown.clone(),
        deadline,
        intops_delivery::run(args, shutdown),
    )
    .await
}
