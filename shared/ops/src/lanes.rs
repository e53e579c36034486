//! The lanes of replays and rewinds: [`KeyedLanes`] with a handler per
//! item, so one entity's records (one key) are written in order while many
//! entities are in flight; the first failing record fails the run.

use intops_kafka::KeyedLanes;

/// Lanes of a replay or rewind: records in flight at once, at most.
pub const LANES: usize = 1024;

/// Records queued per lane before the reader waits.
pub const DEPTH: usize = 4;

/// The lanes of a replay or rewind, each handling its items in order.
pub type Lanes<T> = KeyedLanes<T, anyhow::Result<()>>;
