//! Which offset may be stored while records of a partition finish out of
//! order: the contiguous low watermark, never "the latest finished".

use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Default)]
struct Partition {
    /// Which assignment of the partition this is: records begun under an
    /// earlier one (before a rebalance took the partition away) no longer
    /// count when they finish.
    epoch: u64,
    /// Offsets handed out and not finished (with a count, in case a
    /// rebalance redelivers one that is still in flight).
    pending: BTreeMap<i64, u32>,
    highest_done: Option<i64>,
    stored: Option<i64>,
}

/// Tracks in-flight offsets per partition.
#[derive(Debug, Default)]
pub(crate) struct OffsetTracker {
    partitions: HashMap<(String, i32), Partition>,
    next_epoch: u64,
}

impl OffsetTracker {
    /// A record was handed to processing. Returns the partition's epoch,
    /// which [`finish`](Self::finish) must be given back.
    pub(crate) fn begin(&mut self, topic: &str, partition: i32, offset: i64) -> u64 {
        let epoch = self.next_epoch;
        let p = self
            .partitions
            .entry((topic.to_string(), partition))
            .or_insert_with(|| Partition {
                epoch,
                ..Partition::default()
            });
        *p.pending.entry(offset).or_insert(0) += 1;
        p.epoch
    }

    /// A record finished (its outputs acknowledged or dead-lettered).
    /// Returns the offset to store when the low watermark advanced: every
    /// record up to and including it has finished.
    /// A record begun under an earlier epoch of its partition is ignored.
    pub(crate) fn finish(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        epoch: u64,
    ) -> Option<i64> {
        let p = self
            .partitions
            .get_mut(&(topic.to_string(), partition))
            .filter(|p| p.epoch == epoch)?;
        if let Some(n) = p.pending.get_mut(&offset) {
            *n -= 1;
            if *n == 0 {
                p.pending.remove(&offset);
            }
        }
        p.highest_done = p.highest_done.max(Some(offset));
        let candidate = match p.pending.first_key_value() {
            Some((lowest, _)) => lowest - 1,
            None => p.highest_done?,
        };
        if candidate < 0 || p.stored >= Some(candidate) {
            return None;
        }
        p.stored = Some(candidate);
        Some(candidate)
    }

    /// Records of these partitions handed out and not finished.
    pub(crate) fn pending_in(&self, partitions: &[(String, i32)]) -> usize {
        partitions
            .iter()
            .filter_map(|key| self.partitions.get(key))
            .map(|p| p.pending.values().map(|n| *n as usize).sum::<usize>())
            .sum()
    }

    /// The last offset stored for a partition (the next owner starts after it).
    pub(crate) fn stored(&self, topic: &str, partition: i32) -> Option<i64> {
        self.partitions.get(&(topic.to_string(), partition))?.stored
    }

    /// Drops these partitions (a rebalance took them away): records still
    /// running for them no longer count, and a later assignment starts a
    /// new epoch.
    pub(crate) fn forget(&mut self, partitions: &[(String, i32)]) {
        for key in partitions {
            self.partitions.remove(key);
        }
        self.next_epoch += 1;
    }

    /// Records handed out and not finished, over all partitions.
    pub(crate) fn in_flight(&self) -> usize {
        self.partitions
            .values()
            .map(|p| p.pending.values().map(|n| *n as usize).sum::<usize>())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_order_finishes_store_the_contiguous_low_watermark() {
        let mut t = OffsetTracker::default();
        for o in 10..14 {
            t.begin("a", 0, o);
        }
        assert_eq!(t.finish("a", 0, 12, 0), Some(9), "10 is still in flight");
        assert_eq!(t.finish("a", 0, 11, 0), None);
        assert_eq!(t.finish("a", 0, 10, 0), Some(12));
        assert_eq!(t.in_flight(), 1);
        assert_eq!(t.finish("a", 0, 13, 0), Some(13));
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn partitions_are_independent() {
        let mut t = OffsetTracker::default();
        t.begin("a", 0, 0);
        t.begin("a", 1, 0);
        t.begin("a", 1, 1);
        assert_eq!(
            t.finish("a", 1, 1, 0),
            None,
            "offset 0 of partition 1 is in flight"
        );
        assert_eq!(t.finish("a", 0, 0, 0), Some(0));
        assert_eq!(t.finish("a", 1, 0, 0), Some(1));
    }

    #[test]
    fn a_redelivered_in_flight_offset_holds_the_watermark() {
        let mut t = OffsetTracker::default();
        t.begin("a", 0, 5);
        t.begin("a", 0, 5);
        t.begin("a", 0, 6);
        assert_eq!(t.finish("a", 0, 6, 0), Some(4));
        assert_eq!(t.finish("a", 0, 5, 0), None, "one copy of 5 still runs");
        assert_eq!(t.finish("a", 0, 5, 0), Some(6));
    }

    #[test]
    fn a_record_of_a_forgotten_assignment_does_not_count() {
        let mut t = OffsetTracker::default();
        let old = t.begin("a", 0, 7);
        t.begin("a", 1, 0);
        assert_eq!(t.pending_in(&[("a".into(), 0)]), 1);
        t.forget(&[("a".into(), 0)]);
        assert_eq!(t.pending_in(&[("a".into(), 0)]), 0);
        let new = t.begin("a", 0, 3);
        assert_ne!(old, new);
        assert_eq!(t.finish("a", 0, 7, old), None, "the old owner's record");
        assert_eq!(t.stored("a", 0), None);
        assert_eq!(t.finish("a", 0, 3, new), Some(3));
        assert_eq!(t.stored("a", 0), Some(3));
        assert_eq!(t.pending_in(&[("a".into(), 1)]), 1, "partition 1 untouched");
    }
}
