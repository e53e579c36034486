//! Puts the link where transform left [`LINK_PLACEHOLDER`]: percent-encoded
//! in the path (as `{{ $link }}` would have been), as it is in header
//! values (refused when it could split a header), and JSON-string-escaped
//! in the body (the placeholder stands inside a JSON string there).
//! Delivery sends what this makes; `intops flows test` shows it.

use crate::{percent_encode, target_url};
use intops_events::{DeliveryRequest, LINK_PLACEHOLDER};

/// Why the link cannot go into a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubstitutionError {
    /// The link has characters a header value must not hold.
    #[error("the link cannot go into header {0:?}: {1}")]
    Header(String, String),
}

/// `request` with `link` in place of every placeholder.
pub fn request(
    request: &DeliveryRequest,
    link: &str,
) -> Result<DeliveryRequest, SubstitutionError> {
    let mut out = request.clone();
    out.path = in_path(&request.path, link);
    for (name, value) in &mut out.headers {
        if value.contains(LINK_PLACEHOLDER) {
            *value = in_header(name, value, link)?;
        }
    }
    out.body = in_body(&request.body, link);
    Ok(out)
}

/// The path with `link` percent-encoded in place of the placeholder.
pub fn in_path(path: &str, link: &str) -> String {
    if !path.contains(LINK_PLACEHOLDER) {
        return path.to_string();
    }
    path.replace(LINK_PLACEHOLDER, &percent_encode(link))
}

/// Header `name`'s `value` with `link` as it is in place of the
/// placeholder; refused when the result could split the header.
pub fn in_header(name: &str, value: &str, link: &str) -> Result<String, SubstitutionError> {
    let out = value.replace(LINK_PLACEHOLDER, link);
    target_url::check_header_value(&out)
        .map_err(|e| SubstitutionError::Header(name.to_string(), e.to_string()))?;
    Ok(out)
}

/// The JSON body with `link` JSON-string-escaped in place of the
/// placeholder.
pub fn in_body(body: &str, link: &str) -> String {
    if !body.contains(LINK_PLACEHOLDER) {
        return body.to_string();
    }
    body.replace(LINK_PLACEHOLDER, &json_escaped(link))
}

/// `text` as it stands inside a JSON string (escaped, without quotes).
fn json_escaped(text: &str) -> String {
    let quoted = serde_json::Value::String(text.to_string()).to_string();
    quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const P: &str = LINK_PLACEHOLDER;

    fn req(path: &str, headers: &[(&str, &str)], body: &str) -> DeliveryRequest {
        DeliveryRequest {
            tenant: None,
            event_id: "e".into(),
            flow_id: "f".into(),
            flow_version: "v".into(),
            target_id: "t".into(),
            entity_key: "k".into(),
            method: "PUT".into(),
            path: path.into(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect::<HashMap<_, _>>(),
            body: body.into(),
            created_at: 0,
            ingested_at: 0,
            link: None,
        }
    }

    #[test]
    fn the_path_gets_the_link_percent_encoded() {
        assert_eq!(
            in_path(&format!("/rest/api/3/issue/{P}"), "OPS-12"),
            "/rest/api/3/issue/OPS-12"
        );
        assert_eq!(
            in_path(&format!("/t/{P}/x/{P}"), "a/b ?#%"),
            "/t/a%2Fb%20%3F%23%25/x/a%2Fb%20%3F%23%25"
        );
        assert_eq!(in_path("/no/link", "x"), "/no/link");
    }

    #[test]
    fn the_body_gets_the_link_json_escaped() {
        let body = format!(r#"{{"key":"{P}","note":"see OPS-{P}!"}}"#);
        let out = in_body(&body, "a\"b\\c\nd");
        assert_eq!(out, r#"{"key":"a\"b\\c\nd","note":"see OPS-a\"b\\c\nd!"}"#);
        let parsed: serde_json::Value = serde_json::from_str(&out).expect("still JSON");
        assert_eq!(parsed["key"], "a\"b\\c\nd");
    }

    #[test]
    fn header_values_get_the_link_as_it_is_or_refuse_it() {
        let r = req(
            &format!("/i/{P}"),
            &[("X-Ticket", &format!("OPS {P}")), ("X-Other", "same")],
            &format!(r#"{{"k":"{P}"}}"#),
        );
        let out = request(&r, "12 3").expect("substituted");
        assert_eq!(out.path, "/i/12%203");
        assert_eq!(out.headers["X-Ticket"], "OPS 12 3");
        assert_eq!(out.headers["X-Other"], "same");
        assert_eq!(out.body, r#"{"k":"12 3"}"#);
        assert_eq!((out.method.as_str(), out.event_id.as_str()), ("PUT", "e"));

        let e = request(&r, "a\r\nX-Evil: 1").expect_err("header split");
        assert!(
            matches!(&e, SubstitutionError::Header(name, _) if name == "X-Ticket"),
            "{e}"
        );
    }
}
