//! Operator actions: the one implementation of what `intops` (the command
//! line) and the monitor's console both do to the pipeline — read,
//! summarize and replay dead letters, pause and resume targets — with the
//! audit trail every action writes.

pub mod audit;
pub mod dlq;
pub mod followups;
pub mod lanes;
pub mod pace;
pub mod send;
pub mod target;
pub mod watch;
pub mod when;

pub use watch::Watch;
