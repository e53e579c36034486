//! What every intops service runs on: common settings, tracing, metric
//! names, supervision of background tasks, graceful shutdown and exit
//! codes, readiness, reload of a watched file, and the [`Secret`] value.
//!
//! Features (none by default, so plumbing crates such as `intops-kafka`
//! stay free of them): `cli` derives the clap flags of [`CommonArgs`] and
//! [`ConnectArgs`]; `admin` adds the admin endpoints (`/healthz`,
//! `/readyz`, `/metrics`: module `admin`) and the Prometheus recorder
//! (`metrics::install`).

#[cfg(feature = "admin")]
pub mod admin;
mod exit;
mod host;
pub mod keyed;
pub mod metrics;
mod readiness;
pub mod reload;
mod secret;
mod settings;
pub mod shutdown;
mod supervise;
pub mod telemetry;

pub use exit::{ConfigError, codes, exit_code, run_service};
pub use host::host_name;
pub use readiness::Readiness;
pub use secret::Secret;
pub use settings::{CommonArgs, ConnectArgs};
pub use supervise::{Supervisor, TaskFailed, TaskOutput};
pub use tokio_util::sync::CancellationToken;
