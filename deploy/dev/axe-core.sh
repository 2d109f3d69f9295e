#!/usr/bin/env bash
# axe-core (npm, MPL-2.0), the accessibility rules engine the console's browser test runs in
# each page (api/tests/gateway/console_browser.rs). Pinned with its integrity in
# deploy/dev/axe-core/package-lock.json and installed with `npm ci` into the cache — never
# fetched from a CDN.
#
#   axe-core.sh path     install if needed, then print the path of axe.min.js
#
# Environment: SERRE_CACHE (default ~/.cache/serre). Needs Debian's `nodejs` and `npm`.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$HERE/axe-core
CACHE=${SERRE_CACHE:-$HOME/.cache/serre}

log() { printf '[axe-core] %s\n' "$*" >&2; }

install() {
  if ! command -v npm >/dev/null; then
    log "installing nodejs and npm from Debian"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  fi
  local key
  key=$(sha256sum "$SRC/package-lock.json" | cut -c1-16)
  MODULES=$CACHE/axe-core-$key
  if [ ! -f "$MODULES/.complete" ]; then
    log "npm ci into $MODULES"
    rm -rf "$MODULES" && mkdir -p "$MODULES"
    cp "$SRC/package.json" "$SRC/package-lock.json" "$MODULES/"
    (cd "$MODULES" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund >"$MODULES/npm.log" 2>&1) ||
      { tail -n 20 "$MODULES/npm.log" >&2; exit 1; }
    touch "$MODULES/.complete"
  fi
}

case "${1:-}" in
  path)
    install
    echo "$MODULES/node_modules/axe-core/axe.min.js"
    ;;
  *)
    echo "usage: $0 path" >&2
    exit 2
    ;;
esac
