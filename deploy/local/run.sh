#!/usr/bin/env bash
# The local demo: the stack, mock Jira and ServiceNow systems
# (intops-mock-target, one address, each sending a signed webhook to
# ingest for every write it receives), and the four services with
# deploy/local/flows.toml. It opens a priority 1 incident in the mock
# ServiceNow and shows the Jira issue intops creates, then updates the
# incident and shows the update going to that same issue, then comments on
# the issue in the mock Jira and shows the comment arriving in ServiceNow
# as a work note (and that note's own webhook skipped as an echo). Keeps
# running, printing every request and webhook, until Ctrl-C.
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
export JIRA_SECRET="${JIRA_SECRET:-demo-jira-secret}"
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
mock=http://127.0.0.1:8090
log="$logs/target.log"
# The mock systems keep their issues and incidents beside the stack's data,
# so a key intops linked in an earlier run still exists (keys are never
# reused). Delete both or neither.
"$bin/intops-mock-target" --listen 127.0.0.1:8090 --ingest-url http://127.0.0.1:8080 \
  --state-dir "$INTOPS_STACK_DIR/mock" >"$log" 2>&1 & pids+=($!)
"$bin/intops-ingest" >"$logs/ingest.log" 2>&1 & pids+=($!)
# One instance each, with a stable id: static group membership, so a
# restarted one takes its partitions back at once.
INTOPS_ADMIN_LISTEN=127.0.0.1:9101 INTOPS_INSTANCE_ID=transform-1 "$bin/intops-transform" >"$logs/transform.log" 2>&1 & pids+=($!)
INTOPS_ADMIN_LISTEN=127.0.0.1:9102 INTOPS_INSTANCE_ID=delivery-1 "$bin/intops-delivery" >"$logs/delivery.log" 2>&1 & pids+=($!)
# The console's one user for this run: an operator with a fresh token
# (docs/console.md); the users file holds only its SHA-256.
console_token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '[[users]]\nname = "demo"\nrole = "operator"\ntoken_sha256 = "%s"\n' \
  "$(printf %s "$console_token" | sha256sum | cut -d' ' -f1)" >"$logs/console-users.toml"
INTOPS_MONITOR_USERS_FILE="$logs/console-users.toml" "$bin/intops-monitor" >"$logs/monitor.log" 2>&1 & pids+=($!)

for url in http://127.0.0.1:8080/readyz http://127.0.0.1:9101/readyz http://127.0.0.1:9102/readyz http://127.0.0.1:9100/readyz; do
  for i in $(seq 1 300); do
    curl -fsS "$url" >/dev/null 2>&1 && break
    [ "$i" = 300 ] && { echo "not ready: $url (logs in $logs)" >&2; exit 1; }
    sleep 0.2
  done
done
echo "intops is up: ingest http://127.0.0.1:8080, monitor http://127.0.0.1:9100, mock Jira and ServiceNow $mock (logs in $logs)"

# Waits (60 s at most) until the mock's log has a line matching the
# extended regular expression $1 after line $2; prints that line.
wait_log() {
  local line
  for _ in $(seq 1 300); do
    line=$(tail -n "+$(($2 + 1))" "$log" | grep -E -m1 -- "$1" || true)
    [ -n "$line" ] && { printf '%s\n' "$line"; return 0; }
    sleep 0.2
  done
  echo "timed out waiting for the mock to log: $1 (logs in $logs)" >&2
  return 1
}
# Prints the mock's log lines after line $1.
show_log() { tail -n "+$(($1 + 1))" "$log" | sed 's/^/  /'; }
# The monitor's trace of event $1 once it contains $2 (60 s at most).
trace() {
  local t=""
  for _ in $(seq 1 300); do
    t=$(curl -fsS -H "Authorization: Bearer $console_token" "http://127.0.0.1:9100/api/v1/events/$1" 2>/dev/null || true)
    case "$t" in *"$2"*) break ;; esac
    sleep 0.2
  done
  printf '%s\n' "$t"
}
# The first event id ingest answered in a webhook log line.
event_id_of() { printf '%s' "$1" | sed -n 's/.*"event_ids":\["\([^"]*\)".*/\1/p'; }
json_field() { printf '%s' "$1" | sed -n "s/.*\"$2\":\"\\([^\"]*\\)\".*/\\1/p"; }

echo
echo "1. A user opens a priority 1 incident in ServiceNow (tests/fixtures/servicenow-incident-new.json):"
mark=$(wc -l <"$log")
answer=$(curl -fsS -X POST "$mock/api/now/table/incident" -H 'Content-Type: application/json' \
  -H 'X-Mock-User: abel.tuter' --data-binary @tests/fixtures/servicenow-incident-new.json)
sys_id=$(json_field "$answer" sys_id)
number=$(json_field "$answer" number)
created=$(wait_log "POST /rest/api/3/issue -> 201 created" "$mark")
key=$(printf '%s' "$created" | sed -n 's/.*created \([A-Z][A-Z0-9]*-[0-9]*\).*/\1/p')
show_log "$mark"
first_event=$(event_id_of "$(wait_log "servicenow webhook created $sys_id" "$mark")")
echo "   => incident $number ($sys_id) became Jira issue $key. The monitor's trace of event $first_event:"
echo "  $(trace "$first_event" '"delivered"')"

echo
echo "2. The incident is updated in ServiceNow (tests/fixtures/servicenow-incident-updated.json):"
mark=$(wc -l <"$log")
curl -fsS -o /dev/null -X PATCH "$mock/api/now/table/incident/$sys_id" -H 'Content-Type: application/json' \
  -H 'X-Mock-User: beth.anglin' --data-binary @tests/fixtures/servicenow-incident-updated.json
wait_log "PUT /rest/api/3/issue/$key -> 204" "$mark" >/dev/null
show_log "$mark"
echo "   => the update went to the same issue, $key."

echo
echo "3. Someone comments on $key in Jira (tests/fixtures/jira-comment-add.json):"
mark=$(wc -l <"$log")
curl -fsS -o /dev/null -X POST "$mock/rest/api/3/issue/$key/comment" -H 'Content-Type: application/json' \
  -H 'X-Mock-User: Mia Krystof' --data-binary @tests/fixtures/jira-comment-add.json
wait_log "PATCH /api/now/table/incident/$sys_id -> 200" "$mark" >/dev/null
# ServiceNow's webhook for the work note intops just wrote goes back to intops:
echoed=$(wait_log "servicenow webhook updated $sys_id" "$mark")
show_log "$mark"
echo "   => the incident's work notes now (curl $mock/api/now/table/incident/$sys_id):"
curl -fsS "$mock/api/now/table/incident/$sys_id" | sed -n 's/.*"work_notes":"\([^"]*\)".*/\1/p' | sed 's/\\n/\n/g' | sed 's/^/      /'
echo_event=$(event_id_of "$echoed")
echo "   => that change's own webhook (event $echo_event) would change nothing in Jira: skipped as an echo:"
echo "  $(trace "$echo_event" '"echo"')"

echo
echo "Try more while it runs (mock Jira and ServiceNow on $mock):"
echo "  curl -sS -X PATCH $mock/api/now/table/incident/$sys_id -H 'Content-Type: application/json' -d '{\"short_description\": \"Email down in Helsinki and Espoo\"}'"
echo "  curl -sS -X POST $mock/rest/api/3/issue/$key/comment -H 'Content-Type: application/json' -d '{\"body\": \"Fixed.\"}'"
echo "  curl -sS $mock/rest/api/3/issue/$key ; curl -sS $mock/api/now/table/incident/$sys_id"
echo "  SNOW_SECRET=$SNOW_SECRET deploy/local/send.sh tests/fixtures/servicenow-incident-created.json   # a webhook straight to ingest"
echo "The operator console: http://127.0.0.1:9100/login with token $console_token (user demo, operator)"
echo "Ctrl-C stops everything. Requests and webhooks as they happen:"
tail -n 0 -f "$log" & pids+=($!)
wait "${pids[0]}"
