#!/usr/bin/env bash
# Regenerates the console's screenshots in docs/screenshots/ (PNG, one per
# page: status, feed, event, dead-letters, replay-preview, replay, flow,
# targets): runs the console's browser test on the local stack
# (tests/tests/stack/console_browser.rs) with INTOPS_SCREENSHOTS_DIR set.
#   deploy/local/screenshots.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
mkdir -p "$root/docs/screenshots"
INTOPS_SCREENSHOTS_DIR="$root/docs/screenshots" "$here/test.sh" \
  -p intops-tests --test stack -- console_browser
ls -l "$root/docs/screenshots"
