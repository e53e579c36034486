//! A tenant's parameters and how they enter a template's text:
//! `{{ $params.NAME }}` standing for a whole template expression becomes
//! the value itself (in URLs, paths, headers), and `$params.NAME` anywhere
//! else (in jq programs, inside `{{ }}` expressions) becomes the value as
//! a jq literal (`"ACME"`, `3`), so a program reads it like a variable.

use toml::{Table, Value};

use super::error;
use crate::load::LoadError;

/// Parameter names and values, with what a template requires.
#[derive(Debug)]
pub(super) struct Params {
    values: Table,
}

impl Params {
    /// The tenant's `params` for `template`: every parameter the template
    /// lists is required, and only those are accepted.
    pub fn of(
        at: &str,
        template_id: &str,
        template: &Table,
        given: &Table,
        errors: &mut Vec<LoadError>,
    ) -> Option<Self> {
        let declared: Vec<&str> = template
            .get("params")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let before = errors.len();
        for name in declared
            .iter()
            .filter(|n| n.is_empty() || !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        {
            errors.push(error(
                format!("templates[{template_id}].params"),
                format!("{name:?}: a parameter name uses only letters, digits and '_'"),
            ));
        }
        for name in &declared {
            if !given.contains_key(*name) {
                errors.push(error(
                    format!("{at}.params.{name}"),
                    format!("required by template {template_id}"),
                ));
            }
        }
        for (name, value) in given {
            if !declared.contains(&name.as_str()) {
                errors.push(error(
                    format!("{at}.params.{name}"),
                    format!(
                        "template {template_id} has no parameter {name:?} (it has: {})",
                        declared.join(", ")
                    ),
                ));
            } else if matches!(
                value,
                Value::Table(_) | Value::Array(_) | Value::Datetime(_)
            ) {
                errors.push(error(
                    format!("{at}.params.{name}"),
                    "must be a string, number or boolean",
                ));
            }
        }
        (errors.len() == before).then(|| Self {
            values: given.clone(),
        })
    }

    /// Puts the values into every string of `value`; a `$params.NAME` that
    /// is not a parameter is an error at `at`.
    pub fn substitute(&self, at: &str, value: &mut Value, errors: &mut Vec<LoadError>) {
        match value {
            Value::String(s) if s.contains("$params") => match self.fill(s) {
                Ok(filled) => *s = filled,
                Err(name) => errors.push(error(
                    at,
                    format!("uses $params.{name}, which is not a parameter of its template"),
                )),
            },
            Value::Table(t) => {
                for (_, v) in t.iter_mut() {
                    self.substitute(at, v, errors);
                }
            }
            Value::Array(items) => {
                for v in items {
                    self.substitute(at, v, errors);
                }
            }
            _ => {}
        }
    }

    /// `text` with its parameters filled in; the unknown name otherwise.
    fn fill(&self, text: &str) -> Result<String, String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("$params") {
            let (before, from) = rest.split_at(start);
            let after = &from["$params".len()..];
            let Some(name_part) = after.strip_prefix('.') else {
                out.push_str(before);
                out.push_str("$params");
                rest = after;
                continue;
            };
            let len = name_part
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(name_part.len());
            let name = &name_part[..len];
            let value = self.values.get(name).ok_or_else(|| name.to_string())?;
            let tail = &name_part[len..];
            if tail.starts_with(['.', '[']) {
                // `$params.a.b`: parameters are plain values.
                return Err(format!("{name}{}", &tail[..1]));
            }
            // `{{ $params.NAME }}` as a whole expression: the value itself.
            let open = before.trim_end();
            let close = tail.trim_start();
            if open.ends_with("{{") && close.starts_with("}}") {
                out.push_str(&open[..open.len() - 2]);
                out.push_str(&raw(value));
                rest = &close[2..];
            } else {
                out.push_str(before);
                out.push_str(&literal(value));
                rest = tail;
            }
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// A value as text (a string without quotes).
fn raw(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A value as a jq literal.
fn literal(value: &Value) -> String {
    match value {
        Value::String(s) => serde_json::Value::String(s.clone()).to_string(),
        other => other.to_string(),
    }
}
