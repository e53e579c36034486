#!/usr/bin/env bash
# Installs the local stack's broker (tansu) and schema registry
# (rivven-schema) from crates.io, pinned and --locked, into a tools
# directory outside the clone. A no-op when the versions are installed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=env.sh
source "$here/env.sh"
mkdir -p "$INTOPS_TOOLS_DIR"

installed() { # name version
  [ -x "$INTOPS_TOOLS_DIR/bin/$1" ] &&
    grep -q "\"$1 $2 " "$INTOPS_TOOLS_DIR/.crates.toml" 2>/dev/null
}

if ! installed rivven-schema "$RIVVEN_SCHEMA_VERSION"; then
  echo "installing rivven-schema $RIVVEN_SCHEMA_VERSION (about 2 minutes cold)"
  cargo install rivven-schema --version "$RIVVEN_SCHEMA_VERSION" --locked \
    --no-default-features --features server,avro,cli --root "$INTOPS_TOOLS_DIR"
fi
if ! installed tansu "$TANSU_VERSION"; then
  echo "installing tansu $TANSU_VERSION (about 10 minutes cold)"
  cargo install tansu --version "$TANSU_VERSION" --locked --features libsql \
    --root "$INTOPS_TOOLS_DIR"
fi
echo "stack tools ready in $INTOPS_TOOLS_DIR"
