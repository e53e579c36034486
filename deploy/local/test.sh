#!/usr/bin/env bash
# The whole test suite: installs the local stack if needed, starts it with
# fresh data, runs every unit and integration test, and stops the stack.
#   deploy/local/test.sh [extra cargo test args]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/../.."
"$here/install.sh"
"$here/start.sh"
trap '"$here/stop.sh"' EXIT
cargo test --workspace --locked "$@"
