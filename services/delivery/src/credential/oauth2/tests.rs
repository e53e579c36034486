//! OAuth2 tests: attempts through [`crate::client::attempt`] against an
//! in-process token endpoint and target on 127.0.0.1, counting the
//! requests each received. Time is a hand-moved clock.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State as Shared;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use intops_events::DeliveryRequest;
use intops_flows::StatusSet;
use intops_runtime::Secret;
use url::Url;

use super::{AuthStyle, Clock, Settings, TokenSource, parse_token, refresh_margin};
use crate::client::{Attempt, attempt, http_client};
use crate::credential::Credential;

const CLIENT_ID: &str = "intops-client";
const CLIENT_SECRET: &str = "s3cr3t/+&=value";

/// Which client authentication the token endpoint accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Accepts {
    Any,
    Basic,
    Post,
}

/// The token endpoint's and the target's shared state.
struct State {
    accepts: Accepts,
    /// Answered before issuing tokens: (status, body).
    token_script: VecDeque<(u16, String)>,
    /// `expires_in` of issued tokens.
    expires_in: Option<u64>,
    /// Token requests received, by the style they used.
    token_requests: Vec<&'static str>,
    /// Tokens the target accepts.
    valid: HashSet<String>,
    /// The target refuses every token, also new ones.
    refuse_all: bool,
    /// Requests the target received, with their bearer token.
    target_requests: Vec<String>,
    /// The scope of the last token request.
    scope: Option<String>,
}

#[derive(Clone)]
struct Mock(Arc<Mutex<State>>);

impl Mock {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().expect("state")
    }

    fn token_requests(&self) -> usize {
        self.state().token_requests.len()
    }

    fn target_requests(&self) -> usize {
        self.state().target_requests.len()
    }

    /// The target refuses every token issued so far (revoked).
    fn revoke_all(&self) {
        self.state().valid.clear();
    }
}

/// The token endpoint: issues `tok-<n>` to a client that authenticates as
/// it accepts, else 401 `invalid_client` echoing what it got (a careless
/// server), after answering its script.
async fn token_endpoint(
    Shared(mock): Shared<Mock>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, String) {
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let basic = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let decode = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let by_basic = basic
        .as_deref()
        .and_then(|b| b.split_once(':'))
        .is_some_and(|(id, s)| decode(id) == CLIENT_ID && decode(s) == CLIENT_SECRET);
    let by_post = form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
        && form.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET);
    let mut state = mock.state();
    state.token_requests.push(if basic.is_some() {
        "basic"
    } else if form.contains_key("client_secret") {
        "post"
    } else {
        "none"
    });
    state.scope = form.get("scope").cloned();
    if let Some((status, body)) = state.token_script.pop_front() {
        return (StatusCode::from_u16(status).expect("status"), body);
    }
    let accepted = form.get("grant_type").map(String::as_str) == Some("client_credentials")
        && match state.accepts {
            Accepts::Any => by_basic || by_post,
            Accepts::Basic => by_basic,
            Accepts::Post => by_post && basic.is_none(),
        };
    if !accepted {
        let echo = format!(
            r#"{{"error":"invalid_client","error_description":"bad client, got {} and {body}"}}"#,
            headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
        );
        return (StatusCode::UNAUTHORIZED, echo);
    }
    let token = format!("tok-{}", state.token_requests.len());
    state.valid.insert(token.clone());
    let expires = state
        .expires_in
        .map(|e| format!(r#","expires_in":{e}"#))
        .unwrap_or_default();
    (
        StatusCode::OK,
        format!(r#"{{"access_token":"{token}","token_type":"Bearer"{expires}}}"#),
    )
}

/// The target: 201 for a valid bearer token, else 401 echoing the header.
async fn target(Shared(mock): Shared<Mock>, headers: HeaderMap) -> (StatusCode, String) {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let mut state = mock.state();
    let token = auth.strip_prefix("Bearer ").unwrap_or_default().to_string();
    state.target_requests.push(token.clone());
    if !state.refuse_all && state.valid.contains(&token) {
        (StatusCode::CREATED, "{}".into())
    } else {
        (StatusCode::UNAUTHORIZED, format!("rejected {auth}"))
    }
}

/// A manual clock.
#[derive(Clone)]
struct Hands {
    start: Instant,
    offset_ms: Arc<AtomicU64>,
}

impl Hands {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            offset_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    fn set(&self, elapsed: Duration) {
        self.offset_ms.store(
            u64::try_from(elapsed.as_millis()).expect("ms"),
            std::sync::atomic::Ordering::SeqCst,
        );
    }

    fn clock(&self) -> Clock {
        let hands = self.clone();
        Arc::new(move || {
            hands.start
                + Duration::from_millis(hands.offset_ms.load(std::sync::atomic::Ordering::SeqCst))
        })
    }
}

/// A running token endpoint and target, and a credential using them.
struct Setup {
    mock: Mock,
    base_url: Url,
    http: reqwest::Client,
    credential: Arc<Credential>,
    hands: Hands,
}

impl Setup {
    async fn start(accepts: Accepts, expires_in: Option<u64>, style: Option<AuthStyle>) -> Self {
        let mock = Mock(Arc::new(Mutex::new(State {
            accepts,
            token_script: VecDeque::new(),
            expires_in,
            token_requests: Vec::new(),
            valid: HashSet::new(),
            refuse_all: false,
            target_requests: Vec::new(),
            scope: None,
        })));
        let app = axum::Router::new()
            .route("/oauth/token", axum::routing::post(token_endpoint))
            .fallback(target)
            .with_state(mock.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        let hands = Hands::new();
        let settings = Settings {
            target: "itsm".into(),
            token_url: Url::parse(&format!("http://{addr}/oauth/token")).expect("url"),
            client_id: Secret::new(CLIENT_ID),
            client_secret: Secret::new(CLIENT_SECRET),
            scope: Some("incident.write".into()),
            style,
        };
        let timeout = Duration::from_secs(10);
        let source = TokenSource::with_clock(
            settings,
            http_client(timeout, 1).expect("client"),
            hands.clock(),
        );
        Self {
            mock,
            base_url: Url::parse(&format!("http://{addr}/api")).expect("url"),
            http: http_client(timeout, 16).expect("client"),
            credential: Arc::new(Credential::OAuth2(Box::new(source))),
            hands,
        }
    }

    async fn attempt(&self) -> Attempt {
        attempt(
            &self.http,
            &self.base_url,
            &self.credential,
            &StatusSet::default(),
            &request(),
            false,
        )
        .await
    }
}

fn request() -> DeliveryRequest {
    DeliveryRequest {
        tenant: None,
        link: None,
        event_id: "e1".into(),
        flow_id: "app-to-itsm".into(),
        flow_version: "v1".into(),
        target_id: "itsm".into(),
        entity_key: "k1".into(),
        method: "POST".into(),
        path: "/records".into(),
        headers: HashMap::new(),
        body: "{}".into(),
        created_at: 1,
        ingested_at: 0,
    }
}

fn delivered(a: &Attempt) -> bool {
    matches!(a, Attempt::Delivered { status: 201, .. })
}

#[tokio::test]
async fn a_token_is_fetched_once_and_reused() {
    let s = Setup::start(Accepts::Any, Some(3600), None).await;
    for _ in 0..3 {
        let a = s.attempt().await;
        assert!(delivered(&a), "{a:?}");
    }
    assert_eq!(s.mock.token_requests(), 1);
    assert_eq!(s.mock.state().target_requests, ["tok-1", "tok-1", "tok-1"]);
    assert_eq!(s.mock.state().scope.as_deref(), Some("incident.write"));
}

#[tokio::test]
async fn a_token_is_refreshed_before_it_expires() {
    // 100 s: refreshed when less than 30 s remain, at 70 s.
    let s = Setup::start(Accepts::Any, Some(100), None).await;
    assert!(delivered(&s.attempt().await));
    s.hands.set(Duration::from_secs(69));
    assert!(delivered(&s.attempt().await));
    assert_eq!(s.mock.token_requests(), 1, "still fresh at 69 s");
    s.hands.set(Duration::from_secs(71));
    assert!(delivered(&s.attempt().await));
    assert_eq!(s.mock.token_requests(), 2, "refreshed at 71 s");
    assert_eq!(s.mock.state().target_requests, ["tok-1", "tok-1", "tok-2"]);
}

#[tokio::test]
async fn a_token_without_expiry_is_kept_until_a_401() {
    let s = Setup::start(Accepts::Any, None, None).await;
    assert!(delivered(&s.attempt().await));
    s.hands.set(Duration::from_secs(365 * 24 * 3600));
    assert!(delivered(&s.attempt().await));
    assert_eq!(s.mock.token_requests(), 1);
    s.mock.revoke_all();
    assert!(delivered(&s.attempt().await));
    assert_eq!(s.mock.token_requests(), 2);
}

#[tokio::test]
async fn a_401_is_answered_by_one_refresh_and_one_more_send() {
    let s = Setup::start(Accepts::Any, Some(3600), None).await;
    assert!(delivered(&s.attempt().await));
    s.mock.revoke_all();
    let a = s.attempt().await;
    assert!(delivered(&a), "{a:?}");
    assert_eq!(s.mock.token_requests(), 2, "one refresh");
    assert_eq!(
        s.mock.state().target_requests,
        ["tok-1", "tok-1", "tok-2"],
        "the rejected send and one more"
    );
}

#[tokio::test]
async fn a_second_401_is_the_attempts_answer() {
    let s = Setup::start(Accepts::Any, Some(3600), None).await;
    assert!(delivered(&s.attempt().await));
    s.mock.state().refuse_all = true;
    let a = s.attempt().await;
    assert_eq!(a.status(), Some(401), "{a:?}");
    assert!(matches!(a, Attempt::Permanent { .. }), "{a:?}");
    assert_eq!(s.mock.token_requests(), 2, "exactly one refresh");
    assert_eq!(s.mock.target_requests(), 3, "exactly one more send");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_share_one_token_request() {
    let s = Arc::new(Setup::start(Accepts::Any, Some(3600), None).await);
    let mut all = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let s = s.clone();
        all.spawn(async move { s.attempt().await });
    }
    while let Some(a) = all.join_next().await {
        let a = a.expect("joined");
        assert!(delivered(&a), "{a:?}");
    }
    assert_eq!(s.mock.token_requests(), 1);

    // Sixteen requests rejected with the same token: one refresh.
    s.mock.revoke_all();
    for _ in 0..16 {
        let s = s.clone();
        all.spawn(async move { s.attempt().await });
    }
    while let Some(a) = all.join_next().await {
        let a = a.expect("joined");
        assert!(delivered(&a), "{a:?}");
    }
    assert_eq!(s.mock.token_requests(), 2);
}

#[tokio::test]
async fn a_refused_client_is_the_targets_401_and_no_secret_shows() {
    let s = Setup::start(Accepts::Basic, Some(3600), Some(AuthStyle::Post)).await;
    let a = s.attempt().await;
    assert_eq!(a.status(), Some(401), "{a:?}");
    assert!(matches!(a, Attempt::Permanent { .. }), "{a:?}");
    let reason = a.reason().expect("reason");
    assert!(
        reason.starts_with("token endpoint answered 401 (invalid_client: bad client"),
        "{reason}"
    );
    let excerpt = a.excerpt().expect("excerpt");
    let encoded: String = url::form_urlencoded::byte_serialize(CLIENT_SECRET.as_bytes()).collect();
    for text in [reason, excerpt] {
        assert!(text.contains("***"), "the echo is redacted: {text}");
        assert!(!text.contains(CLIENT_SECRET), "{text}");
        assert!(!text.contains(&encoded), "{text}");
    }
    assert_eq!(s.mock.target_requests(), 0, "nothing sent without a token");
    assert_eq!(s.mock.token_requests(), 1, "a fixed style is not switched");
}

#[tokio::test]
async fn an_echoed_token_is_redacted() {
    let s = Setup::start(Accepts::Any, Some(3600), None).await;
    assert!(delivered(&s.attempt().await));
    // A target that rejects the refreshed token too, echoing it.
    s.mock.state().refuse_all = true;
    let a = s.attempt().await;
    let excerpt = a.excerpt().expect("excerpt");
    assert_eq!(excerpt, "rejected Bearer ***");
    assert_eq!(s.credential.redact("tok-1 and tok-2"), "*** and ***");
}

#[tokio::test]
async fn the_client_authentication_style_is_detected_and_kept() {
    let s = Setup::start(Accepts::Post, Some(100), None).await;
    let a = s.attempt().await;
    assert!(delivered(&a), "{a:?}");
    assert_eq!(s.mock.state().token_requests, ["basic", "post"]);
    s.hands.set(Duration::from_secs(80));
    assert!(delivered(&s.attempt().await));
    assert_eq!(
        s.mock.state().token_requests,
        ["basic", "post", "post"],
        "post from then on"
    );

    let s = Setup::start(Accepts::Basic, Some(100), None).await;
    assert!(delivered(&s.attempt().await));
    assert_eq!(s.mock.state().token_requests, ["basic"]);

    // Neither works: the reason says both were tried.
    let s = Setup::start(Accepts::Post, Some(100), Some(AuthStyle::Basic)).await;
    assert_eq!(s.attempt().await.status(), Some(401));
    assert_eq!(
        s.mock.state().token_requests,
        ["basic"],
        "fixed: not switched"
    );
    let s = Setup::start(Accepts::Any, Some(100), None).await;
    s.mock.state().token_script = [(401, String::new()), (400, String::new())].into();
    let a = s.attempt().await;
    assert_eq!(a.status(), Some(401), "{a:?}");
    assert_eq!(
        a.reason().expect("reason"),
        "token endpoint answered 400 (credentials in the form body; in a Basic header it answered 401); no token, handled as the target's 401"
    );
}

#[tokio::test]
async fn an_unavailable_token_endpoint_makes_a_retryable_attempt() {
    let s = Setup::start(Accepts::Any, Some(100), None).await;
    s.mock.state().token_script =
        [(503, r#"{"error":"temporarily_unavailable"}"#.to_string())].into();
    let a = s.attempt().await;
    assert!(
        matches!(&a, Attempt::Retryable { status: None, reason, .. }
            if reason == "token endpoint answered 503 (temporarily_unavailable)"),
        "{a:?}"
    );
    assert_eq!(s.mock.target_requests(), 0);
    // The next attempt gets a token.
    assert!(delivered(&s.attempt().await));
    assert_eq!(s.mock.token_requests(), 2);

    // A failed refresh keeps the still-valid token, and waits before
    // asking again.
    s.hands.set(Duration::from_secs(75));
    s.mock.state().token_script = [(500, String::new())].into();
    assert!(delivered(&s.attempt().await));
    assert!(delivered(&s.attempt().await));
    assert_eq!(s.mock.token_requests(), 3, "one try within the cooldown");
    assert_eq!(
        s.mock.state().target_requests.last().map(String::as_str),
        Some("tok-2")
    );
    s.hands.set(Duration::from_secs(81));
    assert!(delivered(&s.attempt().await));
    assert_eq!(s.mock.token_requests(), 4);
    assert_eq!(
        s.mock.state().target_requests.last().map(String::as_str),
        Some("tok-4")
    );

    // Expired and the endpoint unreachable: retryable, naming it.
    s.hands.set(Duration::from_secs(500));
    s.mock.state().token_script = [(429, String::new())].into();
    let a = s.attempt().await;
    assert!(matches!(a, Attempt::Retryable { .. }), "{a:?}");
}

#[test]
fn the_refresh_margin_is_a_tenth_at_least_30s_at_most_half() {
    let s = Duration::from_secs;
    assert_eq!(refresh_margin(s(3600)), s(360));
    assert_eq!(refresh_margin(s(100)), s(30));
    assert_eq!(refresh_margin(s(40)), s(20));
}

#[test]
fn token_answers_are_read_leniently() {
    let parse = |text: &str| parse_token(serde_json::from_str(text).ok().as_ref());
    let a = parse(r#"{"access_token":"t","expires_in":"3599"}"#).expect("string expiry");
    assert_eq!(a.expires_in, Some(Duration::from_secs(3599)));
    let a = parse(r#"{"access_token":"t","expires_in":0}"#).expect("zero");
    assert_eq!(a.expires_in, None);
    let a = parse(r#"{"access_token":"t","token_type":"bearer"}"#).expect("no expiry");
    assert_eq!((a.value.expose(), a.expires_in), ("t", None));
    for (text, why) in [
        ("not json", "not JSON"),
        (r#"{"token":"t"}"#, "without an access_token"),
        (r#"{"access_token":""}"#, "without an access_token"),
        (r#"{"access_token":"a\nb"}"#, "cannot be sent in a header"),
    ] {
        let e = parse(text).err().expect(text);
        assert!(e.contains(why), "{text}: {e}");
    }
}
