//! Every intops topic with what it is for, who writes it, and how long it
//! keeps records: the one place services create topics from and
//! `intops topics plan` prints for clusters that forbid auto-creation.

use std::time::Duration;

use intops_events::Topics;

use crate::topics::TopicSpec;

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// How a topic gets rid of old records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cleanup {
    /// Records older than the retention are deleted.
    Delete(Duration),
    /// The latest record per key is kept (state).
    Compact,
    /// The latest record per key is kept, and deleted after the
    /// retention (history kept for a while).
    CompactFor(Duration),
}

impl Cleanup {
    /// The topic configs that express it.
    pub fn configs(self) -> Vec<(String, String)> {
        match self {
            Cleanup::Delete(retention) => vec![
                ("cleanup.policy".into(), "delete".into()),
                ("retention.ms".into(), retention.as_millis().to_string()),
            ],
            Cleanup::Compact => vec![("cleanup.policy".into(), "compact".into())],
            Cleanup::CompactFor(retention) => vec![
                ("cleanup.policy".into(), "compact,delete".into()),
                ("retention.ms".into(), retention.as_millis().to_string()),
            ],
        }
    }
}

/// One topic of a deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedTopic {
    /// Name, partitions, replication and configs.
    pub spec: TopicSpec,
    /// Cleanup policy and retention.
    pub cleanup: Cleanup,
    /// Who writes it.
    pub writer: &'static str,
    /// What it holds.
    pub purpose: &'static str,
}

/// The topics of one prefix, with the partitions and replication the
/// services create them with.
#[derive(Debug, Clone)]
pub struct TopicPlan {
    topics: Topics,
    partitions: i32,
    replication: i32,
}

impl TopicPlan {
    /// A plan for `topics` with these defaults for new topics.
    pub fn new(topics: Topics, partitions: i32, replication: i32) -> Self {
        Self {
            topics,
            partitions,
            replication,
        }
    }

    /// Every topic a deployment with these targets uses; `polled` adds the
    /// polling cursors (needed only when a source has `kind = "poll"`).
    pub fn all<'a>(
        &self,
        target_ids: impl IntoIterator<Item = &'a str>,
        polled: bool,
    ) -> Vec<PlannedTopic> {
        let t = &self.topics;
        let mut names = t.all(target_ids);
        names.extend([
            t.dlq_parked(),
            t.dlq_replays(),
            t.audit(),
            t.control(),
            t.links(),
            t.flow_versions(),
            t.rollups(),
            t.target_states(),
        ]);
        if polled {
            names.push(t.ingest_cursors());
        }
        names.iter().map(|n| self.topic(n)).collect()
    }

    /// How the topic `name` is created.
    pub fn spec(&self, name: &str) -> TopicSpec {
        self.topic(name).spec
    }

    fn topic(&self, name: &str) -> PlannedTopic {
        let (cleanup, writer, purpose) = self.role(name);
        let mut spec = TopicSpec::new(name, self.partitions, self.replication);
        spec.configs = cleanup.configs();
        PlannedTopic {
            spec,
            cleanup,
            writer,
            purpose,
        }
    }

    fn role(&self, name: &str) -> (Cleanup, &'static str, &'static str) {
        let t = &self.topics;
        let deliveries = t.deliveries("");
        if name == t.events() {
            (Cleanup::Delete(7 * DAY), "ingest", "accepted events")
        } else if name.starts_with(&deliveries) {
            (
                Cleanup::Delete(7 * DAY),
                "transform, dlq replay, flow rewind",
                "delivery requests for one target",
            )
        } else if name == t.outcomes() {
            (
                Cleanup::Delete(7 * DAY),
                "transform, delivery, dlq replay",
                "final results no other record implies",
            )
        } else if name == t.dlq_transform() {
            (
                Cleanup::Delete(30 * DAY),
                "transform",
                "dead letters waiting for a replay",
            )
        } else if name == t.dlq_delivery() {
            (
                Cleanup::Delete(30 * DAY),
                "delivery",
                "dead letters waiting for a replay",
            )
        } else if name == t.dlq_parked() {
            (
                Cleanup::Delete(30 * DAY),
                "dlq replay",
                "dead letters replayed too often",
            )
        } else if name == t.dlq_replays() {
            (
                Cleanup::Compact,
                "dlq replay",
                "which dead letters a replay already sent",
            )
        } else if name == t.audit() {
            (
                Cleanup::Delete(365 * DAY),
                "dlq replay, flow rewind",
                "operator actions",
            )
        } else if name == t.control() {
            (
                Cleanup::Compact,
                "intops target pause/resume",
                "paused targets",
            )
        } else if name == t.ingest_cursors() {
            (Cleanup::Compact, "ingest", "positions of polled sources")
        } else if name == t.links() {
            (
                Cleanup::Compact,
                "delivery",
                "conversations' links: source record to target record",
            )
        } else if name == t.flow_versions() {
            (
                Cleanup::Compact,
                "transform",
                "every flow version loaded, with its definition",
            )
        } else if name == t.target_states() {
            (
                Cleanup::Compact,
                "delivery",
                "whether each delivery replica sends to each target",
            )
        } else if name == t.rollups() {
            (
                Cleanup::CompactFor(400 * DAY),
                "monitor",
                "hourly figures per flow and tenant, for SLA reports",
            )
        } else {
            (Cleanup::Delete(7 * DAY), "-", "not an intops topic")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_topics_are_compacted_and_streams_expire() {
        let plan = TopicPlan::new(Topics::new("acme"), 6, 3);
        let all = plan.all(["jira"], true);
        let find = |n: &str| {
            all.iter()
                .find(|t| t.spec.name == n)
                .unwrap_or_else(|| panic!("{n} planned"))
        };
        for compacted in [
            "acme.dlq.replays",
            "acme.control",
            "acme.ingest.cursors",
            "acme.links",
            "acme.flow-versions",
            "acme.target-states",
        ] {
            assert_eq!(find(compacted).cleanup, Cleanup::Compact, "{compacted}");
        }
        assert_eq!(find("acme.events").cleanup, Cleanup::Delete(7 * DAY));
        let rollups = find("acme.rollups");
        assert_eq!(rollups.cleanup, Cleanup::CompactFor(400 * DAY));
        assert!(
            rollups
                .spec
                .configs
                .contains(&("cleanup.policy".into(), "compact,delete".into()))
        );
        assert_eq!(find("acme.dlq.delivery").cleanup, Cleanup::Delete(30 * DAY));
        let deliveries = find("acme.deliveries.jira");
        assert_eq!(deliveries.spec.partitions, 6);
        assert_eq!(deliveries.spec.replication, 3);
        assert!(
            deliveries
                .spec
                .configs
                .contains(&("retention.ms".into(), "604800000".into()))
        );
        assert_eq!(all.len(), 14);
        assert_eq!(plan.all(["jira"], false).len(), 13);
    }
}
