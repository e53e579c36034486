//! The nesting guard for JSON text: every stage that parses an event's
//! payload (ingest at the door, transform before jq) refuses text nested
//! deeper than a limit, so no recursive parser downstream can overflow
//! its stack on one record.

/// The default nesting limit (objects and arrays counted together).
pub const DEFAULT_MAX_JSON_DEPTH: usize = 64;

/// Whether `text` nests objects and arrays deeper than `limit`. Brackets
/// inside strings do not count; the text need not be valid JSON (a parser
/// reports that), so this is a cheap single pass before any parse.
pub fn exceeds_depth(text: &[u8], limit: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in text {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_objects_and_arrays_outside_strings() {
        assert!(!exceeds_depth(br#"{"a":[{"b":1}]}"#, 3));
        assert!(exceeds_depth(br#"{"a":[{"b":1}]}"#, 2));
        assert!(!exceeds_depth(br#"{"a":"[[[[[[{{{{"}"#, 1));
        assert!(!exceeds_depth(br#"{"a":"\"[[[["}"#, 1));
        assert!(!exceeds_depth(b"42", 0));
    }

    #[test]
    fn deep_text_is_caught_without_recursion() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(exceeds_depth(deep.as_bytes(), DEFAULT_MAX_JSON_DEPTH));
        let ok = format!("{}{}", "[".repeat(64), "]".repeat(64));
        assert!(!exceeds_depth(ok.as_bytes(), DEFAULT_MAX_JSON_DEPTH));
    }
}
