//! How a long action tells its caller what it is doing: the command line
//! prints to standard error, the console logs and keeps the figures.

/// Receives an action's warnings and progress while it runs.
pub trait Watch: Send + Sync {
    /// Something the operator should know (a record skipped, and why).
    fn warning(&self, text: &str);
    /// The running totals of a replay, about once a second.
    fn progress(&self, replay_id: &str, sent: i64, parked: i64);
}

impl std::fmt::Debug for dyn Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Watch")
    }
}

/// Prints warnings and progress to standard error (the command line).
#[derive(Debug, Clone, Copy, Default)]
pub struct Stderr;

impl Watch for Stderr {
    fn warning(&self, text: &str) {
        eprintln!("warning: {text}");
    }

    fn progress(&self, replay_id: &str, sent: i64, parked: i64) {
        eprintln!("replay {replay_id}: {sent} sent, {parked} parked");
    }
}
