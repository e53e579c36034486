//! Direct evaluation against jaq: every answer it gives is jaq's.

use crate::program::{JqProgram, parse_json};

const INPUTS: &[&str] = &[
    "{}",
    r#"{"a": "1", "b": 2, "c": null, "t": "2026-11-28 08:12:44"}"#,
    r#"{"a": {"b": [1]}, "b": "x", "c": {"d": "e"}}"#,
    r#"{"a": 1, "b": 1.0, "c": 100000000000000000000001, "t": "bad"}"#,
    r#"{"a": false, "b": true, "c": "c", "a-b": "dash"}"#,
    r#"{"a": "ü\"\n\u0000", "b": "", "c": [], "t": "2026-02-30 00:00:00"}"#,
    "null",
    r#""text""#,
    "[1, 2]",
    "3",
];

/// Programs direct evaluation takes, and some it leaves to jaq.
const PROGRAMS: &[(&str, bool)] = &[
    (".", true),
    (".a", true),
    (".a.b", true),
    (r#".["a"]"#, true),
    (r#"."a-b""#, true),
    (".a | .b", true),
    ("(.a).b", true),
    (
        "{a: .a, b: [.b, \"x\"], c: {d: 1, e: null, f: true, g: false}}",
        true,
    ),
    ("{a, b}", true),
    (r#"{"quoted key": .a, "é\t": 2}"#, true),
    (".a == \"1\"", true),
    (".a != 1", true),
    (".a < .b", true),
    (".a >= .b", true),
    (".a == .b", true),
    (".a and .b", true),
    (".a or .c", true),
    (".a // \"default\"", true),
    (".c // .b // 3", true),
    ("if .a then .b elif .c then 1 else 2 end", true),
    ("if .a then .b end", true),
    (".a | not", true),
    ("\"x\\(.a)y\\(.b)z\\(.c)\"", true),
    ("\"tab\\t\\u00e9 \\\"q\\\"\"", true),
    (
        r#".a | value_map({"1": "one", "false": "no", "{\"b\":[1]}": "obj"})"#,
        true,
    ),
    (r#".b | value_map({"1": "one", "2": "two"}; "other")"#, true),
    (r#".a | value_map(["not an object"])"#, true),
    (".t | snow_to_iso", true),
    (
        r#".t | reformat_date("%Y-%m-%d %H:%M:%S"; "%d.%m.%Y")"#,
        true,
    ),
    ("1.50", true),
    ("100000000000000000000000", true),
    ("[]", true),
    ("{}", true),
    ("[.a, .b, .c]", true),
    ("{(.a): 1}", false),
    ("{a: 1, a: 2}", false),
    (".a?", false),
    (".a[0]", false),
    (".[]", false),
    (".a, .b", false),
    ("def f: 1; f", false),
    (". as $x | $x", false),
    (".s | truncate(5)", false),
    ("@base64 \"\\(.a)\"", false),
    ("-.a", false),
    (".a + .b", false),
];

#[test]
fn direct_answers_are_jaqs() {
    let mut answered = 0;
    for (code, direct) in PROGRAMS {
        let program = JqProgram::compile(code).expect(code);
        assert_eq!(program.direct().is_some(), *direct, "{code}");
        let Some(d) = program.direct() else { continue };
        for input in INPUTS {
            let input = parse_json(input.as_bytes()).expect("input");
            let Some(ours) = d.eval(&input, &[]) else {
                continue;
            };
            answered += 1;
            let theirs = program.all(&input).expect("jaq runs");
            assert_eq!(theirs.len(), 1, "{code} on {input}: one output");
            assert_eq!(ours, theirs[0], "{code} on {input}");
            assert_eq!(ours.to_string(), theirs[0].to_string(), "{code} on {input}");
            assert_eq!(program.first(&input), program.first_with_jaq(&input));
        }
    }
    assert!(answered > 200, "only {answered} direct answers");
}

#[test]
fn errors_and_other_answers_are_left_to_jaq() {
    for (code, input) in [
        (".a.b", r#"{"a": "text"}"#),
        (".a", "[1]"),
        (".t | snow_to_iso", r#"{"t": "bad"}"#),
        (r#".a | value_map(["not an object"])"#, r#"{"a": 1}"#),
        ("{a: .a.b}", r#"{"a": 1}"#),
        ("\"\\(.a.b)\"", r#"{"a": 1}"#),
    ] {
        let program = JqProgram::compile(code).expect(code);
        let input = parse_json(input.as_bytes()).expect("input");
        let d = program.direct().expect(code);
        assert!(d.eval(&input, &[]).is_none(), "{code} on {input}");
        let error = program.first(&input).expect_err(code);
        assert_eq!(Err(error), program.first_with_jaq(&input), "{code}");
    }
}

/// Programs with the global variables `$link` and `$h`, evaluated with
/// several values of them.
const VAR_PROGRAMS: &[(&str, bool)] = &[
    ("$link", true),
    ("$h", true),
    ("$link.x", true),
    (r#"{key: $link, n: .a, loc: $h.location}"#, true),
    (r#""OPS-\($link)""#, true),
    ("$link // .a", true),
    ("if $link then $link else .b end", true),
    (".a | $link", true),
    ("[$link, $h]", true),
    (r#".a | value_map({"1": $link})"#, true),
    ("$link | ascii_downcase", false),
    ("$link as $x | $x", false),
    ("$link[0]", false),
];

const VAR_VALUES: &[&[&str]] = &[
    &[],
    &[r#""OPS-12""#],
    &[r#""OPS-12""#, r#"{"location": "/x/9"}"#],
    &["null", "{}"],
    &["12", "null"],
    &[r#"{"x": 1}"#, r#""not an object""#],
    &["[1]", "[]"],
    &["false", "true"],
];

#[test]
fn direct_answers_with_variables_are_jaqs() {
    let mut answered = 0;
    for (code, direct) in VAR_PROGRAMS {
        let program = JqProgram::compile_with_vars(code, &["link", "h"]).expect(code);
        assert_eq!(program.direct().is_some(), *direct, "{code}");
        let Some(d) = program.direct() else { continue };
        for values in VAR_VALUES {
            let values: Vec<_> = values
                .iter()
                .map(|v| parse_json(v.as_bytes()).expect("value"))
                .collect();
            for input in INPUTS {
                let input = parse_json(input.as_bytes()).expect("input");
                let jaq = program.run_first(&input, &values);
                let Some(ours) = d.eval(&input, &values) else {
                    continue;
                };
                answered += 1;
                assert_eq!(Ok(Some(ours)), jaq, "{code} on {input} with {values:?}");
            }
        }
    }
    assert!(answered > 300, "only {answered} direct answers");
}

#[test]
fn constants_are_built_once() {
    let program = JqProgram::compile(r#".p | value_map({"1": "Highest", "2": "High"}; "Low")"#)
        .expect("compiles");
    let text = format!("{:?}", program.direct().expect("direct"));
    assert!(text.contains("ValueMap(Const(Obj({"), "{text}");
}

#[test]
fn the_example_flows_are_evaluated_directly() {
    let file: toml::Table = toml::from_str(include_str!("../../../../deploy/local/flows.toml"))
        .expect("example flows file");
    let flows = file["flows"].as_array().expect("flows");
    assert!(!flows.is_empty());
    for flow in flows {
        let flow = flow.as_table().expect("flow table");
        let update = flow.get("update").and_then(|u| u.as_table());
        let programs = ["when", "map"]
            .into_iter()
            .filter_map(|key| Some((key, flow.get(key)?)))
            .chain(update.and_then(|u| Some(("update.map", u.get("map")?))));
        for (key, code) in programs {
            let code = code.as_str().expect(key);
            let program = JqProgram::compile_with_vars(code, &["link"]).expect(code);
            assert!(program.direct().is_some(), "{key} = {code}");
        }
    }
}
