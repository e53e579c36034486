//! The four services as separate processes on one broker, each instance
//! with a stable name, so the fault suite can kill and restart them the
//! way an orchestrator restarts a pod.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use crate::{poll_until, process, stack};

/// The environment variable naming a consumer's static group membership
/// (`group.instance.id`), so a restarted instance takes its predecessor's
/// partitions at once (issue 14, item 8).
pub const INSTANCE_ID_ENV: &str = "INTOPS_INSTANCE_ID";

/// A service of the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// intops-ingest.
    Ingest,
    /// intops-transform.
    Transform,
    /// intops-delivery.
    Delivery,
    /// intops-monitor.
    Monitor,
}

impl Role {
    /// Its name (`transform`).
    pub fn name(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Transform => "transform",
            Role::Delivery => "delivery",
            Role::Monitor => "monitor",
        }
    }

    fn binary(self) -> String {
        format!("intops-{}", self.name())
    }
}

/// Running service processes, by (role, instance number).
#[derive(Debug)]
pub struct Fleet {
    bootstrap: String,
    prefix: String,
    flows: PathBuf,
    logs: PathBuf,
    ingest_port: u16,
    monitor_port: u16,
    running: BTreeMap<(Role, u8), Child>,
}

impl Fleet {
    /// A fleet on `bootstrap` and topic `prefix`, with the flows file at
    /// `flows`; each process's log is appended to `<logs>/<role>-<n>.log`.
    pub fn new(bootstrap: &str, prefix: &str, flows: &Path, logs: &Path) -> Self {
        Self {
            bootstrap: bootstrap.into(),
            prefix: prefix.into(),
            flows: flows.into(),
            logs: logs.into(),
            ingest_port: stack::free_port(),
            monitor_port: stack::free_port(),
            running: BTreeMap::new(),
        }
    }

    /// The webhook URL of `source`.
    pub fn ingest_url(&self, source: &str) -> String {
        format!(
            "http://127.0.0.1:{}/v1/sources/{source}/events",
            self.ingest_port
        )
    }

    /// The readiness URL of ingest or the monitor.
    pub fn ready_url(&self, role: Role) -> String {
        let port = match role {
            Role::Monitor => self.monitor_port,
            _ => self.ingest_port,
        };
        format!("http://127.0.0.1:{port}/readyz")
    }

    /// Starts instance `n` of `role` (stable name `<role>-<n>`).
    pub fn start(&mut self, role: Role, n: u8) {
        let instance = format!("{}-{n}", role.name());
        let ingest_listen = format!("127.0.0.1:{}", self.ingest_port);
        let monitor_listen = format!("127.0.0.1:{}", self.monitor_port);
        // Instance 0 is a static member, like a pod of a StatefulSet that
        // comes back under its name: its crash loop is item 8's case. The
        // instances that join and leave are dynamic members: a static member
        // sends no LeaveGroup, and tansu 0.6.0 never expires one from a
        // stable group, so a static member that leaves for good keeps its
        // partitions there (Apache Kafka moves them after the session
        // timeout). docs/operations.md, "Static membership".
        let mut env = Vec::new();
        if n == 0 {
            env.push((INSTANCE_ID_ENV, instance.as_str()));
        }
        match role {
            Role::Ingest => {
                env.push(("INTOPS_INGEST_LISTEN", &ingest_listen));
                // A broker outage answers 503 soon, and the source retries.
                env.push(("INTOPS_INGEST_ACK_TIMEOUT", "3s"));
            }
            Role::Monitor => env.push(("INTOPS_MONITOR_LISTEN", &monitor_listen)),
            // Under this suite's load on two cores, tansu 0.6.0 can leave a
            // heartbeat unanswered for more than ten seconds; the member's
            // session then expires and tansu may never complete the rejoin
            // (the same reason deploy/local/bench.sh uses a longer session).
            // Killed instances are static members that come back under their
            // id, and the joining ones leave with a LeaveGroup, so no step
            // waits for a session to expire.
            Role::Transform | Role::Delivery => {
                env.push(("INTOPS_KAFKA_OPTION_SESSION_TIMEOUT_MS", "25000"));
            }
        }
        let log = self.logs.join(format!("{instance}.log"));
        let child = process::spawn(
            &role.binary(),
            &self.flows,
            &self.prefix,
            &self.bootstrap,
            &env,
            Some(&log),
        );
        assert!(
            self.running.insert((role, n), child).is_none(),
            "{instance} started twice"
        );
    }

    /// Kills instance `n` of `role` with SIGKILL and reaps it; panics if
    /// it had already exited on its own (a crash).
    pub fn kill(&mut self, role: Role, n: u8) {
        let mut child = self
            .running
            .remove(&(role, n))
            .unwrap_or_else(|| panic!("{}-{n} is not running", role.name()));
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{}-{n} exited on its own ({status}) before the suite killed it; logs in {}",
                role.name(),
                self.logs.display()
            );
        }
        child.kill().expect("kill -9");
        let _ = child.wait();
    }

    /// Stops instance `n` of `role` with SIGTERM; panics unless it exits 0.
    pub fn terminate(&mut self, role: Role, n: u8) {
        let child = self
            .running
            .remove(&(role, n))
            .unwrap_or_else(|| panic!("{}-{n} is not running", role.name()));
        let status = process::terminate(child);
        assert!(
            status.success(),
            "{}-{n} stopped with {status}",
            role.name()
        );
    }

    /// Panics naming any instance that exited on its own (a crash).
    pub fn assert_alive(&mut self) {
        let mut dead = Vec::new();
        for ((role, n), child) in &mut self.running {
            if let Ok(Some(status)) = child.try_wait() {
                dead.push(format!("{}-{n} ({status})", role.name()));
            }
        }
        assert!(
            dead.is_empty(),
            "service process(es) exited on their own: {}; logs in {}",
            dead.join(", "),
            self.logs.display()
        );
    }

    /// Waits until ingest's or the monitor's `/readyz` answers 200.
    pub async fn wait_ready(&self, role: Role, deadline: Duration) {
        let url = self.ready_url(role);
        let http = reqwest::Client::new();
        poll_until(&format!("{url} to answer 200"), deadline, || {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let r = http
                    .get(&url)
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await
                    .ok()?;
                r.status().is_success().then_some(())
            }
        })
        .await;
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for child in self.running.values_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
