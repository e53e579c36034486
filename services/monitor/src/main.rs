use std::process::ExitCode;

use clap::Parser;
use intops_runtime::{admin, shutdown, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let args = intops_monitor::Args::parse();
    telemetry::init(args.common.log_format);
    let shutdown = shutdown::on_signal();
    let result = match admin::bind(args.listen).await {
        Ok(listener) => intops_monitor::run(args, listener, shutdown).await,
        Err(e) => Err(e.into()),
    };
    intops_runtime::exit_code("intops-monitor", result)
}
