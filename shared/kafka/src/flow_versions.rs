//! `<prefix>.flow-versions`: every flow version a transform loaded, with
//! its definition, so a version hash in a dead letter or lineage can be
//! shown and deployed again. Transform records the versions of each file
//! it loads ([`record`]); the command line and the monitor read them
//! ([`read`]).

use std::collections::{BTreeMap, HashSet};

use intops_events::{FlowVersion, RecordKind, now_micros};

use crate::{KafkaError, ServiceContext};

/// One flow of a loaded flows file.
#[derive(Debug, Clone, Copy)]
pub struct Loaded<'a> {
    /// The flow's id.
    pub flow_id: &'a str,
    /// Its version hash.
    pub version: &'a str,
    /// Its definition (TOML).
    pub definition: &'a str,
    /// Its source.
    pub source_id: &'a str,
    /// Its target.
    pub target_id: &'a str,
}

/// The records that a load of `loaded` by `host` at `now` writes, given
/// the versions kept so far: every loaded version, current (its first
/// load kept), and every other version that was current, no longer.
pub fn updates(
    kept: &BTreeMap<String, FlowVersion>,
    loaded: &[Loaded<'_>],
    now: i64,
    host: &str,
) -> Vec<FlowVersion> {
    let mut keys = HashSet::new();
    let mut out = Vec::new();
    for flow in loaded {
        let key = FlowVersion::key_of(flow.flow_id, flow.version);
        let (first_loaded_at, first_loaded_by) = match kept.get(&key) {
            Some(v) => (v.first_loaded_at, v.first_loaded_by.clone()),
            None => (now, host.to_string()),
        };
        keys.insert(key);
        out.push(FlowVersion {
            flow_id: flow.flow_id.to_string(),
            version: flow.version.to_string(),
            definition: flow.definition.to_string(),
            source_id: flow.source_id.to_string(),
            target_id: flow.target_id.to_string(),
            first_loaded_at,
            first_loaded_by,
            last_loaded_at: now,
            last_loaded_by: host.to_string(),
            current: true,
        });
    }
    for (key, version) in kept {
        if version.current && !keys.contains(key) {
            out.push(FlowVersion {
                current: false,
                ..version.clone()
            });
        }
    }
    out
}

/// Records a load of `loaded`: creates the topic if missing, reads the
/// versions kept and writes [`updates`], each acknowledged. Returns how
/// many records were written.
pub async fn record(
    ctx: &ServiceContext,
    loaded: &[Loaded<'_>],
    host: &str,
) -> Result<usize, KafkaError> {
    let topic = ctx.topics.flow_versions();
    ctx.ensure_topics(std::slice::from_ref(&topic)).await?;
    let kept = read(ctx).await?;
    let writes = updates(&kept, loaded, now_micros(), host);
    for version in &writes {
        ctx.publish(
            &topic,
            RecordKind::FlowVersion,
            version.key().as_bytes(),
            version,
        )
        .await?;
    }
    Ok(writes.len())
}

/// Every version kept, by key (`<flow_id>:<version>`): the latest record
/// of each. Empty when the topic does not exist (no transform ran yet).
/// A record that does not decode is skipped with a warning.
pub async fn read(ctx: &ServiceContext) -> Result<BTreeMap<String, FlowVersion>, KafkaError> {
    crate::latest::read(ctx, &ctx.topics.flow_versions()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded<'a>(flow_id: &'a str, version: &'a str) -> Loaded<'a> {
        Loaded {
            flow_id,
            version,
            definition: "[[flows]]\n",
            source_id: "servicenow",
            target_id: "jira",
        }
    }

    fn keep(records: Vec<FlowVersion>, into: &mut BTreeMap<String, FlowVersion>) {
        for r in records {
            into.insert(r.key(), r);
        }
    }

    /// A first load makes every version current; a second keeps their
    /// first load, makes the changed flow's new version current and its
    /// old one not; a flow removed from the file is current no more; going
    /// back to an old version makes it current again with its first load.
    #[test]
    fn the_current_versions_follow_the_file_loaded_last() {
        let mut kept = BTreeMap::new();
        let first = updates(&kept, &[loaded("a", "a1"), loaded("b", "b1")], 10, "pod-1");
        assert_eq!(first.len(), 2);
        assert!(first.iter().all(|v| v.current && v.first_loaded_at == 10));
        keep(first, &mut kept);

        let second = updates(&kept, &[loaded("a", "a2")], 20, "pod-2");
        keep(second, &mut kept);
        let state = |kept: &BTreeMap<String, FlowVersion>, key: &str| {
            let v = &kept[key];
            (
                v.current,
                v.first_loaded_at,
                v.first_loaded_by.clone(),
                v.last_loaded_at,
            )
        };
        assert_eq!(state(&kept, "a:a1"), (false, 10, "pod-1".into(), 10));
        assert_eq!(state(&kept, "a:a2"), (true, 20, "pod-2".into(), 20));
        assert_eq!(state(&kept, "b:b1"), (false, 10, "pod-1".into(), 10));

        let back = updates(&kept, &[loaded("a", "a1"), loaded("b", "b1")], 30, "pod-1");
        assert_eq!(back.len(), 3, "two current again, a2 no longer");
        keep(back, &mut kept);
        assert_eq!(state(&kept, "a:a1"), (true, 10, "pod-1".into(), 30));
        assert_eq!(state(&kept, "a:a2"), (false, 20, "pod-2".into(), 20));
        assert_eq!(state(&kept, "b:b1"), (true, 10, "pod-1".into(), 30));
    }
}
