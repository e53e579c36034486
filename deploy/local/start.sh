#!/usr/bin/env bash
# Starts the local stack on loopback: tansu (Kafka protocol, SQLite storage)
# and rivven-schema (Confluent-compatible registry), and waits until both
# answer. PIDs go to $INTOPS_STACK_DIR/*.pid.
#
# The broker's data is kept across restarts. The registry keeps schemas in
# memory only, so it is brought back from a journal of every schema it
# held ($INTOPS_STACK_DIR/registry-schemas.json), re-registered in id order
# with each id verified: on a mismatch the stack does not start (records on
# disk carry those ids). Then every shipped schema version is registered,
# the journal saved, and a watcher keeps saving it (see
# registry_journal.py).
#
# INTOPS_STACK_FRESH=1 deletes the broker's data and the journal first
# (deploy/local/test.sh does, for a clean test run).
#
# INTOPS_TANSU_MAINTENANCE_INTERVAL (a number and a unit: ms, s, m, h, d) sets
# how often tansu runs its maintenance pass (retention, compaction, over the
# whole record table, while every other read and write waits); tansu's
# default is 10m. See docs/benchmarks.md ("the broker's pauses").
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=env.sh
source "$here/env.sh"

for bin in "$TANSU_BIN" "$RIVVEN_SCHEMA_BIN"; do
  [ -x "$bin" ] || { echo "missing $bin: run deploy/local/install.sh first" >&2; exit 1; }
done

maintenance="${INTOPS_TANSU_MAINTENANCE_INTERVAL:-}"
if [ -n "$maintenance" ] && ! [[ "$maintenance" =~ ^[0-9]+(ms|s|m|h|d)$ ]]; then
  echo "INTOPS_TANSU_MAINTENANCE_INTERVAL=$maintenance: not a duration such as 90s, 10m or 1h (tansu would ignore it)" >&2
  exit 2
fi

"$here/stop.sh" >/dev/null 2>&1 || true
mkdir -p "$INTOPS_STACK_DIR"
journal="$INTOPS_STACK_DIR/registry-schemas.json"
if [ "${INTOPS_STACK_FRESH:-0}" = 1 ]; then
  rm -f "$INTOPS_STACK_DIR"/tansu.db* "$journal"
elif [ -e "$INTOPS_STACK_DIR/tansu.db" ] && [ ! -e "$journal" ]; then
  echo "refusing to start: $INTOPS_STACK_DIR/tansu.db has no registry journal beside it" >&2
  echo "(it was written by an older start.sh, which kept no schemas); its records" >&2
  echo "could not be decoded. Start over with INTOPS_STACK_FRESH=1 (deletes the data)." >&2
  exit 1
fi

# setsid: a Ctrl-C in the terminal must not reach the stack before the
# services have shut down through it; stop.sh stops it by PID.
# env -u: tansu's own environment knobs must not override these flags.
setsid env -u CLUSTER_ID -u LISTENER_URL -u ADVERTISED_LISTENER_URL -u STORAGE_ENGINE \
  "$TANSU_BIN" broker \
  --listener-url "tcp://127.0.0.1:$INTOPS_BROKER_PORT" \
  --advertised-listener-url "tcp://127.0.0.1:$INTOPS_BROKER_PORT" \
  --storage-engine "sqlite:///$INTOPS_STACK_DIR/tansu.db${maintenance:+?maintenance_interval=$maintenance}" \
  >"$INTOPS_STACK_DIR/tansu.log" 2>&1 &
echo $! >"$INTOPS_STACK_DIR/tansu.pid"

setsid "$RIVVEN_SCHEMA_BIN" serve --host 127.0.0.1 --port "$INTOPS_REGISTRY_PORT" --log-level warn \
  >"$INTOPS_STACK_DIR/registry.log" 2>&1 &
echo $! >"$INTOPS_STACK_DIR/registry.pid"

wait_for() { # name check-command...
  local name=$1; shift
  for _ in $(seq 1 150); do
    if "$@" >/dev/null 2>&1; then echo "$name ready"; return 0; fi
    sleep 0.2
  done
  echo "$name did not become ready; log follows" >&2
  cat "$INTOPS_STACK_DIR/$name.log" >&2 || true
  return 1
}
# A Kafka metadata round trip would need a client; an accepting socket
# plus the broker's log line is what the readiness wait checks here, and
# every service waits for real metadata itself when it creates topics.
broker_up() { (exec 3<>"/dev/tcp/127.0.0.1/$INTOPS_BROKER_PORT") 2>/dev/null; }
registry_up() { curl -fsS "http://127.0.0.1:$INTOPS_REGISTRY_PORT/" ; }
wait_for tansu broker_up
wait_for registry registry_up
registry_url="http://127.0.0.1:$INTOPS_REGISTRY_PORT"
journal_py="$here/registry_journal.py"
if ! python3 "$journal_py" restore "$registry_url" "$journal" ||
  ! python3 "$journal_py" seed "$registry_url" "$here/../../schemas"; then
  echo "refusing to start: the registry cannot be brought back to $journal" >&2
  INTOPS_STACK_NO_SAVE=1 "$here/stop.sh" >/dev/null 2>&1 || true
  exit 1
fi
curl -fsS -X PUT -H 'Content-Type: application/vnd.schemaregistry.v1+json' \
  --data '{"compatibility":"BACKWARD"}' "$registry_url/config" >/dev/null
python3 "$journal_py" save "$registry_url" "$journal"
setsid python3 "$journal_py" watch "$registry_url" "$journal" "$(cat "$INTOPS_STACK_DIR/registry.pid")" \
  >>"$INTOPS_STACK_DIR/registry.log" 2>&1 &
echo $! >"$INTOPS_STACK_DIR/journal.pid"
echo "stack up: kafka 127.0.0.1:$INTOPS_BROKER_PORT, registry http://127.0.0.1:$INTOPS_REGISTRY_PORT"
