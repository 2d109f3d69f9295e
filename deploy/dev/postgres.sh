#!/usr/bin/env bash
# PostgreSQL from Debian, on loopback, for development and the gateway's tests.
#
#   postgres.sh start DIR   install `postgresql` if missing, initdb in DIR (once), start on
#                           127.0.0.1:$SERRE_PG_PORT; DIR/url holds the URL of database `serre`
#   postgres.sh stop DIR    stop what `start DIR` started
#
# PostgreSQL refuses to run as root: as root, the cluster runs as the system user `serre-pg`
# (created if missing). The superuser `serre` has a random password (in DIR/url, mode 600).
# Environment: SERRE_PG_PORT (default 15432), SERRE_PG_PARENT_PID (optional: stop once that
# process is gone; with SERRE_PG_REMOVE_ON_EXIT=1 also remove DIR), SERRE_PG_OPTIONS (extra
# `-c name=value` server settings).
set -euo pipefail

log() { printf '[postgres] %s\n' "$*" >&2; }

pg_bin() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
  if [ -z "$bin" ]; then
    log "installing postgresql from Debian"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
  fi
  echo "$bin"
}

# Run a command as the cluster's owner.
as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u serre-pg -- "$@"
  else
    "$@"
  fi
}

start() {
  local dir=${1:?usage: postgres.sh start DIR}
  local port=${SERRE_PG_PORT:-15432}
  local bin
  bin=$(pg_bin)
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [ "$(id -u)" = 0 ]; then
    id serre-pg >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin serre-pg
    # The owner must reach DIR/data; nothing else in DIR is readable to it.
    chmod 711 "$dir"
  fi
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    local password
    password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
    mkdir -p "$dir/data"
    printf '%s\n' "$password" >"$dir/pwfile"
    if [ "$(id -u)" = 0 ]; then chown serre-pg "$dir/data" "$dir/pwfile"; fi
    chmod 700 "$dir/data"
    chmod 600 "$dir/pwfile"
    as_owner "$bin/initdb" -D "$dir/data" -U serre --pwfile="$dir/pwfile" --auth=scram-sha-256 \
      --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || { tail -n 20 "$dir/initdb.log" >&2; exit 1; }
    rm -f "$dir/pwfile"
    printf 'postgres://serre:%s@127.0.0.1:%s/serre\n' "$password" "$port" >"$dir/url"
    chmod 600 "$dir/url"
    touch "$dir/postgres.log"
    if [ "$(id -u)" = 0 ]; then chown serre-pg "$dir/postgres.log"; fi
  fi
  log "starting PostgreSQL on 127.0.0.1:$port"
  # shellcheck disable=SC2086
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start \
    -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories='' ${SERRE_PG_OPTIONS:-}" >/dev/null ||
    { tail -n 20 "$dir/postgres.log" >&2; exit 1; }
  local url password
  url=$(cat "$dir/url")
  password=$(sed -E 's#^postgres://serre:([^@]*)@.*#\1#' "$dir/url")
  # Keep the URL's port in step with this start.
  printf 'postgres://serre:%s@127.0.0.1:%s/serre\n' "$password" "$port" >"$dir/url"
  if ! PGPASSWORD=$password "$bin/psql" -h 127.0.0.1 -p "$port" -U serre -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = 'serre'" | grep -q 1; then
    PGPASSWORD=$password "$bin/psql" -h 127.0.0.1 -p "$port" -U serre -d postgres -qc "CREATE DATABASE serre" >/dev/null
  fi
  if [ -n "${SERRE_PG_PARENT_PID:-}" ]; then
    (
      trap '' HUP
      while kill -0 "$SERRE_PG_PARENT_PID" 2>/dev/null; do sleep 1; done
      "$0" stop "$dir"
      if [ "${SERRE_PG_REMOVE_ON_EXIT:-}" = 1 ]; then rm -rf "$dir"; fi
    ) >/dev/null 2>&1 </dev/null &
    disown
  fi
  log "ready: the URL is in $dir/url"
}

stop() {
  local dir=${1:?usage: postgres.sh stop DIR}
  local bin
  bin=$(pg_bin)
  if [ -f "$dir/data/postmaster.pid" ]; then
    as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
}

case "${1:-}" in
  start) start "${2:-}" ;;
  stop) stop "${2:-}" ;;
  *) echo "usage: $0 start DIR | stop DIR" >&2; exit 2 ;;
esac
