//! Tests of a flow's `link` and `update` tables and of where `$link` may
//! be used.

use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::load_str;
use crate::model::{DEFAULT_LINK_EXPIRY, FlowLink};

const SYSTEMS: &str = r#"
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
auth = { header = { name = "X-Api-Key", value = { env = "SNOW_KEY" } } }
"#;

/// The flows of issue 16, as pinned there.
const PINNED: &str = r#"
[[flows]]
id = "snow-p1-to-jira"
source = "servicenow"
when = '.priority == "1"'
target = "jira"
method = "POST"
path = "/rest/api/3/issue"
map = '{fields: {summary: .short_description}}'
link = { capture = ".key" }
update = { method = "PUT", path = "/rest/api/3/issue/{{ $link }}" }   # map: the flow's, unless update.map is given

[[flows]]
id = "jira-to-snow"
source = "jira"
target = "servicenow"
link = { from = "snow-p1-to-jira" }
method = "PATCH"
path = "/api/now/table/incident/{{ $link }}"
map = '{work_notes: .comment.body}'
"#;

fn errors(flows: &str) -> String {
    load_str(&format!("{SYSTEMS}{flows}"))
        .expect_err("invalid")
        .to_string()
}

fn assert_errors(flows: &str, needles: &[&str]) {
    let e = errors(flows);
    for needle in needles {
        assert!(e.contains(needle), "{needle:?} in {e}");
    }
}

#[test]
fn the_pinned_example_loads() {
    let flows = load_str(&format!("{SYSTEMS}{PINNED}")).expect("valid");
    let Some(FlowLink::Capture {
        capture,
        update,
        expire_after,
        skip_echoes,
    }) = &flows.flows[0].link
    else {
        panic!("capture: {:?}", flows.flows[0].link)
    };
    assert!(skip_echoes, "echoes are skipped unless link.echo = false");
    assert_eq!(capture.code(), ".key");
    assert_eq!(update.method, "PUT");
    assert!(update.path.mentions_var("link"));
    assert!(update.headers.is_none() && update.map.is_none());
    assert_eq!(*expire_after, DEFAULT_LINK_EXPIRY);
    assert_eq!(DEFAULT_LINK_EXPIRY, Duration::from_secs(365 * 24 * 3600));
    let Some(FlowLink::From {
        flow, expire_after, ..
    }) = &flows.flows[1].link
    else {
        panic!("from: {:?}", flows.flows[1].link)
    };
    assert_eq!(
        (flow.as_str(), *expire_after),
        ("snow-p1-to-jira", DEFAULT_LINK_EXPIRY)
    );
    assert!(flows.flows[1].path.mentions_var("link"));
}

#[test]
fn update_and_expiry_options_load() {
    let text = PINNED
        .replace(
            r#"link = { capture = ".key" }"#,
            r#"link = { capture = '$headers.location // .key', expire_after = "30d" }"#,
        )
        .replace(
            r#"update = { method = "PUT", path = "/rest/api/3/issue/{{ $link }}" }"#,
            r#"update = { method = "patch", path = "/rest/api/3/issue/{{ $link }}", headers = { "X-Issue" = "{{ $link }}" }, map = '{fields: {summary: .short_description}, key: $link}' }"#,
        )
        .replace(
            r#"link = { from = "snow-p1-to-jira" }"#,
            r#"link = { from = "snow-p1-to-jira", expire_after = "12h" }"#,
        );
    let flows = load_str(&format!("{SYSTEMS}{text}")).expect("valid");
    let Some(FlowLink::Capture {
        update,
        expire_after,
        ..
    }) = &flows.flows[0].link
    else {
        panic!("capture")
    };
    assert_eq!(*expire_after, Duration::from_secs(30 * 24 * 3600));
    assert_eq!(update.method, "PATCH");
    assert_eq!(update.headers.as_ref().map(Vec::len), Some(1));
    assert!(update.map.as_ref().is_some_and(|m| m.mentions_var("link")));
    assert!(matches!(
        &flows.flows[1].link,
        Some(FlowLink::From { expire_after, .. }) if *expire_after == Duration::from_secs(12 * 3600)
    ));
    // Without a method the update is a PUT.
    let put = PINNED.replace(r#"method = "PUT", "#, "");
    let flows = load_str(&format!("{SYSTEMS}{put}")).expect("valid");
    assert!(matches!(
        &flows.flows[0].link,
        Some(FlowLink::Capture { update, .. }) if update.method == "PUT"
    ));
}

#[test]
fn a_link_needs_exactly_one_of_capture_and_from() {
    let both = PINNED.replace(
        r#"link = { capture = ".key" }"#,
        r#"link = { capture = ".key", from = "jira-to-snow" }"#,
    );
    assert_errors(
        &both,
        &[
            "flows[snow-p1-to-jira].link: needs exactly one of capture (keep the target's record id) and from",
        ],
    );
    let neither = PINNED.replace(
        r#"link = { capture = ".key" }"#,
        r#"link = { expire_after = "1d" }"#,
    );
    assert_errors(
        &neither,
        &["flows[snow-p1-to-jira].link: needs exactly one"],
    );
    assert_errors(
        &PINNED.replace(
            r#"link = { capture = ".key" }"#,
            r#"link = { capture = ".key", kept = 1 }"#,
        ),
        &["unknown field `kept`"],
    );
}

#[test]
fn capture_and_update_go_together() {
    let no_update = PINNED.replace(
        r#"update = { method = "PUT", path = "/rest/api/3/issue/{{ $link }}" }"#,
        "",
    );
    assert_errors(
        &no_update,
        &["flows[snow-p1-to-jira].link: link.capture needs an update"],
    );
    let no_link = PINNED.replace(r#"link = { capture = ".key" }"#, "");
    assert_errors(
        &no_link,
        &[
            "flows[snow-p1-to-jira].update: needs link.capture",
            // And the from flow now names no capture flow.
            r#"flows[jira-to-snow].link.from: "snow-p1-to-jira" names no flow with link.capture"#,
        ],
    );
    let from_update = PINNED.replace(
        r#"link = { from = "snow-p1-to-jira" }"#,
        "link = { from = \"snow-p1-to-jira\" }\nupdate = { path = \"/x/{{ $link }}\" }",
    );
    assert_errors(
        &from_update,
        &["flows[jira-to-snow].update: needs link.capture: a from flow"],
    );
}

#[test]
fn from_must_name_a_flow_with_capture() {
    for (name, why) in [
        ("nosuch", "an unknown flow"),
        ("jira-to-snow", "itself, a from flow"),
    ] {
        let text = PINNED.replace(
            r#"link = { from = "snow-p1-to-jira" }"#,
            &format!(r#"link = {{ from = "{name}" }}"#),
        );
        let e = errors(&text);
        assert!(
            e.contains(&format!(
                r#"flows[jira-to-snow].link.from: "{name}" names no flow with link.capture"#
            )),
            "{why}: {e}"
        );
        assert_eq!(e.matches("names no flow").count(), 1, "{e}");
    }
    // A flow without a link cannot be followed either.
    let plain = format!(
        "{PINNED}\n[[flows]]\nid = \"plain\"\nsource = \"servicenow\"\ntarget = \"jira\"\npath = \"/x\"\n"
    )
    .replace(r#"from = "snow-p1-to-jira""#, r#"from = "plain""#);
    assert_errors(
        &plain,
        &[r#"link.from: "plain" names no flow with link.capture"#],
    );
}

#[test]
fn update_fields_are_checked_like_the_flows() {
    let bad = PINNED
        .replace(
            r#"link = { capture = ".key" }"#,
            r#"link = { capture = ".key |", expire_after = "soon" }"#,
        )
        .replace(
            r#"update = { method = "PUT", path = "/rest/api/3/issue/{{ $link }}" }"#,
            r#"update = { method = "FETCH", path = "rest/{{ $link }}", headers = { Host = "x", "X-Api-Key" = "k", "X-Ok" = "{{ $link | }}" }, map = "{a: }" }"#,
        );
    assert_errors(
        &bad,
        &[
            "flows[snow-p1-to-jira].link.capture: jq error",
            "flows[snow-p1-to-jira].link.expire_after: not a duration",
            r#"flows[snow-p1-to-jira].update.method: "FETCH" is not GET"#,
            r#"flows[snow-p1-to-jira].update.path: "rest/{{ $link }}" must start with '/'"#,
            "flows[snow-p1-to-jira].update.headers.Host: is set by intops",
            "flows[snow-p1-to-jira].update.headers.X-Ok: jq error",
            "flows[snow-p1-to-jira].update.map: jq error",
        ],
    );
    // The servicenow target's credential header, in a from flow's headers.
    let own_key = PINNED.replace(
        r#"link = { from = "snow-p1-to-jira" }"#,
        "link = { from = \"snow-p1-to-jira\" }\nheaders = { \"x-api-key\" = \"{{ $link }}\" }",
    );
    assert_errors(
        &own_key,
        &["flows[jira-to-snow].headers.x-api-key: carries the target's credential"],
    );
    let literal = PINNED.replace(
        r#"path = "/rest/api/3/issue/{{ $link }}" }"#,
        r#"path = "/rest/../admin" }"#,
    );
    assert_errors(
        &literal,
        &["flows[snow-p1-to-jira].update.path: path \"/rest/../admin\" refused"],
    );
}

#[test]
fn link_is_usable_only_where_it_is_known() {
    // Known: a capture flow's map and update, a from flow's path, headers and map.
    let known = PINNED
        .replace(
            "map = '{fields: {summary: .short_description}}'",
            "map = '{fields: {summary: .short_description, key: $link}}'",
        )
        .replace(
            "map = '{work_notes: .comment.body}'",
            "map = '{work_notes: \"\\($link): \\(.comment.body)\"}'\nheaders = { \"X-Incident\" = \"{{ $link }}\" }",
        );
    load_str(&format!("{SYSTEMS}{known}")).expect("valid");
    for (text, at, why) in [
        (
            PINNED.replace(r#"when = '.priority == "1"'"#, r#"when = '$link == null'"#),
            "flows[snow-p1-to-jira].when",
            "`$link` is not known when `when` is evaluated",
        ),
        (
            PINNED.replace(
                r#"path = "/rest/api/3/issue""#,
                r#"path = "/rest/api/3/issue/{{ $link }}""#,
            ),
            "flows[snow-p1-to-jira].path",
            "`$link` is not known in a capture flow's create request",
        ),
        (
            PINNED.replace(
                r#"path = "/rest/api/3/issue""#,
                "path = \"/rest/api/3/issue\"\nheaders = { \"X-Key\" = \"{{ $link }}\" }",
            ),
            "flows[snow-p1-to-jira].headers.X-Key",
            "`$link` is not known in a capture flow's create request",
        ),
        (
            PINNED
                .replace(r#"link = { from = "snow-p1-to-jira" }"#, "")
                .replace(
                    "map = '{work_notes: .comment.body}'",
                    "map = '{work_notes: .comment.body, sys_id: $link}'",
                ),
            "flows[jira-to-snow].map",
            "`$link` needs a link",
        ),
        (
            PINNED.replace(
                r#"link = { capture = ".key" }"#,
                r#"link = { capture = "$link" }"#,
            ),
            "flows[snow-p1-to-jira].link.capture",
            "undefined variable",
        ),
    ] {
        let e = errors(&text);
        let line = e
            .lines()
            .find(|l| l.contains(at))
            .unwrap_or_else(|| panic!("{at} in {e}"));
        assert!(
            line.contains("$link") && line.contains(why),
            "{why} in {line}"
        );
    }
    // Another mistake next to `$link` gets the plain jq error.
    let e = errors(&PINNED.replace(r#"when = '.priority == "1"'"#, r#"when = '$link |'"#));
    assert!(e.contains("flows[snow-p1-to-jira].when: jq error"), "{e}");
    assert!(!e.contains("is not known"), "{e}");
}

/// A flow's version is the hash of its definition as it was before links
/// existed: flows without `link` and `update` keep their versions (and so
/// their Idempotency-Keys).
#[test]
fn versions_of_flows_without_links_are_unchanged() {
    let flows = load_str(&format!("{SYSTEMS}{PINNED}")).expect("valid");
    let plain = PINNED
        .replace("link = { capture = \".key\" }\n", "")
        .replace(
            "update = { method = \"PUT\", path = \"/rest/api/3/issue/{{ $link }}\" }   # map: the flow's, unless update.map is given\n",
            "",
        )
        .split("[[flows]]\nid = \"jira-to-snow\"")
        .next()
        .expect("first flow")
        .to_string();
    let without = load_str(&format!("{SYSTEMS}{plain}")).expect("valid");
    let canonical = r#"{"id":"snow-p1-to-jira","source":"servicenow","when":".priority == \"1\"","target":"jira","method":"POST","path":"/rest/api/3/issue","headers":{},"map":"{fields: {summary: .short_description}}"}"#;
    let expected = hex::encode(&Sha256::digest(canonical.as_bytes())[..6]);
    assert_eq!(without.flows[0].version, expected);
    assert_ne!(
        flows.flows[0].version, expected,
        "a link changes the version"
    );
    let other_update = PINNED.replace("PUT", "PATCH");
    let changed = load_str(&format!("{SYSTEMS}{other_update}")).expect("valid");
    assert_ne!(flows.flows[0].version, changed.flows[0].version);
    assert_eq!(flows.flows[1].version, changed.flows[1].version);
}
