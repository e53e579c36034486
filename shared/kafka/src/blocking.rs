//! librdkafka's metadata, watermark and committed-offset calls
//! (`fetch_metadata`, `fetch_watermarks`, `committed_offsets`) block the
//! calling thread until the broker answers or their timeout passes, up to
//! seconds. Async code makes them through [`blocking`], on tokio's blocking
//! pool, so an unreachable broker never stalls the async workers (and the
//! timers, health probes and lanes they run).
//!
//! `tokio::task::block_in_place` would avoid the move into a closure, but
//! panics on the current-thread runtime (`#[tokio::test]`): clients go into
//! the closure by value (in an `Arc`, or created inside it).

use crate::KafkaError;

/// Runs `call` on tokio's blocking pool and waits for it. A panic inside
/// `call` is a [`KafkaError::Fatal`] (a bug, not the broker).
pub async fn blocking<T, F>(call: F) -> Result<T, KafkaError>
where
    F: FnOnce() -> Result<T, KafkaError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(call)
        .await
        .map_err(|e| KafkaError::Fatal(format!("blocking kafka call: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_on_the_current_thread_runtime() {
        let n = blocking(|| Ok::<_, KafkaError>(7)).await.expect("result");
        assert_eq!(n, 7);
        let failed = blocking(|| Err::<(), _>(KafkaError::Unavailable("down".into()))).await;
        assert!(matches!(failed, Err(KafkaError::Unavailable(_))));
    }

    #[tokio::test]
    async fn a_panic_is_fatal() {
        let failed = blocking(|| -> Result<(), KafkaError> { panic!("bug") }).await;
        assert!(matches!(failed, Err(KafkaError::Fatal(_))), "{failed:?}");
    }
}
