//! The fault suite's steps: each injects one fault into the running
//! pipeline, measures what the affected stage had in flight, and waits
//! (with a deadline) until that stage works again.

use std::time::{Duration, Instant};

use intops_events::Topics;

use super::checker::Fault;
use super::fleet::{Fleet, Role};
use super::load::Load;
use super::offsets;
use crate::MockTarget;
use crate::broker::PrivateBroker;

/// The target's id in the suite's flows file.
pub const TARGET: &str = "crm";
/// The flow's id.
pub const FLOW: &str = "shop-to-crm";
/// The signed source's id.
pub const SOURCE: &str = "shop";
/// How long a stage may take to work again after a fault.
pub const RECOVERY: Duration = Duration::from_secs(60);

/// The flows file: a signed source with a timestamp header and a dedupe
/// key, one flow that skips `kind = "skip"` and adds 1 to `n` (failing on
/// text), and a target with short timeouts, backoffs and probes so that
/// its trouble passes within seconds.
pub fn flows(target_base_url: &str) -> String {
    format!(
        r#"
[[sources]]
id = "{SOURCE}"
kind = "webhook"
auth = {{ hmac_sha256 = {{ file = "{{secrets}}/shop" }}, timestamp_header = "{ts}" }}
entity_key = ".k"
dedupe_key = ".id"

[[targets]]
id = "{TARGET}"
base_url = "{target_base_url}"
timeout = "1s"
concurrency = 4
probe_interval = "1s"
retry = {{ max_attempts = 40, initial_backoff = "100ms", max_backoff = "1s" }}
circuit_breaker = {{ failures = 20, open_for = "1s" }}

[[flows]]
id = "{FLOW}"
source = "{SOURCE}"
target = "{TARGET}"
when = '.kind != "skip"'
method = "POST"
path = "/records"
map = '{{id: .id, n: (.n + 1)}}'
"#,
        ts = super::load::TIMESTAMP_HEADER
    )
}

/// The running pipeline and what the faults did to it.
#[derive(Debug)]
pub struct Run {
    /// The service processes.
    pub fleet: Fleet,
    /// The private broker.
    pub broker: PrivateBroker,
    /// The target.
    pub target: MockTarget,
    /// The topics.
    pub topics: Topics,
    /// The signed source.
    pub load: Option<Load>,
    /// When the load started.
    pub started: Instant,
    /// Every fault so far.
    pub faults: Vec<Fault>,
}

/// Where a stage's progress shows: its group and input topic.
fn group_of(topics: &Topics, role: Role) -> (String, String) {
    match role {
        Role::Transform => (topics.group("transform"), topics.events()),
        Role::Delivery => (
            topics.group(&format!("delivery.{TARGET}")),
            topics.deliveries(TARGET),
        ),
        Role::Ingest | Role::Monitor => unreachable!("{} has no group", role.name()),
    }
}

impl Run {
    fn bootstrap(&self) -> String {
        self.broker.bootstrap()
    }

    fn since_start(&self, at: Instant) -> f64 {
        at.duration_since(self.started).as_secs_f64()
    }

    fn load(&self) -> &Load {
        self.load.as_ref().expect("the load is running")
    }

    /// Requests the target answered with 2xx so far.
    pub fn accepted(&self) -> usize {
        self.target
            .requests()
            .iter()
            .filter(|r| (200..300).contains(&r.status))
            .count()
    }

    /// What `role`'s group has read but not committed now (0 while the
    /// broker does not answer; only called while it is up).
    fn uncommitted(&self, role: Role) -> u64 {
        let (group, topic) = group_of(&self.topics, role);
        offsets::uncommitted(&self.bootstrap(), &group, &topic).unwrap_or(0)
    }

    /// Waits until `check` holds (`Err` says how things stand), checking
    /// that no service crashed; panics naming `what` after [`RECOVERY`].
    async fn until(
        &mut self,
        what: &str,
        mut check: impl FnMut(&Self) -> Result<(), String>,
    ) -> Instant {
        let end = Instant::now() + RECOVERY;
        loop {
            self.fleet.assert_alive();
            let state = match check(self) {
                Ok(()) => return Instant::now(),
                Err(state) => state,
            };
            assert!(
                Instant::now() < end,
                "{what} did not happen within {RECOVERY:?}: the pipeline stalled ({state}); faults so far: {:#?}",
                self.faults
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until `role` works again on every partition since `before`
    /// (see [`offsets::progressed`]).
    async fn until_progress(&mut self, role: Role, before: &[(i64, i64)]) -> Instant {
        let (group, topic) = group_of(&self.topics, role);
        let bootstrap = self.bootstrap();
        let what = format!("{} committing again on every partition", role.name());
        self.until(&what, |_| {
            let now = offsets::positions(&bootstrap, &group, &topic).unwrap_or_default();
            if offsets::progressed(before, &now) {
                Ok(())
            } else {
                Err(format!(
                    "{group} on {topic}, (committed, end) per partition: at the fault {before:?}, now {now:?}"
                ))
            }
        })
        .await
    }

    /// Waits until ingest acknowledges a request again.
    async fn until_ingest_accepts(&mut self) -> Instant {
        let before = self.load().acknowledged();
        self.until("ingest acknowledging a request again", |run| {
            let now = run.load().acknowledged();
            (now > before)
                .then_some(())
                .ok_or_else(|| format!("{now} events acknowledged"))
        })
        .await
    }

    /// kill -9 ingest, restarted at once.
    pub async fn kill_ingest(&mut self) {
        let at = Instant::now();
        self.fleet.kill(Role::Ingest, 0);
        self.fleet.start(Role::Ingest, 0);
        let recovered = self.until_ingest_accepts().await;
        self.faults.push(Fault {
            name: "kill -9 ingest".into(),
            at_secs: self.since_start(at),
            recovered_secs: Some((recovered - at).as_secs_f64()),
            ..Fault::default()
        });
    }

    /// kill -9 the monitor, restarted at once.
    pub async fn kill_monitor(&mut self) {
        let at = Instant::now();
        self.fleet.kill(Role::Monitor, 0);
        self.fleet.start(Role::Monitor, 0);
        self.fleet.wait_ready(Role::Monitor, RECOVERY).await;
        self.faults.push(Fault {
            name: "kill -9 monitor".into(),
            at_secs: self.since_start(at),
            recovered_secs: Some(at.elapsed().as_secs_f64()),
            ..Fault::default()
        });
    }

    /// kill -9 `role` (instance 0), restart it, kill the restarted one
    /// again after `joining` (while it is still joining its group: the
    /// crash loop of issue 14 item 8), restart it again, and wait until
    /// the stage commits again.
    pub async fn crash_loop(&mut self, role: Role, joining: Duration) {
        let first = Instant::now();
        self.fleet.kill(role, 0);
        let first_in_flight = self.uncommitted(role);
        self.fleet.start(role, 0);
        tokio::time::sleep(joining).await;
        let second = Instant::now();
        self.fleet.kill(role, 0);
        let second_in_flight = self.uncommitted(role);
        let before = self.positions(role);
        self.fleet.start(role, 0);
        let recovered = self.until_progress(role, &before).await;
        for (name, at, in_flight) in [
            (format!("kill -9 {}", role.name()), first, first_in_flight),
            (
                format!(
                    "kill -9 {} again, {joining:?} after its restart",
                    role.name()
                ),
                second,
                second_in_flight,
            ),
        ] {
            let mut fault = Fault {
                name,
                at_secs: self.since_start(at),
                recovered_secs: Some((recovered - at).as_secs_f64()),
                ..Fault::default()
            };
            match role {
                Role::Transform => fault.transform_in_flight = in_flight,
                _ => fault.delivery_in_flight = in_flight,
            }
            self.faults.push(fault);
        }
    }

    /// What `role` may repeat because of a fault that hit it between
    /// `before` (committed offsets then) and now (end offsets now).
    fn exposed(&self, role: Role, before: &[(i64, i64)]) -> u64 {
        let (group, topic) = group_of(&self.topics, role);
        let now = offsets::positions(&self.bootstrap(), &group, &topic).unwrap_or_default();
        before
            .iter()
            .zip(now)
            .map(|((committed, _), (_, end))| u64::try_from(end - committed).unwrap_or(0))
            .sum()
    }

    /// Transform's and delivery's (committed, end) per partition, for a
    /// failure message.
    pub fn describe_groups(&self) -> String {
        format!(
            "transform {:?}, delivery {:?}",
            self.positions(Role::Transform),
            self.positions(Role::Delivery)
        )
    }

    fn positions(&self, role: Role) -> Vec<(i64, i64)> {
        let (group, topic) = group_of(&self.topics, role);
        offsets::positions(&self.bootstrap(), &group, &topic).unwrap_or_default()
    }

    /// kill -9 the broker, restarted after `down` on the same data.
    pub async fn kill_broker(&mut self, down: Duration) {
        let (t, d) = (
            self.positions(Role::Transform),
            self.positions(Role::Delivery),
        );
        let at = Instant::now();
        self.broker.kill().await;
        tokio::time::sleep(down).await;
        self.broker.restart().await.expect("the broker restarts");
        self.until_ingest_accepts().await;
        self.until_progress(Role::Transform, &t).await;
        let recovered = self.until_progress(Role::Delivery, &d).await;
        self.faults.push(Fault {
            name: "kill -9 broker".into(),
            at_secs: self.since_start(at),
            recovered_secs: Some((recovered - at).as_secs_f64()),
            transform_in_flight: self.exposed(Role::Transform, &t),
            delivery_in_flight: self.exposed(Role::Delivery, &d),
        });
    }

    /// The target answers badly for `trouble` (set up by `start`, ended
    /// by `end`); recovery is the first 2xx after it ended.
    pub async fn target_trouble(
        &mut self,
        name: &str,
        trouble: Duration,
        start: impl FnOnce(&MockTarget),
        end: impl FnOnce(&MockTarget),
    ) {
        let at = Instant::now();
        start(&self.target);
        tokio::time::sleep(trouble).await;
        end(&self.target);
        let ended = Instant::now();
        let before = self.accepted();
        let recovered = self
            .until(&format!("a 2xx after the target's {name}"), |run| {
                let now = run.accepted();
                (now > before)
                    .then_some(())
                    .ok_or_else(|| format!("{now} requests accepted"))
            })
            .await;
        self.faults.push(Fault {
            name: format!("target: {name} for {trouble:?}"),
            at_secs: self.since_start(at),
            recovered_secs: Some((recovered - ended).as_secs_f64()),
            ..Fault::default()
        });
    }

    /// A second transform and delivery instance join, work for `stay`,
    /// and leave (SIGTERM).
    pub async fn rebalance(&mut self, stay: Duration) {
        let (t, d) = (
            self.positions(Role::Transform),
            self.positions(Role::Delivery),
        );
        let at = Instant::now();
        self.fleet.start(Role::Transform, 1);
        self.fleet.start(Role::Delivery, 1);
        tokio::time::sleep(stay).await;
        let left = Instant::now();
        let (tl, dl) = (
            self.positions(Role::Transform),
            self.positions(Role::Delivery),
        );
        self.fleet.terminate(Role::Transform, 1);
        self.fleet.terminate(Role::Delivery, 1);
        self.until_progress(Role::Transform, &tl).await;
        let recovered = self.until_progress(Role::Delivery, &dl).await;
        self.faults.push(Fault {
            name: format!("transform-1 and delivery-1 join, leave after {stay:?}"),
            at_secs: self.since_start(at),
            recovered_secs: Some((recovered - left).as_secs_f64()),
            transform_in_flight: self.exposed(Role::Transform, &t),
            delivery_in_flight: self.exposed(Role::Delivery, &d),
        });
    }
}
