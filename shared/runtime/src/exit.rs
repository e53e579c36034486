//! How services end: exit codes and the configuration error that maps to 2.

use std::fmt;
use std::path::Path;
use std::process::ExitCode;

/// Invalid configuration, with every problem listed; exits with code 2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError(pub Vec<String>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid configuration ({} problem(s)): {}",
            self.0.len(),
            self.0.join("; ")
        )
    }
}

/// Loads and validates the flows file, as a [`ConfigError`] when invalid.
pub fn load_flows(path: &Path) -> Result<intops_flows::Flows, ConfigError> {
    intops_flows::load_file(path).map_err(|e| {
        ConfigError(
            e.0.iter()
                .map(|p| format!("{}: {p}", path.display()))
                .collect(),
        )
    })
}

/// Runs a service's future to its end and returns the exit code. Once
/// `shutdown` is cancelled the service has `deadline` to finish; past it the
/// process exits with 1 at once (librdkafka clients can block forever on a
/// broker that is gone). Unstored offsets are redelivered after restart.
pub async fn run_service(
    service: &str,
    shutdown: tokio_util::sync::CancellationToken,
    deadline: std::time::Duration,
    run: impl std::future::Future<Output = anyhow::Result<()>>,
) -> ExitCode {
    let overdue = async {
        shutdown.cancelled().await;
        tokio::time::sleep(deadline).await;
    };
    tokio::select! {
        result = run => exit_code(service, result),
        () = overdue => {
            tracing::error!(service, deadline_ms = deadline.as_millis() as u64, "shutdown deadline exceeded, exiting");
            eprintln!("{service}: shutdown deadline of {deadline:?} exceeded");
            std::process::exit(1);
        }
    }
}

/// The process exit code for a service's result: 0 success, 2 invalid
/// configuration, 1 any other failure (logged with its cause chain).
pub fn exit_code(service: &str, result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.chain().any(|c| c.is::<ConfigError>()) => {
            tracing::error!(service, error = %format!("{e:#}"), "invalid configuration");
            eprintln!("{service}: {e:#}");
            ExitCode::from(2)
        }
        Err(e) => {
            tracing::error!(service, error = %format!("{e:#}"), "service failed");
            eprintln!("{service}: {e:#}");
            ExitCode::FAILURE
        }
    }
}
