//! Validates the `[[alerts]]` tables.

use std::collections::HashSet;
use std::time::Duration;

use super::Validator;
use crate::model::Alert;
use crate::spec::AlertSpec;

impl Validator {
    pub(super) fn alerts(&mut self, specs: &[AlertSpec]) -> Vec<Alert> {
        let mut seen = HashSet::new();
        specs
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let at = self.id("alerts", i, &a.id, &mut seen);
                Alert {
                    id: a.id.clone(),
                    kind: a.kind,
                    url: a.url.clone(),
                    cooldown: self.duration(
                        format!("{at}.cooldown"),
                        a.cooldown.as_deref(),
                        Duration::from_secs(600),
                    ),
                    tenant: a.tenant.clone(),
                }
            })
            .collect()
    }
}
