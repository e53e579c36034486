//! Fields masked wherever the monitor shows a payload or request body:
//! a source's `redact` and a target's `redact` list plain jq paths
//! (`.caller.email`, `.items[].card`, `.fields["api key"]`); each value they
//! reach is replaced by [`MASK`].

use serde_json::Value;

/// What a masked value shows.
pub const MASK: &str = "***";

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// An object's field.
    Field(String),
    /// An array's element.
    Index(usize),
    /// Every element of an array, or every value of an object.
    Each,
}

/// A plain jq path to mask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    text: String,
    steps: Vec<Step>,
}

impl FieldPath {
    /// Reads `.a.b`, `.a[0]`, `.a[]`, `.a["b c"]`; anything else (a
    /// filter, a pipe, a function) is refused with the reason.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let bad = |why: &str| {
            Err(format!(
                "{t:?} is not a plain path ({why}); write .field, .a.b, .list[], .list[0] or .[\"a key\"]"
            ))
        };
        if !t.starts_with('.') || t == "." {
            return bad("it must start with a field after the dot");
        }
        let chars: Vec<char> = t.chars().collect();
        let mut steps = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '.' => {
                    let start = i + 1;
                    let mut end = start;
                    while end < chars.len() && (chars[end].is_alphanumeric() || chars[end] == '_') {
                        end += 1;
                    }
                    if end == start {
                        if chars.get(start) == Some(&'[') {
                            i = start;
                            continue;
                        }
                        return bad("a dot without a field");
                    }
                    steps.push(Step::Field(chars[start..end].iter().collect()));
                    i = end;
                }
                '[' => {
                    let close = match chars[i..].iter().position(|c| *c == ']') {
                        Some(n) => i + n,
                        None => return bad("an unclosed ["),
                    };
                    let inner: String = chars[i + 1..close].iter().collect();
                    let inner = inner.trim();
                    if inner.is_empty() {
                        steps.push(Step::Each);
                    } else if let Ok(n) = inner.parse::<usize>() {
                        steps.push(Step::Index(n));
                    } else if inner.len() >= 2 && inner.starts_with('"') && inner.ends_with('"') {
                        steps.push(Step::Field(inner[1..inner.len() - 1].to_string()));
                    } else {
                        return bad("inside [] only a number, nothing or a quoted key");
                    }
                    i = close + 1;
                }
                _ => return bad("only fields, [n], [] and [\"key\"] after the first dot"),
            }
        }
        Ok(Self {
            text: t.to_string(),
            steps,
        })
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the path reaches into (or is) the top-level field `key`.
    pub fn covers_top_level(&self, key: &str) -> bool {
        match self.steps.first() {
            Some(Step::Field(name)) => name == key,
            Some(Step::Each) => true,
            Some(Step::Index(_)) | None => false,
        }
    }

    /// Replaces every value the path reaches in `value` with [`MASK`].
    pub fn mask(&self, value: &mut Value) {
        mask_at(value, &self.steps);
    }
}

fn mask_at(value: &mut Value, steps: &[Step]) {
    let Some((step, rest)) = steps.split_first() else {
        *value = Value::String(MASK.into());
        return;
    };
    match (step, value) {
        (Step::Field(name), Value::Object(map)) => {
            if let Some(v) = map.get_mut(name) {
                mask_at(v, rest);
            }
        }
        (Step::Index(n), Value::Array(items)) => {
            if let Some(v) = items.get_mut(*n) {
                mask_at(v, rest);
            }
        }
        (Step::Each, Value::Array(items)) => items.iter_mut().for_each(|v| mask_at(v, rest)),
        (Step::Each, Value::Object(map)) => map.values_mut().for_each(|v| mask_at(v, rest)),
        _ => {}
    }
}

/// Masks every path of `paths` in `value`.
pub fn mask_all(paths: &[FieldPath], value: &mut Value) {
    for p in paths {
        p.mask(value);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn masked(paths: &[&str], mut v: Value) -> Value {
        let paths: Vec<FieldPath> = paths
            .iter()
            .map(|p| FieldPath::parse(p).expect(p))
            .collect();
        mask_all(&paths, &mut v);
        v
    }

    #[test]
    fn each_reached_value_is_masked_and_nothing_else() {
        let v = json!({
            "caller": {"email": "a@b.c", "name": "Ann"},
            "items": [{"card": "4111", "n": 1}, {"card": {"deep": true}, "n": 2}],
            "fields": {"api key": "k", "x": 1},
            "tags": ["a", "b"],
        });
        assert_eq!(
            masked(
                &[
                    ".caller.email",
                    ".items[].card",
                    ".fields[\"api key\"]",
                    ".tags[1]",
                    ".missing.x"
                ],
                v
            ),
            json!({
                "caller": {"email": "***", "name": "Ann"},
                "items": [{"card": "***", "n": 1}, {"card": "***", "n": 2}],
                "fields": {"api key": "***", "x": 1},
                "tags": ["a", "***"],
            })
        );
        assert_eq!(masked(&[".a"], json!("text")), json!("text"));
        assert_eq!(
            masked(&[".[]"], json!({"a": 1, "b": [2]})),
            json!({"a": "***", "b": "***"})
        );
    }

    #[test]
    fn anything_but_a_plain_path_is_refused() {
        for bad in [
            "", ".", "caller", ".a | .b", ".a[", ".a[x]", ".a.", "..a", ".a.b?", "del(.a)",
        ] {
            let e = FieldPath::parse(bad).expect_err(bad);
            assert!(e.contains("not a plain path"), "{bad}: {e}");
        }
    }
}
