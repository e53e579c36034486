//! `intops flows history` and `intops flows show --version HASH`: the
//! flow versions kept on `<prefix>.flow-versions` (every version a
//! transform loaded, with its definition).

use std::process::ExitCode;

use intops_events::FlowVersion;
use intops_kafka::ServiceContext;
use intops_kafka::flow_versions;

use crate::when;

/// Lists the versions kept (of `flow`, or of every flow), oldest first
/// per flow. Exit 0 when any is listed, 1 when none.
pub async fn history(
    ctx: &ServiceContext,
    flow: Option<&str>,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let mut versions: Vec<FlowVersion> = flow_versions::read(ctx)
        .await?
        .into_values()
        .filter(|v| flow.is_none_or(|f| f == v.flow_id))
        .collect();
    if versions.is_empty() {
        eprintln!(
            "no flow version{} on {}",
            flow.map(|f| format!(" of {f}")).unwrap_or_default(),
            ctx.topics.flow_versions()
        );
        return Ok(ExitCode::FAILURE);
    }
    versions.sort_by(|a, b| {
        (&a.flow_id, a.first_loaded_at, &a.version).cmp(&(
            &b.flow_id,
            b.first_loaded_at,
            &b.version,
        ))
    });
    for v in &versions {
        if as_json {
            println!("{}", serde_json::to_string(&to_json(v))?);
        } else {
            println!(
                "{:<24} {}  first loaded {} by {}  last loaded {} by {}{}",
                v.flow_id,
                v.version,
                when::format(v.first_loaded_at),
                v.first_loaded_by,
                when::format(v.last_loaded_at),
                v.last_loaded_by,
                if v.current { "  (current)" } else { "" }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the definition of the version `hash` (a TOML `[[flows]]` table
/// to paste into the flows file). Exit 0 when found, 1 when not.
pub async fn show(ctx: &ServiceContext, hash: &str, as_json: bool) -> anyhow::Result<ExitCode> {
    let found: Vec<FlowVersion> = flow_versions::read(ctx)
        .await?
        .into_values()
        .filter(|v| v.version.eq_ignore_ascii_case(hash))
        .collect();
    if found.is_empty() {
        eprintln!("no flow version {hash} on {}", ctx.topics.flow_versions());
        return Ok(ExitCode::FAILURE);
    }
    for v in &found {
        if as_json {
            println!("{}", serde_json::to_string(&to_json(v))?);
        } else {
            println!(
                "# flow {} version {}, first loaded {} by {}{}",
                v.flow_id,
                v.version,
                when::format(v.first_loaded_at),
                v.first_loaded_by,
                if v.current { " (current)" } else { "" }
            );
            print!("{}", v.definition);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn to_json(v: &FlowVersion) -> serde_json::Value {
    serde_json::json!({
        "flow_id": v.flow_id,
        "version": v.version,
        "source_id": v.source_id,
        "target_id": v.target_id,
        "first_loaded_at": when::format(v.first_loaded_at),
        "first_loaded_by": v.first_loaded_by,
        "last_loaded_at": when::format(v.last_loaded_at),
        "last_loaded_by": v.last_loaded_by,
        "current": v.current,
        "definition": v.definition,
    })
}
