//! Replay protection for signed webhooks with a timestamp header: a
//! signature is remembered until its timestamp leaves the tolerance window
//! (after that the timestamp check refuses it anyway), so a second request
//! with the same signature inside the window is refused.
//!
//! Memory is bounded per source. When a source's memory is full of
//! signatures still inside their window, new signed requests are refused
//! with 503 and Retry-After (the time until the oldest expires) rather
//! than forgetting a signature, which would let its replay through. Only
//! requests whose signature verified are remembered, so only the source
//! itself can fill its memory.
//!
//! A signature is claimed before the request's events are produced and
//! released again unless the request is accepted, so the source's retry
//! of a refused or interrupted request (same signature) is accepted.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::error::IngestError;

/// One verified signature: its bytes and when its timestamp leaves the
/// tolerance window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The decoded MAC.
    pub mac: Vec<u8>,
    /// Timestamp + tolerance.
    pub expires: SystemTime,
}

/// The signatures of one source still inside their window.
#[derive(Debug)]
struct Seen {
    by_mac: HashMap<Vec<u8>, SystemTime>,
    by_expiry: BTreeSet<(SystemTime, Vec<u8>)>,
}

impl Seen {
    fn prune(&mut self, now: SystemTime) {
        while let Some(first) = self.by_expiry.first() {
            if first.0 > now {
                break;
            }
            if let Some((_, mac)) = self.by_expiry.pop_first() {
                self.by_mac.remove(&mac);
            }
        }
    }

    fn remove(&mut self, signed: &Signed) {
        if let Some(expires) = self.by_mac.remove(&signed.mac) {
            self.by_expiry.remove(&(expires, signed.mac.clone()));
        }
    }
}

/// Remembered signatures, per source.
#[derive(Debug, Clone)]
pub(crate) struct ReplayGuard {
    capacity: usize,
    sources: Arc<Mutex<HashMap<String, Seen>>>,
}

/// A claimed signature: [`Claim::keep`] keeps it for its window (the
/// request was accepted); dropped without it (refused after the claim, or
/// the request was cancelled mid-way) it is forgotten, so the source's
/// retry with the same signature is accepted: at worst a duplicate, never
/// a lost event.
#[derive(Debug)]
#[must_use = "keep the claim when the request is accepted"]
pub(crate) struct Claim {
    guard: ReplayGuard,
    source: String,
    signed: Signed,
    kept: bool,
}

impl Claim {
    /// The request was accepted: the signature stays remembered.
    pub(crate) fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        let mut sources = self.guard.lock();
        if let Some(seen) = sources.get_mut(&self.source) {
            seen.remove(&self.signed);
        }
    }
}

impl ReplayGuard {
    /// Remembers at most `capacity` signatures per source.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            sources: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Seen>> {
        // A panic while holding the lock leaves the sets consistent enough
        // (each step is one insert or remove): keep using them.
        self.sources
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Claims `signed` for `source` at `now`, or refuses a replay (409) or
    /// a full memory (503 with Retry-After).
    pub(crate) fn claim(
        &self,
        source: &str,
        signed: Signed,
        now: SystemTime,
    ) -> Result<Claim, IngestError> {
        let mut sources = self.lock();
        let seen = sources.entry(source.to_string()).or_insert_with(|| Seen {
            by_mac: HashMap::new(),
            by_expiry: BTreeSet::new(),
        });
        seen.prune(now);
        if seen.by_mac.contains_key(&signed.mac) {
            return Err(IngestError::Replayed(
                "this signature was already used within the timestamp tolerance; sign each request with a fresh timestamp".into(),
            ));
        }
        if seen.by_mac.len() >= self.capacity {
            let wait = seen
                .by_expiry
                .first()
                .and_then(|(expires, _)| expires.duration_since(now).ok())
                .unwrap_or(Duration::from_secs(1));
            tracing::warn!(
                source,
                capacity = self.capacity,
                "replay memory full; refusing signed requests until signatures expire"
            );
            return Err(IngestError::Overloaded {
                detail: format!(
                    "ingest remembers at most {} signatures per source for replay protection and all are inside their window; retry later",
                    self.capacity
                ),
                retry_after: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            });
        }
        seen.by_expiry.insert((signed.expires, signed.mac.clone()));
        seen.by_mac.insert(signed.mac.clone(), signed.expires);
        drop(sources);
        Ok(Claim {
            guard: self.clone(),
            source: source.to_string(),
            signed,
            kept: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn signed(mac: u8, expires: u64) -> Signed {
        Signed {
            mac: vec![mac; 32],
            expires: at(expires),
        }
    }

    #[test]
    fn a_signature_is_refused_the_second_time_within_its_window() {
        let guard = ReplayGuard::new(10);
        guard
            .claim("s", signed(1, 100), at(10))
            .expect("first")
            .keep();
        let e = guard
            .claim("s", signed(1, 100), at(50))
            .expect_err("replay");
        assert!(matches!(e, IngestError::Replayed(_)), "{e:?}");
        // Other sources keep their own memory.
        guard
            .claim("t", signed(1, 100), at(50))
            .expect("other source")
            .keep();
        // Once the window is over the timestamp check refuses it; the
        // memory forgets it.
        guard
            .claim("s", signed(1, 200), at(100))
            .expect("expired")
            .keep();
    }

    #[test]
    fn a_claim_not_kept_lets_the_retry_through() {
        let guard = ReplayGuard::new(10);
        drop(guard.claim("s", signed(1, 100), at(10)).expect("first"));
        guard
            .claim("s", signed(1, 100), at(11))
            .expect("retry")
            .keep();
        assert!(guard.claim("s", signed(1, 100), at(12)).is_err());
    }

    #[test]
    fn a_full_memory_refuses_with_the_wait_until_the_oldest_expires() {
        let guard = ReplayGuard::new(2);
        guard.claim("s", signed(1, 100), at(10)).expect("1").keep();
        guard.claim("s", signed(2, 40), at(10)).expect("2").keep();
        match guard.claim("s", signed(3, 100), at(10)) {
            Err(IngestError::Overloaded { retry_after, .. }) => assert_eq!(retry_after, 30),
            other => panic!("expected 503, got {other:?}"),
        }
        // Nothing was forgotten to make room.
        assert!(matches!(
            guard.claim("s", signed(2, 40), at(20)),
            Err(IngestError::Replayed(_))
        ));
        // After the oldest expires there is room again.
        guard
            .claim("s", signed(3, 100), at(40))
            .expect("room")
            .keep();
    }
}
