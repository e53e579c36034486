//! Hourly rollups: per flow (and per source), tenant and UTC hour, the
//! figures SLA reports are made of (`<prefix>.rollups`, kept 400 days).
//!
//! Counts come from the records the reader folds, so they are the same
//! on every replica and after every restart: the monitor reads the event
//! topics from their beginning and rebuilds the hours still on them. An
//! hour whose records retention already removed in part would rebuild
//! smaller than it was written, so each count is at least what the topic
//! held when the monitor started (counts of an hour only grow while its
//! records are kept). Time in each health state is measured live, on the
//! evaluation timer, and added to what the topic held.

mod publish;

use std::collections::{BTreeMap, HashMap};

use intops_events::{
    DeliveryRequest, HOUR_MICROS, HourlyRollup, IntegrationEvent, Outcome, OutcomeStatus, Stage,
    hour_of,
};
use intops_flows::Flows;

use crate::health::Status;
use crate::health::series::{LATENCY_BOUNDS_MS, latency_bucket};

pub(crate) use publish::{Publisher, load};

/// Entries older than this (and written) are dropped from memory: their
/// records are gone from the event topics, so they cannot change.
const KEEP_MICROS: i64 = 8 * 24 * HOUR_MICROS;

/// A gap between two evaluations longer than this is not counted as time
/// in any state (the monitor was stalled or suspended).
const MAX_STEP_MICROS: i64 = 10_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Scope {
    Flow,
    Source,
}

impl Scope {
    fn as_str(self) -> &'static str {
        match self {
            Scope::Flow => "flow",
            Scope::Source => "source",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    scope: Scope,
    id: String,
    tenant: Option<String>,
    hour: i64,
}

/// Counts that only grow while an hour's records are kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Tally {
    received: i64,
    delivered: i64,
    dead_lettered: i64,
    replayed: i64,
    latency: [i64; LATENCY_BOUNDS_MS.len()],
}

impl Tally {
    fn max(&self, other: &Tally) -> Tally {
        let mut latency = self.latency;
        for (a, b) in latency.iter_mut().zip(other.latency) {
            *a = (*a).max(b);
        }
        Tally {
            received: self.received.max(other.received),
            delivered: self.delivered.max(other.delivered),
            dead_lettered: self.dead_lettered.max(other.dead_lettered),
            replayed: self.replayed.max(other.replayed),
            latency,
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Entry {
    /// From the records read since the monitor started.
    counted: Tally,
    /// As the rollups topic held it when the monitor started.
    floor: Tally,
    /// Healthy, degraded, failing (ms): the topic's plus this run's.
    states_ms: [i64; 3],
    success_objective: Option<f64>,
    latency_objective_ms: Option<i64>,
    /// Changed since it was last written.
    dirty: bool,
}

/// What the rollups need to know of a flow.
#[derive(Debug, Clone, Default)]
struct FlowFacts {
    tenant: Option<String>,
    success_objective: Option<f64>,
    latency_objective_ms: Option<i64>,
}

/// Every hour's figures the monitor holds, and which are to be written.
#[derive(Debug, Default)]
pub struct Rollups {
    entries: BTreeMap<Key, Entry>,
    flows: HashMap<String, FlowFacts>,
    last_observed: Option<i64>,
}

impl Rollups {
    /// Rollups for the flows of `flows`.
    pub fn new(flows: &Flows) -> Self {
        let mut r = Self::default();
        r.reconfigure(flows);
        r
    }

    /// Takes a reloaded flows file's tenants and objectives.
    pub fn reconfigure(&mut self, flows: &Flows) {
        self.flows = flows
            .flows
            .iter()
            .map(|f| {
                let facts = FlowFacts {
                    tenant: f.tenant.clone(),
                    success_objective: f.slo.success_ratio,
                    latency_objective_ms: f
                        .slo
                        .latency_p95
                        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
                };
                (f.id.clone(), facts)
            })
            .collect();
    }

    /// Starts from what the rollups topic holds: its counts are a floor,
    /// its state times are added to.
    pub fn seed(&mut self, kept: impl IntoIterator<Item = HourlyRollup>, now: i64) {
        for r in kept {
            if r.hour < now - KEEP_MICROS {
                continue;
            }
            let scope = match r.scope.as_str() {
                "flow" => Scope::Flow,
                "source" => Scope::Source,
                _ => continue,
            };
            let mut latency = [0; LATENCY_BOUNDS_MS.len()];
            if r.latency_bounds_ms == LATENCY_BOUNDS_MS {
                for (slot, n) in latency.iter_mut().zip(&r.latency_counts) {
                    *slot = *n;
                }
            }
            let key = Key {
                scope,
                id: r.id,
                tenant: r.tenant,
                hour: r.hour,
            };
            let entry = self.entries.entry(key).or_default();
            entry.floor = Tally {
                received: r.received,
                delivered: r.delivered,
                dead_lettered: r.dead_lettered,
                replayed: r.replayed,
                latency,
            };
            entry.states_ms = [r.healthy_ms, r.degraded_ms, r.failing_ms];
            entry.success_objective = r.success_objective;
            entry.latency_objective_ms = r.latency_objective_ms;
        }
    }

    fn tally(&mut self, scope: Scope, id: &str, tenant: Option<&str>, at: i64) -> &mut Tally {
        let facts = (scope == Scope::Flow)
            .then(|| self.flows.get(id))
            .flatten()
            .cloned();
        let key = Key {
            scope,
            id: id.to_string(),
            tenant: tenant.map(str::to_string),
            hour: hour_of(at),
        };
        let entry = self.entries.entry(key).or_default();
        entry.dirty = true;
        // The objectives in force when the hour is counted (a reload
        // changes them for the hours counted after it).
        if let Some(facts) = facts {
            entry.success_objective = facts.success_objective;
            entry.latency_objective_ms = facts.latency_objective_ms;
        }
        &mut entry.counted
    }

    /// Folds an accepted event; a replayed one was counted when first
    /// accepted.
    pub fn on_event(&mut self, e: &IntegrationEvent, replayed: bool) {
        if !replayed {
            let at = e.ingested_at;
            self.tally(Scope::Source, &e.source_id, e.tenant.as_deref(), at)
                .received += 1;
        }
    }

    /// Folds a delivery request; a replayed one was counted when made.
    pub fn on_request(&mut self, r: &DeliveryRequest, replayed: bool) {
        if !replayed {
            self.tally(Scope::Flow, &r.flow_id, r.tenant.as_deref(), r.created_at)
                .received += 1;
        }
    }

    /// Folds an outcome about a flow.
    pub fn on_outcome(&mut self, o: &Outcome) {
        let Some(flow) = o.flow_id.as_deref() else {
            return;
        };
        let counted = matches!(
            (o.stage, o.status),
            (Stage::Delivery | Stage::Transform, OutcomeStatus::Delivered)
                | (
                    Stage::Delivery | Stage::Transform,
                    OutcomeStatus::DeadLettered
                )
                | (Stage::Replay, OutcomeStatus::Replayed)
        );
        if !counted {
            return;
        }
        let t = self.tally(Scope::Flow, flow, o.tenant.as_deref(), o.at);
        match o.status {
            OutcomeStatus::Delivered => {
                t.delivered += 1;
                if let Some(slot) = o
                    .latency_ms
                    .and_then(|ms| t.latency.get_mut(latency_bucket(ms)))
                {
                    *slot += 1;
                }
            }
            OutcomeStatus::DeadLettered => {
                t.dead_lettered += 1;
                // An event the flow took but could not map.
                if o.stage == Stage::Transform {
                    t.received += 1;
                }
            }
            _ => t.replayed += 1,
        }
    }

    /// Adds the time since the last observation to each flow's state
    /// (`states`: flow id and status at `now`).
    pub fn observe(&mut self, states: impl IntoIterator<Item = (String, Status)>, now: i64) {
        let step = self.last_observed.map(|before| now - before);
        self.last_observed = Some(now);
        let Some(step) = step.filter(|s| (1..=MAX_STEP_MICROS).contains(s)) else {
            return;
        };
        let ms = step / 1_000;
        for (flow, status) in states {
            let facts = self.flows.get(&flow).cloned().unwrap_or_default();
            let key = Key {
                scope: Scope::Flow,
                id: flow,
                tenant: facts.tenant,
                hour: hour_of(now),
            };
            let entry = self.entries.entry(key).or_default();
            let slot = match status {
                Status::Healthy => 0,
                Status::Degraded => 1,
                Status::Failing => 2,
            };
            entry.states_ms[slot] += ms;
            entry.success_objective = facts.success_objective;
            entry.latency_objective_ms = facts.latency_objective_ms;
            entry.dirty = true;
        }
    }

    /// The records of every entry changed since written, marked written;
    /// forgets written entries past [`KEEP_MICROS`].
    pub fn take_dirty(&mut self, now: i64) -> Vec<HourlyRollup> {
        self.entries
            .retain(|k, e| e.dirty || k.hour >= now - KEEP_MICROS);
        let mut out = Vec::new();
        for (k, e) in self.entries.iter_mut().filter(|(_, e)| e.dirty) {
            e.dirty = false;
            let t = e.counted.max(&e.floor);
            out.push(HourlyRollup {
                scope: k.scope.as_str().to_string(),
                id: k.id.clone(),
                tenant: k.tenant.clone(),
                hour: k.hour,
                received: t.received,
                delivered: t.delivered,
                dead_lettered: t.dead_lettered,
                replayed: t.replayed,
                latency_bounds_ms: LATENCY_BOUNDS_MS.to_vec(),
                latency_counts: t.latency.to_vec(),
                healthy_ms: e.states_ms[0],
                degraded_ms: e.states_ms[1],
                failing_ms: e.states_ms[2],
                success_objective: e.success_objective,
                latency_objective_ms: e.latency_objective_ms,
                written_at: now,
            });
        }
        out
    }

    /// Marks the entries of `records` as to be written again (their write
    /// failed).
    pub fn unwritten(&mut self, records: &[HourlyRollup]) {
        for r in records {
            let scope = if r.scope == "source" {
                Scope::Source
            } else {
                Scope::Flow
            };
            let key = Key {
                scope,
                id: r.id.clone(),
                tenant: r.tenant.clone(),
                hour: r.hour,
            };
            if let Some(e) = self.entries.get_mut(&key) {
                e.dirty = true;
            }
        }
    }
}

#[cfg(test)]
mod tests;
