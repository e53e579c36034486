//! Templates for a flow's `path` and `headers`: literal text with jq
//! expressions in `{{ }}`, evaluated against the event's payload. In a
//! path, each value is percent-encoded so it stays one path segment, and
//! the rendered path must stay under the target's base URL; a rendered
//! header value must hold no line break (see [`crate::target_url`]).
//! A template compiled with variables (`$link`) gets their values when it
//! is rendered.

use intops_jq::{JqError, JqProgram, JqValue as Val};

/// A compiled template.
#[derive(Debug)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug)]
enum Part {
    Text(String),
    Expr(JqProgram),
}

impl Template {
    /// Compiles `text`; errors name the expression's position in `text`.
    pub fn compile(text: &str) -> Result<Self, JqError> {
        Self::compile_with_vars(text, &[])
    }

    /// [`compile`](Self::compile) with the global variables `names`
    /// (without `$`; see [`JqProgram::compile_with_vars`]).
    pub fn compile_with_vars(text: &str, names: &[&str]) -> Result<Self, JqError> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| JqError::Output(format!("unclosed {{{{ in {text:?}")))?;
            parts.push(Part::Expr(JqProgram::compile_with_vars(
                after[..end].trim(),
                names,
            )?));
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Self { parts })
    }

    /// Whether an expression mentions `$name` (see [`JqProgram::mentions_var`]).
    pub fn mentions_var(&self, name: &str) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Expr(p) if p.mentions_var(name)))
    }

    /// Whether the template has no expression.
    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Text(_)))
    }

    /// Renders the template. With `encode` it is a path: each value is
    /// percent-encoded and the result must pass
    /// [`check_path`](crate::target_url::check_path); otherwise a header
    /// value, which must pass
    /// [`check_header_value`](crate::target_url::check_header_value).
    /// A refused result is a [`JqError::Output`] (a mapping error).
    /// `values` are the variables' values (see [`JqProgram::first_with_vars`]).
    pub fn render(&self, input: &Val, values: &[Val], encode: bool) -> Result<String, JqError> {
        let out = self.render_with(encode, |p| {
            p.first_text_with_vars(input, values)
                .map_err(|e| JqError::Output(format!("{{{{ {} }}}}: {e}", p.code())))
        })?;
        check(&out, encode).map_err(|e| JqError::Output(e.to_string()))?;
        Ok(out)
    }

    /// [`render`](Self::render) when direct evaluation knows every value
    /// and the result passes its check; `None` means: render it with jq
    /// (which reports any error).
    pub(crate) fn render_direct(
        &self,
        input: &Val,
        values: &[Val],
        encode: bool,
    ) -> Option<String> {
        let out = self
            .render_with(encode, |p| p.direct_text(input, values).ok_or(()))
            .ok()?;
        check(&out, encode).ok()?;
        Some(out)
    }

    /// Adds the top-level fields the template reads to `keys`; `false` when
    /// an expression needs more (see [`JqProgram::input_fields`]).
    pub(crate) fn input_fields(&self, keys: &mut std::collections::BTreeSet<String>) -> bool {
        self.parts.iter().all(|p| match p {
            Part::Text(_) => true,
            Part::Expr(p) => p.input_fields(keys),
        })
    }

    fn render_with<E>(
        &self,
        encode: bool,
        mut value: impl FnMut(&JqProgram) -> Result<String, E>,
    ) -> Result<String, E> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Expr(p) => {
                    let value = value(p)?;
                    if encode {
                        out.push_str(&percent_encode(&value));
                    } else {
                        out.push_str(&value);
                    }
                }
            }
        }
        Ok(out)
    }
}

/// A rendered path (`as_path`) or header value, checked.
fn check(rendered: &str, as_path: bool) -> Result<(), crate::target_url::UnsafeRequest> {
    if as_path {
        crate::target_url::check_path(rendered)
    } else {
        crate::target_url::check_header_value(rendered)
    }
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
pub fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use intops_jq::parse_json;

    #[test]
    fn renders_expressions_between_literals() {
        let t = Template::compile("/rest/api/3/issue/{{ .key }}/comment").expect("compiles");
        let v = parse_json(br#"{"key":"OPS 42/x"}"#).expect("json");
        assert_eq!(
            t.render(&v, &[], true).expect("renders"),
            "/rest/api/3/issue/OPS%2042%2Fx/comment"
        );
        let header = Template::compile("{{ .key }} (ticket)").expect("compiles");
        assert_eq!(
            header.render(&v, &[], false).expect("renders"),
            "OPS 42/x (ticket)"
        );
        assert!(!t.is_literal());
        assert!(Template::compile("/plain").expect("compiles").is_literal());
    }

    #[test]
    fn variables_are_rendered_with_their_values() {
        let t = Template::compile_with_vars("/issue/{{ $link }}/c{{ .n }}", &["link"])
            .expect("compiles");
        assert!(t.mentions_var("link"));
        assert!(!t.is_literal());
        let v = parse_json(br#"{"n":1}"#).expect("json");
        let link = parse_json(br#""OPS 12""#).expect("json");
        assert_eq!(
            t.render(&v, std::slice::from_ref(&link), true)
                .expect("renders"),
            "/issue/OPS%2012/c1"
        );
        assert_eq!(
            t.render_direct(&v, std::slice::from_ref(&link), true),
            Some("/issue/OPS%2012/c1".into())
        );
        let e = t.render(&v, &[], true).expect_err("null link").to_string();
        assert!(e.contains("$link") && e.contains("null"), "{e}");
        assert!(Template::compile("/issue/{{ $link }}").is_err());
        assert!(
            !Template::compile_with_vars("/x/{{ .a }}", &["link"])
                .expect("compiles")
                .mentions_var("link")
        );
    }

    #[test]
    fn bad_templates_and_values_are_errors() {
        assert!(Template::compile("/x/{{ .a").is_err());
        assert!(Template::compile("/x/{{ .a | }}").is_err());
        let t = Template::compile("/x/{{ .missing }}").expect("compiles");
        let v = parse_json(b"{}").expect("json");
        assert!(t.render(&v, &[], true).is_err());
    }

    /// A value that would climb above the base path, or split a header,
    /// is a mapping error; direct evaluation leaves it to jq.
    #[test]
    fn values_that_leave_the_base_or_split_a_header_are_refused() {
        let path = Template::compile("/api/{{ .id }}/x").expect("compiles");
        let tail = Template::compile("/api{{ .id }}").expect("compiles");
        let header = Template::compile("t-{{ .id }}").expect("compiles");
        // A dot segment, also one a server decoding `%2F` or `%5C` would
        // see, is refused.
        for (id, why) in [
            ("..", "dot segment"),
            (".", "dot segment"),
            ("../admin", "dot segment"),
            ("a/../../b", "dot segment"),
            ("..\\admin", "encoded backslash"),
        ] {
            let v =
                parse_json(serde_json::json!({ "id": id }).to_string().as_bytes()).expect("json");
            let e = path.render(&v, &[], true).expect_err(id).to_string();
            assert!(e.contains(why), "{id}: {e}");
            assert_eq!(path.render_direct(&v, &[], true), None);
        }
        // Other values stay inside one segment, encoded.
        for id in ["%2e%2e", "@evil.example", "a/b", "//evil.example"] {
            let v =
                parse_json(serde_json::json!({ "id": id }).to_string().as_bytes()).expect("json");
            let rendered = path.render(&v, &[], true).expect(id);
            assert!(
                crate::target_url::check_path(&rendered).is_ok(),
                "{rendered}"
            );
        }
        // A value right after a literal without a '/' is still one segment
        // with the literal; an empty value makes an empty segment.
        let empty = parse_json(br#"{"id":""}"#).expect("json");
        assert!(path.render(&empty, &[], true).is_err());
        let v = parse_json(br#"{"id":".."}"#).expect("json");
        assert_eq!(tail.render(&v, &[], true).expect("one segment"), "/api..");

        let v = parse_json(br#"{"id":"1\r\nX-Evil: yes"}"#).expect("json");
        let e = header.render(&v, &[], false).expect_err("crlf").to_string();
        assert!(e.contains("header value refused"), "{e}");
        assert_eq!(header.render_direct(&v, &[], false), None);
    }
}
