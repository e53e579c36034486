//! The flows file: sources, targets and flows in one TOML document.
//!
//! [`load_file`] parses the raw form ([`spec`]), resolves references,
//! reads secrets, compiles every jq program once (with `intops-jq`), and
//! reports every problem at once ([`LoadErrors`]). Services then use the
//! validated [`Flows`].

mod expand;
pub mod link_text;
mod load;
mod model;
pub mod redact;
pub mod route;
mod secret;
pub mod spec;
pub mod target_url;
mod template;

pub use intops_jq::{JqError, JqProgram, JqValue, parse_json};
pub use load::{
    LoadError, LoadErrors, expand_str_in, load_file, load_flows, load_str, load_str_in,
};
pub use model::{
    Alert, CircuitBreaker, DEFAULT_LINK_EXPIRY, Drift, Flow, FlowLink, Flows, HmacAuth, OAuth2,
    Poll, RateLimit, Retry, SharedFlows, SignatureEncoding, Slo, Source, SourceAuth, SourceKind,
    StatusSet, Target, TargetAuth, Update,
};
pub use secret::SecretRef;
pub use template::{Template, percent_encode};
