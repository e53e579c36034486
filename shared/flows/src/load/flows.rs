//! Validates the `[[flows]]` tables: references, request shape, programs
//! and objectives (links: `flows/link.rs`).

mod link;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::{Validator, is_header_name};
use crate::model::{Drift, Flow, Slo, Source, Target, TargetAuth};
use crate::spec::{DriftSpec, FlowSpec, SloSpec};
use crate::template::Template;
use link::LinkUse;

impl Validator {
    pub(super) fn flows(
        &mut self,
        specs: &[FlowSpec],
        sources: &BTreeMap<String, Source>,
        targets: &BTreeMap<String, Target>,
    ) -> Vec<Flow> {
        let mut seen = HashSet::new();
        let captures = link::capture_flows(specs);
        let mut out = Vec::new();
        for (i, f) in specs.iter().enumerate() {
            let at = self.id("flows", i, &f.id, &mut seen);
            if !sources.contains_key(&f.source) {
                self.error(
                    format!("{at}.source"),
                    format!("unknown source {:?}", f.source),
                );
            }
            let target = targets.get(&f.target);
            if target.is_none() {
                self.error(
                    format!("{at}.target"),
                    format!("unknown target {:?}", f.target),
                );
            }
            let method = self.method(&at, f.method.as_deref(), "POST");
            let uses = LinkUse::of(f);
            let when = f
                .when
                .as_deref()
                .map(|c| self.link_jq(format!("{at}.when"), c, LinkUse::When));
            let map = self.link_jq(
                format!("{at}.map"),
                f.map.as_deref().unwrap_or("."),
                uses.map,
            );
            let path = self.path(&format!("{at}.path"), &f.path, uses.request);
            let headers = self.headers(&format!("{at}.headers"), &f.headers, target, uses.request);
            let link = self.link(&at, f, target, &captures);
            if let (Some(when), Some(map), Some(path), Some(headers), Some(link)) = (
                when.map_or(Some(None), |p| p.map(Some)),
                map,
                path,
                headers,
                link,
            ) {
                let slo = self.slo(&at, f.slo.as_ref());
                out.push(Flow {
                    link,
                    slo,
                    id: f.id.clone(),
                    version: flow_version(f),
                    definition: flow_definition(f),
                    tenant: f.tenant.clone(),
                    owner: f.owner.clone(),
                    description: f.description.clone(),
                    tags: f.tags.clone(),
                    source: f.source.clone(),
                    when,
                    target: f.target.clone(),
                    method,
                    path,
                    headers,
                    map,
                });
            }
        }
        out
    }

    /// A request's method, uppercase (`default` when absent).
    fn method(&mut self, at: &str, method: Option<&str>, default: &str) -> String {
        let method = method.unwrap_or(default).to_ascii_uppercase();
        if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str()) {
            self.error(
                format!("{at}.method"),
                format!("{method:?} is not GET, POST, PUT, PATCH or DELETE"),
            );
        }
        method
    }

    /// A request's path template (`at` names it).
    fn path(&mut self, at: &str, path: &str, link: LinkUse) -> Option<Template> {
        if !path.starts_with('/') {
            self.error(at, format!("{path:?} must start with '/'"));
        } else if !path.contains("{{")
            && let Err(e) = crate::target_url::check_path(path)
        {
            self.error(at, e.to_string());
        }
        self.link_template(at.to_string(), path, link)
    }

    /// A request's extra headers (`at` names the table); `None` when one
    /// is invalid (the errors are recorded).
    fn headers(
        &mut self,
        at: &str,
        headers: &BTreeMap<String, String>,
        target: Option<&Target>,
        link: LinkUse,
    ) -> Option<Vec<(String, Template)>> {
        let mut out = Some(Vec::new());
        for (name, value) in headers {
            if crate::target_url::is_reserved_header(name) {
                self.error(
                    format!("{at}.{name}"),
                    "is set by intops or steers where the request goes (credentials come from the target's auth)",
                );
            } else if !is_header_name(name) {
                self.error(format!("{at}.{name}"), "is not a header name");
            } else if target.is_some_and(|t| {
                matches!(&t.auth, TargetAuth::Header { name: n, .. } if n.eq_ignore_ascii_case(name))
            }) {
                self.error(
                    format!("{at}.{name}"),
                    "carries the target's credential (set by its auth)",
                );
            }
            if let Err(e) = crate::target_url::check_header_value(value) {
                self.error(format!("{at}.{name}"), e.to_string());
            }
            match (
                self.link_template(format!("{at}.{name}"), value, link),
                out.as_mut(),
            ) {
                (Some(t), Some(h)) => h.push((name.clone(), t)),
                _ => out = None,
            }
        }
        out
    }

    fn slo(&mut self, at: &str, spec: Option<&SloSpec>) -> Slo {
        let defaults = Slo::default();
        let Some(spec) = spec else {
            return defaults;
        };
        if let Some(r) = spec.success_ratio
            && !(0.0..=1.0).contains(&r)
        {
            self.error(format!("{at}.slo.success_ratio"), "must be between 0 and 1");
        }
        if let Some(l) = spec.max_lag
            && l < 0
        {
            self.error(format!("{at}.slo.max_lag"), "must not be negative");
        }
        let optional = |check: &mut Self, name: &str, text: Option<&str>| {
            text.map(|t| check.duration(format!("{at}.slo.{name}"), Some(t), Duration::ZERO))
        };
        Slo {
            success_ratio: spec.success_ratio,
            latency_p95: optional(self, "latency_p95", spec.latency_p95.as_deref()),
            max_silence: optional(self, "max_silence", spec.max_silence.as_deref()),
            max_lag: spec.max_lag,
            window: self.duration(
                format!("{at}.slo.window"),
                spec.window.as_deref(),
                defaults.window,
            ),
            drift: self.drift(at, spec.drift.as_ref()),
        }
    }

    fn drift(&mut self, at: &str, spec: Option<&DriftSpec>) -> Drift {
        let defaults = Drift::default();
        let Some(spec) = spec else {
            return defaults;
        };
        for (name, share) in [("baseline", spec.baseline), ("share", spec.share)] {
            if let Some(v) = share
                && !(v > 0.0 && v <= 1.0)
            {
                self.error(
                    format!("{at}.slo.drift.{name}"),
                    "must be above 0 and at most 1",
                );
            }
        }
        Drift {
            enabled: spec.enabled.unwrap_or(defaults.enabled),
            window: self.duration(
                format!("{at}.slo.drift.window"),
                spec.window.as_deref(),
                defaults.window,
            ),
            min_events: spec.min_events.unwrap_or(defaults.min_events).max(1),
            baseline: spec.baseline.unwrap_or(defaults.baseline),
            share: spec.share.unwrap_or(defaults.share),
        }
    }
}

/// The flow as a TOML `[[flows]]` table, as kept with its version
/// (`<prefix>.flow-versions`): exactly the fields the version hashes, so
/// the `slo` table is not in it.
fn flow_definition(f: &FlowSpec) -> String {
    #[derive(serde::Serialize)]
    struct File<'a> {
        flows: [&'a FlowSpec; 1],
    }
    toml::to_string(&File { flows: [f] }).unwrap_or_default()
}

/// Content hash of a flow definition: any change to any field changes it.
fn flow_version(f: &FlowSpec) -> String {
    let canonical = serde_json::to_vec(f).unwrap_or_default();
    let digest = Sha256::digest(&canonical);
    hex::encode(&digest[..6])
}
