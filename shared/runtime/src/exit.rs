//! How services end: exit codes and the configuration error that maps to 2.

/// Every exit code of an intops service (docs/operations.md, "Exit codes").
pub mod codes {
    /// Clean shutdown.
    pub const SUCCESS: u8 = 0;
    /// Any other failure, including a failed or panicked background task.
    pub const FAILURE: u8 = 1;
    /// Invalid configuration, every problem listed on stderr.
    pub const INVALID_CONFIG: u8 = 2;
    /// The graceful stop took longer than `INTOPS_SHUTDOWN_TIMEOUT`.
    pub const SHUTDOWN_TIMEOUT: u8 = 3;
    /// A second SIGINT during the graceful stop (128 + 2).
    pub const SECOND_SIGINT: u8 = 130;
    /// A second SIGTERM during the graceful stop (128 + 15).
    pub const SECOND_SIGTERM: u8 = 143;
}

use std::fmt;
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

/// Runs a service's future to its end and returns the exit code. Once
/// `shutdown` is cancelled the service has `deadline` to finish; past it the
/// process exits at once with [`codes::SHUTDOWN_TIMEOUT`] (librdkafka
/// clients can block forever on a broker that is gone). Unstored offsets
/// are redelivered after restart.
pub async fn run_service(
    service: &str,
    shutdown: tokio_util::sync::CancellationToken,
    deadline: std::time::Duration,
    run: impl std::future::Future<Output = anyhow::Result<()>>,
) -> ExitCode {
    match within_deadline(service, shutdown, deadline, run).await {
        Ok(code) => code,
        Err(overdue) => {
            // Not a return from main: dropping the runtime would wait for
            // the very blocking calls that are overdue.
            std::process::exit(i32::from(overdue));
        }
    }
}

/// The service's exit code, or `Err` with the code to exit with at once
/// when it did not finish within `deadline` of `shutdown`.
async fn within_deadline(
    service: &str,
    shutdown: tokio_util::sync::CancellationToken,
    deadline: std::time::Duration,
    run: impl std::future::Future<Output = anyhow::Result<()>>,
) -> Result<ExitCode, u8> {
    let overdue = async {
        shutdown.cancelled().await;
        tokio::time::sleep(deadline).await;
    };
    tokio::select! {
        result = run => Ok(exit_code(service, result)),
        () = overdue => {
            tracing::error!(service, deadline_ms = deadline.as_millis() as u64, code = codes::SHUTDOWN_TIMEOUT, "shutdown deadline exceeded, exiting");
            eprintln!("{service}: shutdown deadline of {deadline:?} exceeded");
            Err(codes::SHUTDOWN_TIMEOUT)
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
            ExitCode::from(codes::INVALID_CONFIG)
        }
        Err(e) => {
            tracing::error!(service, error = %format!("{e:#}"), "service failed");
            eprintln!("{service}: {e:#}");
            ExitCode::from(codes::FAILURE)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio_util::sync::CancellationToken;

    use super::*;

    #[tokio::test]
    async fn an_overdue_shutdown_has_its_own_code() {
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        let stuck = std::future::pending::<anyhow::Result<()>>();
        let ended = within_deadline("test", shutdown, Duration::from_millis(10), stuck).await;
        assert_eq!(ended, Err(codes::SHUTDOWN_TIMEOUT));
        assert_ne!(codes::SHUTDOWN_TIMEOUT, codes::FAILURE);
    }

    #[tokio::test]
    async fn a_failed_background_task_exits_with_failure() {
        let shutdown = CancellationToken::new();
        let readiness = crate::Readiness::default();
        let mut tasks = crate::Supervisor::new(readiness, shutdown.clone());
        tasks.spawn("evaluate", crate::supervise::tests::explode("broken"));
        let stopped = shutdown.clone();
        let run = crate::supervise::tests::stops(tasks.run(async move {
            stopped.cancelled().await;
            anyhow::Ok(())
        }));
        let ended = within_deadline("test", shutdown, Duration::from_secs(600), run).await;
        assert_eq!(ended, Ok(ExitCode::from(codes::FAILURE)));
    }
}
