#!/usr/bin/env bash
# A real OpenID provider (npm `oidc-provider`, certified) on loopback, for development and
# the gateway's tests. See deploy/dev/oidc-provider/server.js for its clients and tokens.
#
#   oidc-provider.sh install      npm ci into ~/.cache/serre (keyed by the lockfile's hash)
#   oidc-provider.sh start DIR    start it with its state in DIR; DIR/issuer holds the URL
#   oidc-provider.sh stop DIR     stop what `start DIR` started
#
# Environment: SERRE_CACHE (default ~/.cache/serre), SERRE_OIDC_PORT (default 15433; 0 = any
# free port), SERRE_OIDC_TOKEN_TTL (seconds, default 600), SERRE_OIDC_PARENT_PID (optional:
# stop once that process is gone; with SERRE_OIDC_REMOVE_ON_EXIT=1 also remove DIR),
# SERRE_OIDC_HOST (listen address, default 127.0.0.1), SERRE_OIDC_TLS_CERT/_KEY (serve HTTPS
# with that certificate; SERRE_OIDC_TLS_CA: the CA that signed it, for the readiness check).
# Needs Debian's `nodejs` and `npm` (installed if missing).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$HERE/oidc-provider
CACHE=${SERRE_CACHE:-$HOME/.cache/serre}

log() { printf '[oidc-provider] %s\n' "$*" >&2; }

need_node() {
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    log "installing nodejs and npm from Debian"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  fi
}

install() {
  need_node
  local key
  key=$(sha256sum "$SRC/package-lock.json" | cut -c1-16)
  MODULES=$CACHE/oidc-provider-$key
  if [ ! -f "$MODULES/.complete" ]; then
    log "npm ci into $MODULES"
    rm -rf "$MODULES" && mkdir -p "$MODULES"
    cp "$SRC/package.json" "$SRC/package-lock.json" "$MODULES/"
    (cd "$MODULES" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund >"$MODULES/npm.log" 2>&1) ||
      { tail -n 20 "$MODULES/npm.log" >&2; exit 1; }
    touch "$MODULES/.complete"
  fi
}

start() {
  local dir=${1:?usage: oidc-provider.sh start DIR}
  install
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  chmod 700 "$dir"
  rm -f "$dir/issuer"
  # server.js resolves `oidc-provider` from the cached node_modules.
  ln -sfn "$MODULES/node_modules" "$dir/node_modules"
  cp "$SRC/server.js" "$dir/server.js"
  PORT=${SERRE_OIDC_PORT:-15433} SERRE_OIDC_STATE_DIR="$dir" SERRE_OIDC_CLIENTS="$SRC/clients.json" \
    nohup node "$dir/server.js" >"$dir/oidc-provider.log" 2>&1 </dev/null &
  echo $! >"$dir/oidc-provider.pid"
  # Up to 60 s: node loads oidc-provider slowly on a loaded machine (15 s was too short).
  for _ in $(seq 1 600); do
    if [ -s "$dir/issuer" ] && curl -fsS ${SERRE_OIDC_TLS_CERT:+--cacert "${SERRE_OIDC_TLS_CA:-$SERRE_OIDC_TLS_CERT}"} -o /dev/null "$(cat "$dir/issuer")/.well-known/openid-configuration" 2>/dev/null; then
      break
    fi
    if ! kill -0 "$(cat "$dir/oidc-provider.pid")" 2>/dev/null; then
      tail -n 20 "$dir/oidc-provider.log" >&2
      exit 1
    fi
    sleep 0.1
  done
  [ -s "$dir/issuer" ] || { tail -n 20 "$dir/oidc-provider.log" >&2; exit 1; }
  if [ -n "${SERRE_OIDC_PARENT_PID:-}" ]; then
    (
      trap '' HUP
      while kill -0 "$SERRE_OIDC_PARENT_PID" 2>/dev/null; do sleep 1; done
      "$0" stop "$dir"
      if [ "${SERRE_OIDC_REMOVE_ON_EXIT:-}" = 1 ]; then rm -rf "$dir"; fi
    ) >/dev/null 2>&1 </dev/null &
    disown
  fi
  log "ready: $(cat "$dir/issuer")"
}

stop() {
  local dir=${1:?usage: oidc-provider.sh stop DIR}
  if [ -f "$dir/oidc-provider.pid" ]; then
    local pid
    pid=$(cat "$dir/oidc-provider.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$dir/oidc-provider.pid"
  fi
}

case "${1:-}" in
  install) install ;;
  start) start "${2:-}" ;;
  stop) stop "${2:-}" ;;
  *) echo "usage: $0 install | start DIR | stop DIR" >&2; exit 2 ;;
esac
