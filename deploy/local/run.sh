#!/usr/bin/env bash
# The local demo: the stack, a mock Jira-shaped target, and the four
# services with deploy/local/flows.toml. Sends the ServiceNow fixture once,
# shows what the target received and what the monitor knows, then keeps
# running (printing each delivered request) until Ctrl-C.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$here/../.."
# shellcheck source=env.sh
source "$here/env.sh"
cd "$root"

"$here/install.sh"
cargo build --locked --bins
"$here/start.sh"

export SNOW_SECRET="${SNOW_SECRET:-demo-secret}"
export INTOPS_FLOWS="$root/deploy/local/flows.toml"
logs="$INTOPS_STACK_DIR/logs"
mkdir -p "$logs"
pids=()
stop_all() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  "$here/stop.sh"
}
trap stop_all EXIT
trap 'exit 0' INT TERM

bin="$root/target/debug"
"$bin/intops-mock-target" --listen 127.0.0.1:8090 >"$logs/target.log" 2>&1 & pids+=($!)
"$bin/intops-ingest" >"$logs/ingest.log" 2>&1 & pids+=($!)
# One instance each, with a stable id: static group membership, so a
# restarted one takes its partitions back at once.
INTOPS_ADMIN_LISTEN=127.0.0.1:9101 INTOPS_INSTANCE_ID=transform-1 "$bin/intops-transform" >"$logs/transform.log" 2>&1 & pids+=($!)
INTOPS_ADMIN_LISTEN=127.0.0.1:9102 INTOPS_INSTANCE_ID=delivery-1 "$bin/intops-delivery" >"$logs/delivery.log" 2>&1 & pids+=($!)
"$bin/intops-monitor" >"$logs/monitor.log" 2>&1 & pids+=($!)

for url in http://127.0.0.1:8080/readyz http://127.0.0.1:9101/readyz http://127.0.0.1:9102/readyz http://127.0.0.1:9100/readyz; do
  for i in $(seq 1 300); do
    curl -fsS "$url" >/dev/null 2>&1 && break
    [ "$i" = 300 ] && { echo "not ready: $url (logs in $logs)" >&2; exit 1; }
    sleep 0.2
  done
done
echo "intops is up: ingest http://127.0.0.1:8080, monitor http://127.0.0.1:9100 (logs in $logs)"

echo "sending the ServiceNow fixture:"
answer=$("$here/send.sh" "$root/tests/fixtures/servicenow-incident-created.json")
echo "  ingest answered: $answer"
event_id=$(printf '%s' "$answer" | sed -n 's/.*"event_ids":\["\([^"]*\)".*/\1/p')
for _ in $(seq 1 300); do
  trace=$(curl -fsS "http://127.0.0.1:9100/api/v1/events/$event_id" 2>/dev/null || true)
  case "$trace" in *'"delivered"'*) break ;; esac
  sleep 0.2
done
echo "the target received:"
sed 's/^/  /' "$logs/target.log"
echo "the monitor's trace of $event_id:"
echo "  $trace"
echo
echo "send more with: SNOW_SECRET=$SNOW_SECRET deploy/local/send.sh tests/fixtures/servicenow-incident-updated.json"
echo "Ctrl-C stops everything. Deliveries as they arrive:"
tail -n 0 -f "$logs/target.log" & pids+=($!)
wait "${pids[0]}"
