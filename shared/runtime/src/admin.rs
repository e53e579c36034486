//! `/healthz`, `/readyz` and `/metrics`, as a router to serve alone or
//! merged into a service's main router.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::Readiness;

/// The admin routes.
pub fn router(readiness: Readiness) -> Router {
    let handle = crate::metrics::install();
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route(
            "/metrics",
            get(move || {
                let body = handle.as_ref().map(|h| h.render()).unwrap_or_default();
                async move { ([("content-type", "text/plain; version=0.0.4")], body) }
            }),
        )
        .with_state(readiness)
}

async fn readyz(State(readiness): State<Readiness>) -> impl IntoResponse {
    if readiness.is_ready() {
        (StatusCode::OK, "ready\n".to_string())
    } else {
        let waiting = readiness.not_ready().join(", ");
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {waiting}\n"),
        )
    }
}

/// Errors serving HTTP.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The server failed.
    #[error("http server failed: {0}")]
    Serve(std::io::Error),
}

/// Binds `addr`; separate from [`serve`] so callers learn the bound port
/// (port 0 in tests) before serving.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, ServeError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

/// Serves `router` on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .map_err(ServeError::Serve)
}

/// Serves the admin routes on `addr`, when one is configured, in a task
/// that ends with `shutdown`.
pub async fn spawn_optional(
    addr: Option<SocketAddr>,
    readiness: Readiness,
    shutdown: CancellationToken,
) -> Result<Option<tokio::task::JoinHandle<Result<(), ServeError>>>, ServeError> {
    let Some(addr) = addr else { return Ok(None) };
    let listener = bind(addr).await?;
    tracing::info!(listen = %addr, "admin endpoints listening");
    Ok(Some(tokio::spawn(serve(
        listener,
        router(readiness),
        shutdown,
    ))))
}

/// Waits for a task from [`spawn_optional`], logging how it ended.
pub async fn join(task: Option<tokio::task::JoinHandle<Result<(), ServeError>>>) {
    if let Some(task) = task {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "admin server failed"),
            Err(e) => tracing::warn!(error = %e, "admin server task failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn readyz_follows_the_checks() {
        let readiness = Readiness::default();
        readiness.register("consumer");
        let listener = bind("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let token = CancellationToken::new();
        let server = tokio::spawn(serve(listener, router(readiness.clone()), token.clone()));
        let base = format!("http://{addr}");
        let get = |p: &str| reqwest::get(format!("{base}{p}"));
        assert_eq!(get("/healthz").await.expect("healthz").status(), 200);
        let r = get("/readyz").await.expect("readyz");
        assert_eq!(r.status(), 503);
        assert!(r.text().await.expect("body").contains("consumer"));
        readiness.set("consumer", true);
        assert_eq!(get("/readyz").await.expect("readyz").status(), 200);
        assert_eq!(get("/metrics").await.expect("metrics").status(), 200);
        token.cancel();
        server.await.expect("join").expect("serve");
    }

    /// A panicking background task turns `/readyz` off, naming the task,
    /// and stops the service (issue: the evaluator could panic while
    /// `/readyz` stayed 200).
    #[tokio::test]
    async fn a_panicking_task_turns_readyz_off() {
        let readiness = Readiness::default();
        readiness.register("consumer");
        readiness.set("consumer", true);
        let listener = bind("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        // The admin server outlives the service's token here, to be asked.
        let admin_token = CancellationToken::new();
        let server = tokio::spawn(serve(
            listener,
            router(readiness.clone()),
            admin_token.clone(),
        ));
        let readyz = format!("http://{addr}/readyz");
        assert_eq!(reqwest::get(&readyz).await.expect("readyz").status(), 200);
        let shutdown = CancellationToken::new();
        let mut tasks = crate::Supervisor::new(readiness, shutdown.clone());
        tasks.spawn("evaluate", crate::supervise::tests::explode("boom"));
        let stopped = shutdown.clone();
        let err = crate::supervise::tests::stops(tasks.run(async move {
            stopped.cancelled().await;
            anyhow::Ok(())
        }))
        .await
        .expect_err("the task failed");
        assert!(err.to_string().contains("evaluate"), "{err}");
        let r = reqwest::get(&readyz).await.expect("readyz");
        assert_eq!(r.status(), 503);
        assert!(r.text().await.expect("body").contains("task evaluate"));
        admin_token.cancel();
        server.await.expect("join").expect("serve");
    }
}
