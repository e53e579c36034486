//! `intops`: the command line for operators and flow authors.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod flows;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Flows {
            command: FlowsCommand::Check { file },
        } => flows::check(&file),
    }
}
