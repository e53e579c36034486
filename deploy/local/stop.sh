#!/usr/bin/env bash
# Stops the local stack by the PIDs start.sh recorded (never by name),
# saving the registry's schemas to the journal first (see start.sh). The
# broker's data stays.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=env.sh
source "$here/env.sh"
stop_pid() { # name
  local pidfile="$INTOPS_STACK_DIR/$1.pid" pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    echo "stopped $1 ($pid)"
  fi
  rm -f "$pidfile"
}
stop_pid journal
# INTOPS_STACK_NO_SAVE=1: start.sh gave up restoring; the registry holds
# a partial state the journal must not learn.
if [ "${INTOPS_STACK_NO_SAVE:-0}" != 1 ] && [ -f "$INTOPS_STACK_DIR/registry.pid" ] && kill -0 "$(cat "$INTOPS_STACK_DIR/registry.pid")" 2>/dev/null; then
  python3 "$here/registry_journal.py" save "http://127.0.0.1:$INTOPS_REGISTRY_PORT" \
    "$INTOPS_STACK_DIR/registry-schemas.json" ||
    echo "warning: the registry's schemas were not saved" >&2
fi
stop_pid registry
stop_pid tansu
