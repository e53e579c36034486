//! `intops flows ...`.

use std::path::Path;
use std::process::ExitCode;

use intops_flows::FlowLink;

/// `intops flows check FILE`.
pub fn check(file: &Path) -> ExitCode {
    match summary(file) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(text) => {
            eprint!("{text}");
            ExitCode::from(2)
        }
    }
}

/// `intops flows expand FILE`: the expanded file on stdout.
pub fn expand(file: &Path) -> ExitCode {
    let expanded = std::fs::read_to_string(file)
        .map_err(|e| format!("{}: cannot read: {e}\n", file.display()))
        .and_then(|text| {
            intops_flows::expand_str_in(&text, file.parent())
                .map_err(|errors| format!("{}: {errors}", file.display()))
        })
        .and_then(|table| toml::to_string(&table).map_err(|e| format!("{e}\n")));
    match expanded {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(text) => {
            eprint!("{text}");
            ExitCode::from(2)
        }
    }
}

/// What `check` prints: the file's summary, or every problem in it.
fn summary(file: &Path) -> Result<String, String> {
    let flows =
        intops_flows::load_file(file).map_err(|errors| format!("{}: {errors}", file.display()))?;
    let mut out = format!(
        "{}: ok ({} sources, {} targets, {} flows)\n",
        file.display(),
        flows.sources.len(),
        flows.targets.len(),
        flows.flows.len()
    );
    for flow in &flows.flows {
        let link = match &flow.link {
            None => String::new(),
            Some(FlowLink::Capture { .. }) => " (link: capture)".into(),
            Some(FlowLink::From { flow, .. }) => format!(" (link: from {flow})"),
        };
        let tenant = flow
            .tenant
            .as_ref()
            .map(|t| format!(" (tenant {t})"))
            .unwrap_or_default();
        out.push_str(&format!(
            "  flow {} version {}{link}{tenant}\n",
            flow.id, flow.version
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLOWS: &str = r#"
[[sources]]
id = "servicenow"
kind = "webhook"
auth = "none"
entity_key = ".sys_id"

[[sources]]
id = "jira"
kind = "webhook"
auth = "none"
entity_key = ".issue.key"

[[targets]]
id = "jira"
base_url = "http://jira"

[[targets]]
id = "servicenow"
base_url = "http://servicenow"

[[flows]]
id = "snow-p1-to-jira"
source = "servicenow"
target = "jira"
path = "/rest/api/3/issue"
link = { capture = ".key" }
update = { path = "/rest/api/3/issue/{{ $link }}" }

[[flows]]
id = "jira-to-snow"
source = "jira"
target = "servicenow"
link = { from = "snow-p1-to-jira" }
method = "PATCH"
path = "/api/now/table/incident/{{ $link }}"
"#;

    fn summary_of(text: &str) -> Result<String, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("flows.toml");
        std::fs::write(&path, text).expect("write");
        summary(&path)
    }

    #[test]
    fn links_are_listed() {
        let out = summary_of(FLOWS).expect("valid");
        assert!(out.contains("(2 sources, 2 targets, 2 flows)"), "{out}");
        assert!(
            out.lines()
                .any(|l| l.starts_with("  flow snow-p1-to-jira version ")
                    && l.ends_with(" (link: capture)")),
            "{out}"
        );
        assert!(out.contains(" (link: from snow-p1-to-jira)\n"), "{out}");
    }

    /// `intops flows check` refuses a `from` that names no flow with a
    /// capture (issue 16, item 9).
    #[test]
    fn a_from_naming_no_capture_flow_is_refused() {
        for from in ["nosuch", "jira-to-snow"] {
            let text = FLOWS.replace(
                r#"link = { from = "snow-p1-to-jira" }"#,
                &format!(r#"link = {{ from = "{from}" }}"#),
            );
            let e = summary_of(&text).expect_err("invalid");
            assert!(e.contains("1 problem(s)"), "{e}");
            assert!(
                e.contains(&format!(
                    "flows[jira-to-snow].link.from: \"{from}\" names no flow with link.capture"
                )),
                "{e}"
            );
        }
        assert_eq!(
            check(Path::new("/nonexistent/flows.toml")),
            ExitCode::from(2)
        );
    }
}
