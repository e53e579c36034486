//! Dead letters: which ones a selection names, reading them, their
//! summary, replay marks and the replay itself.

pub mod filter;
pub mod marks;
pub mod read;
pub mod replay;
pub mod summary;

pub use filter::Filters;
pub use read::{Letter, Letters};
pub use replay::{Done, DryRun, Replay, Report};
pub use summary::{Group, Summary, summarize};
