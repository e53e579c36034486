//! `intops dlq ...`: inspect and replay dead letters (the work itself is
//! `intops_ops::dlq`, which the monitor's console runs too).

mod list;
mod replay;
mod show;

pub use intops_ops::dlq::Filters;
pub use list::run as list;
pub use replay::{ReplayArgs, run as replay};
pub use show::run as show;
