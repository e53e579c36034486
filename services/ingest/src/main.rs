use std::process::ExitCode;

use clap::Parser;
use intops_ingest::IngestCli;
use intops_runtime::{admin, shutdown, telemetry};

// mimalloc: the per-record work is allocation-heavy (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let IngestCli { args, requests } = IngestCli::parse();
    telemetry::init(args.common.log_format);
    let shutdown = shutdown::on_signal();
    let deadline = args.common.shutdown_timeout;
    let run = async {
        let listener = admin::bind(args.listen).await?;
        intops_ingest::run_with(args, requests, listener, shutdown.clone()).await
    };
    intops_runtime::run_service("intops-ingest", shutdown.clone(), deadline, run).await
}
