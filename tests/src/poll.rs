//! Waiting for a condition without sleeping and hoping.

use std::future::Future;
use std::time::{Duration, Instant};

/// Calls `check` until it returns `Some`, or panics with `what` once
/// `deadline` has passed. Polls every 50 ms. A check that has not finished
/// when the deadline passes (an HTTP request to a server that accepted the
/// connection but never answers) fails the wait too: a test never hangs.
pub async fn poll_until<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let end = Instant::now() + deadline;
    loop {
        let left = end
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        match tokio::time::timeout(left, check()).await {
            Ok(Some(v)) => return v,
            Ok(None) => {}
            Err(_) => panic!(
                "timed out after {deadline:?} waiting for {what} (the last check did not finish)"
            ),
        }
        assert!(
            Instant::now() < end,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A check that never finishes fails the wait at its deadline.
    #[tokio::test]
    #[should_panic(expected = "the last check did not finish")]
    async fn a_check_that_never_finishes_fails_at_the_deadline() {
        poll_until("nothing", Duration::from_millis(100), || {
            std::future::pending::<Option<()>>()
        })
        .await;
    }
}
