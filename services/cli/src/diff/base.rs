//! The default base of a diff: the flow versions deployed now (current on
//! `<prefix>.flow-versions`), with the new file's sources and targets.

use intops_events::FlowVersion;
use intops_flows::Flows;
use intops_kafka::ServiceContext;
use intops_kafka::flow_versions;

/// The deployed flows, loaded with the sources, targets and alerts of
/// `new_text` (templates expanded; lookup files relative to `dir`).
pub async fn deployed(
    ctx: &ServiceContext,
    new_text: &str,
    dir: Option<&std::path::Path>,
) -> anyhow::Result<Flows> {
    let kept = flow_versions::read(ctx).await?;
    let current = current(kept.into_values());
    anyhow::ensure!(
        !current.is_empty(),
        "no deployed flow version is recorded on {} (has a transform of this prefix run?); pass --base FILE",
        ctx.topics.flow_versions()
    );
    let text = compose(new_text, dir, &current)?;
    intops_flows::load_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "the deployed flows do not load with the new file's sources and targets (pass --base FILE): {e}"
        )
    })
}

/// The current version of each flow (the one loaded last, should two
/// replicas disagree), in flow id order.
pub fn current(kept: impl Iterator<Item = FlowVersion>) -> Vec<FlowVersion> {
    let mut by_flow: std::collections::BTreeMap<String, FlowVersion> = Default::default();
    for v in kept.filter(|v| v.current) {
        match by_flow.get(&v.flow_id) {
            Some(have) if have.last_loaded_at >= v.last_loaded_at => {}
            _ => {
                by_flow.insert(v.flow_id.clone(), v);
            }
        }
    }
    by_flow.into_values().collect()
}

/// A flows file: `new_text` expanded, without its flows (its templates'
/// instances included), then each version's definition.
fn compose(
    new_text: &str,
    dir: Option<&std::path::Path>,
    versions: &[FlowVersion],
) -> anyhow::Result<String> {
    let mut table = intops_flows::expand_str_in(new_text, dir)
        .map_err(|e| anyhow::anyhow!("the new file: {e}"))?;
    table.remove("flows");
    let mut text = toml::to_string(&table)?;
    for v in versions {
        text.push('\n');
        text.push_str(&v.definition);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEW: &str = r#"
[[sources]]
id = "servicenow"
kind = "webhook"
auth = "none"
entity_key = ".sys_id"

[[targets]]
id = "jira"
base_url = "http://jira"

[[flows]]
id = "p1"
source = "servicenow"
target = "jira"
path = "/new"
"#;

    fn version(flow: &str, version: &str, current: bool, at: i64) -> FlowVersion {
        FlowVersion {
            flow_id: flow.into(),
            version: version.into(),
            definition: format!(
                "[[flows]]\nid = \"{flow}\"\nsource = \"servicenow\"\ntarget = \"jira\"\npath = \"/{version}\"\n"
            ),
            source_id: "servicenow".into(),
            target_id: "jira".into(),
            first_loaded_at: at,
            first_loaded_by: "pod".into(),
            last_loaded_at: at,
            last_loaded_by: "pod".into(),
            current,
        }
    }

    /// The base is the current versions with the new file's sources and
    /// targets; of two current versions of a flow the one loaded last.
    #[test]
    fn the_base_is_the_current_versions() {
        let kept = vec![
            version("p1", "old", false, 1),
            version("p1", "a", true, 2),
            version("p1", "b", true, 3),
            version("p2", "c", true, 1),
        ];
        let current = current(kept.into_iter());
        let text = compose(NEW, None, &current).expect("composes");
        let flows = intops_flows::load_str(&text).expect("loads");
        let paths: Vec<(&str, String)> = flows
            .flows
            .iter()
            .map(|f| (f.id.as_str(), f.definition.clone()))
            .collect();
        assert_eq!(flows.flows.len(), 2, "{paths:?}");
        assert!(paths[0].1.contains("path = \"/b\""), "{paths:?}");
        assert!(paths[1].1.contains("path = \"/c\""), "{paths:?}");
        assert_eq!(flows.sources.len(), 1);
    }
}
