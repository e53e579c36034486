#!/usr/bin/env bash
# Sends a JSON file to the local ingest as source SOURCE, signed with an
# HMAC-SHA256 of the body the way that source's webhooks are signed in
# deploy/local/flows.toml: source jira with $JIRA_SECRET in X-Hub-Signature
# (as Jira Cloud does), any other with $SNOW_SECRET in X-Intops-Signature.
# SECRET and SIGNATURE_HEADER override both.
#   deploy/local/send.sh FILE [SOURCE]
#   JIRA_SECRET=demo-jira-secret deploy/local/send.sh tests/fixtures/jira-comment-created.json jira
# For a source with a timestamp_header (replay protection), set
# TIMESTAMP_HEADER to its name: the current Unix time is sent in it and
# signed before the body, as the source expects.
#   TIMESTAMP_HEADER=X-Intops-Timestamp deploy/local/send.sh FILE
set -euo pipefail
file=${1:?usage: send.sh FILE [SOURCE]}
source_id=${2:-servicenow}
if [[ $source_id == jira ]]; then
  secret=${SECRET:-${JIRA_SECRET:-demo-jira-secret}}
  header=${SIGNATURE_HEADER:-X-Hub-Signature}
else
  secret=${SECRET:-${SNOW_SECRET:-demo-secret}}
  header=${SIGNATURE_HEADER:-X-Intops-Signature}
fi
url=${INTOPS_INGEST_URL:-http://127.0.0.1:8080}
ts_header=${TIMESTAMP_HEADER:-}
extra=()
if [[ -n $ts_header ]]; then
  ts=$(date +%s)
  sig=$({ printf '%s' "$ts"; cat "$file"; } | openssl dgst -sha256 -hmac "$secret" -r | cut -d' ' -f1)
  extra=(-H "$ts_header: $ts")
else
  sig=$(openssl dgst -sha256 -hmac "$secret" -r <"$file" | cut -d' ' -f1)
fi
curl -sS -X POST "$url/v1/sources/$source_id/events" \
  -H 'Content-Type: application/json' \
  -H "$header: sha256=$sig" \
  ${extra[@]+"${extra[@]}"} \
  --data-binary "@$file"
echo
