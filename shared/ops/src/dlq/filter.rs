//! Which dead letters a `dlq` command works on.

use std::collections::BTreeMap;

use intops_events::{DeadLetter, Stage, Topics};

/// The selection flags shared by `dlq list`, `show` and `replay`, and the
/// console's query parameters and replay body (same names; times as RFC
/// 3339 or a duration ago).
#[derive(Debug, Clone, Default, clap::Args, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filters {
    /// Only this stage's dead letters (`transform` or `delivery`).
    #[arg(long, value_parser = ["transform", "delivery"])]
    #[serde(default, deserialize_with = "stage")]
    pub stage: Option<String>,
    /// Only this flow's.
    #[arg(long)]
    pub flow: Option<String>,
    /// Only this target's.
    #[arg(long)]
    pub target: Option<String>,
    /// Only this tenant's (docs/flows.md#templates-and-tenants).
    #[arg(long)]
    pub tenant: Option<String>,
    /// Only this error class (`mapping`, `http_4xx`, `exhausted`, ...).
    #[arg(long)]
    pub error_class: Option<String>,
    /// Only those whose target last answered this HTTP status.
    #[arg(long)]
    pub status: Option<i32>,
    /// Only those that failed at or after this time (RFC 3339 or a
    /// duration ago: `2h`).
    #[arg(long, value_parser = crate::when::parse)]
    #[serde(default, deserialize_with = "crate::when::deserialize")]
    pub since: Option<i64>,
    /// Only those that failed before this time.
    #[arg(long, value_parser = crate::when::parse)]
    #[serde(default, deserialize_with = "crate::when::deserialize")]
    pub until: Option<i64>,
    /// Only those of this Kafka key (`<source>:<entity key>`).
    #[arg(long)]
    pub key: Option<String>,
    /// Only this event's.
    #[arg(long)]
    pub event_id: Option<String>,
    /// At most this many (the oldest first, per partition).
    #[arg(long)]
    pub limit: Option<usize>,
}

/// `stage` is `transform` or `delivery`, as on the command line.
fn stage<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let stage: Option<String> = serde::Deserialize::deserialize(d)?;
    match stage.as_deref() {
        None | Some("transform" | "delivery") => Ok(stage),
        Some(other) => Err(serde::de::Error::custom(format!(
            "stage {other:?} is neither transform nor delivery"
        ))),
    }
}

impl Filters {
    /// The dead-letter topics the selection reads.
    pub fn topics(&self, topics: &Topics) -> Vec<String> {
        match self.stage.as_deref() {
            Some("transform") => vec![topics.dlq_transform()],
            Some("delivery") => vec![topics.dlq_delivery()],
            _ => vec![topics.dlq_transform(), topics.dlq_delivery()],
        }
    }

    /// Whether `letter` is selected (the limit aside).
    pub fn matches(&self, letter: &DeadLetter) -> bool {
        let eq = |want: &Option<String>, have: Option<&str>| {
            want.as_deref().is_none_or(|w| have == Some(w))
        };
        let stage_ok = match self.stage.as_deref() {
            Some("transform") => letter.stage == Stage::Transform,
            Some("delivery") => letter.stage == Stage::Delivery,
            _ => true,
        };
        let key = letter
            .original_key
            .as_deref()
            .map(|k| String::from_utf8_lossy(k).into_owned());
        stage_ok
            && eq(&self.flow, letter.flow_id.as_deref())
            && eq(&self.target, letter.target_id.as_deref())
            && eq(&self.tenant, letter.tenant.as_deref())
            && eq(&self.error_class, Some(&letter.error_class))
            && eq(&self.event_id, letter.event_id.as_deref())
            && eq(&self.key, key.as_deref())
            && self.status.is_none_or(|s| letter.http_status == Some(s))
            && self.since.is_none_or(|t| letter.failed_at >= t)
            && self.until.is_none_or(|t| letter.failed_at < t)
    }

    /// The selection as given, for audit records and reports.
    pub fn describe(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                out.insert(k.to_string(), v);
            }
        };
        put("stage", self.stage.clone());
        put("flow", self.flow.clone());
        put("target", self.target.clone());
        put("tenant", self.tenant.clone());
        put("error_class", self.error_class.clone());
        put("status", self.status.map(|s| s.to_string()));
        put("since", self.since.map(crate::when::format));
        put("until", self.until.map(crate::when::format));
        put("key", self.key.clone());
        put("event_id", self.event_id.clone());
        put("limit", self.limit.map(|l| l.to_string()));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter() -> DeadLetter {
        DeadLetter {
            tenant: Some("acme".into()),
            stage: Stage::Delivery,
            error_class: "http_4xx".into(),
            error_message: "400".into(),
            retryable: false,
            attempts: 1,
            original_topic: "p.deliveries.jira".into(),
            original_partition: 0,
            original_offset: 7,
            original_key: Some(b"servicenow:abc".to_vec()),
            original_value: Some(vec![0, 0, 0, 0, 1]),
            original_headers: vec![],
            failed_at: 1_000,
            replay_count: 0,
            event_id: Some("e1".into()),
            flow_id: Some("snow-to-jira".into()),
            flow_version: Some("abc".into()),
            target_id: Some("jira".into()),
            http_status: Some(400),
            response_excerpt: None,
        }
    }

    #[test]
    fn no_filter_selects_everything() {
        assert!(Filters::default().matches(&letter()));
    }

    #[test]
    fn every_filter_selects_only_its_match() {
        let cases: Vec<(Filters, Filters)> = vec![
            (
                Filters {
                    stage: Some("delivery".into()),
                    ..Filters::default()
                },
                Filters {
                    stage: Some("transform".into()),
                    ..Filters::default()
                },
            ),
            (
                Filters {
                    flow: Some("snow-to-jira".into()),
                    ..Filters::default()
                },
                Filters {
                    flow: Some("other".into()),
                    ..Filters::default()
                },
            ),
            (
                Filters {
                    target: Some("jira".into()),
                    ..Filters::default()
                },
                Filters {
                    target: Some("zendesk".into()),
                    ..Filters::default()
                },
            ),
            (
                Filters {
                    tenant: Some("acme".into()),
                    ..Filters::default()
                },
                Filters {
                    tenant: Some("globex".into()),
                    ..Filters::default()
                },
            ),
            (
                Filters {
                    error_class: Some("http_4xx".into()),
                    ..Filters::default()
                },
                Filters {
                    error_class: Some("exhausted".into()),
                    ..Filters::default()
                },
            ),
            (
                Filters {
                    status: Some(400),
                    ..Filters::default()
                },
                Filters {
                    status: Some(503),
                    ..Filters::default()
                },
            ),
            (
                Filters {
                    since: Some(1_000),
                    until: Some(1_001),
                    ..Filters::default()
                },
                Filters {
                    since: Some(1_001),
                    ..Filters::default()
                },
            ),
            (
                Filters {
                    until: Some(2_000),
                    ..Filters::default()
                },
                Filters {
                    until: Some(1_000),
                    ..Filters::default()
                },
            ),
            (
                Filters {
                    key: Some("servicenow:abc".into()),
                    ..Filters::default()
                },
                Filters {
                    key: Some("servicenow:abd".into()),
                    ..Filters::default()
                },
            ),
            (
                Filters {
                    event_id: Some("e1".into()),
                    ..Filters::default()
                },
                Filters {
                    event_id: Some("e2".into()),
                    ..Filters::default()
                },
            ),
        ];
        for (yes, no) in cases {
            assert!(yes.matches(&letter()), "{yes:?} should select");
            assert!(!no.matches(&letter()), "{no:?} should not select");
        }
    }

    #[test]
    fn stage_picks_the_topics_read() {
        let t = Topics::new("p");
        let f = Filters {
            stage: Some("transform".into()),
            ..Filters::default()
        };
        assert_eq!(f.topics(&t), vec!["p.dlq.transform".to_string()]);
        assert_eq!(Filters::default().topics(&t).len(), 2);
    }
}
