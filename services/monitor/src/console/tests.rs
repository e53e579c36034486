//! The console's sign-in and forms through the router, without a broker.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use tower::ServiceExt;

use crate::access::{Access, FormKey, Principal, Role, Via, users};
use crate::api::tests::{actions, shared};

fn access() -> Access {
    let entry = |name: &str, role: &str, token: &str| {
        format!(
            "[[users]]\nname = \"{name}\"\nrole = \"{role}\"\ntoken_sha256 = \"{}\"\n",
            users::tests::hash(token)
        )
    };
    Access {
        users: users::parse(&format!(
            "{}{}",
            entry("olga", "operator", "olga-t"),
            entry("vic", "viewer", "vic-t")
        ))
        .expect("users"),
        form_key: FormKey([7; 32]),
        ..Access::default()
    }
}

/// The form token the console gives `name`.
fn form_token(name: &str, role: Role) -> String {
    access().form_token(&Principal {
        name: name.into(),
        role,
        via: Via::Cookie,
    })
}

async fn send(request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
    let router = crate::api::router(shared(), actions(access()));
    let answer = router.oneshot(request).await.expect("answer");
    let (status, headers) = (answer.status(), answer.headers().clone());
    let bytes = http_body_util::BodyExt::collect(answer.into_body())
        .await
        .expect("body")
        .to_bytes();
    (
        status,
        headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

fn form(uri: &str, cookie: Option<&str>, body: &str) -> Request<Body> {
    let mut r =
        Request::post(uri).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        r = r.header(header::COOKIE, format!("intops_session={c}"));
    }
    r.body(Body::from(body.to_string())).expect("request")
}

#[tokio::test]
async fn signing_in_sets_a_strict_cookie_that_names_the_user() {
    let (status, headers, _) = send(form("/login", None, "token=olga-t")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let cookie = headers
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        cookie.starts_with("intops_session=olga-t; HttpOnly; SameSite=Strict; Path=/"),
        "{cookie}"
    );
    let (status, _, _) = send(form("/login", None, "token=guess")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, _, who) = send(
        Request::get("/api/v1/whoami")
            .header(header::COOKIE, "other=1; intops_session=olga-t")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(who.contains(r#""via":"cookie""#), "{who}");
    // A page without a caller asks for a sign-in; the sign-in page opens.
    let (status, _, page) = send(Request::get("/feed").body(Body::empty()).expect("request")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(page.contains(r#"href="/login""#), "{page}");
    let (status, _, page) =
        send(Request::get("/login").body(Body::empty()).expect("request")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(r#"name="token""#), "{page}");
}

#[tokio::test]
async fn a_form_acts_only_for_an_operator_with_the_pages_token() {
    let pause = "/console/targets/crm/pause";
    let olga = form_token("olga", Role::Operator);
    // No token, another user's token: refused as forgery.
    for body in [
        "reason=x".to_string(),
        format!("reason=x&form_token={}", form_token("vic", Role::Viewer)),
    ] {
        let (status, _, page) = send(form(pause, Some("olga-t"), &body)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert!(
            page.contains("form&#39;s token") || page.contains("form's token"),
            "{page}"
        );
    }
    // The viewer, even with their own token: refused for the role.
    let body = format!("reason=x&form_token={}", form_token("vic", Role::Viewer));
    let (status, _, page) = send(form(pause, Some("vic-t"), &body)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("vic is a viewer"), "{page}");
    // The operator with the page's token passes every check (no broker
    // here: 503 comes after them).
    let body = format!("reason=maintenance&form_token={olga}");
    let (status, _, page) = send(form(pause, Some("olga-t"), &body)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{page}");
    let (status, _, _) = send(form(
        "/console/replay",
        Some("olga-t"),
        &format!("form_token={olga}"),
    ))
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a replay without a previewed count"
    );
}
