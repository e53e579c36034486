#!/usr/bin/env bash
# The whole test suite: installs the local stack, Chromium (status page test) and the interop test's
# Python client if needed, starts the stack with fresh data, runs every unit
# and integration test, and stops the stack. The end-to-end tests against
# the stack (tests/tests/stack/, one test binary) run only with the
# `stack` feature of intops-tests, turned on here; a plain
# `cargo test --workspace` runs everything else, without a stack.
#   deploy/local/test.sh [extra cargo test args]
#   deploy/local/test.sh -p intops-tests --test stack -- delivery_crash::
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$here/../.."
# shellcheck source=env.sh
source "$here/env.sh"
cd "$root"
"$here/install.sh"

# Confluent's Python client, for the test that decodes intops topics with
# a standard Avro consumer (tests/tests/stack/interop_confluent.rs).
venv="$INTOPS_TOOLS_DIR/../venv"
reqs="$root/tests/interop/requirements.txt"
if ! cmp -s "$reqs" "$venv/requirements.txt" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$reqs"
  cp "$reqs" "$venv/requirements.txt"
fi
export INTOPS_INTEROP_PYTHON="$venv/bin/python"
# Headless Chromium for the status page test (tests/tests/stack/monitor_page.rs)
# and Debian's chromedriver for the console's browser test
# (tests/tests/stack/console_browser.rs, WebDriver).
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  sudo_=""; [ "$(id -u)" = 0 ] || sudo_="sudo"
  $sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null
fi
export INTOPS_CHROMIUM="$(command -v chromium)"
export INTOPS_CHROMEDRIVER="$(command -v chromedriver)"
# The broker binary, for tests that run a private broker to stop it.
export INTOPS_TANSU_BIN="$TANSU_BIN"

# The service binaries, for tests that run (and kill -9) them as processes.
cargo build --locked --bins
export INTOPS_BIN_DIR="$root/target/debug"
# The suite runs two tests at once against one tansu, each with its own
# services on 3-partition topics. At the shipped 10 ms prompt fetch wait
# their idle consumers alone would cost tansu more than half a core per
# test (it holds and re-reads every fetch: docs/operations.md, "Latency:
# fetch wait and partitions"), slowing every broker call of both tests.
# The tests assert behaviour, not latency: the consumers on an event's
# path wait 50 ms here (as before 10 ms shipped); the background readers
# keep their shipped 500 ms. The benchmark measures the defaults.
export INTOPS_KAFKA_PROMPT_FETCH_WAIT_MS="${INTOPS_KAFKA_PROMPT_FETCH_WAIT_MS:-50}"

# A clean test run: the stack starts with no data (run.sh and start.sh keep
# it; tests/tests/stack/stack_restart.rs checks that on a private stack).
INTOPS_STACK_FRESH=1 "$here/start.sh"
trap '"$here/stop.sh"' EXIT
cargo test --workspace --locked --no-fail-fast --features intops-tests/stack "$@"
