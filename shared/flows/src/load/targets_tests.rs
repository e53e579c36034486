//! Target validation tests: the `oauth2` auth form.

use crate::load_str;
use crate::model::TargetAuth;
use crate::secret::SecretRef;

/// A flows file whose target `itsm` has `auth` = `auth`.
fn with_auth(auth: &str) -> String {
    format!(
        r#"
[[sources]]
id = "app"
kind = "webhook"
auth = "none"
entity_key = ".id"

[[targets]]
id = "itsm"
base_url = "https://itsm.example"
auth = {auth}

[[flows]]
id = "app-to-itsm"
source = "app"
target = "itsm"
path = "/records"
"#
    )
}

#[test]
fn oauth2_client_credentials_are_read() {
    let flows = load_str(&with_auth(
        r#"{ oauth2 = { token_url = "https://login.example/oauth2/token?tenant=a", client_id = { env = "ITSM_ID" }, client_secret = { file = "/run/secrets/itsm" }, scope = " read:incident write:incident " } }"#,
    ))
    .expect("valid");
    let TargetAuth::OAuth2(o) = &flows.targets["itsm"].auth else {
        panic!("not oauth2: {:?}", flows.targets["itsm"].auth);
    };
    assert_eq!(o.token_url, "https://login.example/oauth2/token?tenant=a");
    assert_eq!(o.client_id, SecretRef::Env("ITSM_ID".into()));
    assert_eq!(o.client_secret, SecretRef::File("/run/secrets/itsm".into()));
    assert_eq!(o.scope.as_deref(), Some("read:incident write:incident"));

    let no_scope = load_str(&with_auth(
        r#"{ oauth2 = { token_url = "http://127.0.0.1:9000/token", client_id = { env = "I" }, client_secret = { env = "S" } } }"#,
    ))
    .expect("valid without scope");
    assert!(matches!(&no_scope.targets["itsm"].auth, TargetAuth::OAuth2(o) if o.scope.is_none()));
}

#[test]
fn oauth2_token_url_and_scope_are_checked() {
    for (token_url, scope, needle) in [
        ("login.example/token", "", "is not a URL"),
        (
            "ftp://login.example/token",
            "",
            "must start with http:// or https://",
        ),
        (
            "https://id:secret@login.example/token",
            "",
            "must not hold user information",
        ),
        (
            "https://login.example/token#x",
            "",
            "must not have a fragment",
        ),
        ("https://login.example/token", "a  b", "empty scope"),
        ("https://login.example/token", "   ", "must not be empty"),
        ("https://login.example/token", "read\"x", "is not a scope"),
        ("https://login.example/token", "réad", "is not a scope"),
    ] {
        let scope = if scope.is_empty() {
            String::new()
        } else {
            format!(", scope = {scope:?}")
        };
        let auth = format!(
            r#"{{ oauth2 = {{ token_url = {token_url:?}, client_id = {{ env = "I" }}, client_secret = {{ env = "S" }}{scope} }} }}"#
        );
        let e = load_str(&with_auth(&auth))
            .expect_err(token_url)
            .to_string();
        assert!(e.contains("targets[itsm].auth.oauth2."), "{token_url}: {e}");
        assert!(e.contains(needle), "{token_url} {scope}: {needle} in {e}");
        assert!(!e.contains("secret@"), "user information echoed: {e}");
    }
}

#[test]
fn oauth2_is_one_auth_form_among_the_others() {
    let e = load_str(&with_auth(
        r#"{ bearer = { env = "T" }, oauth2 = { token_url = "https://login.example/token", client_id = { env = "I" }, client_secret = { env = "S" } } }"#,
    ))
    .expect_err("two forms")
    .to_string();
    assert!(
        e.contains("targets[itsm].auth: set one of bearer, basic, header or oauth2, not several"),
        "{e}"
    );
    let e = load_str(&with_auth(
        r#"{ oauth2 = { token_url = "https://login.example/token", client_secret = { env = "S" } } }"#,
    ))
    .expect_err("no client id")
    .to_string();
    assert!(e.contains("client_id"), "{e}");
}
