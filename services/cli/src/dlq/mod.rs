//! `intops dlq ...`: inspect and replay dead letters.

mod filter;
mod list;
mod marks;
mod read;
mod replay;
mod show;

pub use filter::Filters;
pub use list::run as list;
pub use replay::{ReplayArgs, run as replay};
pub use show::run as show;
