//! jq for intops: programs compiled once with the jaq crates (jq's standard
//! library plus the intops mapping helpers) and run per event, with the
//! fast paths the pipeline relies on: direct evaluation of the common
//! program shape (`direct.rs`), native helpers (`natives.rs`), plain paths
//! read straight from JSON text (`path.rs`), reading only the top-level
//! fields a program needs (`fields.rs`) and compact JSON output
//! (`json_text.rs`). Every fast path gives jaq's answer or none.
//!
//! Nothing here knows the flows file: `intops-flows` compiles its programs
//! with [`JqProgram::compile`].

mod direct;
mod fields;
mod json_text;
mod natives;
mod path;
mod program;

pub use fields::read as read_fields;
pub use jaq_json::Val as JqValue;
pub use program::{JqError, JqProgram, parse_json, string_object};
