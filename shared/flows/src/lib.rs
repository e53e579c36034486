//! The flows file: sources, targets and flows in one TOML document.
//!
//! [`load_file`] parses the raw form ([`spec`]), resolves references,
//! reads secrets, compiles every jq program once, and reports every problem
//! at once ([`LoadErrors`]). Services then use the validated [`Flows`].

mod direct;
mod fields;
mod jq;
mod json_text;
mod load;
mod model;
mod natives;
mod path;
pub mod route;
mod secret;
pub mod spec;
pub mod target_url;
mod template;

pub use jaq_json::Val as JqValue;
pub use jq::{JqError, JqProgram, parse_json};
pub use load::{LoadError, LoadErrors, load_file, load_str};
pub use model::{
    Alert, CircuitBreaker, Flow, Flows, HmacAuth, Poll, RateLimit, Retry, SignatureEncoding, Slo,
    Source, SourceAuth, SourceKind, StatusSet, Target, TargetAuth,
};
pub use secret::{Secret, SecretRef};
pub use template::{Template, percent_encode};
