//! What a polled source may make ingest fetch: only its own origin (the
//! scheme, host and port of its configured URL), never by redirect, so its
//! secret headers go nowhere else.

use reqwest::Url;

/// A poll run refused by policy rather than failed by the network: an
/// off-origin `next` link, a redirect, or a page or record over a limit.
/// Counted as `result="refused"`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Refused(pub String);

/// `url` without credentials, query or fragment, for error messages
/// (those parts can carry tokens).
pub(crate) fn describe(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

/// Refuses `next` unless it has the origin of `configured`.
pub(crate) fn check_next(configured: &Url, next: &Url) -> Result<(), Refused> {
    if next.origin() == configured.origin() && next.origin().is_tuple() {
        return Ok(());
    }
    Err(Refused(format!(
        "the next link {} leaves the source's origin {}; not followed (the source's headers are only sent to its own origin)",
        describe(next),
        configured.origin().ascii_serialization()
    )))
}

/// The error for a 3xx answer, showing where it pointed.
pub(crate) fn redirect(status: reqwest::StatusCode, location: Option<&str>, base: &Url) -> Refused {
    let target = location
        .and_then(|l| base.join(l).ok())
        .map_or_else(|| "nowhere".to_string(), |u| describe(&u));
    Refused(format!(
        "source answered {status} redirecting to {target}; redirects are not followed"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).expect("url")
    }

    #[test]
    fn next_links_must_keep_scheme_host_and_port() {
        let base = url("https://api.example.com/search?since=x");
        for ok in [
            "https://api.example.com/search?page=2",
            "https://api.example.com:443/other",
        ] {
            assert!(check_next(&base, &url(ok)).is_ok(), "{ok}");
        }
        for bad in [
            "http://api.example.com/search",
            "https://evil.example.com/search",
            "https://api.example.com:8443/search",
            "https://api.example.com.evil.net/search",
            "https://user:pw@evil.example.com/x?token=t",
        ] {
            let e = check_next(&base, &url(bad)).expect_err(bad);
            assert!(e.0.contains("leaves the source's origin"), "{e}");
            assert!(!e.0.contains("pw") && !e.0.contains("token=t"), "{e}");
        }
        // Relative links resolve against the page URL: same origin.
        assert!(check_next(&base, &base.join("/search?page=3").expect("join")).is_ok());
        assert!(check_next(&base, &base.join("//evil.example.com/x").expect("join")).is_err());
    }

    #[test]
    fn redirects_name_their_target_without_query() {
        let base = url("https://api.example.com/search");
        let e = redirect(
            reqwest::StatusCode::TEMPORARY_REDIRECT,
            Some("https://other.example.com/x?key=secret"),
            &base,
        );
        assert!(e.0.contains("307"), "{e}");
        assert!(e.0.contains("https://other.example.com/x"), "{e}");
        assert!(!e.0.contains("secret"), "{e}");
    }
}
