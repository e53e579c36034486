//! The links index of one delivery process, shared by its targets: every
//! link of `<prefix>.links` ([`crate::links::Follower`] reads the topic
//! from the beginning, then follows it) and this process's own writes,
//! applied at once, before the broker acknowledges them.
//!
//! The order rule: a record read from the topic replaces a link only if its
//! `updated_at` is not older than the link's (a local write is newer than
//! the records it follows on the topic, such as its own pending link);
//! a local write always applies, stamped later than the link it replaces,
//! so replicas whose clocks differ still order one key's writes. A
//! tombstone removes a link not updated after the tombstone was written.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::Duration;

use intops_events::Link;
use intops_runtime::metrics as m;

use super::store::{Entry, Store, View};

/// What a record read from the topic did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Stored (inserted or replaced).
    Stored,
    /// Removed (a tombstone).
    Removed,
    /// Older than what the index holds, or a tombstone of nothing: no
    /// change.
    Ignored,
}

/// Every link one delivery process knows; see the module documentation.
#[derive(Debug)]
pub struct LinkIndex {
    store: RwLock<Store>,
    /// Per partition of the links topic: the offset after the last record
    /// read.
    positions: Mutex<HashMap<i32, i64>>,
    /// Woken when a position advances.
    advanced: tokio::sync::Notify,
    /// `intops_links`.
    gauge: metrics::Gauge,
}

impl Default for LinkIndex {
    fn default() -> Self {
        Self::new()
    }
}

impl LinkIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self {
            store: RwLock::default(),
            positions: Mutex::default(),
            advanced: tokio::sync::Notify::new(),
            gauge: metrics::gauge!(m::LINKS),
        }
    }

    /// `flow`'s link for `entity_key` (a pending one too: see
    /// [`Entry::is_linked`]).
    pub fn lookup(&self, flow: &str, entity_key: &str) -> Option<Entry> {
        self.read().get(flow, entity_key)
    }

    /// The capture link of `flow` whose target record id is `record_id`.
    pub fn find_record(&self, flow: &str, record_id: &str) -> Option<Entry> {
        self.read().find_record(flow, record_id)
    }

    /// Links held.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether no link is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Heap bytes the links take, approximately (without the allocator's
    /// rounding; the process's resident memory is the real measure).
    pub fn heap_bytes(&self) -> usize {
        self.read().heap_bytes()
    }

    /// Applies a link this process is about to write, at once; its
    /// `updated_at` is raised above the link it replaces if the clock
    /// says otherwise (write `link` as it is afterwards).
    pub fn write_local(&self, link: &mut Link) {
        let mut store = self.write();
        if let Some(at) = store.updated_at(&link.flow_id, &link.entity_key)
            && at >= link.updated_at
        {
            link.updated_at = at.saturating_add(1);
        }
        store.put(link);
        self.gauge.set(store.len() as f64);
    }

    /// Applies a record read from the links topic under `key`: a link, or
    /// a tombstone (`None`) written at `written_at` (microseconds; `None`
    /// when the record has no timestamp).
    pub fn apply_read(&self, key: &str, link: Option<&Link>, written_at: Option<i64>) -> Applied {
        let mut store = self.write();
        let applied = match link {
            Some(link) => {
                match store.updated_at(&link.flow_id, &link.entity_key) {
                    Some(at) if at > link.updated_at => return Applied::Ignored,
                    _ => {}
                }
                store.put(link);
                Applied::Stored
            }
            None => {
                let Some((flow, entity_key)) = key.split_once(':') else {
                    return Applied::Ignored;
                };
                match (store.updated_at(flow, entity_key), written_at) {
                    (None, _) => return Applied::Ignored,
                    // Written to again after the tombstone was produced
                    // (the sweeper's race with a new event): kept.
                    (Some(at), Some(written)) if at > written => return Applied::Ignored,
                    _ => {}
                }
                store.remove(flow, entity_key);
                Applied::Removed
            }
        };
        self.gauge.set(store.len() as f64);
        applied
    }

    /// Removes `flow`'s link for `entity_key` if it was not updated since
    /// `updated_at` (the sweeper, before it writes the tombstone); whether
    /// it was removed.
    pub(crate) fn expire_local(&self, flow: &str, entity_key: &str, updated_at: i64) -> bool {
        let mut store = self.write();
        if store.updated_at(flow, entity_key) != Some(updated_at) {
            return false;
        }
        let removed = store.remove(flow, entity_key);
        self.gauge.set(store.len() as f64);
        removed
    }

    /// Calls `f` with every link (under the index's read lock: keep it
    /// short).
    pub(crate) fn for_each(&self, f: impl FnMut(View<'_>)) {
        self.read().for_each(f);
    }

    /// The follower read up to `offset` (inclusive) of `partition`.
    pub fn read_position(&self, partition: i32, offset: i64) {
        {
            let mut positions = self
                .positions
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let at = positions.entry(partition).or_insert(0);
            *at = (*at).max(offset + 1);
        }
        self.advanced.notify_waiters();
    }

    /// Per partition: the offset after the last record the follower read.
    pub fn positions(&self) -> HashMap<i32, i64> {
        self.positions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits up to `within` until the follower read every partition in
    /// `ends` (partition, low, high watermark) up to its high watermark;
    /// whether it did.
    pub(crate) async fn reached(&self, ends: &[(i32, i64, i64)], within: Duration) -> bool {
        let wait = async {
            loop {
                let mut advanced = std::pin::pin!(self.advanced.notified());
                advanced.as_mut().enable();
                if self.is_at(ends) {
                    return;
                }
                advanced.await;
            }
        };
        tokio::time::timeout(within, wait).await.is_ok()
    }

    fn is_at(&self, ends: &[(i32, i64, i64)]) -> bool {
        let positions = self
            .positions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        ends.iter().all(|(partition, low, high)| {
            high <= low || positions.get(partition).is_some_and(|at| at >= high)
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Store> {
        self.store.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Store> {
        self.store.write().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
#[path = "index_tests.rs"]
mod tests;
