//! Running the `intops` command line the way an operator does: the built
//! binary (`INTOPS_BIN_DIR`, set by deploy/local/test.sh), pointed at the
//! local stack and one test's topic prefix.

use std::process::Output;

use crate::stack;

/// The path of the built `intops` binary.
pub fn binary() -> String {
    let dir = std::env::var("INTOPS_BIN_DIR")
        .unwrap_or_else(|_| format!("{}/../target/debug", env!("CARGO_MANIFEST_DIR")));
    format!("{dir}/intops")
}

/// A command for `intops args...` on the topics under `prefix`.
pub fn command(prefix: &str, args: &[&str]) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(binary());
    c.args(args)
        .env("INTOPS_TOPIC_PREFIX", prefix)
        .env("INTOPS_KAFKA_BOOTSTRAP", stack::bootstrap())
        .env("INTOPS_SCHEMA_REGISTRY_URL", stack::registry_url())
        .env("INTOPS_TOPIC_PARTITIONS", "3")
        .kill_on_drop(true);
    c
}

/// Runs `intops args...` to its end; panics with its output unless it
/// exits 0.
pub async fn run(prefix: &str, args: &[&str]) -> String {
    let out = output(prefix, args).await;
    assert!(
        out.status.success(),
        "intops {args:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `intops args...` and prints its stdout as JSON (`--json` runs).
pub async fn json(prefix: &str, args: &[&str]) -> serde_json::Value {
    let text = run(prefix, args).await;
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("intops {args:?}: {e}: {text}"))
}

/// Runs `intops args...` and returns whatever happened.
pub async fn output(prefix: &str, args: &[&str]) -> Output {
    command(prefix, args)
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary()))
}
