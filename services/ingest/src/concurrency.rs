//! At most N webhook requests are handled at once; one more is answered
//! 503 with Retry-After at once instead of queuing (the source retries,
//! and the health and metrics endpoints stay reachable).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use crate::error::IngestError;
use crate::sources::Sources;
use intops_runtime::reload::Shared;

/// The permits of concurrent requests.
#[derive(Debug, Clone)]
pub(crate) struct Gate {
    permits: Arc<Semaphore>,
    limit: usize,
    /// The current sources: known ids label refusals without unbounded
    /// labels.
    sources: Shared<Sources>,
}

impl Gate {
    pub(crate) fn new(limit: usize, sources: Shared<Sources>) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(limit)),
            limit,
            sources,
        }
    }
}

/// Middleware: runs the request while holding a permit, or refuses it.
pub(crate) async fn limit(State(gate): State<Gate>, request: Request, next: Next) -> Response {
    let Ok(_permit) = gate.permits.clone().try_acquire_owned() else {
        let label = request
            .uri()
            .path()
            .strip_prefix("/v1/sources/")
            .and_then(|rest| rest.split('/').next())
            .filter(|id| gate.sources.load().flows.sources.contains_key(*id))
            .unwrap_or("unknown")
            .to_string();
        tracing::info!(source = %label, limit = gate.limit, "ingest saturated; request refused");
        metrics::counter!(intops_runtime::metrics::INGEST_REQUESTS, "source" => label, "status" => "503")
            .increment(1);
        return IngestError::Overloaded {
            detail: format!(
                "ingest is handling its limit of {} requests; retry shortly",
                gate.limit
            ),
            retry_after: 1,
        }
        .into_response();
    };
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::http::StatusCode;
    use axum::routing::post;
    use tokio::sync::Notify;
    use tower::ServiceExt as _;

    use super::*;

    #[tokio::test]
    async fn one_request_over_the_limit_gets_503_with_retry_after() {
        let release = Arc::new(Notify::new());
        let entered = Arc::new(Notify::new());
        let (r, e) = (release.clone(), entered.clone());
        let router = Router::new()
            .route(
                "/",
                post(move || {
                    let (r, e) = (r.clone(), e.clone());
                    async move {
                        e.notify_one();
                        r.notified().await;
                        "done"
                    }
                }),
            )
            .route_layer(axum::middleware::from_fn_with_state(
                Gate::new(
                    1,
                    Arc::new(arc_swap::ArcSwap::from_pointee(
                        Sources::new(intops_flows::load_str("").expect("empty file"), None)
                            .expect("no sources"),
                    )),
                ),
                limit,
            ));
        let req = || {
            Request::builder()
                .method("POST")
                .uri("/")
                .body(Body::empty())
                .expect("request")
        };
        let first = tokio::spawn(router.clone().oneshot(req()));
        entered.notified().await;
        let refused = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            router.clone().oneshot(req()),
        )
        .await
        .expect("refused at once, not queued")
        .expect("answer");
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            refused
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
            Some("1")
        );
        let body = axum::body::to_bytes(refused.into_body(), 4096)
            .await
            .expect("body");
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("limit of 1 requests"), "{text}");
        release.notify_one();
        let done = first.await.expect("task").expect("answer");
        assert_eq!(done.status(), StatusCode::OK);
        // The permit came back.
        let (r2, _) = (release.clone(), ());
        let again = tokio::spawn(router.oneshot(req()));
        entered.notified().await;
        r2.notify_one();
        assert_eq!(
            again.await.expect("task").expect("answer").status(),
            StatusCode::OK
        );
    }
}
