//! The harness of intops's integration tests and benchmark: the real local
//! stack's addresses, random topic prefixes, a capturing HTTP target, the
//! four services started in-process, and polling with a deadline.

pub mod broker;
pub mod browser;
pub mod cli;
pub mod conversation;
pub mod deliveries;
pub mod events;
pub mod fault;
pub mod group;
pub mod itsm;
pub mod metrics;
pub mod pipeline;
pub mod poll;
pub mod process;
pub mod serial;
pub mod sign;
pub mod snow_jira;
pub mod stack;
pub mod target;
pub mod topic;

pub use pipeline::Pipeline;
pub use poll::poll_until;
pub use target::{Captured, MockTarget};
