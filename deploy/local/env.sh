# Shared settings for the local stack scripts. Sourced, not executed.
# Tools live outside the clone so fresh clones (CI) reuse one build.
INTOPS_TOOLS_DIR="${INTOPS_TOOLS_DIR:-$HOME/.cache/intops/tools}"
INTOPS_STACK_DIR="${INTOPS_STACK_DIR:-$HOME/.cache/intops/stack}"
TANSU_VERSION="0.6.0"
RIVVEN_SCHEMA_VERSION="0.0.22"
INTOPS_BROKER_PORT="${INTOPS_BROKER_PORT:-9092}"
INTOPS_REGISTRY_PORT="${INTOPS_REGISTRY_PORT:-8081}"
TANSU_BIN="$INTOPS_TOOLS_DIR/bin/tansu"
RIVVEN_SCHEMA_BIN="$INTOPS_TOOLS_DIR/bin/rivven-schema"
