//! Which offset may be stored while records of a partition finish out of
//! order: the contiguous low watermark, never "the latest finished".

use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Default)]
struct Partition {
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
}

impl OffsetTracker {
    /// A record was handed to processing.
    pub(crate) fn begin(&mut self, topic: &str, partition: i32, offset: i64) {
        let p = self
            .partitions
            .entry((topic.to_string(), partition))
            .or_default();
        *p.pending.entry(offset).or_insert(0) += 1;
    }

    /// A record finished (its outputs acknowledged or dead-lettered).
    /// Returns the offset to store when the low watermark advanced: every
    /// record up to and including it has finished.
    pub(crate) fn finish(&mut self, topic: &str, partition: i32, offset: i64) -> Option<i64> {
        let p = self.partitions.get_mut(&(topic.to_string(), partition))?;
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
        assert_eq!(t.finish("a", 0, 12), Some(9), "10 is still in flight");
        assert_eq!(t.finish("a", 0, 11), None);
        assert_eq!(t.finish("a", 0, 10), Some(12));
        assert_eq!(t.in_flight(), 1);
        assert_eq!(t.finish("a", 0, 13), Some(13));
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn partitions_are_independent() {
        let mut t = OffsetTracker::default();
        t.begin("a", 0, 0);
        t.begin("a", 1, 0);
        t.begin("a", 1, 1);
        assert_eq!(
            t.finish("a", 1, 1),
            None,
            "offset 0 of partition 1 is in flight"
        );
        assert_eq!(t.finish("a", 0, 0), Some(0));
        assert_eq!(t.finish("a", 1, 0), Some(1));
    }

    #[test]
    fn a_redelivered_in_flight_offset_holds_the_watermark() {
        let mut t = OffsetTracker::default();
        t.begin("a", 0, 5);
        t.begin("a", 0, 5);
        t.begin("a", 0, 6);
        assert_eq!(t.finish("a", 0, 6), Some(4));
        assert_eq!(t.finish("a", 0, 5), None, "one copy of 5 still runs");
        assert_eq!(t.finish("a", 0, 5), Some(6));
    }
}
