//! What ingest takes from the flows file, as one value a reload replaces
//! whole: the sources, their authenticators (secrets read), their rate
//! limits and their polling headers. A request uses the value it started
//! with to its end.

use std::collections::BTreeMap;
use std::sync::Arc;

use intops_flows::Flows;
use intops_runtime::{ConfigError, Secret};

use crate::auth::{self, Authenticator};
use crate::limits::Limits;

/// The sources of one flows file, ready to use.
#[derive(Debug)]
pub(crate) struct Sources {
    pub flows: Arc<Flows>,
    pub authenticators: BTreeMap<String, Authenticator>,
    pub limits: Limits,
    /// Each polled source's request headers, secrets read.
    pub poll_headers: BTreeMap<String, Vec<(String, Secret)>>,
}

impl Sources {
    /// Reads every secret of `flows`' sources (one missing refuses the
    /// whole file, listing each); keeps the rate-limit buckets of sources
    /// whose rate `previous` has too.
    pub fn new(flows: Flows, previous: Option<&Sources>) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        let authenticators = auth::authenticators(&flows).unwrap_or_else(|e| {
            problems.extend(e.0);
            BTreeMap::new()
        });
        let mut poll_headers = BTreeMap::new();
        for source in flows.sources.values() {
            let Some(poll) = &source.poll else { continue };
            let mut headers = Vec::new();
            for (name, secret) in &poll.headers {
                match secret.resolve() {
                    Ok(s) => headers.push((name.clone(), s)),
                    Err(e) => {
                        problems.push(format!("sources[{}].poll.headers.{name}: {e}", source.id))
                    }
                }
            }
            poll_headers.insert(source.id.clone(), headers);
        }
        if !problems.is_empty() {
            return Err(ConfigError(problems));
        }
        let limits = match previous {
            Some(p) => Limits::reloaded(&flows, &p.limits),
            None => Limits::new(&flows),
        };
        Ok(Self {
            flows: Arc::new(flows),
            authenticators,
            limits,
            poll_headers,
        })
    }
}
