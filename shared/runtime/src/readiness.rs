use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Named readiness checks; the service is ready when every registered
/// check is ready. Cheap to clone and share.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    checks: Arc<Mutex<BTreeMap<String, bool>>>,
}

impl Readiness {
    /// Registers `name` as not ready yet.
    pub fn register(&self, name: &str) {
        self.set(name, false);
    }

    /// Marks `name` ready or not.
    pub fn set(&self, name: &str, ready: bool) {
        if let Ok(mut checks) = self.checks.lock() {
            checks.insert(name.to_string(), ready);
        }
    }

    /// The names of checks that are not ready; empty when ready.
    pub fn not_ready(&self) -> Vec<String> {
        match self.checks.lock() {
            Ok(checks) => checks
                .iter()
                .filter(|(_, ready)| !**ready)
                .map(|(name, _)| name.clone())
                .collect(),
            Err(_) => vec!["poisoned".into()],
        }
    }

    /// Whether every check is ready (and at least one is registered).
    pub fn is_ready(&self) -> bool {
        let registered = self.checks.lock().map(|c| !c.is_empty()).unwrap_or(false);
        registered && self.not_ready().is_empty()
    }
}
