#!/usr/bin/env bash
# The benchmark: raw broker ceiling and end-to-end rate through the four
# services, on a freshly started local stack, release build.
#   deploy/local/bench.sh [--events N] [--batch N] [--concurrency N]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/../.."
"$here/install.sh"
cargo build --release --locked -p intops-tests --bin intops-bench -p intops-cli --bin intops
"$here/start.sh"
trap '"$here/stop.sh"' EXIT
RUST_LOG="${RUST_LOG:-warn}" target/release/intops-bench "$@"
