//! `intops flows check`: exit 0 for a valid file, 2 with every problem
//! listed for an invalid one.

use std::process::Command;

fn check(path: &std::path::Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_intops"))
        .args(["flows", "check"])
        .arg(path)
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_example_flows_file_is_valid() {
    let path = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/local/flows.toml"
    ));
    let (code, stdout, stderr) = check(path);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("2 sources, 2 targets, 2 flows"), "{stdout}");
    assert!(stdout.contains("flow snow-p1-to-jira version "), "{stdout}");
}

#[test]
fn an_invalid_file_lists_every_problem_and_exits_2() {
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/local/flows.toml"
    ))
    .expect("example");
    let broken = example
        .replace(r#"target = "jira""#, r#"target = "nowhere""#)
        .replace(".short_description", ".short_description | nosuchfn");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("flows.toml");
    std::fs::write(&path, broken).expect("write");
    let (code, _, stderr) = check(&path);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("2 problem(s)"), "{stderr}");
    assert!(
        stderr.contains("flows[snow-p1-to-jira].target: unknown target \"nowhere\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("flows[snow-p1-to-jira].map: jq error at line 5, column 35"),
        "{stderr}"
    );
    assert!(stderr.contains("nosuchfn"), "{stderr}");
}

#[test]
fn a_missing_file_exits_2() {
    let (code, _, stderr) = check(std::path::Path::new("/nonexistent/flows.toml"));
    assert_eq!(code, 2);
    assert!(stderr.contains("cannot read"), "{stderr}");
}

#[test]
fn a_from_link_naming_no_capture_flow_is_refused_and_named() {
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/local/flows.toml"
    ))
    .expect("example");
    let dir = tempfile::tempdir().expect("tempdir");
    // A flow that does not exist, and one that exists but keeps no record
    // id (a from flow itself): neither has links to follow back.
    for (from, exists) in [("x", false), ("jira-to-snow", true)] {
        let broken = example.replace(
            r#"from = "snow-p1-to-jira""#,
            &format!(r#"from = "{from}""#),
        );
        assert_ne!(broken, example, "the example has a from link");
        let path = dir.path().join(format!("{from}.toml"));
        std::fs::write(&path, broken).expect("write");
        let (code, stdout, stderr) = check(&path);
        assert_eq!(
            code, 2,
            "from = {from:?} (exists: {exists}): {stdout}{stderr}"
        );
        assert!(stderr.contains("1 problem(s)"), "{stderr}");
        assert!(
            stderr.contains(&format!(
                "flows[jira-to-snow].link.from: \"{from}\" names no flow with link.capture"
            )),
            "{stderr}"
        );
    }
}
