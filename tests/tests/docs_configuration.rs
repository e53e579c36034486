//! docs/configuration.md lists every setting the binaries accept, with its
//! default: the reference cannot drift from the code.

use clap::CommandFactory;

fn settings(cmd: clap::Command) -> Vec<(String, Option<String>)> {
    cmd.get_arguments()
        .filter_map(|a| {
            let env = a.get_env()?.to_string_lossy().into_owned();
            let default = a
                .get_default_values()
                .first()
                .map(|d| d.to_string_lossy().into_owned());
            Some((env, default))
        })
        .collect()
}

#[test]
fn every_setting_is_documented_with_its_default() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/configuration.md"
    ))
    .expect("doc");
    let commands = [
        intops_ingest::IngestArgs::command(),
        intops_transform::Args::command(),
        intops_delivery::Args::command(),
        intops_monitor::Args::command(),
    ];
    let mut missing = Vec::new();
    for cmd in commands {
        for (env, default) in settings(cmd) {
            let row = doc.lines().find(|l| l.starts_with(&format!("| `{env}`")));
            match (row, default) {
                (None, _) => missing.push(format!("{env} is not documented")),
                (Some(row), Some(d)) if !row.contains(&format!("`{d}`")) => {
                    missing.push(format!("{env}: default `{d}` not in its row"));
                }
                _ => {}
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/configuration.md is out of date:\n{}",
        missing.join("\n")
    );
}
