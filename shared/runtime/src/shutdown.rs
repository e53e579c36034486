//! Graceful shutdown: the first SIGTERM or SIGINT cancels a token that
//! every task watches; a second one exits at once (code 128 + the signal's
//! number: 130 for SIGINT, 143 for SIGTERM), for an operator who will not
//! wait for the graceful stop.

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::exit::codes;

/// A shutdown signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM.
    Terminate,
}

impl Signal {
    /// The signal's name, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Interrupt => "SIGINT",
            Self::Terminate => "SIGTERM",
        }
    }

    /// The exit code when this signal arrives a second time.
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Interrupt => codes::SECOND_SIGINT,
            Self::Terminate => codes::SECOND_SIGTERM,
        }
    }
}

/// A token cancelled on the first SIGTERM or SIGINT; the second exits the
/// process at once.
pub fn on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(forward_signals(tx));
    tokio::spawn(escalate(rx, token.clone(), |signal| {
        std::process::exit(i32::from(signal.exit_code()))
    }));
    token
}

/// Cancels `token` on the first signal from `signals` and calls `exit` on
/// the second.
async fn escalate(
    mut signals: mpsc::UnboundedReceiver<Signal>,
    token: CancellationToken,
    exit: impl FnOnce(Signal),
) {
    let Some(first) = signals.recv().await else {
        return;
    };
    tracing::info!(
        signal = first.as_str(),
        "shutdown signal received, stopping (send another to exit at once)"
    );
    token.cancel();
    let Some(second) = signals.recv().await else {
        return;
    };
    tracing::error!(
        signal = second.as_str(),
        code = second.exit_code(),
        "second shutdown signal, exiting at once"
    );
    eprintln!(
        "second {} received, exiting at once without a graceful stop",
        second.as_str()
    );
    exit(second);
}

#[cfg(unix)]
async fn forward_signals(tx: mpsc::UnboundedSender<Signal>) {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => loop {
            let received = tokio::select! {
                s = term.recv() => s.map(|()| Signal::Terminate),
                s = int.recv() => s.map(|()| Signal::Interrupt),
            };
            match received {
                Some(s) if tx.send(s).is_ok() => {}
                _ => return,
            }
        },
        _ => forward_ctrl_c(tx).await,
    }
}

#[cfg(not(unix))]
async fn forward_signals(tx: mpsc::UnboundedSender<Signal>) {
    forward_ctrl_c(tx).await
}

async fn forward_ctrl_c(tx: mpsc::UnboundedSender<Signal>) {
    while tokio::signal::ctrl_c().await.is_ok() {
        if tx.send(Signal::Interrupt).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[tokio::test]
    async fn the_first_signal_cancels_and_the_second_exits() {
        let (tx, rx) = mpsc::unbounded_channel();
        let token = CancellationToken::new();
        let exited = Arc::new(Mutex::new(None));
        let record = exited.clone();
        let task = tokio::spawn(escalate(rx, token.clone(), move |s| {
            *record.lock().expect("lock") = Some(s.exit_code());
        }));
        tx.send(Signal::Terminate).expect("send");
        token.cancelled().await;
        assert_eq!(*exited.lock().expect("lock"), None, "first signal: no exit");
        tx.send(Signal::Interrupt).expect("send");
        task.await.expect("join");
        assert_eq!(*exited.lock().expect("lock"), Some(130));
    }

    #[test]
    fn second_signal_codes_are_128_plus_the_signal_number() {
        assert_eq!(Signal::Interrupt.exit_code(), 128 + 2);
        assert_eq!(Signal::Terminate.exit_code(), 128 + 15);
    }
}
