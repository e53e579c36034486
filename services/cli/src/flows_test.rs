//! `intops flows test FILE CASES_DIR`: the flows file's unit tests. Each
//! case runs through the same routing and mapping code as transform.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use intops_events::IntegrationEvent;
use intops_flows::route::{FlowResult, Plan, plan};
use intops_flows::{Flows, parse_json};
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
                if let Some(m) = expect
                    .method
                    .as_ref()
                    .filter(|m| !m.eq_ignore_ascii_case(&request.method))
                {
                    mismatches.push(format!(
                        "flow {}: method {} , expected {m}",
                        flow.id, request.method
                    ));
                }
                if let Some(p) = expect.path.as_ref().filter(|p| **p != request.path) {
                    mismatches.push(format!(
                        "flow {}: path {}, expected {p}",
                        flow.id, request.path
                    ));
                }
                if let Some(want) = expect.body()? {
                    let got: serde_json::Value =
                        serde_json::from_str(&request.body).map_err(|e| e.to_string())?;
                    if got != want {
                        mismatches.push(format!(
                            "flow {}: body differs (- expected, + actual):\n{}",
                            flow.id,
                            diff(&want, &got)
                        ));
                    }
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
