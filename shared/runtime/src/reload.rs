//! Flows-file reload: on SIGHUP or a change of the file's content, the new
//! file is validated; a valid one replaces the current flows atomically
//! (each record is processed with one version), an invalid one is logged
//! with every problem and counted, and the current flows stay.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use intops_flows::Flows;
use tokio_util::sync::CancellationToken;

use crate::metrics as m;

/// A boxed, sendable future.
pub type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// Runs before a new version is swapped in (for example, creating the
/// topics of new targets); an error keeps the current version.
pub type BeforeSwap = Arc<dyn Fn(Arc<Flows>) -> BoxFuture<Result<(), String>> + Send + Sync>;

/// Runs once a new version is in place (for example, releasing work that
/// waited for a fix: it must see the new version, never the old).
pub type AfterSwap = Arc<dyn Fn() + Send + Sync>;

/// The current flows, shared by a service's tasks.
pub type SharedFlows = Arc<ArcSwap<Flows>>;

/// Watches `path` (checked every `every`, and on SIGHUP) until `shutdown`;
/// run it as a supervised task ([`crate::Supervisor`]).
pub async fn watch(
    service: &'static str,
    path: PathBuf,
    flows: SharedFlows,
    every: Duration,
    before_swap: BeforeSwap,
    after_swap: AfterSwap,
    shutdown: CancellationToken,
) {
    let mut last = std::fs::read(&path).unwrap_or_default();
    let mut hangup = hangup_signal();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
            () = next_hangup(&mut hangup) => {
                tracing::info!(service, "sighup received, reloading flows");
                last.clear();
            }
        }
        let Ok(text) = std::fs::read(&path) else {
            continue; // mid-replacement or removed: keep the current flows
        };
        if text == last {
            continue;
        }
        last = text.clone();
        let result = match std::str::from_utf8(&text) {
            Ok(t) => intops_flows::load_str(t).map_err(|e| e.to_string()),
            Err(e) => Err(format!("not UTF-8: {e}")),
        };
        let result = match result {
            Ok(new) => {
                let new = Arc::new(new);
                match before_swap(new.clone()).await {
                    Ok(()) => {
                        flows.store(new);
                        after_swap();
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => {
                metrics::counter!(m::FLOWS_RELOADS, "service" => service, "result" => "ok")
                    .increment(1);
                tracing::info!(service, path = %path.display(), "flows reloaded");
            }
            Err(e) => {
                metrics::counter!(m::FLOWS_RELOADS, "service" => service, "result" => "error")
                    .increment(1);
                tracing::error!(service, path = %path.display(), error = %e, "flows reload refused, keeping the current flows");
            }
        }
    }
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = Option<()>;

#[cfg(unix)]
fn hangup_signal() -> Hangup {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}

#[cfg(not(unix))]
fn hangup_signal() -> Hangup {
    None
}

#[cfg(unix)]
async fn next_hangup(signal: &mut Hangup) {
    match signal {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn next_hangup(_: &mut Hangup) {
    std::future::pending().await
}
