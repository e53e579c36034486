#!/usr/bin/env bash
# The tenants demo: one integration pattern for two customers
# (deploy/local/tenants.toml: the template "snow-to-jira" for the tenants
# acme and globex). Starts the stack, a mock Jira (intops-mock-target, no
# webhooks) and the four services with that file, sends one signed
# priority 1 ServiceNow incident to each tenant's own webhook
# (/v1/sources/<tenant>.servicenow/events, each with its own secret), and
# shows the Jira issue each became: acme's in project ACME with priority
# Highest, globex's in project GLX with its own table's Blocker. Stops
# everything at the end.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$here/../.."
# shellcheck source=env.sh
source "$here/env.sh"
cd "$root"

"$here/install.sh"
cargo build --locked --bins
"$here/start.sh"

export ACME_SNOW_SECRET="${ACME_SNOW_SECRET:-acme-demo-secret}"
export GLOBEX_SNOW_SECRET="${GLOBEX_SNOW_SECRET:-globex-demo-secret}"
export INTOPS_FLOWS="$root/deploy/local/tenants.toml"
logs="$INTOPS_STACK_DIR/logs"
mkdir -p "$logs"
pids=()
stop_all() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  "$here/stop.sh"
}
trap stop_all EXIT

bin="$root/target/debug"
mock=http://127.0.0.1:8090
"$bin/intops-mock-target" --listen 127.0.0.1:8090 >"$logs/tenants-target.log" 2>&1 & pids+=($!)
"$bin/intops-ingest" >"$logs/ingest.log" 2>&1 & pids+=($!)
INTOPS_ADMIN_LISTEN=127.0.0.1:9101 "$bin/intops-transform" >"$logs/transform.log" 2>&1 & pids+=($!)
INTOPS_ADMIN_LISTEN=127.0.0.1:9102 "$bin/intops-delivery" >"$logs/delivery.log" 2>&1 & pids+=($!)
# Rollups every 5 s (60 s by default) so the report below has today at once.
INTOPS_MONITOR_ROLLUP_EVERY=5s "$bin/intops-monitor" >"$logs/monitor.log" 2>&1 & pids+=($!)
for url in http://127.0.0.1:8080/readyz http://127.0.0.1:9101/readyz http://127.0.0.1:9102/readyz http://127.0.0.1:9100/readyz; do
  for i in $(seq 1 300); do
    curl -fsS "$url" >/dev/null 2>&1 && break
    [ "$i" = 300 ] && { echo "not ready: $url (logs in $logs)" >&2; exit 1; }
    sleep 0.2
  done
done
echo "intops is up with deploy/local/tenants.toml (logs in $logs); its flows:"
"$bin/intops" flows check "$INTOPS_FLOWS" | sed 's/^/  /'

# Sends the fixture as an incident of tenant $1 signed with secret $2;
# prints the event id.
send() {
  local body signature
  body=$(sed "s/9d385017c611228701d22104cc95c371/$1-$(date +%s%N)/" tests/fixtures/servicenow-incident-created.json)
  signature="sha256=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$2" -r | cut -d' ' -f1)"
  curl -fsS -X POST "http://127.0.0.1:8080/v1/sources/$1.servicenow/events" \
    -H "X-Intops-Signature: $signature" -H 'Content-Type: application/json' --data-binary "$body" |
    sed -n 's/.*"event_ids":\["\([^"]*\)".*/\1/p'
}
log="$logs/tenants-target.log"
# The key of the first Jira issue the mock created after its log line $1
# (60 s at most).
issue_after() {
  local key
  for _ in $(seq 1 300); do
    key=$(tail -n "+$(($1 + 1))" "$log" | sed -n 's/.*POST \/rest\/api\/3\/issue -> 201 created \([A-Z][A-Z0-9]*-[0-9]*\).*/\1/p' | head -1)
    [ -n "$key" ] && { printf '%s' "$key"; return 0; }
    sleep 0.2
  done
  echo "timed out waiting for a Jira issue (logs in $logs)" >&2
  return 1
}

for tenant in acme globex; do
  secret_var="$(printf '%s' "$tenant" | tr a-z A-Z)_SNOW_SECRET"
  mark=$(wc -l <"$log")
  event=$(send "$tenant" "${!secret_var}")
  key=$(issue_after "$mark")
  fields=$(curl -fsS "$mock/rest/api/3/issue/$key")
  project=$(printf '%s' "$fields" | sed -n 's/.*"project":{"key":"\([^"]*\)".*/\1/p')
  priority=$(printf '%s' "$fields" | sed -n 's/.*"priority":{"name":"\([^"]*\)".*/\1/p')
  echo
  echo "$tenant: incident (event $event) via /v1/sources/$tenant.servicenow/events"
  echo "  => Jira issue $key, project $project, priority $priority"
done
echo
echo "Each tenant's flows, owner and health: curl -sS 'http://127.0.0.1:9100/api/v1/flows?tenant=acme'"
echo "Acme's service report so far (docs/operations.md#sla-reports): $bin/intops report --tenant acme --from 1d --to 0s [--format csv|html]"
