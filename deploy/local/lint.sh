#!/usr/bin/env bash
# Formatting, unused dependencies and lints, as CI runs them:
#   deploy/local/lint.sh
# cargo-machete is pinned and installed once into the stack's tools
# directory outside the clone (a no-op when installed); its false positives
# go in a crate's [package.metadata.cargo-machete] ignored list.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=env.sh
source "$here/env.sh"
cd "$here/../.."
cargo fmt --all -- --check
machete_version="0.9.2"
if ! grep -q "\"cargo-machete $machete_version " "$INTOPS_TOOLS_DIR/.crates.toml" 2>/dev/null ||
  [ ! -x "$INTOPS_TOOLS_DIR/bin/cargo-machete" ]; then
  cargo install cargo-machete --version "$machete_version" --locked --root "$INTOPS_TOOLS_DIR"
fi
"$INTOPS_TOOLS_DIR/bin/cargo-machete" --skip-target-dir

# The shared crates stay layered (docs/architecture.md, "Crates"): for each
# crate, the crates its normal dependency tree must not hold (an extended
# regex on `cargo tree` lines, matched on all but the crate itself and the
# allowed ones), and why.
layering_failed=0
check_layer() {
  local crate="$1" forbidden="$2" allowed="$3" why="$4" tree found
  tree="$(cargo tree -p "$crate" -e normal --prefix none --locked)"
  found="$(grep -E "$forbidden" <<<"$tree" | grep -vE "^($crate|$allowed) " | cut -d' ' -f1 | sort -u | tr '\n' ' ' || true)"
  if [ -n "$found" ]; then
    echo "lint: $crate must not depend on $why, but depends on: $found" >&2
    echo "lint: see the path with: cargo tree -p $crate -e normal -i ${found%% *}" >&2
    layering_failed=1
  fi
}
check_layer intops-events '^intops-' '' "another intops crate (it is the bottom layer)"
check_layer intops-runtime '^intops-' '' "another intops crate (it is the bottom layer)"
check_layer intops-jq '^intops-' 'intops-events' "intops crates but intops-events"
check_layer intops-flows '^intops-kafka ' '' "intops-kafka (the flows file is no Kafka plumbing)"
check_layer intops-kafka '^(jaq-core|jaq-std|jaq-json|clap|axum|metrics-exporter-prometheus|intops-flows|intops-jq) ' '' \
  "jq, clap, the admin stack or the flows file (it enables no intops-runtime feature)"
check_layer intops-ops '^(axum|intops-flows|intops-jq|intops-ingest|intops-transform|intops-delivery|intops-monitor|intops-cli) ' '' \
  "the HTTP stack, the flows file or a service (operator actions stay below the services)"
[ "$layering_failed" = 0 ] || exit 1

cargo clippy --workspace --all-targets --features intops-tests/stack --locked -- -D warnings
