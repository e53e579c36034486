//! The console's actions through the router, without a broker: who may
//! act, what a request must hold, and the pages' security headers.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

use crate::access::{Access, users};
use crate::api::tests::{actions, shared};

fn access() -> Access {
    let entry = |name: &str, role: &str, token: &str| {
        format!(
            "[[users]]\nname = \"{name}\"\nrole = \"{role}\"\ntoken_sha256 = \"{}\"\n",
            users::tests::hash(token)
        )
    };
    let text = format!(
        "{}{}",
        entry("olga", "operator", "olga-t"),
        entry("vic", "viewer", "vic-t")
    );
    Access {
        users: users::parse(&text).expect("users"),
        ..Access::default()
    }
}

async fn post(
    access: Access,
    uri: &str,
    token: Option<&str>,
    extra: &[(&str, &str)],
    body: &str,
) -> (StatusCode, String) {
    let router = crate::api::router(shared(), actions(access));
    let mut request = Request::post(uri).header("content-type", "application/json");
    if let Some(t) = token {
        request = request.header("authorization", format!("Bearer {t}"));
    }
    for (k, v) in extra {
        request = request.header(*k, *v);
    }
    let answer = router
        .oneshot(request.body(Body::from(body.to_string())).expect("request"))
        .await
        .expect("answer");
    let status = answer.status();
    let bytes = http_body_util::BodyExt::collect(answer.into_body())
        .await
        .expect("body")
        .to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

const PAUSE: &str = "/api/v1/targets/crm/pause";
const REASON: &str = r#"{"reason": "crm maintenance"}"#;

#[tokio::test]
async fn a_viewer_cannot_pause_resume_or_replay() {
    for (uri, body) in [
        (PAUSE, REASON),
        ("/api/v1/targets/crm/resume", REASON),
        ("/api/v1/dead-letters/replay", r#"{"dry_run": false}"#),
    ] {
        let (status, text) = post(access(), uri, Some("vic-t"), &[], body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{uri}: {text}");
        assert!(text.contains("vic is a viewer"), "{text}");
    }
}

#[tokio::test]
async fn an_operator_passes_and_reaches_the_broker() {
    // No broker in this test: 503 means every check before it passed.
    let (status, text) = post(access(), PAUSE, Some("olga-t"), &[], REASON).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{text}");
    let (status, text) = post(
        access(),
        "/api/v1/dead-letters/replay",
        Some("olga-t"),
        &[],
        r#"{"dry_run": false, "flow": "app-to-crm"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{text}");
}

/// A request (path, body, headers), the status it gets and what it says.
type Case<'a> = (
    &'a str,
    &'a str,
    &'a [(&'a str, &'a str)],
    StatusCode,
    &'a str,
);

#[tokio::test]
async fn requests_that_cannot_be_right_are_refused_with_the_reason() {
    let cases: [Case; 7] = [
        (PAUSE, "{}", &[], StatusCode::BAD_REQUEST, "reason"),
        (
            "/api/v1/targets/nope/pause",
            REASON,
            &[],
            StatusCode::NOT_FOUND,
            "no target nope",
        ),
        (
            "/api/v1/targets/crm/restart",
            REASON,
            &[],
            StatusCode::NOT_FOUND,
            "pause or resume",
        ),
        (
            "/api/v1/dead-letters/replay",
            r#"{"flow": "x"}"#,
            &[],
            StatusCode::BAD_REQUEST,
            "dry_run",
        ),
        (
            "/api/v1/dead-letters/replay",
            r#"{"dry_run": true, "flw": "x"}"#,
            &[],
            StatusCode::BAD_REQUEST,
            "unknown field `flw`",
        ),
        (
            "/api/v1/dead-letters/replay",
            r#"{"dry_run": true, "rate": 0}"#,
            &[],
            StatusCode::BAD_REQUEST,
            "rate must be",
        ),
        (
            PAUSE,
            REASON,
            &[("origin", "https://evil.example"), ("host", "monitor:9100")],
            StatusCode::FORBIDDEN,
            "cross-site",
        ),
    ];
    for (uri, body, extra, want, says) in cases {
        let (status, text) = post(access(), uri, Some("olga-t"), extra, body).await;
        assert_eq!(status, want, "{uri} {body}: {text}");
        assert!(text.contains(says), "{uri} {body}: {text}");
    }
}

#[tokio::test]
async fn without_users_actions_are_refused_and_unknown_tokens_are_not_let_in() {
    let (status, text) = post(Access::default(), PAUSE, None, &[], REASON).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
    assert!(text.contains("INTOPS_MONITOR_USERS_FILE"), "{text}");
    let (status, _) = post(access(), PAUSE, None, &[], REASON).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = post(access(), PAUSE, Some("guess"), &[], REASON).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn whoami_names_the_caller_and_pages_carry_a_strict_policy() {
    let router = crate::api::router(shared(), actions(access()));
    let answer = router
        .oneshot(
            Request::get("/api/v1/whoami")
                .header("authorization", "Bearer olga-t")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("answer");
    let policy = answer
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        policy.starts_with("default-src 'none'; style-src 'sha256-"),
        "{policy}"
    );
    assert!(!policy.contains("unsafe"), "{policy}");
    // With no-referrer, browsers send `Origin: null` on form posts, which
    // the cross-site check refuses: the console's forms would never work.
    assert_eq!(
        answer
            .headers()
            .get("referrer-policy")
            .and_then(|v| v.to_str().ok()),
        Some("same-origin")
    );
    let bytes = http_body_util::BodyExt::collect(answer.into_body())
        .await
        .expect("body")
        .to_bytes();
    let who: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
    assert_eq!(
        who,
        serde_json::json!({"name": "olga", "role": "operator", "via": "token", "may_act": true})
    );
}
