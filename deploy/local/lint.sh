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
cargo clippy --workspace --all-targets --locked -- -D warnings
