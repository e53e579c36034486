//! Templates for a flow's `path` and `headers`: literal text with jq
//! expressions in `{{ }}`, evaluated against the event's payload. In a
//! path, each value is percent-encoded so it stays one path segment.

use crate::jq::{JqError, JqProgram};
use jaq_json::Val;

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
            parts.push(Part::Expr(JqProgram::compile(after[..end].trim())?));
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Self { parts })
    }

    /// Whether the template has no expression.
    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Text(_)))
    }

    /// Renders the template; `encode` percent-encodes each value.
    pub fn render(&self, input: &Val, encode: bool) -> Result<String, JqError> {
        self.render_with(encode, |p| {
            p.first_text(input)
                .map_err(|e| JqError::Output(format!("{{{{ {} }}}}: {e}", p.code())))
        })
    }

    /// [`render`](Self::render) when direct evaluation knows every value;
    /// `None` means: render it with jq.
    pub(crate) fn render_direct(&self, input: &Val, encode: bool) -> Option<String> {
        self.render_with(encode, |p| p.direct_text(input).ok_or(()))
            .ok()
    }

    /// Adds the top-level fields the template reads to `keys`; `false` when
    /// an expression needs more (see [`Direct::input_fields`]).
    ///
    /// [`Direct::input_fields`]: crate::direct::Direct::input_fields
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
    use crate::jq::parse_json;

    #[test]
    fn renders_expressions_between_literals() {
        let t = Template::compile("/rest/api/3/issue/{{ .key }}/comment").expect("compiles");
        let v = parse_json(br#"{"key":"OPS 42/x"}"#).expect("json");
        assert_eq!(
            t.render(&v, true).expect("renders"),
            "/rest/api/3/issue/OPS%2042%2Fx/comment"
        );
        assert_eq!(
            t.render(&v, false).expect("renders"),
            "/rest/api/3/issue/OPS 42/x/comment"
        );
        assert!(!t.is_literal());
        assert!(Template::compile("/plain").expect("compiles").is_literal());
    }

    #[test]
    fn bad_templates_and_values_are_errors() {
        assert!(Template::compile("/x/{{ .a").is_err());
        assert!(Template::compile("/x/{{ .a | }}").is_err());
        let t = Template::compile("/x/{{ .missing }}").expect("compiles");
        let v = parse_json(b"{}").expect("json");
        assert!(t.render(&v, true).is_err());
    }
}
