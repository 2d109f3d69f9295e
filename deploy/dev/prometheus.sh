#!/usr/bin/env bash
# Prometheus for development and tests (on loopback unless told otherwise): scrapes one
# target every second.
#
#   prometheus.sh install             install Debian's prometheus package if missing (apt-get)
#   prometheus.sh start DIR TARGET    start it with its state in DIR, scraping http://TARGET/metrics
#                                     (TARGET = host:port, or several joined by commas);
#                                     writes DIR/port
#   prometheus.sh stop DIR            stop it
#
# Environment: SERRE_PROMETHEUS_LISTEN (address to listen on, default 127.0.0.1; the local
# Helm install uses the host address so the gateway Pod can query it),
# SERRE_PROMETHEUS_PORT (default: the first free port from 15600),
# SERRE_PROMETHEUS_PARENT_PID (stop once that process is gone), SERRE_PROMETHEUS_KUBELET
# (ADDR:PORT,TOKEN_FILE,CA_FILE: also scrape that kubelet's cAdvisor series, as a
# cluster's Prometheus does, over HTTPS with a bearer token allowed nodes/metrics).
set -euo pipefail

log() { printf '[prometheus] %s\n' "$*" >&2; }

install() {
  command -v prometheus >/dev/null && return 0
  log "installing Debian's prometheus package"
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo -n"
  if ! { $sudo apt-get install -y --no-install-recommends prometheus >/dev/null 2>&1 ||
    { $sudo apt-get update -qq && $sudo apt-get install -y --no-install-recommends prometheus >/dev/null; }; }; then
    log "apt-get could not install prometheus (no root, no network or no such package)"
    exit 1
  fi
  command -v prometheus >/dev/null || { log "prometheus installed but not on PATH"; exit 1; }
}

LISTEN=${SERRE_PROMETHEUS_LISTEN:-127.0.0.1}
port_free() { ! (exec 3<>"/dev/tcp/$LISTEN/$1") 2>/dev/null; }

start() {
  local dir=${1:?usage: prometheus.sh start DIR TARGET} target=${2:?usage: prometheus.sh start DIR TARGET}
  install
  mkdir -p "$dir/data"
  dir=$(cd "$dir" && pwd)
  local port=${SERRE_PROMETHEUS_PORT:-}
  if [ -z "$port" ]; then
    for p in $(seq 15600 15699); do
      if port_free "$p"; then port=$p; break; fi
    done
  fi
  [ -n "$port" ] || { log "no free port in 15600-15699"; exit 1; }
  cat >"$dir/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: target
    static_configs:
      - targets: [$(printf '"%s"' "$target" | sed 's/,/", "/g')]
YAML
  if [ -n "${SERRE_PROMETHEUS_KUBELET:-}" ]; then
    local kubelet token ca
    IFS=, read -r kubelet token ca <<<"$SERRE_PROMETHEUS_KUBELET"
    cat >>"$dir/prometheus.yml" <<YAML
  - job_name: kubelet-cadvisor
    scheme: https
    metrics_path: /metrics/cadvisor
    authorization: {credentials_file: $token}
    tls_config: {ca_file: $ca}
    static_configs:
      - targets: ["$kubelet"]
YAML
  fi
  log "starting on $LISTEN:$port, scraping http://$target/metrics every second"
  prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
    --storage.tsdb.retention.time=1h --web.listen-address="$LISTEN:$port" \
    >"$dir/prometheus.log" 2>&1 &
  echo $! >"$dir/prometheus.pid"
  for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "http://$LISTEN:$port/-/ready" 2>/dev/null && break
    sleep 0.1
  done
  curl -fsS -o /dev/null "http://$LISTEN:$port/-/ready" || { tail -n 20 "$dir/prometheus.log" >&2; exit 1; }
  sleep 0.2
  kill -0 "$(cat "$dir/prometheus.pid")" 2>/dev/null || {
    log "did not stay up (port $port already in use?):"
    tail -n 20 "$dir/prometheus.log" >&2
    exit 1
  }
  echo "$port" >"$dir/port"
  if [ -n "${SERRE_PROMETHEUS_PARENT_PID:-}" ]; then
    (
      trap '' HUP
      while kill -0 "$SERRE_PROMETHEUS_PARENT_PID" 2>/dev/null; do sleep 1; done
      "$0" stop "$dir"
    ) >/dev/null 2>&1 </dev/null &
    disown
  fi
  log "ready: http://$LISTEN:$port"
}

stop() {
  local dir=${1:?usage: prometheus.sh stop DIR}
  if [ -f "$dir/prometheus.pid" ]; then
    local pid
    pid=$(cat "$dir/prometheus.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$dir/prometheus.pid"
  fi
}

case "${1:-}" in
  install) install ;;
  start) start "${2:-}" "${3:-}" ;;
  stop) stop "${2:-}" ;;
  *) echo "usage: $0 install | start DIR TARGET | stop DIR" >&2; exit 2 ;;
esac
