//! A jq value as compact JSON text, byte for byte as jaq's `Display` writes
//! it, without going through `core::fmt` for every byte run and style:
//! transform writes every delivery request's body this way, and jaq's
//! writer cost more than building the body (docs/benchmarks.md). Numbers,
//! byte strings and text that is not valid UTF-8 are written by jaq itself.

use std::io::Write as _;

use jaq_json::Val;

/// `value` as compact JSON text, the same as `value.to_string()`.
pub(crate) fn to_json(value: &Val) -> String {
    let mut out = Vec::with_capacity(256);
    write(value, &mut out);
    // Only UTF-8 is written: valid strings as they are, the rest by jaq's
    // Display, which replaces invalid sequences.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn write(value: &Val, out: &mut Vec<u8>) {
    match value {
        Val::Null => out.extend_from_slice(b"null"),
        Val::Bool(true) => out.extend_from_slice(b"true"),
        Val::Bool(false) => out.extend_from_slice(b"false"),
        Val::TStr(s) if std::str::from_utf8(s).is_ok() => string(s, out),
        Val::Arr(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out);
            }
            out.push(b']');
        }
        Val::Obj(entries) => {
            out.push(b'{');
            for (i, (key, item)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(key, out);
                out.push(b':');
                write(item, out);
            }
            out.push(b'}');
        }
        // Writing to a Vec cannot fail.
        other => drop(write!(out, "{other}")),
    }
}

/// A valid UTF-8 string with jaq's escapes: `\b \f \t \n \r \\ \"`, and
/// `\u00xx` for the other control characters and DEL.
fn string(s: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    let mut start = 0;
    for (i, &c) in s.iter().enumerate() {
        let escape: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\t' => b"\\t",
            b'\r' => b"\\r",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f | 0x7f => b"",
            _ => continue,
        };
        out.extend_from_slice(&s[start..i]);
        if escape.is_empty() {
            drop(write!(out, "\\u{c:04x}"));
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&s[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::program::parse_json;

    #[test]
    fn writes_what_jaq_writes() {
        let every_ascii: String = (0u8..=0x7f).map(char::from).collect();
        let mut values = vec![
            Val::from(every_ascii.clone()),
            Val::from(format!("ü€😀 {every_ascii} end")),
            Val::utf8_str(vec![b'a', 0xff, b'"', 0xc3]),
            Val::byte_str(vec![b'a', 0xff, b'\n']),
            Val::from(f64::NAN),
            Val::from(f64::INFINITY),
            Val::from(-0.5),
            Val::from(1e300),
            Val::from(-7isize),
        ];
        for json in [
            "null",
            "true",
            "[]",
            "{}",
            r#"{"a": [1, 2.50, -3e5, 100000000000000000000000001, 0.1], "b": {"c": null, "d": false}}"#,
            r#"{"q\"uote": "back\\slash", "tab\t": "\u0001\u001f\u007f\u0080", "": ""}"#,
            r#"[[[]], [{}], {"x": [{"y": "z"}]}]"#,
        ] {
            values.push(parse_json(json.as_bytes()).expect(json));
        }
        let nested = Val::from_iter(values.clone());
        values.push(nested);
        for v in values {
            assert_eq!(to_json(&v), v.to_string(), "{v:?}");
        }
    }
}
