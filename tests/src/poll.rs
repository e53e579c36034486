//! Waiting for a condition without sleeping and hoping.

use std::future::Future;
use std::time::{Duration, Instant};

/// Calls `check` until it returns `Some`, or panics with `what` once
/// `deadline` has passed. Polls every 50 ms.
pub async fn poll_until<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < end,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
