//! docs/operations.md lists exactly the settings the binaries accept, each
//! with its default: the reference cannot drift from the code.

use std::collections::BTreeMap;

use clap::CommandFactory;
use intops_tests::cli;

/// Environment name → default, for every setting of `cmd`.
fn service_settings(cmd: &clap::Command, into: &mut BTreeMap<String, Option<String>>) {
    for a in cmd.get_arguments() {
        if let Some(env) = a.get_env() {
            let default = a
                .get_default_values()
                .first()
                .map(|d| d.to_string_lossy().into_owned());
            into.insert(env.to_string_lossy().into_owned(), default);
        }
    }
}

/// The `[env: NAME=...]` names in `intops <args> --help`.
async fn cli_settings(args: &[&str], into: &mut BTreeMap<String, Option<String>>) {
    let mut all = args.to_vec();
    all.push("--help");
    let help = cli::run("docs", &all).await;
    for (i, _) in help.match_indices("[env: ") {
        let rest = &help[i + "[env: ".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        // Defaults of the shared settings come from the services' rows.
        into.entry(name).or_insert(None);
    }
}

/// Rows of the settings tables: `| \`NAME\` | default | meaning |`.
fn documented(doc: &str) -> BTreeMap<String, String> {
    let start = doc.find("\n## Settings").expect("a Settings section");
    let section = &doc[start + 1..];
    let end = section[3..].find("\n## ").map_or(section.len(), |e| e + 3);
    section[..end]
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("| `")?;
            let (name, rest) = rest.split_once('`')?;
            Some((name.to_string(), rest.to_string()))
        })
        .collect()
}

#[tokio::test]
async fn the_settings_documented_are_exactly_the_settings_accepted() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/operations.md"
    ))
    .expect("doc");
    let mut code = BTreeMap::new();
    for cmd in [
        intops_ingest::IngestCli::command(),
        intops_transform::Args::command(),
        intops_delivery::Args::command(),
        intops_monitor::Args::command(),
    ] {
        service_settings(&cmd, &mut code);
    }
    for args in [
        &["dlq", "list"][..],
        &["dlq", "show"],
        &["dlq", "replay"],
        &["tap"],
        &["target", "pause"],
        &["flow", "rewind"],
        &["topics", "plan"],
    ] {
        cli_settings(args, &mut code).await;
    }
    // The pass-through family is one row.
    code.insert(format!("{}<NAME>", intops_kafka::OPTION_ENV_PREFIX), None);
    // Read from the environment with the pass-through options, not by clap.
    code.insert(
        intops_kafka::PROMPT_FETCH_WAIT_ENV.to_string(),
        Some(intops_kafka::Pace::Prompt.fetch_wait_ms().to_string()),
    );

    let docs = documented(&doc);
    let mut problems = Vec::new();
    for (env, default) in &code {
        match (docs.get(env), default) {
            (None, _) => problems.push(format!("{env} is accepted but not documented")),
            (Some(row), Some(d)) if !row.contains(&format!("`{d}`")) => {
                problems.push(format!("{env}: default `{d}` not in its row"));
            }
            _ => {}
        }
    }
    for env in docs.keys() {
        if !code.contains_key(env) {
            problems.push(format!("{env} is documented but no binary accepts it"));
        }
    }
    assert!(
        problems.is_empty(),
        "docs/operations.md is out of date:\n{}",
        problems.join("\n")
    );
    assert!(docs.len() > 15, "the settings tables were found");
}
