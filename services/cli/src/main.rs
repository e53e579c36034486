//! `intops`: the command line for operators and flow authors.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cases;
mod flows;
mod flows_test;

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
    }
}
