#!/usr/bin/env bash
# The benchmark: raw broker ceiling and end-to-end rate through the four
# services, on a freshly started local stack, release build.
#   deploy/local/bench.sh [--events N] [--batch N] [--concurrency N]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/../.."
"$here/install.sh"
cargo build --release --locked -p intops-tests --bin intops-bench -p intops-cli --bin intops
cargo build --release --locked -p intops-ingest -p intops-transform -p intops-delivery -p intops-monitor --bins
"$here/start.sh"
trap '"$here/stop.sh"' EXIT
# Under the delivery phase's load tansu can leave a heartbeat unanswered
# for over ten seconds; the member's session then expires, and tansu never
# completes the rejoin (it waits for the old member, which it does not
# evict: see tests/src/group.rs). A longer session keeps the
# benchmark's in-process services in their groups.
export INTOPS_KAFKA_OPTION_SESSION_TIMEOUT_MS="${INTOPS_KAFKA_OPTION_SESSION_TIMEOUT_MS:-45000}"
RUST_LOG="${RUST_LOG:-warn}" target/release/intops-bench "$@"
