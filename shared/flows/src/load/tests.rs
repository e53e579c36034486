//! Tests of loading and validating flows files.

use std::time::Duration;

use super::*;
use crate::model::{Slo, SourceAuth, StatusSet, TargetAuth};
use crate::spec::SignatureEncoding;

const EXAMPLE: &str = r#"
[[sources]]
id = "servicenow"
kind = "webhook"
auth = { hmac_sha256 = { env = "SNOW_SECRET" } }
entity_key = ".sys_id"
event_type = '.event_type // "updated"'

[[targets]]
id = "jira"
base_url = "https://jira.example.com/"
auth = { bearer = { env = "JIRA_TOKEN" } }
timeout = "10s"
concurrency = 16
rate_limit = "50/s"
retry = { max_attempts = 8, initial_backoff = "200ms", max_backoff = "30s" }

[[flows]]
id = "snow-p1-to-jira"
source = "servicenow"
when = '.priority == "1"'
target = "jira"
method = "POST"
path = "/rest/api/3/issue"
map = '''{fields: {summary: .short_description, labels: ["servicenow", .number]}}'''
"#;

#[test]
fn slo_objectives_load_and_leave_the_version_alone() {
    let with = format!(
        "{EXAMPLE}slo = {{ success_ratio = 0.99, latency_p95 = \"30s\", max_silence = \"15m\", max_lag = 10000 }}\n"
    );
    let a = load_str(EXAMPLE).expect("valid");
    let b = load_str(&with).expect("valid with slo");
    let slo = b.flows[0].slo;
    assert_eq!(slo.success_ratio, Some(0.99));
    assert_eq!(slo.latency_p95, Some(Duration::from_secs(30)));
    assert_eq!(slo.max_silence, Some(Duration::from_secs(900)));
    assert_eq!(slo.max_lag, Some(10_000));
    assert_eq!(slo.window, Duration::from_secs(300));
    assert_eq!(a.flows[0].slo, Slo::default());
    assert_eq!(a.flows[0].version, b.flows[0].version);

    let bad = format!("{EXAMPLE}slo = {{ success_ratio = 1.5, window = \"soon\" }}\n");
    let e = load_str(&bad).expect_err("invalid").to_string();
    assert!(
        e.contains("flows[0].slo.success_ratio") || e.contains("slo.success_ratio"),
        "{e}"
    );
    assert!(e.contains("slo.window"), "{e}");
}

#[test]
fn design_example_loads() {
    let flows = load_str(EXAMPLE).expect("valid");
    let source = &flows.sources["servicenow"];
    match &source.auth {
        SourceAuth::Hmac(h) => {
            assert_eq!(h.header, "X-Intops-Signature");
            assert_eq!(h.prefix, "sha256=");
            assert_eq!(h.encoding, SignatureEncoding::Hex);
        }
        other => panic!("expected hmac, got {other:?}"),
    }
    let target = &flows.targets["jira"];
    assert_eq!(target.base_url, "https://jira.example.com");
    assert_eq!(
        target.rate_limit,
        Some(RateLimit {
            count: 50,
            per: Duration::from_secs(1)
        })
    );
    assert_eq!(target.retry.max_backoff, Duration::from_secs(30));
    let flow = &flows.flows[0];
    assert_eq!(flow.version.len(), 12);
    assert_eq!(flows.flows_for_source("servicenow").count(), 1);
}

#[test]
fn flow_version_changes_with_the_flow() {
    let a = load_str(EXAMPLE).expect("valid");
    let b = load_str(&EXAMPLE.replace(r#"== "1""#, r#"== "2""#)).expect("valid");
    assert_ne!(a.flows[0].version, b.flows[0].version);
    let again = load_str(EXAMPLE).expect("valid");
    assert_eq!(a.flows[0].version, again.flows[0].version);
}

/// A version's kept definition is the flow itself: pasted back in place
/// of the flow, it loads to the same version (the rollback runbook).
#[test]
fn a_flows_definition_loads_back_to_its_version() {
    let text = format!(
        "{EXAMPLE}headers = {{ X-Ticket = \"{{{{ .number }}}}\" }}\nlink = {{ capture = \".key\" }}\nupdate = {{ path = \"/rest/api/3/issue/{{{{ $link }}}}\" }}\nslo = {{ success_ratio = 0.9 }}\n"
    );
    let a = load_str(&text).expect("valid");
    let flow = &a.flows[0];
    assert!(
        flow.definition.starts_with("[[flows]]\n"),
        "{}",
        flow.definition
    );
    assert!(!flow.definition.contains("slo"), "{}", flow.definition);
    let (head, _) = EXAMPLE.split_once("[[flows]]").expect("flows table");
    let back = load_str(&format!("{head}{}", flow.definition)).expect("definition loads");
    assert_eq!(back.flows[0].version, flow.version);
    assert_eq!(back.flows[0].definition, flow.definition);
}

/// A reload finds the sources and targets whose tables changed, however
/// the file is laid out.
#[test]
fn changed_sources_and_targets_are_found() {
    let a = load_str(EXAMPLE).expect("valid");
    let reformatted = EXAMPLE.replace(
        "retry = { max_attempts = 8, initial_backoff = \"200ms\", max_backoff = \"30s\" }",
        "retry.max_attempts = 8\nretry.initial_backoff = \"200ms\"\nretry.max_backoff = \"30s\"",
    );
    assert_ne!(reformatted, EXAMPLE);
    let b = load_str(&reformatted).expect("valid");
    assert!(!a.changed(&b, "targets", "jira"));
    let c = load_str(&EXAMPLE.replace("concurrency = 16", "concurrency = 4")).expect("valid");
    assert!(a.changed(&c, "targets", "jira"));
    assert!(!a.changed(&c, "sources", "servicenow"));
    assert!(
        !a.changed(&c, "targets", "nosuch"),
        "absent from both: unchanged"
    );
    let d = load_str(&EXAMPLE.replace("SNOW_SECRET", "SNOW_SECRET_2")).expect("valid");
    assert!(a.changed(&d, "sources", "servicenow"));
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = EXAMPLE
        .replace(r#"source = "servicenow""#, r#"source = "nosuch""#)
        .replace(r#"target = "jira""#, r#"target = "gone""#)
        .replace(".short_description", ".short_description |")
        .replace(r#"timeout = "10s""#, r#"timeout = "ten""#);
    let errs = load_str(&text).expect_err("invalid").0;
    let text = errs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        text.contains("flows[snow-p1-to-jira].source: unknown source \"nosuch\""),
        "{text}"
    );
    assert!(
        text.contains("flows[snow-p1-to-jira].target: unknown target \"gone\""),
        "{text}"
    );
    assert!(
        text.contains("flows[snow-p1-to-jira].map: jq error at line 1"),
        "{text}"
    );
    assert!(text.contains("targets[jira].timeout"), "{text}");
    assert_eq!(errs.len(), 4, "{text}");
}

#[test]
fn target_auth_forms_and_status_sets_are_checked() {
    let basic = EXAMPLE.replace(
        r#"auth = { bearer = { env = "JIRA_TOKEN" } }"#,
        r#"auth = { basic = { username = "svc", password = { env = "JIRA_PW" } } }
retryable_statuses = [409, "5xx"]"#,
    );
    let flows = load_str(&basic).expect("valid");
    let target = &flows.targets["jira"];
    assert!(matches!(&target.auth, TargetAuth::Basic { username, .. } if username == "svc"));
    assert!(target.retryable_statuses.contains(409));
    assert!(target.retryable_statuses.contains(503));
    assert!(!target.retryable_statuses.contains(429));

    let header = EXAMPLE.replace(
        r#"auth = { bearer = { env = "JIRA_TOKEN" } }"#,
        r#"auth = { header = { name = "X-Api-Key", value = { env = "KEY" } } }"#,
    );
    let flows = load_str(&header).expect("valid");
    assert!(
        matches!(&flows.targets["jira"].auth, TargetAuth::Header { name, .. } if name == "X-Api-Key")
    );
    assert_eq!(
        flows.targets["jira"].retryable_statuses,
        StatusSet::default()
    );

    let bad = EXAMPLE.replace(
        r#"auth = { bearer = { env = "JIRA_TOKEN" } }"#,
        r#"auth = { bearer = { env = "T" }, header = { name = "Bad Name", value = { env = "K" } } }
retryable_statuses = [200, "6xx", "soon"]"#,
    );
    let e = load_str(&bad).expect_err("invalid").to_string();
    for needle in [
        "targets[jira].auth: set one of bearer, basic, header or oauth2, not several",
        "200 is not a failure status",
        "\"6xx\" is not 4xx or 5xx",
        "\"soon\" is neither a code nor a class",
    ] {
        assert!(e.contains(needle), "{needle} in {e}");
    }
    let bad_header = EXAMPLE.replace(
        r#"auth = { bearer = { env = "JIRA_TOKEN" } }"#,
        r#"auth = { header = { name = "Idempotency-Key", value = { env = "K" } } }"#,
    );
    let e = load_str(&bad_header).expect_err("invalid").to_string();
    assert!(e.contains("targets[jira].auth.header.name"), "{e}");
}

#[test]
fn pausing_defaults_to_401_alone_for_at_most_15_minutes() {
    let flows = load_str(EXAMPLE).expect("valid");
    let target = &flows.targets["jira"];
    assert!(target.pause_statuses.contains(401));
    assert!(!target.pause_statuses.contains(403));
    assert_eq!(target.max_pause, Duration::from_secs(900));

    let text = EXAMPLE.replace(
        "concurrency = 16",
        "concurrency = 16\npause_statuses = [401, 403]\nmax_pause = \"2m\"",
    );
    let target = &load_str(&text).expect("valid").targets["jira"];
    assert!(target.pause_statuses.contains(403));
    assert_eq!(target.max_pause, Duration::from_secs(120));

    let text = EXAMPLE.replace(
        "concurrency = 16",
        "concurrency = 16\npause_statuses = [307, \"3xx\"]\nretryable_statuses = [302]\nmax_pause = \"0s\"",
    );
    let e = load_str(&text).expect_err("invalid").to_string();
    for needle in [
        "targets[jira].pause_statuses: 307 is not a failure status (400-599",
        "targets[jira].pause_statuses: \"3xx\" is not 4xx or 5xx",
        "targets[jira].retryable_statuses: 302 is not a failure status",
        "targets[jira].max_pause: must be greater than zero",
    ] {
        assert!(e.contains(needle), "{needle} in {e}");
    }
}

#[test]
fn paths_headers_and_base_urls_that_could_leave_the_target_are_refused() {
    let mut text = EXAMPLE.replace(
        "https://jira.example.com/",
        "https://user:pw@jira.example.com/",
    );
    text.push_str(
        r#"
[[flows]]
id = "climbs"
source = "servicenow"
target = "jira"
path = "/rest/../admin"

[[flows]]
id = "reserved"
source = "servicenow"
target = "jira"
path = "/x/{{ .a }}"
headers = { Host = "evil.example", "X-Line" = "a\r\nX-Evil: 1", "Bad Name" = "x" }
"#,
    );
    let e = load_str(&text).expect_err("invalid").to_string();
    for needle in [
        "targets[jira].base_url: must not hold user information",
        "flows[climbs].path: path \"/rest/../admin\" refused: it holds a dot segment",
        "flows[reserved].headers.Host: is set by intops or steers where the request goes",
        "flows[reserved].headers.X-Line: header value refused",
        "flows[reserved].headers.Bad Name: is not a header name",
    ] {
        assert!(e.contains(needle), "{needle} in {e}");
    }
    assert!(!e.contains("pw@"), "{e}");

    let own_key = EXAMPLE
        .replace(
            r#"auth = { bearer = { env = "JIRA_TOKEN" } }"#,
            r#"auth = { header = { name = "X-Api-Key", value = { env = "KEY" } } }"#,
        )
        .replace(
            r#"path = "/rest/api/3/issue""#,
            "path = \"/rest/api/3/issue\"\nheaders = { \"x-api-key\" = \"{{ .k }}\" }",
        );
    let e = load_str(&own_key).expect_err("invalid").to_string();
    assert!(
        e.contains("flows[snow-p1-to-jira].headers.x-api-key: carries the target's credential"),
        "{e}"
    );
}

#[test]
fn max_elapsed_is_parsed() {
    let text = EXAMPLE.replace(
        r#"max_backoff = "30s" }"#,
        r#"max_backoff = "30s", max_elapsed = "10m" }"#,
    );
    let flows = load_str(&text).expect("valid");
    assert_eq!(
        flows.targets["jira"].retry.max_elapsed,
        Some(Duration::from_secs(600))
    );
}

#[test]
fn unknown_fields_and_missing_auth_are_errors() {
    let e = load_str(&EXAMPLE.replace("concurrency = 16", "concurency = 16")).expect_err("typo");
    assert!(e.to_string().contains("concurency"), "{e}");
    let e = load_str(&EXAMPLE.replace(r#"auth = { hmac_sha256 = { env = "SNOW_SECRET" } }"#, ""))
        .expect_err("no auth");
    assert!(e.to_string().contains("sources[servicenow].auth"), "{e}");
    let ok = load_str(&EXAMPLE.replace(
        r#"auth = { hmac_sha256 = { env = "SNOW_SECRET" } }"#,
        r#"auth = "none""#,
    ))
    .expect("none");
    assert!(matches!(ok.sources["servicenow"].auth, SourceAuth::None));
}

#[test]
fn source_options_of_the_design_load() {
    let zendesk = r#"
[[sources]]
id = "zendesk"
kind = "webhook"
entity_key = ".detail.id"
dedupe_key = '.id'
max_body_bytes = 2048
rate_limit = "100/s"
[sources.auth]
hmac_sha256 = { env = "ZENDESK_SECRET" }
header = "X-Zendesk-Webhook-Signature"
encoding = "base64"
timestamp_header = "X-Zendesk-Webhook-Signature-Timestamp"
tolerance = "2m"

[[sources]]
id = "jira"
kind = "webhook"
entity_key = ".issue.id"
auth = { hmac_sha256 = { env = "JIRA_SECRET" }, header = "X-Hub-Signature", prefix = "sha256=" }

[[sources]]
id = "tool"
kind = "webhook"
entity_key = ".id"
auth = { bearer = { file = "/run/secrets/tool" } }
"#;
    let flows = load_str(zendesk).expect("valid");
    let z = &flows.sources["zendesk"];
    assert_eq!(z.max_body_bytes, 2048);
    assert!(z.dedupe_key.is_some());
    match &z.auth {
        SourceAuth::Hmac(h) => {
            assert_eq!(
                (h.encoding, h.prefix.as_str()),
                (SignatureEncoding::Base64, "")
            );
            assert_eq!(h.tolerance, Duration::from_secs(120));
        }
        other => panic!("expected hmac, got {other:?}"),
    }
    match &flows.sources["jira"].auth {
        SourceAuth::Hmac(h) => assert_eq!(
            (h.header.as_str(), h.prefix.as_str()),
            ("X-Hub-Signature", "sha256=")
        ),
        other => panic!("expected hmac, got {other:?}"),
    }
    assert!(matches!(flows.sources["tool"].auth, SourceAuth::Bearer(_)));
    assert_eq!(flows.sources["tool"].max_body_bytes, 900_000);
    let both = zendesk.replace("tolerance = \"2m\"", "bearer = { env = \"X\" }");
    assert!(
        load_str(&both)
            .expect_err("both")
            .to_string()
            .contains("not both")
    );
}

#[test]
fn duplicate_ids_are_errors() {
    let text = format!("{EXAMPLE}\n[[targets]]\nid = \"jira\"\nbase_url = \"http://x\"\n");
    let e = load_str(&text).expect_err("dup");
    assert!(e.to_string().contains("duplicate id \"jira\""), "{e}");
}

#[test]
fn rates_parse() {
    assert_eq!(
        parse_rate("600/m"),
        Ok(RateLimit {
            count: 600,
            per: Duration::from_secs(60)
        })
    );
    assert!(parse_rate("fast").is_err());
    assert!(parse_rate("0/s").is_err());
}

#[test]
fn start_up_errors_name_the_file_once() {
    let missing = std::path::Path::new("/nonexistent/intops-flows.toml");
    let error = load_flows(missing).expect_err("missing file");
    assert_eq!(error.0.len(), 1);
    assert!(
        error.0[0].starts_with("/nonexistent/intops-flows.toml: cannot read:"),
        "{}",
        error.0[0]
    );
    assert_eq!(error.0[0].matches("intops-flows.toml").count(), 1);

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("flows.toml");
    std::fs::write(&path, "[[flows]]\nid = 3\n").expect("write");
    let error = load_flows(&path).expect_err("invalid file");
    let file = path.display().to_string();
    assert!(
        error.0.iter().all(|p| p.starts_with(&format!("{file}: "))),
        "{error:?}"
    );
}
