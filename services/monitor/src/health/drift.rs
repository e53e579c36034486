//! Payload drift: for each flow, how often each payload field its programs
//! read ([`intops_flows::route::flow_fields`]) is present, and with which
//! JSON type, per minute. A field that was there (with one type) in most
//! events before the flow's drift window, and is missing or of another
//! type in a significant share of the events within it, makes the flow
//! degraded with a reason such as `reads .assignment_group: missing in 38%
//! of events since 10:02` (thresholds: `slo.drift`, [`Drift`]).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, VecDeque};

use intops_events::IntegrationEvent;
use intops_flows::{Drift as Settings, Flows};
use serde_json::value::RawValue;

/// Width of a flow's buckets, in seconds: a tenth of its drift window,
/// from 1 s to 60 s (the default window of 10 min: minutes).
fn bucket_secs(settings: &Settings) -> i64 {
    (settings.window.as_secs() as i64 / 10).clamp(1, 60)
}

/// JSON types, in this order in [`Counts::types`].
const TYPES: [&str; 6] = ["null", "boolean", "number", "string", "array", "object"];

/// One field's counts in one bucket (or a sum of buckets).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    events: u64,
    missing: u64,
    types: [u64; 6],
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.events += other.events;
        self.missing += other.missing;
        for (a, b) in self.types.iter_mut().zip(other.types) {
            *a += b;
        }
    }

    /// The most frequent type and how many events had it.
    fn usual(&self) -> (usize, u64) {
        self.types
            .iter()
            .copied()
            .enumerate()
            .max_by_key(|(_, n)| *n)
            .unwrap_or((0, 0))
    }
}

/// One field of one flow: counts per bucket, oldest first.
#[derive(Debug, Default)]
struct Field {
    buckets: VecDeque<(i64, Counts)>,
}

impl Field {
    fn record(&mut self, bucket: i64, found: Option<usize>) {
        if self.buckets.back().is_none_or(|(m, _)| *m < bucket) {
            self.buckets.push_back((bucket, Counts::default()));
        }
        let slot = match self.buckets.iter_mut().rev().find(|(m, _)| *m <= bucket) {
            Some((_, c)) => c,
            None => return, // older than everything kept: not worth a bucket
        };
        slot.events += 1;
        match found {
            None => slot.missing += 1,
            Some(t) => slot.types[t] += 1,
        }
    }

    /// Counts before bucket `from` and from it on.
    fn split(&self, from: i64) -> (Counts, Counts, Vec<(i64, Counts)>) {
        let (mut before, mut recent) = (Counts::default(), Counts::default());
        let mut recent_buckets = Vec::new();
        for (m, c) in &self.buckets {
            if *m < from {
                before.add(c);
            } else {
                recent.add(c);
                recent_buckets.push((*m, *c));
            }
        }
        (before, recent, recent_buckets)
    }
}

#[derive(Debug)]
struct FlowFields {
    source: String,
    settings: Settings,
    /// Bucket width, seconds.
    bucket: i64,
    fields: BTreeMap<String, Field>,
}

/// The payload fields every flow reads, counted.
#[derive(Debug, Default)]
pub(super) struct Drifts {
    flows: BTreeMap<String, FlowFields>,
    /// Per source: the fields any of its flows reads.
    by_source: HashMap<String, Vec<String>>,
}

impl Drifts {
    /// Counting for `flows`' flows; the counts of flows and fields that
    /// `previous` had are kept (a reload).
    pub fn new(flows: &Flows, previous: Option<Drifts>) -> Self {
        let mut previous = previous.unwrap_or_default();
        let mut out = Drifts::default();
        for flow in &flows.flows {
            let bucket = bucket_secs(&flow.slo.drift);
            // Counts are kept only where they mean the same: the same
            // source, counted in buckets of the same width.
            let mut kept = previous
                .flows
                .remove(&flow.id)
                .filter(|f| f.bucket == bucket && f.source == flow.source)
                .map(|f| f.fields);
            let fields: BTreeMap<String, Field> = intops_flows::route::flow_fields(flow)
                .into_iter()
                .map(|name| {
                    let field = kept
                        .as_mut()
                        .and_then(|k| k.remove(&name))
                        .unwrap_or_default();
                    (name, field)
                })
                .collect();
            let read = out.by_source.entry(flow.source.clone()).or_default();
            read.extend(fields.keys().cloned());
            read.sort();
            read.dedup();
            out.flows.insert(
                flow.id.clone(),
                FlowFields {
                    source: flow.source.clone(),
                    settings: flow.slo.drift,
                    bucket,
                    fields,
                },
            );
        }
        out
    }

    /// Counts the fields of `event`'s payload that its source's flows read.
    pub fn on_event(&mut self, event: &IntegrationEvent) {
        let Some(names) = self.by_source.get(&event.source_id) else {
            return;
        };
        if names.is_empty() {
            return;
        }
        // Only the top level is split; field values stay raw text.
        let Ok(object) = serde_json::from_str::<HashMap<Cow<'_, str>, &RawValue>>(&event.payload)
        else {
            return; // not an object: transform dead-letters or routes it
        };
        let secs = event.ingested_at / 1_000_000;
        for flow in self.flows.values_mut() {
            if flow.source != event.source_id || !flow.settings.enabled {
                continue;
            }
            for (name, field) in &mut flow.fields {
                let found = object.get(name.as_str()).map(|raw| type_of(raw.get()));
                field.record(secs / flow.bucket, found);
            }
        }
    }

    /// Drops what is older than `horizon` (seconds since the epoch).
    pub fn prune(&mut self, horizon: i64) {
        for flow in self.flows.values_mut() {
            let oldest = horizon / flow.bucket;
            for field in flow.fields.values_mut() {
                while field.buckets.front().is_some_and(|(m, _)| *m < oldest) {
                    field.buckets.pop_front();
                }
            }
        }
    }

    /// The drift reasons of `flow` at `now` (seconds since the epoch),
    /// one per drifting field.
    pub fn reasons(&self, flow: &str, now: i64) -> Vec<String> {
        let Some(f) = self.flows.get(flow) else {
            return Vec::new();
        };
        let s = f.settings;
        if !s.enabled {
            return Vec::new();
        }
        let from = (now - s.window.as_secs() as i64) / f.bucket + 1;
        let mut out = Vec::new();
        for (name, field) in &f.fields {
            let (before, recent, buckets) = field.split(from);
            if before.events < s.min_events || recent.events < s.min_events {
                continue;
            }
            let (usual, had) = before.usual();
            if (had as f64) < s.baseline * before.events as f64 {
                continue; // not a field the events reliably had
            }
            let share = |n: u64| n as f64 / recent.events as f64;
            let other_types = recent.events - recent.missing - recent.types[usual];
            let first = |bad: &dyn Fn(&Counts) -> bool| {
                buckets
                    .iter()
                    .find(|(_, c)| bad(c))
                    .map_or(String::new(), |(m, _)| hh_mm(*m * f.bucket))
            };
            if share(recent.missing) >= s.share {
                out.push(format!(
                    "reads .{name}: missing in {:.0}% of events since {}",
                    100.0 * share(recent.missing),
                    first(&|c| c.missing > 0)
                ));
            } else if share(other_types) >= s.share {
                let now_usual = recent
                    .types
                    .iter()
                    .enumerate()
                    .filter(|(t, _)| *t != usual)
                    .max_by_key(|(_, n)| **n)
                    .map_or(0, |(t, _)| t);
                out.push(format!(
                    "reads .{name}: {} instead of {} in {:.0}% of events since {}",
                    TYPES[now_usual],
                    TYPES[usual],
                    100.0 * share(other_types),
                    first(&|c| c.events > c.missing + c.types[usual])
                ));
            }
        }
        out
    }

    /// Per flow and field: the share of recent events without it (0 with
    /// no recent event), for the metric.
    pub fn missing_shares(&self, now: i64) -> Vec<(&str, &str, f64)> {
        let mut out = Vec::new();
        for (id, f) in &self.flows {
            let from = (now - f.settings.window.as_secs() as i64) / f.bucket + 1;
            for (name, field) in &f.fields {
                let (_, recent, _) = field.split(from);
                let share = if recent.events > 0 {
                    recent.missing as f64 / recent.events as f64
                } else {
                    0.0
                };
                out.push((id.as_str(), name.as_str(), share));
            }
        }
        out
    }
}

/// The JSON type of raw JSON text, by its first character.
fn type_of(raw: &str) -> usize {
    match raw.trim_start().as_bytes().first() {
        Some(b'n') => 0,
        Some(b't' | b'f') => 1,
        Some(b'"') => 3,
        Some(b'[') => 4,
        Some(b'{') => 5,
        _ => 2,
    }
}

/// `HH:MM` (UTC) of `secs` since the epoch.
fn hh_mm(secs: i64) -> String {
    let day = secs.rem_euclid(86_400);
    format!("{:02}:{:02}", day / 3600, day % 3600 / 60)
}
