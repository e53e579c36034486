//! `intops flows test FILE CASES_DIR`: the flows file's unit tests. Each
//! case runs through the same routing and mapping code as transform; for
//! flows with links, `$link` is the case's `link` (or the text `$link`),
//! and a capture flow's update is checked by `[expect.update]`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use intops_events::{DeliveryRequest, IntegrationEvent, LINK_PLACEHOLDER, LinkMode};
use intops_flows::route::{FlowResult, Plan, plan};
use intops_flows::{Flows, link_text, parse_json};
use similar::TextDiff;

use crate::cases::Case;

/// Runs every `*.toml` case in `dir` against the flows file `file`.
pub fn run(file: &Path, dir: &Path) -> ExitCode {
    let flows = match intops_flows::load_file(file) {
        Ok(f) => f,
        Err(e) => {
            eprint!("{}: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    let mut paths: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect(),
        Err(e) => {
            eprintln!("{}: cannot read cases: {e}", dir.display());
            return ExitCode::from(2);
        }
    };
    paths.sort();
    if paths.is_empty() {
        eprintln!("{}: no *.toml cases", dir.display());
        return ExitCode::from(2);
    }
    let (mut passed, mut failed, mut invalid) = (0, 0, 0);
    for path in &paths {
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        match check_case(&flows, path) {
            Err(problem) => {
                invalid += 1;
                println!("INVALID {name}: {problem}");
            }
            Ok(mismatches) if mismatches.is_empty() => {
                passed += 1;
                println!("ok      {name}");
            }
            Ok(mismatches) => {
                failed += 1;
                println!("FAIL    {name}");
                for m in mismatches {
                    println!("{}", indent(&m));
                }
            }
        }
    }
    println!("flows test: {passed} passed, {failed} failed, {invalid} invalid");
    match (failed, invalid) {
        (0, 0) => ExitCode::SUCCESS,
        (_, 0) => ExitCode::FAILURE,
        _ => ExitCode::from(2),
    }
}

/// The mismatches of one case; an error when the case itself is invalid.
fn check_case(flows: &Flows, path: &Path) -> Result<Vec<String>, String> {
    let case = Case::load(path)?;
    let payload = case.payload_text(path)?;
    let source = flows
        .sources
        .get(&case.source)
        .ok_or_else(|| format!("unknown source {:?}", case.source))?;
    for e in &case.expect {
        if !flows
            .flows
            .iter()
            .any(|f| f.id == e.flow && f.source == case.source)
        {
            return Err(format!("no flow {:?} of source {:?}", e.flow, case.source));
        }
    }
    let value = parse_json(payload.as_bytes()).map_err(|e| e.to_string())?;
    let entity_key = source
        .entity_key
        .first_text(&value)
        .map_err(|e| format!("entity_key: {e}"))?;
    let event = IntegrationEvent {
        tenant: None,
        event_id: "flows-test".into(),
        source_id: case.source.clone(),
        event_type: "test".into(),
        entity_key,
        occurred_at: 0,
        ingested_at: 0,
        correlation_id: None,
        attributes: HashMap::new(),
        payload,
    };
    let results = match plan(flows, &event) {
        Plan::BadPayload(e) => return Err(e.to_string()),
        Plan::Unrouted => Vec::new(),
        Plan::Routed(results) => results,
    };
    let mut mismatches = Vec::new();
    let mut seen = Vec::new();
    for result in &results {
        let (flow, outcome) = match result {
            FlowResult::Deliver(flow, request) => (flow, Ok(request)),
            FlowResult::Failed(flow, e) => (flow, Err(e.to_string())),
        };
        seen.push(flow.id.clone());
        let Some(expect) = case.expect.iter().find(|e| e.flow == flow.id) else {
            mismatches.push(format!(
                "flow {}: routed the event, but the case expects it not to",
                flow.id
            ));
            continue;
        };
        match (outcome, &expect.error) {
            (Err(got), Some(want)) if got.contains(want.as_str()) => {}
            (Err(got), Some(want)) => mismatches.push(format!(
                "flow {}: error {got:?} does not contain {want:?}",
                flow.id
            )),
            (Err(got), None) => mismatches.push(format!("flow {}: failed: {got}", flow.id)),
            (Ok(_), Some(want)) => mismatches.push(format!(
                "flow {}: succeeded, expected an error containing {want:?}",
                flow.id
            )),
            (Ok(_), None) if expect.routed == Some(false) => {
                mismatches.push(format!(
                    "flow {}: routed the event, but the case expects it not to",
                    flow.id
                ));
            }
            (Ok(request), None) => {
                let (create, update) = sent(request, case.link.as_deref());
                let mut check = |what: &str, want: Want<'_>, got: &Sent| {
                    compare(&flow.id, what, want, got, &mut mismatches)
                };
                check(
                    "",
                    Want {
                        method: expect.method.as_deref(),
                        path: expect.path.as_deref(),
                        body: expect.body()?,
                    },
                    &create,
                )?;
                match (&expect.update, update) {
                    (None, _) => {}
                    (Some(want), Some(got)) => check(
                        "update ",
                        Want {
                            method: want.method.as_deref(),
                            path: want.path.as_deref(),
                            body: want.body()?,
                        },
                        &got,
                    )?,
                    (Some(_), None) => mismatches.push(format!(
                        "flow {}: has no update (only a flow with link.capture has one)",
                        flow.id
                    )),
                }
            }
        }
    }
    for expect in &case.expect {
        let routes = expect.routed != Some(false);
        if (routes || expect.error.is_some()) && !seen.contains(&expect.flow) {
            mismatches.push(format!("flow {}: did not route the event", expect.flow));
        }
    }
    if mismatches.is_empty() {
        return Ok(mismatches);
    }
    if let Some(d) = &case.description {
        mismatches.insert(0, format!("({d})"));
    }
    Ok(mismatches)
}

/// What a case expects of one request.
struct Want<'a> {
    method: Option<&'a str>,
    path: Option<&'a str>,
    body: Option<serde_json::Value>,
}

/// A request as a case sees it: the case's link, or the text `$link`, in
/// place of the placeholder transform leaves for delivery.
struct Sent {
    method: String,
    path: String,
    body: String,
}

/// The request a flow makes of the case's payload and, for a capture
/// flow, the update it sends once the link exists.
fn sent(request: &DeliveryRequest, link: Option<&str>) -> (Sent, Option<Sent>) {
    // As delivery puts it (percent-encoded in the path, JSON-escaped in
    // the body); without a link, the text `$link` as it is.
    let path = |p: &str| match link {
        Some(l) => link_text::in_path(p, l),
        None => p.replace(LINK_PLACEHOLDER, "$link"),
    };
    let body = |b: &str| link_text::in_body(b, link.unwrap_or("$link"));
    let create = Sent {
        method: request.method.clone(),
        path: path(&request.path),
        body: body(&request.body),
    };
    let update = request
        .link
        .as_ref()
        .filter(|l| l.mode == LinkMode::Capture)
        .map(|l| Sent {
            method: l.update_method.clone().unwrap_or_default(),
            path: path(l.update_path.as_deref().unwrap_or_default()),
            body: body(l.update_body.as_deref().unwrap_or(&request.body)),
        });
    (create, update)
}

/// Adds how `got` differs from `want` to `mismatches` (`what`: `""` or
/// `"update "`).
fn compare(
    flow: &str,
    what: &str,
    want: Want<'_>,
    got: &Sent,
    mismatches: &mut Vec<String>,
) -> Result<(), String> {
    if let Some(m) = want.method.filter(|m| !m.eq_ignore_ascii_case(&got.method)) {
        mismatches.push(format!(
            "flow {flow}: {what}method {} , expected {m}",
            got.method
        ));
    }
    if let Some(p) = want.path.filter(|p| *p != got.path) {
        mismatches.push(format!(
            "flow {flow}: {what}path {}, expected {p}",
            got.path
        ));
    }
    if let Some(want) = want.body {
        let got: serde_json::Value = serde_json::from_str(&got.body).map_err(|e| e.to_string())?;
        if got != want {
            mismatches.push(format!(
                "flow {flow}: {what}body differs (- expected, + actual):\n{}",
                diff(&want, &got)
            ));
        }
    }
    Ok(())
}

fn diff(want: &serde_json::Value, got: &serde_json::Value) -> String {
    let want = serde_json::to_string_pretty(want).unwrap_or_default();
    let got = serde_json::to_string_pretty(got).unwrap_or_default();
    TextDiff::from_lines(&want, &got)
        .unified_diff()
        .context_radius(2)
        .to_string()
        .lines()
        .filter(|l| !l.starts_with("@@"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
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
map = '{fields: {summary: .short_description}}'
link = { capture = ".key" }
update = { path = "/rest/api/3/issue/{{ $link }}", map = '{fields: {summary: .short_description}, key: $link}' }

[[flows]]
id = "jira-to-snow"
source = "jira"
target = "servicenow"
link = { from = "snow-p1-to-jira" }
method = "PATCH"
path = "/api/now/table/incident/{{ $link }}"
map = '{work_notes: "\(.comment.body) [\($link)]"}'
"#;

    /// The mismatches of `case` (TOML text) against [`FLOWS`].
    fn mismatches(case: &str) -> Vec<String> {
        let flows = intops_flows::load_str(FLOWS).expect("flows");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("case.toml");
        std::fs::write(&path, case).expect("write");
        check_case(&flows, &path).expect("valid case")
    }

    const INCIDENT: &str = r#"
source = "servicenow"
payload = '{"sys_id": "s1", "short_description": "Mail down"}'
"#;

    const COMMENT: &str = r#"
source = "jira"
payload = '{"issue": {"key": "OPS-1"}, "comment": {"body": "on it"}}'
"#;

    #[test]
    fn link_shows_as_text_or_the_cases_value() {
        let create = format!(
            "{INCIDENT}[[expect]]\nflow = \"snow-p1-to-jira\"\nmethod = \"POST\"\npath = \"/rest/api/3/issue\"\n[expect.update]\nmethod = \"PUT\"\npath = \"/rest/api/3/issue/$link\"\nbody_json = '{{\"fields\": {{\"summary\": \"Mail down\"}}, \"key\": \"$link\"}}'\n"
        );
        assert_eq!(mismatches(&create), Vec::<String>::new());
        let back = format!(
            "{COMMENT}link = \"a b\\\"c\"\n[[expect]]\nflow = \"jira-to-snow\"\npath = \"/api/now/table/incident/a%20b%22c\"\nbody_json = '{{\"work_notes\": \"on it [a b\\\"c]\"}}'\n"
        );
        assert_eq!(mismatches(&back), Vec::<String>::new());
    }

    #[test]
    fn update_mismatches_are_named() {
        let wrong = format!(
            "{INCIDENT}link = \"OPS-9\"\n[[expect]]\nflow = \"snow-p1-to-jira\"\n[expect.update]\nmethod = \"PATCH\"\npath = \"/rest/api/3/issue/$link\"\nbody_json = '{{\"fields\": {{\"summary\": \"Mail down\"}}}}'\n"
        );
        let m = mismatches(&wrong).join("\n");
        assert!(
            m.contains("flow snow-p1-to-jira: update method PUT , expected PATCH"),
            "{m}"
        );
        assert!(
            m.contains(
                "flow snow-p1-to-jira: update path /rest/api/3/issue/OPS-9, expected /rest/api/3/issue/$link"
            ),
            "{m}"
        );
        assert!(m.contains("update body differs"), "{m}");
        assert!(m.contains("+  \"key\": \"OPS-9\""), "{m}");
        let no_update = format!(
            "{COMMENT}[[expect]]\nflow = \"jira-to-snow\"\n[expect.update]\nmethod = \"PUT\"\n"
        );
        let m = mismatches(&no_update).join("\n");
        assert!(m.contains("flow jira-to-snow: has no update"), "{m}");
    }
}
