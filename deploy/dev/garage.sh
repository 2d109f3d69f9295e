#!/usr/bin/env bash
# Garage, the sovereign S3 store, as a single node on loopback for development and tests.
# Garage is AGPL: it runs as its own process and is never linked into Serre.
#
#   garage.sh install        build (or reuse) the garage binary under ~/.cache/serre
#   garage.sh start DIR      start a node with its state in DIR; writes DIR/env (endpoints, admin token)
#   garage.sh stop DIR       stop it
#
# Environment: SERRE_CACHE (default ~/.cache/serre), SERRE_GARAGE_PORT_BASE (default 13900:
# S3 = base, RPC = base+1, admin = base+3), SERRE_GARAGE_BIND (address of the S3 and admin
# APIs, default 127.0.0.1; the local cluster's pods need the host address 10.250.0.1),
# SERRE_GARAGE_PARENT_PID (stop once it is gone). A restart keeps the first start's ports
# and address.
set -euo pipefail

GARAGE_VERSION=2.5.0
CACHE=${SERRE_CACHE:-$HOME/.cache/serre}
ROOT=$CACHE/garage-$GARAGE_VERSION
GARAGE=$ROOT/bin/garage

log() { printf '[garage] %s\n' "$*" >&2; }

install() {
  [ -x "$GARAGE" ] && return 0
  log "building garage $GARAGE_VERSION with cargo install (about 20 minutes cold)"
  CARGO_TARGET_DIR=$CACHE/garage-target cargo install --locked --quiet --root "$ROOT" --version "$GARAGE_VERSION" garage
  rm -rf "$CACHE/garage-target"
}

start() {
  local dir=${1:?usage: garage.sh start DIR}
  install
  mkdir -p "$dir/meta" "$dir/data"
  dir=$(cd "$dir" && pwd)
  chmod 700 "$dir"
  # A restart reuses the ports of the first start (its configuration is kept).
  local base=${SERRE_GARAGE_PORT_BASE:-13900}
  [ -f "$dir/ports" ] && base=$(cat "$dir/ports")
  echo "$base" >"$dir/ports"
  local s3=$base rpc=$((base + 1)) admin=$((base + 3))
  local bind=${SERRE_GARAGE_BIND:-127.0.0.1}
  [ -f "$dir/bind" ] && bind=$(cat "$dir/bind")
  echo "$bind" >"$dir/bind"
  if [ ! -f "$dir/garage.toml" ]; then
    local admin_token
    admin_token=$(openssl rand -hex 32)
    cat >"$dir/garage.toml" <<TOML
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc"
rpc_public_addr = "127.0.0.1:$rpc"
rpc_secret = "$(openssl rand -hex 32)"

[s3_api]
s3_region = "garage"
api_bind_addr = "$bind:$s3"

[admin]
api_bind_addr = "$bind:$admin"
admin_token = "$admin_token"
TOML
    chmod 600 "$dir/garage.toml"
    printf '%s' "$admin_token" >"$dir/admin-token"
    chmod 600 "$dir/admin-token"
    cat >"$dir/env" <<ENV
SERRE_S3_ENDPOINT=http://$bind:$s3
SERRE_GARAGE_ADMIN_ENDPOINT=http://$bind:$admin
SERRE_GARAGE_ADMIN_TOKEN_FILE=$dir/admin-token
SERRE_S3_REGION=garage
GARAGE_DATA_DIR=$dir/data
ENV
  fi
  log "starting on $bind:$s3 (S3) and $bind:$admin (admin)"
  "$GARAGE" -c "$dir/garage.toml" server --single-node >"$dir/garage.log" 2>&1 &
  echo $! >"$dir/garage.pid"
  for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "http://$bind:$admin/health" 2>/dev/null && break
    sleep 0.1
  done
  curl -fsS -o /dev/null "http://$bind:$admin/health" || { tail -n 20 "$dir/garage.log" >&2; exit 1; }
  # A healthy answer from another process on the same ports is not ours.
  sleep 0.2
  kill -0 "$(cat "$dir/garage.pid")" 2>/dev/null || {
    echo "[garage] did not stay up (ports $s3/$admin already in use?):" >&2
    tail -n 20 "$dir/garage.log" >&2
    exit 1
  }
  if [ -n "${SERRE_GARAGE_PARENT_PID:-}" ]; then
    (
      trap '' HUP
      while kill -0 "$SERRE_GARAGE_PARENT_PID" 2>/dev/null; do sleep 1; done
      "$0" stop "$dir"
    ) >/dev/null 2>&1 </dev/null &
    disown
  fi
  log "ready: $dir/env"
}

stop() {
  local dir=${1:?usage: garage.sh stop DIR}
  if [ -f "$dir/garage.pid" ]; then
    kill "$(cat "$dir/garage.pid")" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$(cat "$dir/garage.pid")" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$(cat "$dir/garage.pid")" 2>/dev/null || true
    rm -f "$dir/garage.pid"
  fi
}

case "${1:-}" in
  install) install ;;
  start) start "${2:-}" ;;
  stop) stop "${2:-}" ;;
  *) echo "usage: $0 install | start DIR | stop DIR" >&2; exit 2 ;;
esac
