//! A service binary run as its own process, for tests that kill -9 it or
//! stop it with SIGTERM the way a container runtime does. Uses the binaries
//! deploy/local/test.sh built (`INTOPS_BIN_DIR`).

use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::stack;

/// Starts `binary` (`intops-transform`, `intops-delivery`) with the flows
/// file, on the topics under `prefix`, against the local stack.
/// `INTOPS_CRASH_TEST_STDERR=FILE` keeps its log; `INTOPS_CRASH_TEST_LOG`
/// sets its `RUST_LOG` (default `warn`).
pub fn start(binary: &str, flows: &Path, prefix: &str) -> Child {
    let log = std::env::var_os("INTOPS_CRASH_TEST_STDERR").map(std::path::PathBuf::from);
    spawn(
        binary,
        flows,
        prefix,
        &stack::bootstrap(),
        &[],
        log.as_deref(),
    )
}

/// [`start`] against the broker at `bootstrap`, with `env` added (or
/// overriding the defaults), its stderr appended to `log` when given.
pub fn spawn(
    binary: &str,
    flows: &Path,
    prefix: &str,
    bootstrap: &str,
    env: &[(&str, &str)],
    log: Option<&Path>,
) -> Child {
    let dir = std::env::var("INTOPS_BIN_DIR").expect(
        "INTOPS_BIN_DIR is not set: run the suite through deploy/local/test.sh, which builds the binaries",
    );
    let mut command = Command::new(Path::new(&dir).join(binary));
    command
        .env("INTOPS_FLOWS", flows)
        .env("INTOPS_TOPIC_PREFIX", prefix)
        .env("INTOPS_TOPIC_PARTITIONS", "3")
        .env("INTOPS_KAFKA_BOOTSTRAP", bootstrap)
        .env("INTOPS_SCHEMA_REGISTRY_URL", stack::registry_url())
        .env(
            "RUST_LOG",
            std::env::var("INTOPS_CRASH_TEST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        // A killed member must not hold a rebalance for librdkafka's default
        // five minutes.
        .env("INTOPS_KAFKA_OPTION_MAX_POLL_INTERVAL_MS", "30000")
        // ...which librdkafka accepts only with a session timeout below it
        // (the group readers already use 10 s; the control reader too).
        .env("INTOPS_KAFKA_OPTION_SESSION_TIMEOUT_MS", "10000");
    for (k, v) in env {
        command.env(k, v);
    }
    command
        .stdout(Stdio::null())
        .stderr(match log {
            Some(path) => std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map(Stdio::from)
                .unwrap_or_else(|_| Stdio::null()),
            None => Stdio::null(),
        })
        .spawn()
        .unwrap_or_else(|e| panic!("{binary} starts: {e}"))
}

/// Sends SIGTERM and waits for the exit status, as an orchestrator stops a
/// container.
pub fn terminate(mut child: Child) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    let sent = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(sent, "SIGTERM to {pid}");
    child.wait().expect("exit status")
}
