#!/usr/bin/env bash
# Sends a JSON file to the local ingest as source SOURCE, signed with
# X-Intops-Signature (HMAC-SHA256 of the body with $SNOW_SECRET).
#   deploy/local/send.sh FILE [SOURCE]
# For a source with a timestamp_header (replay protection), set
# TIMESTAMP_HEADER to its name: the current Unix time is sent in it and
# signed before the body, as the source expects.
#   TIMESTAMP_HEADER=X-Intops-Timestamp deploy/local/send.sh FILE
set -euo pipefail
file=${1:?usage: send.sh FILE [SOURCE]}
source_id=${2:-servicenow}
secret=${SNOW_SECRET:-demo-secret}
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
  -H "X-Intops-Signature: sha256=$sig" \
  ${extra[@]+"${extra[@]}"} \
  --data-binary "@$file"
echo
