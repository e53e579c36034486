use std::process::ExitCode;

use clap::Parser;
use intops_runtime::{shutdown, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let args = intops_transform::Args::parse();
    telemetry::init(args.common.log_format);
    let shutdown = shutdown::on_signal();
    let result = intops_transform::run(args, shutdown).await;
    intops_runtime::exit_code("intops-transform", result)
}
