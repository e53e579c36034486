//! Turns in the stack test process: every end-to-end scenario runs in one
//! test binary (tests/tests/stack/), several at a time. A scenario that
//! must have the process and the machine to itself (the fault suite's
//! load, a check of a process-wide counter) takes [`alone`]; every other
//! one takes [`beside_others`]. The lock is fair: once an `alone` scenario
//! waits, later scenarios wait behind it.

use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

static TURNS: RwLock<()> = RwLock::const_new(());

/// Waits until no other scenario runs, and keeps the others waiting until
/// the guard is dropped.
pub async fn alone() -> RwLockWriteGuard<'static, ()> {
    TURNS.write().await
}

/// Waits while an [`alone`] scenario runs (or waits to run); any number
/// of scenarios hold this at once.
pub async fn beside_others() -> RwLockReadGuard<'static, ()> {
    TURNS.read().await
}
