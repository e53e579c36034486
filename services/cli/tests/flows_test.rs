//! `intops flows test`: the shipped cases pass; a wrong expectation prints
//! a diff and exits 1; an invalid case exits 2.

use std::path::Path;
use std::process::Command;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

fn run(flows: &Path, cases: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_intops"))
        .args(["flows", "test"])
        .args([flows, cases])
        .output()
        .expect("runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn example() -> std::path::PathBuf {
    Path::new(ROOT).join("deploy/local/flows.toml")
}

#[test]
fn the_shipped_cases_pass() {
    let (code, out) = run(&example(), &Path::new(ROOT).join("deploy/local/flow-cases"));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("5 passed, 0 failed, 0 invalid"), "{out}");
}

#[test]
fn a_wrong_expectation_prints_a_diff_and_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let payload = Path::new(ROOT).join("tests/fixtures/servicenow-incident-created.json");
    std::fs::write(
        dir.path().join("wrong.toml"),
        format!(
            "source = \"servicenow\"\npayload_file = {:?}\n[[expect]]\nflow = \"snow-p1-to-jira\"\npath = \"/rest/api/2/issue\"\nbody_json = '{{\"fields\": {{\"summary\": \"Mail down\"}}}}'\n",
            payload.display().to_string()
        ),
    )
    .expect("write");
    std::fs::write(
        dir.path().join("unexpected.toml"),
        "source = \"servicenow\"\npayload = '{\"sys_id\": \"x\", \"priority\": \"1\", \"sys_created_on\": \"2026-11-28 08:00:00\"}'\n",
    )
    .expect("write");
    let (code, out) = run(&example(), dir.path());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL    wrong"), "{out}");
    assert!(
        out.contains("path /rest/api/3/issue, expected /rest/api/2/issue"),
        "{out}"
    );
    assert!(out.contains("-    \"summary\": \"Mail down\""), "{out}");
    assert!(
        out.contains("+    \"summary\": \"Email server down in Helsinki office\""),
        "{out}"
    );
    assert!(out.contains("FAIL    unexpected"), "{out}");
    assert!(
        out.contains("routed the event, but the case expects it not to"),
        "{out}"
    );
    assert!(out.contains("0 passed, 2 failed, 0 invalid"), "{out}");
}

#[test]
fn an_invalid_case_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("bad.toml"),
        "source = \"nosuch\"\npayload = '{}'\n",
    )
    .expect("write");
    let (code, out) = run(&example(), dir.path());
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("INVALID bad: unknown source \"nosuch\""),
        "{out}"
    );
}
