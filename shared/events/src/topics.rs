/// Names of every intops topic under one prefix (`INTOPS_TOPIC_PREFIX`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    prefix: String,
}

impl Topics {
    /// Topics under `prefix` (default deployments use `intops`).
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// The prefix itself; also used to name consumer groups.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Accepted events, written by ingest.
    pub fn events(&self) -> String {
        format!("{}.events", self.prefix)
    }

    /// Delivery requests for one target, written by transform.
    pub fn deliveries(&self, target_id: &str) -> String {
        format!("{}.deliveries.{target_id}", self.prefix)
    }

    /// Final results that no other record implies.
    pub fn outcomes(&self) -> String {
        format!("{}.outcomes", self.prefix)
    }

    /// Dead letters of transform.
    pub fn dlq_transform(&self) -> String {
        format!("{}.dlq.transform", self.prefix)
    }

    /// Dead letters of delivery.
    pub fn dlq_delivery(&self) -> String {
        format!("{}.dlq.delivery", self.prefix)
    }

    /// Dead letters a replay set aside after too many replays.
    pub fn dlq_parked(&self) -> String {
        format!("{}.dlq.parked", self.prefix)
    }

    /// Which dead letters a replay already sent on (compacted).
    pub fn dlq_replays(&self) -> String {
        format!("{}.dlq.replays", self.prefix)
    }

    /// Operator actions: replays and rewinds.
    pub fn audit(&self) -> String {
        format!("{}.audit", self.prefix)
    }

    /// Operators' commands to delivery: pause and resume a target
    /// (compacted, keyed by target id).
    pub fn control(&self) -> String {
        format!("{}.control", self.prefix)
    }

    /// Every topic a deployment with these targets uses, in a stable order.
    pub fn all<'a>(&self, target_ids: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        let mut all = vec![
            self.events(),
            self.outcomes(),
            self.dlq_transform(),
            self.dlq_delivery(),
        ];
        all.extend(target_ids.into_iter().map(|t| self.deliveries(t)));
        all
    }

    /// Conversations' links (compacted, keyed `<flow_id>:<entity_key>`).
    pub fn links(&self) -> String {
        format!("{}.links", self.prefix)
    }

    /// Every flow version a transform loaded, with its definition
    /// (compacted, keyed `<flow_id>:<version>`).
    pub fn flow_versions(&self) -> String {
        format!("{}.flow-versions", self.prefix)
    }

    /// Hourly figures per flow, source and tenant, written by the monitor
    /// for SLA reports (compacted, kept 400 days).
    pub fn rollups(&self) -> String {
        format!("{}.rollups", self.prefix)
    }

    /// Whether each delivery replica sends to each target (compacted,
    /// keyed `<target_id>|<instance>`).
    pub fn target_states(&self) -> String {
        format!("{}.target-states", self.prefix)
    }

    /// Polling positions of ingest's polled sources (compacted).
    pub fn ingest_cursors(&self) -> String {
        format!("{}.ingest.cursors", self.prefix)
    }

    /// A consumer group name for one role (`transform`, `delivery.jira`).
    pub fn group(&self, role: &str) -> String {
        format!("{}.{role}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_prefix() {
        let t = Topics::new("acme");
        assert_eq!(t.events(), "acme.events");
        assert_eq!(t.deliveries("jira"), "acme.deliveries.jira");
        assert_eq!(t.outcomes(), "acme.outcomes");
        assert_eq!(t.dlq_transform(), "acme.dlq.transform");
        assert_eq!(t.dlq_delivery(), "acme.dlq.delivery");
        assert_eq!(t.dlq_parked(), "acme.dlq.parked");
        assert_eq!(t.dlq_replays(), "acme.dlq.replays");
        assert_eq!(t.audit(), "acme.audit");
        assert_eq!(t.control(), "acme.control");
        assert_eq!(t.flow_versions(), "acme.flow-versions");
        assert_eq!(t.rollups(), "acme.rollups");
        assert_eq!(t.target_states(), "acme.target-states");
        assert_eq!(t.group("delivery.jira"), "acme.delivery.jira");
    }
}
