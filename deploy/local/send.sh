#!/usr/bin/env bash
# Sends a JSON file to the local ingest as source SOURCE, signed with
# X-Intops-Signature (HMAC-SHA256 of the body with $SNOW_SECRET).
#   deploy/local/send.sh FILE [SOURCE]
set -euo pipefail
file=${1:?usage: send.sh FILE [SOURCE]}
source_id=${2:-servicenow}
secret=${SNOW_SECRET:-demo-secret}
url=${INTOPS_INGEST_URL:-http://127.0.0.1:8080}
sig=$(openssl dgst -sha256 -hmac "$secret" -r <"$file" | cut -d' ' -f1)
curl -sS -X POST "$url/v1/sources/$source_id/events" \
  -H 'Content-Type: application/json' \
  -H "X-Intops-Signature: sha256=$sig" \
  --data-binary "@$file"
echo
