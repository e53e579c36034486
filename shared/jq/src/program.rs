//! A jq program through the jaq crates: compiled once (when the flows file
//! loads), run per event.

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, ValT as _, Vars, data, unwrap_valr};
use jaq_json::Val;

use crate::direct::Direct;

type Filter = jaq_core::Filter<data::JustLut<Val>>;

/// Why a jq program failed to compile or run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JqError {
    /// The program does not parse or names an unknown filter.
    #[error("jq error at line {line}, column {column}: {message}")]
    Compile {
        /// 1-based line in the program.
        line: usize,
        /// 1-based column (characters).
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// The program raised an error for this input.
    #[error("jq runtime error: {0}")]
    Runtime(String),
    /// The input is not JSON.
    #[error("payload is not JSON: {0}")]
    Input(String),
    /// The input nests objects and arrays deeper than the limit: refused
    /// before parsing, so the recursive parser cannot overflow the stack.
    #[error("payload nests objects and arrays deeper than {limit} levels")]
    TooDeep {
        /// The nesting limit.
        limit: usize,
    },
    /// The output is not of the expected kind.
    #[error("{0}")]
    Output(String),
}

/// A compiled jq program and its source text.
pub struct JqProgram {
    code: String,
    filter: Filter,
    /// The global variables the program was compiled with (without `$`),
    /// in the order their values are given to the `*_with_vars` methods.
    vars: Vec<String>,
    /// The keys, when the program is a plain path such as `.sys_id`.
    path: Option<Vec<String>>,
    /// The program for direct evaluation, when it has the common shape.
    direct: Option<Direct>,
}

impl std::fmt::Debug for JqProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("JqProgram").field(&self.code).finish()
    }
}

impl JqProgram {
    /// Compiles `code` with jq's standard library.
    pub fn compile(code: &str) -> Result<Self, JqError> {
        Self::compile_with_vars(code, &[])
    }

    /// Compiles `code` with jq's standard library and the global variables
    /// `names` (given without `$`: `&["link"]` makes `$link` usable). Their
    /// values are given to [`first_with_vars`](Self::first_with_vars) and
    /// the other `*_with_vars` methods in the same order; the methods
    /// without values run the program with every variable `null`. Naming
    /// any other `$variable` is a compile error, as in [`compile`](Self::compile).
    ///
    /// Direct evaluation knows the variables too (`$link` alone, or as a
    /// part of the common shape).
    pub fn compile_with_vars(code: &str, names: &[&str]) -> Result<Self, JqError> {
        let defs = jaq_core::defs()
            .chain(jaq_std::defs())
            .chain(jaq_json::defs())
            .chain(helpers());
        let funs = jaq_core::funs()
            .chain(jaq_std::funs())
            .chain(jaq_json::funs())
            .chain(crate::natives::funs());
        let loader = Loader::new(defs);
        let arena = Arena::default();
        let modules = loader
            .load(&arena, File { code, path: () })
            .map_err(|errs| {
                let (at, message) = match errs.into_iter().next() {
                    Some((_, jaq_core::load::Error::Lex(e))) => e
                        .first()
                        .map(|(expect, at)| (*at, format!("expected {}", expect.as_str())))
                        .unwrap_or(("", "lex error".into())),
                    Some((_, jaq_core::load::Error::Parse(e))) => e
                        .first()
                        .map(|(expect, at)| (*at, format!("expected {}", expect.as_str())))
                        .unwrap_or(("", "parse error".into())),
                    Some((_, jaq_core::load::Error::Io(e))) => e
                        .first()
                        .map(|(at, msg)| (*at, msg.clone()))
                        .unwrap_or(("", "module error".into())),
                    None => ("", "invalid program".into()),
                };
                position_error(code, at, message)
            })?;
        let dollar_names: Vec<String> = names.iter().map(|n| format!("${n}")).collect();
        let filter = Compiler::default()
            .with_funs(funs)
            .with_global_vars(dollar_names.iter().map(String::as_str))
            .compile(modules)
            .map_err(|errs| {
                let first = errs
                    .into_iter()
                    .next()
                    .and_then(|(_, e)| e.into_iter().next());
                match first {
                    Some((at, undefined)) => {
                        position_error(code, at, format!("undefined {} `{at}`", undefined.as_str()))
                    }
                    None => position_error(code, "", "invalid program".into()),
                }
            })?;
        let uses_vars = names.iter().any(|n| mentions_var(code, n));
        Ok(Self {
            code: code.to_string(),
            filter,
            vars: names.iter().map(|n| (*n).to_string()).collect(),
            path: crate::path::plain_path(code).filter(|_| !uses_vars),
            direct: Direct::compile(code, helper_defs(), &dollar_names),
        })
    }

    /// Whether the program's text mentions `$name` (one of the variables it
    /// was compiled with, or not). Conservative: a `"$name"` inside a string
    /// literal counts too.
    pub fn mentions_var(&self, name: &str) -> bool {
        mentions_var(&self.code, name)
    }

    /// The global variables the program was compiled with, without `$`.
    pub fn vars(&self) -> &[String] {
        &self.vars
    }

    /// The program compiled for direct evaluation, if it has the shape.
    #[cfg(test)]
    pub(crate) fn direct(&self) -> Option<&Direct> {
        self.direct.as_ref()
    }

    /// The first output when direct evaluation knows it (see `direct.rs`),
    /// with the variables' `values` (as in [`first_with_vars`](Self::first_with_vars));
    /// `None` means: run the program with jaq.
    pub fn direct_first(&self, input: &Val, values: &[Val]) -> Option<Val> {
        self.direct.as_ref()?.eval(input, values)
    }

    /// [`holds`](Self::holds) when direct evaluation knows the output;
    /// `None` means: run the program.
    pub fn direct_holds(&self, input: &Val, values: &[Val]) -> Option<bool> {
        Some(self.direct_first(input, values)?.as_bool())
    }

    /// [`first_json_with_vars`](Self::first_json_with_vars) when direct
    /// evaluation knows the output; `None` means: run the program.
    pub fn direct_json(&self, input: &Val, values: &[Val]) -> Option<String> {
        Some(crate::json_text::to_json(
            &self.direct_first(input, values)?,
        ))
    }

    /// Adds the top-level fields of the input the program reads to `keys`;
    /// `false` when it is not evaluated directly or needs more (then the
    /// caller runs it on the whole input; see [`read_fields`](crate::read_fields)).
    pub fn input_fields(&self, keys: &mut std::collections::BTreeSet<String>) -> bool {
        self.direct.as_ref().is_some_and(|d| d.input_fields(keys))
    }

    /// [`first_text_with_vars`](Self::first_text_with_vars) when direct
    /// evaluation knows the output and it is a valid text; `None` means:
    /// run the program.
    pub fn direct_text(&self, input: &Val, values: &[Val]) -> Option<String> {
        text_of(Some(self.direct_first(input, values)?)).ok()
    }

    /// The program's source text.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// Runs the program and returns its first output, `None` when it
    /// produces nothing, or the first error it raises.
    pub fn first(&self, input: &Val) -> Result<Option<Val>, JqError> {
        self.first_with_vars(input, &[])
    }

    /// [`first`](Self::first), always through jaq.
    #[cfg(test)]
    pub(crate) fn first_with_jaq(&self, input: &Val) -> Result<Option<Val>, JqError> {
        self.run_first(input, &[])
    }

    /// Runs the program with the variables' `values` (in the order of the
    /// names it was compiled with; missing ones are `null`, extra ones are
    /// ignored) and returns its first output, `None` when it produces
    /// nothing, or the first error it raises.
    pub fn first_with_vars(&self, input: &Val, values: &[Val]) -> Result<Option<Val>, JqError> {
        if let Some(v) = self.direct_first(input, values) {
            return Ok(Some(v));
        }
        self.run_first(input, values)
    }

    /// The first output through jaq, with the variables' `values`.
    pub(crate) fn run_first(&self, input: &Val, values: &[Val]) -> Result<Option<Val>, JqError> {
        let ctx = Ctx::<data::JustLut<Val>>::new(&self.filter.lut, self.bind(values));
        let mut out = self.filter.id.run((ctx, input.clone())).map(unwrap_valr);
        match out.next() {
            None => Ok(None),
            Some(Ok(v)) => Ok(Some(v)),
            Some(Err(e)) => Err(JqError::Runtime(e.to_string())),
        }
    }

    /// [`first_json`](Self::first_json) with the variables' `values` (see
    /// [`first_with_vars`](Self::first_with_vars)).
    pub fn first_json_with_vars(&self, input: &Val, values: &[Val]) -> Result<String, JqError> {
        match self.first_with_vars(input, values)? {
            Some(v) => Ok(crate::json_text::to_json(&v)),
            None => Err(JqError::Output("program produced no output".into())),
        }
    }

    /// [`first_text`](Self::first_text) with the variables' `values` (see
    /// [`first_with_vars`](Self::first_with_vars)).
    pub fn first_text_with_vars(&self, input: &Val, values: &[Val]) -> Result<String, JqError> {
        text_of(self.first_with_vars(input, values)?)
    }

    /// Every output of the program, or the first error it raises.
    pub fn all(&self, input: &Val) -> Result<Vec<Val>, JqError> {
        let ctx = Ctx::<data::JustLut<Val>>::new(&self.filter.lut, self.bind(&[]));
        self.filter
            .id
            .run((ctx, input.clone()))
            .map(unwrap_valr)
            .map(|r| r.map_err(|e| JqError::Runtime(e.to_string())))
            .collect()
    }

    /// One value per compiled variable, in their order: `values`, then
    /// `null` for the ones not given.
    fn bind(&self, values: &[Val]) -> Vars<Val> {
        Vars::new((0..self.vars.len()).map(|i| values.get(i).cloned().unwrap_or(Val::Null)))
    }

    /// Whether the first output is truthy (neither `false` nor `null`);
    /// no output counts as false.
    pub fn holds(&self, input: &Val) -> Result<bool, JqError> {
        Ok(matches!(self.first(input)?, Some(v) if !matches!(v, Val::Null | Val::Bool(false))))
    }

    /// The first output as JSON text; an error when there is none.
    pub fn first_json(&self, input: &Val) -> Result<String, JqError> {
        match self.first(input)? {
            Some(v) => Ok(crate::json_text::to_json(&v)),
            None => Err(JqError::Output("program produced no output".into())),
        }
    }

    /// [`first_text`](Self::first_text) read straight from a record's JSON
    /// text, for a plain-path program that finds a non-empty string there
    /// (see `path.rs`); `None` means: evaluate the program with jq.
    pub fn text_from_json(&self, json: &str) -> Option<String> {
        crate::path::string_at(json, self.path.as_deref()?)
    }

    /// The first output as a non-empty plain string (strings as they are,
    /// numbers in their JSON form); an error for anything else.
    pub fn first_text(&self, input: &Val) -> Result<String, JqError> {
        text_of(self.first(input)?)
    }
}

/// Whether `code` mentions the variable `$name` (not a longer name such
/// as `$linked`).
fn mentions_var(code: &str, name: &str) -> bool {
    let var = format!("${name}");
    code.match_indices(&var).any(|(at, _)| {
        !code[at + var.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

/// A program's first output as a non-empty plain string.
fn text_of(first: Option<Val>) -> Result<String, JqError> {
    let text = match first {
        None => return Err(JqError::Output("produced no output".into())),
        Some(Val::Null) => return Err(JqError::Output("produced null".into())),
        Some(Val::TStr(text)) => String::from_utf8_lossy(&text).into_owned(),
        Some(v @ Val::Num(_)) => v.to_string(),
        Some(v) => {
            return Err(JqError::Output(format!(
                "produced {}, expected a string or number",
                kind(&v)
            )));
        }
    };
    if text.is_empty() {
        return Err(JqError::Output("produced an empty string".into()));
    }
    Ok(text)
}

/// The intops mapping helpers written in jq (`src/helpers.jq`; the others
/// are native, in `natives.rs`).
fn helpers() -> impl Iterator<Item = jaq_core::load::parse::Def<&'static str>> {
    jaq_core::load::parse(include_str!("helpers.jq"), |p| p.defs())
        .unwrap_or_default()
        .into_iter()
}

/// The helper definitions, parsed once, for [`Direct::compile`].
fn helper_defs() -> &'static [jaq_core::load::parse::Def<&'static str>] {
    static DEFS: std::sync::OnceLock<Vec<jaq_core::load::parse::Def<&'static str>>> =
        std::sync::OnceLock::new();
    DEFS.get_or_init(|| helpers().collect())
}

/// A jq object of string values, such as an answer's headers for
/// `$headers` (a name given twice keeps its last value).
pub fn string_object<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Val {
    Val::obj(
        pairs
            .into_iter()
            .map(|(k, v)| (Val::from(k.to_string()), Val::from(v.to_string())))
            .collect(),
    )
}

/// Parses one JSON document into a jq value, refusing text nested deeper
/// than [`intops_events::DEFAULT_MAX_JSON_DEPTH`] (the limit ingest applies
/// at the door): jaq's parser recurses once per level, and a record written
/// straight to the events topic, or by an older version, is not checked by
/// ingest.
pub fn parse_json(bytes: &[u8]) -> Result<Val, JqError> {
    let limit = intops_events::DEFAULT_MAX_JSON_DEPTH;
    if intops_events::exceeds_depth(bytes, limit) {
        return Err(JqError::TooDeep { limit });
    }
    jaq_json::read::parse_single(bytes).map_err(|e| JqError::Input(e.to_string()))
}

fn kind(v: &Val) -> &'static str {
    match v {
        Val::Null => "null",
        Val::Bool(_) => "a boolean",
        Val::Num(_) => "a number",
        Val::BStr(_) | Val::TStr(_) => "a string",
        Val::Arr(_) => "an array",
        Val::Obj(_) => "an object",
    }
}

/// Turns a slice of `code` (as jaq reports positions) into line and column.
fn position_error(code: &str, at: &str, message: String) -> JqError {
    let offset = (at.as_ptr() as usize)
        .checked_sub(code.as_ptr() as usize)
        .filter(|o| *o <= code.len())
        .unwrap_or(code.len());
    let before = code.get(..offset).unwrap_or(code);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    JqError::Compile {
        line,
        column,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn val(json: &str) -> Val {
        parse_json(json.as_bytes()).expect("json")
    }

    #[test]
    fn condition_and_mapping() {
        let when = JqProgram::compile(r#".priority == "1""#).expect("compiles");
        assert!(when.holds(&val(r#"{"priority":"1"}"#)).expect("runs"));
        assert!(!when.holds(&val(r#"{"priority":"3"}"#)).expect("runs"));
        let map = JqProgram::compile(r#"{summary: .a, labels: ["x", .b]}"#).expect("compiles");
        let out: serde_json::Value = serde_json::from_str(
            &map.first_json(&val(r#"{"a":"hi","b":"INC1"}"#))
                .expect("runs"),
        )
        .expect("json out");
        assert_eq!(
            out,
            serde_json::json!({"summary":"hi","labels":["x","INC1"]})
        );
    }

    /// Far deeper than jaq's recursive parser survives on a thread's stack:
    /// refused before parsing instead of aborting the process.
    #[test]
    fn deeply_nested_input_is_refused_before_parsing() {
        let depth = 200_000;
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(depth), "]".repeat(depth));
        assert_eq!(
            parse_json(deep.as_bytes()).map(|_| ()),
            Err(JqError::TooDeep {
                limit: intops_events::DEFAULT_MAX_JSON_DEPTH
            })
        );
        let limit = intops_events::DEFAULT_MAX_JSON_DEPTH;
        let at_limit = format!("{}{}", "[".repeat(limit), "]".repeat(limit));
        assert!(
            parse_json(at_limit.as_bytes()).is_ok(),
            "the limit itself is fine"
        );
    }

    #[test]
    fn compile_error_has_position() {
        let e = JqProgram::compile("{a: .b,\n  c: nosuchfilter}").expect_err("undefined");
        match e {
            JqError::Compile {
                line,
                column,
                message,
            } => {
                assert_eq!((line, column), (2, 6), "{message}");
                assert!(message.contains("nosuchfilter"), "{message}");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            JqProgram::compile(".a |"),
            Err(JqError::Compile { .. })
        ));
    }

    #[test]
    fn text_extraction() {
        let p = JqProgram::compile(".id").expect("compiles");
        assert_eq!(p.first_text(&val(r#"{"id":"a\"b"}"#)).expect("str"), "a\"b");
        assert_eq!(p.first_text(&val(r#"{"id":42}"#)).expect("num"), "42");
        assert!(p.first_text(&val(r#"{"id":null}"#)).is_err());
        assert!(p.first_text(&val(r#"{"id":{}}"#)).is_err());
        assert!(p.first_text(&val(r#"{"id":""}"#)).is_err());
    }

    fn run(program: &str, input: &str) -> serde_json::Value {
        let p = JqProgram::compile(program).expect("compiles");
        serde_json::from_str(&p.first_json(&val(input)).expect("runs")).expect("json")
    }

    #[test]
    fn mapping_helpers_work() {
        let jira = r#"{"1": "Highest", "2": "High"}"#;
        assert_eq!(
            run(&format!(".p | value_map({jira})"), r#"{"p":"1"}"#),
            "Highest"
        );
        assert_eq!(
            run(&format!(".p | value_map({jira})"), r#"{"p":1}"#),
            "Highest",
            "numbers look up as text"
        );
        assert_eq!(run(&format!(".p | value_map({jira})"), r#"{"p":"5"}"#), "5");
        assert_eq!(
            run(
                &format!(r#".p | value_map({jira}; "Medium")"#),
                r#"{"p":"5"}"#
            ),
            "Medium"
        );
        assert_eq!(run(".s | truncate(5)", r#"{"s":"abcdefgh"}"#), "abcd…");
        assert_eq!(run(".s | truncate(5)", r#"{"s":"abcde"}"#), "abcde");
        assert_eq!(
            run(".t | snow_to_iso", r#"{"t":"2026-11-28 08:12:44"}"#),
            "2026-11-28T08:12:44Z"
        );
        assert_eq!(
            run(
                r#".t | reformat_date("%d.%m.%Y"; "%Y-%m-%d")"#,
                r#"{"t":"28.11.2026"}"#
            ),
            "2026-11-28"
        );
    }

    #[test]
    fn native_helpers_match_their_jq_definitions() {
        let jq_defs = r#"
            def vm1($m): (tostring) as $k | if $m | has($k) then $m[$k] else . end;
            def vm2($m; $d): (tostring) as $k | if $m | has($k) then $m[$k] else $d end;
            def rd($in; $out): strptime($in) | mktime | strftime($out);
        "#;
        let map =
            r#"{"1": "Highest", "true": "yes", "null": "none", "{\"a\":1}": "obj", "x": null}"#;
        for input in [
            r#""1""#,
            "1",
            "true",
            "null",
            r#""x""#,
            "2.5",
            r#"{"a":1}"#,
            r#""7""#,
        ] {
            let doc = format!(r#"{{"v": {input}}}"#);
            for (native, defined) in [
                (format!(".v | value_map({map})"), format!(".v | vm1({map})")),
                (
                    format!(r#".v | value_map({map}; "dflt")"#),
                    format!(r#".v | vm2({map}; "dflt")"#),
                ),
            ] {
                assert_eq!(
                    run(&native, &doc),
                    run(&format!("{jq_defs} {defined}"), &doc),
                    "{native} on {input}"
                );
            }
        }
        for (date, from, to) in [
            (
                "2026-11-28 08:12:44",
                "%Y-%m-%d %H:%M:%S",
                "%Y-%m-%dT%H:%M:%SZ",
            ),
            ("28.11.2026", "%d.%m.%Y", "%A %d %B %Y"),
        ] {
            let doc = format!(r#"{{"t": "{date}"}}"#);
            assert_eq!(
                run(&format!(r#".t | reformat_date("{from}"; "{to}")"#), &doc),
                run(&format!(r#"{jq_defs} .t | rd("{from}"; "{to}")"#), &doc),
                "{date}"
            );
        }
        // Unlike jq's strptime | mktime, which drops the offset.
        assert_eq!(
            run(
                r#".t | reformat_date("%Y-%m-%dT%H:%M:%S%:z"; "%H:%M")"#,
                r#"{"t": "2026-11-28T08:12:44+02:00"}"#
            ),
            "06:12",
            "an offset is converted to UTC"
        );
        let fails = |program: &str| {
            JqProgram::compile(program)
                .expect("compiles")
                .first(&val(r#"{"t": "not a date", "v": "1"}"#))
        };
        assert!(matches!(
            fails(r#".t | reformat_date("%Y-%m-%d"; "%Y")"#),
            Err(JqError::Runtime(m)) if m.contains("reformat_date")
        ));
        assert!(matches!(
            fails(r#".v | value_map(["not", "an object"])"#),
            Err(JqError::Runtime(m)) if m.contains("must be an object")
        ));
    }

    #[test]
    fn helpers_do_not_shift_error_positions() {
        let e = JqProgram::compile(".a |").expect_err("invalid");
        assert!(matches!(e, JqError::Compile { line: 1, .. }), "{e:?}");
    }

    #[test]
    fn global_variables_take_their_values() {
        let p = JqProgram::compile_with_vars(
            r#"{key: $link, loc: $headers.location, n: .n}"#,
            &["link", "headers"],
        )
        .expect("compiles");
        assert_eq!(p.vars(), ["link", "headers"]);
        let headers = string_object([("location", "/x/0"), ("location", "/x/9")]);
        assert!(p.direct().is_some(), "variables are evaluated directly");
        let out = p
            .first_json_with_vars(&val(r#"{"n": 1}"#), &[val(r#""OPS-12""#), headers])
            .expect("runs");
        assert_eq!(out, r#"{"key":"OPS-12","loc":"/x/9","n":1}"#);
        // Values not given are null, also through the methods without values.
        assert_eq!(
            p.first_json_with_vars(&val("{}"), &[val(r#""A""#)])
                .expect("runs"),
            r#"{"key":"A","loc":null,"n":null}"#
        );
        assert_eq!(
            p.first_json(&val("{}")).expect("runs"),
            r#"{"key":null,"loc":null,"n":null}"#
        );
        assert_eq!(
            JqProgram::compile_with_vars(r#""OPS-\($link)""#, &["link"])
                .expect("compiles")
                .first_text_with_vars(&val("{}"), &[val(r#""12""#)])
                .expect("text"),
            "OPS-12"
        );
    }

    #[test]
    fn undeclared_variable_does_not_compile() {
        let e = JqProgram::compile("{a: $link}").expect_err("undefined");
        assert!(
            matches!(&e, JqError::Compile { message, .. } if message.contains("$link")),
            "{e:?}"
        );
        assert!(JqProgram::compile_with_vars("$other", &["link"]).is_err());
    }

    #[test]
    fn variables_and_direct_evaluation() {
        let p = JqProgram::compile_with_vars("{a: .a}", &["link"]).expect("compiles");
        assert!(p.direct().is_some());
        assert!(!p.mentions_var("link"));
        let interpolated =
            JqProgram::compile_with_vars(r#"{k: "OPS-\($link)", a}"#, &["link"]).expect("compiles");
        assert_eq!(
            interpolated.direct_json(&val(r#"{"a":1}"#), &[val(r#""7""#)]),
            Some(r#"{"k":"OPS-7","a":1}"#.into())
        );
        // Direct evaluation gives no answer where jaq raises an error.
        let field = JqProgram::compile_with_vars("$link.x", &["link"]).expect("compiles");
        assert_eq!(field.direct_json(&val("{}"), &[val(r#""s""#)]), None);
        assert!(
            field
                .first_json_with_vars(&val("{}"), &[val(r#""s""#)])
                .is_err()
        );
        assert_eq!(
            p.first_json_with_vars(&val(r#"{"a":2}"#), &[val(r#""x""#)])
                .expect("runs"),
            r#"{"a":2}"#
        );
        // A plain path that is really a variable is not read from the text.
        let v = JqProgram::compile_with_vars("$link", &["link"]).expect("compiles");
        assert!(v.mentions_var("link"));
        assert_eq!(v.text_from_json(r#"{"link":"no"}"#), None);
        assert!(
            !JqProgram::compile_with_vars("$linked", &["link", "linked"])
                .expect("compiles")
                .mentions_var("link")
        );
        // A program's own `$link` binding shadows the global one.
        let own =
            JqProgram::compile_with_vars(". as $link | $link.a", &["link"]).expect("compiles");
        assert_eq!(
            own.first_json_with_vars(&val(r#"{"a":3}"#), &[val(r#""x""#)])
                .expect("runs"),
            "3"
        );
    }

    #[test]
    fn runtime_error_is_reported() {
        let p = JqProgram::compile(r#"error("boom")"#).expect("compiles");
        assert!(matches!(p.first(&val("{}")), Err(JqError::Runtime(_))));
    }
}
