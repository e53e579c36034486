//! Reload of a watched file: on SIGHUP or a change of the file's content,
//! the new text is parsed and validated by the caller's function; a valid
//! value replaces the current one atomically (each record is processed
//! with one version), an invalid one is logged with every problem and
//! counted, and the current value stays. Transform watches its flows file
//! this way (`intops_flows::SharedFlows`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;

/// A boxed, sendable future.
pub type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// The current value, shared by a service's tasks.
pub type Shared<T> = Arc<ArcSwap<T>>;

/// Parses and validates the file's text; the error lists every problem.
pub type Parse<T> = Arc<dyn Fn(&str) -> Result<T, String> + Send + Sync>;

/// Runs before a new version is swapped in (for example, creating the
/// topics of new targets); an error keeps the current version.
pub type BeforeSwap<T> = Arc<dyn Fn(Arc<T>) -> BoxFuture<Result<(), String>> + Send + Sync>;

/// Runs once a new version is in place (for example, releasing work that
/// waited for a fix: it must see the new version, never the old).
pub type AfterSwap = Arc<dyn Fn() + Send + Sync>;

/// What to watch and how to take a new version in.
pub struct Watch<T> {
    /// The service, a label of `metric` and a log field.
    pub service: &'static str,
    /// What the file holds, for log messages (`flows`).
    pub what: &'static str,
    /// The counter of reloads, labelled `service` and `result` (ok, error);
    /// a name from [`crate::metrics`].
    pub metric: &'static str,
    /// The watched file.
    pub path: PathBuf,
    /// The current version, replaced on a valid change.
    pub current: Shared<T>,
    /// Text to a new version.
    pub parse: Parse<T>,
    /// How often the file is checked (besides on SIGHUP).
    pub every: Duration,
    /// See [`BeforeSwap`].
    pub before_swap: BeforeSwap<T>,
    /// See [`AfterSwap`].
    pub after_swap: AfterSwap,
}

impl<T> std::fmt::Debug for Watch<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("service", &self.service)
            .field("what", &self.what)
            .field("path", &self.path)
            .field("every", &self.every)
            .finish_non_exhaustive()
    }
}

impl<T: Send + Sync + 'static> Watch<T> {
    /// Watches the file until `shutdown`; run it as a supervised task
    /// ([`crate::Supervisor`]). The file's content now is the current
    /// version's: it is read here, before the returned future first runs.
    pub fn run(self, shutdown: CancellationToken) -> impl Future<Output = ()> + Send {
        let last = std::fs::read(&self.path).unwrap_or_default();
        self.watch(last, shutdown)
    }

    async fn watch(self, mut last: Vec<u8>, shutdown: CancellationToken) {
        let Watch {
            service,
            what,
            metric,
            path,
            current,
            parse,
            every,
            before_swap,
            after_swap,
        } = self;
        let mut hangup = hangup_signal();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(every) => {}
                () = next_hangup(&mut hangup) => {
                    tracing::info!(service, "sighup received, reloading {what}");
                    last.clear();
                }
            }
            let Ok(text) = std::fs::read(&path) else {
                continue; // mid-replacement or removed: keep the current version
            };
            if text == last {
                continue;
            }
            last = text.clone();
            let result = match std::str::from_utf8(&text) {
                Ok(t) => parse(t),
                Err(e) => Err(format!("not UTF-8: {e}")),
            };
            let result = match result {
                Ok(new) => {
                    let new = Arc::new(new);
                    match before_swap(new.clone()).await {
                        Ok(()) => {
                            current.store(new);
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
                    metrics::counter!(metric, "service" => service, "result" => "ok").increment(1);
                    tracing::info!(service, path = %path.display(), "{what} reloaded");
                }
                Err(e) => {
                    metrics::counter!(metric, "service" => service, "result" => "error")
                        .increment(1);
                    tracing::error!(service, path = %path.display(), error = %e, "{what} reload refused, keeping the current {what}");
                }
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

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc;

    use super::*;

    /// What the watcher reported through its hooks, in order.
    #[derive(Debug, PartialEq)]
    enum Seen {
        Parsed(String),
        Refused(u32),
        Swapped(u32),
    }

    async fn next(seen: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
        tokio::time::timeout(Duration::from_secs(30), seen.recv())
            .await
            .expect("the watcher reported within the deadline")
            .expect("the watcher is running")
    }

    /// A valid new file replaces the value; text the parse function refuses,
    /// or a version `before_swap` refuses, keeps the current one.
    #[tokio::test]
    async fn only_accepted_versions_replace_the_current_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("value");
        std::fs::write(&path, "1").expect("write");
        let current: Shared<u32> = Arc::new(ArcSwap::from_pointee(1));
        let (tx, mut seen) = mpsc::unbounded_channel();
        let parsed = tx.clone();
        let refused = tx.clone();
        let swapped = current.clone();
        let watch = Watch {
            service: "test",
            what: "value",
            metric: crate::metrics::FLOWS_RELOADS,
            path: path.clone(),
            current: current.clone(),
            parse: Arc::new(move |text| {
                let _ = parsed.send(Seen::Parsed(text.to_string()));
                text.parse::<u32>().map_err(|e| e.to_string())
            }),
            every: Duration::from_millis(10),
            before_swap: Arc::new(move |new: Arc<u32>| {
                let refused = refused.clone();
                Box::pin(async move {
                    if *new == 4 {
                        let _ = refused.send(Seen::Refused(4));
                        return Err("four is refused".to_string());
                    }
                    Ok(())
                })
            }),
            after_swap: Arc::new(move || {
                let _ = tx.send(Seen::Swapped(**swapped.load()));
            }),
        };
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(watch.run(shutdown.clone()));

        std::fs::write(&path, "2").expect("write");
        assert_eq!(next(&mut seen).await, Seen::Parsed("2".into()));
        assert_eq!(next(&mut seen).await, Seen::Swapped(2));

        std::fs::write(&path, "not a number").expect("write");
        assert_eq!(next(&mut seen).await, Seen::Parsed("not a number".into()));
        std::fs::write(&path, "4").expect("write");
        assert_eq!(next(&mut seen).await, Seen::Parsed("4".into()));
        assert_eq!(next(&mut seen).await, Seen::Refused(4));
        assert_eq!(**current.load(), 2, "refused versions keep the current one");

        std::fs::write(&path, "5").expect("write");
        assert_eq!(next(&mut seen).await, Seen::Parsed("5".into()));
        assert_eq!(next(&mut seen).await, Seen::Swapped(5));

        shutdown.cancel();
        task.await.expect("the watcher ends with the shutdown");
    }
}
