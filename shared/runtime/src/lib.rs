//! What every intops service runs on: common settings, tracing, the
//! Prometheus recorder and metric names, the admin endpoints
//! (`/healthz`, `/readyz`, `/metrics`), supervision of background tasks
//! and graceful shutdown.

pub mod admin;
mod exit;
pub mod metrics;
mod readiness;
pub mod reload;
mod settings;
pub mod shutdown;
mod supervise;
pub mod telemetry;

pub use exit::{ConfigError, codes, exit_code, load_flows, run_service};
pub use readiness::Readiness;
pub use settings::{CommonArgs, ConnectArgs};
pub use supervise::{Supervisor, TaskFailed, TaskOutput};
pub use tokio_util::sync::CancellationToken;
