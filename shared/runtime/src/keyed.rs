//! Tasks kept by key that a manager starts and stops as its settings
//! change (delivery's target consumers, ingest's pollers): waiting for the
//! first of them to end, and for an optional retry delay.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::task::{JoinError, JoinHandle};

/// The first task of `running` to end (`handle` finds each one's handle),
/// with its key and how it ended; pending while none runs.
pub async fn first_ended<V, T>(
    running: &mut BTreeMap<String, V>,
    handle: impl Fn(&mut V) -> &mut JoinHandle<T>,
) -> (String, Result<T, JoinError>) {
    if running.is_empty() {
        return std::future::pending().await;
    }
    let (result, index, _) = futures::future::select_all(running.values_mut().map(handle)).await;
    let key = running.keys().nth(index).cloned().unwrap_or_default();
    (key, result)
}

/// Waits `wait`, or forever when `None` (a retry that is not due).
pub async fn after(wait: Option<Duration>) {
    match wait {
        Some(wait) => tokio::time::sleep(wait).await,
        None => std::future::pending().await,
    }
}
