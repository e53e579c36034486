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
