//! The fault suite's harness: the services as processes ([`fleet`]), a
//! signed load ([`load`]), poison written behind ingest's back
//! ([`poison`]), the fault steps ([`scenario`]), group offsets
//! ([`offsets`]), and the one checker ([`checker`]) fed from the topics
//! ([`collect`]) and printed as tables ([`table`]).

pub mod checker;
pub mod collect;
pub mod fleet;
pub mod load;
pub mod offsets;
pub mod poison;
pub mod scenario;
pub mod table;
