//! The soak (`--processes --soak-seconds`): the four processes at a
//! fraction of their measured saturated rate, in windows of up to 60 s;
//! per window the latency, when its slowest event was accepted on the
//! broker's clock (tansu runs its maintenance when it starts and every
//! `maintenance_interval` after, serialised with every read and write),
//! and each service's resident memory.

use std::collections::{HashMap, HashSet};
use std::process::Child;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use intops_tests::{MockTarget, poll_until};

use crate::{Percentiles, broker, load, processes::usage};

/// What the soak phase runs (`--soak-seconds`; 0: none).
pub struct SoakPlan {
    pub seconds: u32,
    /// The soak's rate as a fraction of the saturated phase's.
    pub fraction: f64,
    /// Events per request: the saturated phase's batch by default, so the
    /// soak differs from it in the rate alone (smaller requests cost the
    /// broker a produce request per few events, more work per event).
    pub batch: usize,
}

/// Times the soak sends one request again after a 503 before it fails.
const SOAK_MAX_REFUSALS: usize = 30;

/// The soak: `rate` events/s for `seconds`, figures per window.
pub struct Soak {
    pub rate: u32,
    /// Events per request.
    pub batch: usize,
    pub seconds: u32,
    pub window_seconds: u32,
    pub windows: Vec<Window>,
    /// Requests ingest refused (503) and that were sent again.
    pub refused: usize,
    pub last_refusal: Option<String>,
    /// Soak events whose outcome was not among those read (duplicates
    /// took their place): missing from their window's figures.
    pub unread: usize,
}

/// One window of the soak.
pub struct Window {
    /// Latency (ingest's acceptance → delivered) of its events.
    pub latency: Percentiles,
    /// When its slowest event was accepted, in seconds since the broker
    /// process started (`None`: no broker PID, or no event read).
    pub slowest_at_broker_s: Option<f64>,
    /// Each service's resident memory (KiB) at the window's end, in the
    /// order of the services.
    pub rss_kb: Vec<u64>,
    /// Each service's CPU during the window, % of one core.
    pub cpu_percent: Vec<f64>,
}

/// The events sent in one window, the memory at its end and the CPU
/// during it.
struct Sent {
    ids: HashSet<String>,
    rss_kb: Vec<u64>,
    cpu_percent: Vec<f64>,
}

impl Soak {
    /// The first and the last window's latency, as printed.
    pub fn first_and_last(&self) -> String {
        let latency = |w: Option<&Window>| w.map_or((0, 0), |w| (w.latency.p50, w.latency.p99));
        let (first, last) = (latency(self.windows.first()), latency(self.windows.last()));
        format!(
            "p50 {} ms, p99 {} ms in the first {} s; p50 {} ms, p99 {} ms in the last",
            first.0, first.1, self.window_seconds, last.0, last.1
        )
    }

    /// Resident memory (KiB) of service `i` at the end of the first and
    /// of the last window.
    pub fn rss_first_and_last(&self, i: usize) -> (u64, u64) {
        let at = |w: Option<&Window>| w.and_then(|w| w.rss_kb.get(i).copied()).unwrap_or(0);
        (at(self.windows.first()), at(self.windows.last()))
    }
}

/// The soak's requests sent, window by window; the windows' latencies
/// come later, from the outcomes ([`Run::fold`]).
pub(crate) struct Run {
    plan_rate: u32,
    batch: usize,
    window_seconds: u32,
    windows: u32,
    sent: Vec<Sent>,
    refused: usize,
    last_refusal: Option<String>,
}

impl Run {
    /// The plan at `saturated_rate` (events/s), nothing sent yet.
    pub(crate) fn new(plan: &SoakPlan, saturated_rate: f64) -> Self {
        Self {
            plan_rate: (saturated_rate * plan.fraction).round().max(1.0) as u32,
            batch: plan.batch.max(1),
            window_seconds: plan.seconds.clamp(1, 60),
            windows: plan.seconds.div_ceil(plan.seconds.clamp(1, 60)),
            sent: Vec::new(),
            refused: 0,
            last_refusal: None,
        }
    }

    /// Sends every window's events to ingest at `url`, noting the
    /// memory of `children` after each.
    pub(crate) async fn send(
        &mut self,
        http: &reqwest::Client,
        url: &str,
        events: &[String],
        children: &[&Child],
    ) -> anyhow::Result<()> {
        let cpu = |c: &&Child| usage(c.id()).map(|u| u.1).unwrap_or_default();
        let mut cpu_before: Vec<f64> = children.iter().map(cpu).collect();
        for _ in 0..self.windows {
            let started = std::time::Instant::now();
            let window = load::paced_retrying(
                http,
                url,
                events,
                self.plan_rate,
                self.window_seconds,
                self.batch,
                SOAK_MAX_REFUSALS,
            )
            .await?;
            self.refused += window.refused;
            if window.last_refusal.is_some() {
                self.last_refusal = window.last_refusal;
            }
            let rss_kb = children
                .iter()
                .map(|c| usage(c.id()).map(|u| u.0).unwrap_or_default())
                .collect();
            let cpu_after: Vec<f64> = children.iter().map(cpu).collect();
            let secs = started.elapsed().as_secs_f64().max(f64::EPSILON);
            let cpu_percent = cpu_after
                .iter()
                .zip(&cpu_before)
                .map(|(after, before)| 100.0 * (after - before) / secs)
                .collect();
            cpu_before = cpu_after;
            self.sent.push(Sent {
                ids: window.ids,
                rss_kb,
                cpu_percent,
            });
        }
        Ok(())
    }

    /// Waits until the target has received `sent_before` events and
    /// every one of the soak's.
    pub(crate) async fn wait_delivered(&self, target: &MockTarget, sent_before: usize) {
        if self.sent.is_empty() {
            return;
        }
        let total = sent_before + self.events();
        poll_until(
            "every soak event delivered",
            Duration::from_secs(600),
            || async { (target.request_count() >= total).then_some(()) },
        )
        .await;
    }

    /// Events the soak sent.
    pub(crate) fn events(&self) -> usize {
        (self.plan_rate * self.window_seconds) as usize * self.sent.len()
    }

    /// Whether `event_id` was sent by the soak.
    pub(crate) fn window_of(&self, event_id: &str) -> Option<usize> {
        self.sent.iter().position(|w| w.ids.contains(event_id))
    }

    /// The figures, from each soak event's (delivered at µs, latency ms)
    /// by window.
    pub(crate) fn fold(self, read: HashMap<usize, Vec<(i64, i64)>>) -> Option<Soak> {
        if self.sent.is_empty() {
            return None;
        }
        let broker_start = broker::pid().and_then(started_at);
        let unread = self
            .sent
            .iter()
            .enumerate()
            .map(|(i, w)| w.ids.len().saturating_sub(read.get(&i).map_or(0, Vec::len)))
            .sum();
        let windows = self
            .sent
            .into_iter()
            .enumerate()
            .map(|(i, sent)| {
                let events = read.get(&i).cloned().unwrap_or_default();
                let slowest = events.iter().max_by_key(|(_, latency)| *latency).copied();
                Window {
                    latency: Percentiles::of(events.iter().map(|(_, l)| *l).collect()),
                    slowest_at_broker_s: slowest.zip(broker_start).map(
                        |((at_micros, latency_ms), start)| {
                            let accepted = UNIX_EPOCH
                                + Duration::from_micros(u64::try_from(at_micros).unwrap_or(0))
                                - Duration::from_millis(u64::try_from(latency_ms).unwrap_or(0));
                            accepted
                                .duration_since(start)
                                .map_or(0.0, |d| d.as_secs_f64())
                        },
                    ),
                    rss_kb: sent.rss_kb,
                    cpu_percent: sent.cpu_percent,
                }
            })
            .collect::<Vec<_>>();
        Some(Soak {
            rate: self.plan_rate,
            batch: self.batch,
            seconds: self.window_seconds * windows.len() as u32,
            window_seconds: self.window_seconds,
            windows,
            refused: self.refused,
            last_refusal: self.last_refusal,
            unread,
        })
    }
}

/// When process `pid` started, from /proc (clock ticks after boot).
pub(crate) fn started_at(pid: u32) -> Option<SystemTime> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command's closing parenthesis start at the 3rd;
    // starttime is the 22nd.
    let ticks: u64 = stat
        .rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()?;
    let boot: u64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    // The kernel's USER_HZ is 100 on Linux.
    Some(UNIX_EPOCH + Duration::from_secs(boot) + Duration::from_millis(ticks * 10))
}
