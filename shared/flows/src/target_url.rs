//! Where a request to a target goes: the record's path joined under the
//! target's base URL, refused when it could leave it (another scheme, host
//! or port, or a path above the base path), and header values refused when
//! they could split a header (CR, LF or another control character).
//!
//! Transform checks every rendered path and header value (a mapping error,
//! dead-lettered there); delivery checks again before sending, since a
//! deliveries topic may hold records some other producer wrote.

use percent_encoding::percent_decode_str;
use url::Url;

/// Characters of a refused path quoted in its error.
const SHOWN_CHARS: usize = 120;

/// Why a request's path or header value is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsafeRequest {
    /// The path could leave the target's base URL, or is malformed.
    #[error("path {path:?} refused: it {why}")]
    Path {
        /// The path (its start, when long).
        path: String,
        /// What is wrong.
        why: &'static str,
    },
    /// A header value holds a line break or another control character.
    #[error("header value refused: it holds a line break or another control character")]
    HeaderValue,
    /// A header that intops sets, or that steers where the request goes.
    #[error("header {0:?} refused: intops sets it (or it steers where the request goes)")]
    ReservedHeader(String),
}

/// Headers a flow or record may not set: intops sets them (credentials,
/// Idempotency-Key, body framing), or they steer the request elsewhere.
const RESERVED_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "idempotency-key",
    "content-type",
    "content-length",
    "transfer-encoding",
    "host",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
];

/// Whether `name` is a header a flow or record may not set.
pub fn is_reserved_header(name: &str) -> bool {
    RESERVED_HEADERS
        .iter()
        .any(|r| r.eq_ignore_ascii_case(name.trim()))
}

/// Checks a request path (with an optional query): it must start with one
/// `/`, and hold no dot segment (`.`, `..`, also percent-encoded or
/// before a `;`), no empty segment but a trailing one, no backslash, no
/// fragment, no whitespace or control character, and only well-formed
/// percent-escapes. Such a path stays under any base URL it is joined to.
pub fn check_path(path: &str) -> Result<(), UnsafeRequest> {
    let refuse = |why| {
        Err(UnsafeRequest::Path {
            path: path.chars().take(SHOWN_CHARS).collect(),
            why,
        })
    };
    if !path.starts_with('/') {
        return refuse("does not start with '/' (it must be relative to the target's base URL)");
    }
    if path.starts_with("//") {
        return refuse("starts with '//' (a reference to another host)");
    }
    if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return refuse("holds whitespace or a control character");
    }
    if path.contains('\\') {
        return refuse("holds a backslash (some servers read it as '/')");
    }
    if path.contains('#') {
        return refuse("holds a fragment ('#')");
    }
    if !percent_escapes_well_formed(path) {
        return refuse("holds a malformed percent-escape");
    }
    let path_part = path.split_once('?').map_or(path, |(p, _)| p);
    let segments: Vec<&str> = path_part[1..].split('/').collect();
    for (i, segment) in segments.iter().enumerate() {
        if segment.is_empty() && i + 1 < segments.len() {
            return refuse("holds an empty segment ('//')");
        }
        let decoded = percent_decode_str(segment).decode_utf8_lossy();
        if decoded.contains('\\') {
            return refuse("holds an encoded backslash");
        }
        if decoded.chars().any(char::is_control) {
            return refuse("holds an encoded control character");
        }
        // A server that decodes `%2F` before resolving dot segments sees
        // every piece; `..;` is `..` to some servlet containers.
        let dot = decoded.split('/').any(|piece| {
            let piece = piece.split(';').next().unwrap_or_default();
            piece == "." || piece == ".."
        });
        if dot {
            return refuse("holds a dot segment ('.' or '..', also percent-encoded)");
        }
    }
    Ok(())
}

/// `path` (checked by [`check_path`]) joined under `base`: the base's
/// scheme, host and port, the base path followed by `path`.
pub fn join(base: &Url, path: &str) -> Result<Url, UnsafeRequest> {
    check_path(path)?;
    let (path_part, query) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    let base_path = base.path().trim_end_matches('/');
    let mut url = base.clone();
    url.set_fragment(None);
    url.set_path(&format!("{base_path}{path_part}"));
    url.set_query(query);
    // The checks above make this hold; it is checked again on the result.
    let stays = url.scheme() == base.scheme()
        && url.host() == base.host()
        && url.port_or_known_default() == base.port_or_known_default()
        && url.path().starts_with(&format!("{base_path}/"));
    if !stays {
        return Err(UnsafeRequest::Path {
            path: path.chars().take(SHOWN_CHARS).collect(),
            why: "leaves the target's base URL",
        });
    }
    Ok(url)
}

/// Checks a header value: no CR, LF, NUL or other control character but
/// horizontal tab (RFC 9110 field values).
pub fn check_header_value(value: &str) -> Result<(), UnsafeRequest> {
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(UnsafeRequest::HeaderValue);
    }
    Ok(())
}

/// Parses a target's base URL: `http` or `https`, a host, no user
/// information (credentials go in `auth`), no query, no fragment.
pub fn parse_base_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{text:?} must start with http:// or https://"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{text:?} has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not hold user information (put credentials in auth)".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{text:?} must not have a query or a fragment"));
    }
    Ok(url)
}

/// Whether every `%` starts a two-hex-digit escape.
fn percent_escapes_well_formed(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.iter().enumerate().all(|(i, b)| {
        *b != b'%'
            || bytes
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(text: &str) -> Url {
        parse_base_url(text).expect("base url")
    }

    #[test]
    fn safe_paths_join_under_the_base_path() {
        let cases = [
            (
                "https://jira.example.com",
                "/rest/api/3/issue",
                "https://jira.example.com/rest/api/3/issue",
            ),
            (
                "https://jira.example.com/",
                "/x",
                "https://jira.example.com/x",
            ),
            (
                "https://h.example/api/v2",
                "/issue/OPS%2042%2Fx/comment",
                "https://h.example/api/v2/issue/OPS%2042%2Fx/comment",
            ),
            (
                "https://h.example/api/v2/",
                "/x/",
                "https://h.example/api/v2/x/",
            ),
            ("http://127.0.0.1:8090", "/", "http://127.0.0.1:8090/"),
            (
                "http://127.0.0.1:8090",
                "/search?jql=a%3Db&max=5",
                "http://127.0.0.1:8090/search?jql=a%3Db&max=5",
            ),
            (
                "https://h.example",
                "/users/@me",
                "https://h.example/users/@me",
            ),
            (
                "https://h.example",
                "/a..b/.hidden/x.json",
                "https://h.example/a..b/.hidden/x.json",
            ),
            (
                "https://h.example",
                "/caf%C3%A9/\u{e9}",
                "https://h.example/caf%C3%A9/%C3%A9",
            ),
            (
                "https://h.example",
                "/x?next=//evil/../y",
                "https://h.example/x?next=//evil/../y",
            ),
        ];
        for (b, path, want) in cases {
            let url = join(&base(b), path).unwrap_or_else(|e| panic!("{b} + {path}: {e}"));
            assert_eq!(url.as_str(), want, "{b} + {path}");
        }
    }

    /// Every path that could leave the base (or that servers read
    /// differently) is refused, whatever the base.
    #[test]
    fn hostile_paths_are_refused() {
        let hostile = [
            ("", "does not start with '/'"),
            ("@other.host/x", "does not start with '/'"),
            ("other.host/x", "does not start with '/'"),
            (".evil.example/x", "does not start with '/'"),
            (":8443/x", "does not start with '/'"),
            ("http://evil.example/x", "does not start with '/'"),
            ("https:/evil.example", "does not start with '/'"),
            ("?x=1", "does not start with '/'"),
            ("//evil.example/x", "starts with '//'"),
            ("///evil.example/x", "starts with '//'"),
            ("/../admin", "dot segment"),
            ("/a/../../admin", "dot segment"),
            ("/a/..", "dot segment"),
            ("/./x", "dot segment"),
            ("/%2e%2e/admin", "dot segment"),
            ("/%2E%2E/admin", "dot segment"),
            ("/.%2e/admin", "dot segment"),
            ("/%2e./admin", "dot segment"),
            ("/a/..%2Fadmin", "dot segment"),
            ("/a/%2e%2e%2fadmin", "dot segment"),
            ("/..;/admin", "dot segment"),
            ("/a/..;x=1/admin", "dot segment"),
            ("/\\evil.example/x", "backslash"),
            ("/a\\..\\admin", "backslash"),
            ("/a/%5c..%5cadmin", "encoded backslash"),
            ("/a/%5Cx", "encoded backslash"),
            ("/a//b", "empty segment"),
            ("/a/\r\nHost: evil", "whitespace or a control character"),
            ("/a b", "whitespace or a control character"),
            ("/a\tb", "whitespace or a control character"),
            ("/a\u{0}b", "whitespace or a control character"),
            ("/a/%0d%0aX-Evil:1", "encoded control character"),
            ("/a/%00", "encoded control character"),
            ("/a#frag", "fragment"),
            ("/a/%zz", "malformed percent-escape"),
            ("/a/%2", "malformed percent-escape"),
            ("/a?x=%", "malformed percent-escape"),
        ];
        for b in ["https://h.example", "https://h.example/api/v2"] {
            let base = base(b);
            for (path, why) in hostile {
                let e = join(&base, path).expect_err(path).to_string();
                assert!(e.contains(why), "{path:?}: {e}");
                assert!(check_path(path).is_err(), "{path:?}");
            }
        }
    }

    #[test]
    fn a_long_refused_path_is_quoted_in_part() {
        let path = format!("/../{}", "x".repeat(10_000));
        let e = check_path(&path).expect_err("dot segment").to_string();
        assert!(e.len() < 300, "{e}");
    }

    #[test]
    fn header_values_with_line_breaks_are_refused() {
        for ok in ["plain", "a\tb", "ünïcode", "", "x=1; y=\"2\""] {
            assert_eq!(check_header_value(ok), Ok(()), "{ok:?}");
        }
        for bad in [
            "a\r\nX-Evil: 1",
            "a\nb",
            "a\rb",
            "a\u{0}",
            "a\u{7f}",
            "a\u{85}",
        ] {
            assert_eq!(
                check_header_value(bad),
                Err(UnsafeRequest::HeaderValue),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn reserved_headers_are_known_in_any_case() {
        for name in [
            "Host",
            "AUTHORIZATION",
            "idempotency-key",
            "Transfer-Encoding",
        ] {
            assert!(is_reserved_header(name), "{name}");
        }
        for name in ["X-Ticket", "Accept", "X-Api-Version"] {
            assert!(!is_reserved_header(name), "{name}");
        }
    }

    #[test]
    fn base_urls_are_checked() {
        for ok in [
            "https://jira.example.com",
            "http://127.0.0.1:8090",
            "https://h.example/api/v2/",
        ] {
            assert!(parse_base_url(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("ftp://h.example", "http:// or https://"),
            ("jira.example.com", "not a URL"),
            ("https://user:pw@h.example", "user information"),
            ("https://h.example/?a=1", "query or a fragment"),
            ("https://h.example/#x", "query or a fragment"),
        ] {
            let e = parse_base_url(bad).expect_err(bad);
            assert!(e.contains(why), "{bad}: {e}");
            assert!(!e.contains("pw@"), "{e}");
        }
    }
}
