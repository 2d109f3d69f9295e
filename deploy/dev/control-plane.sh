#!/usr/bin/env bash
# A real, local Kubernetes control plane for development and tests:
# etcd + kube-apiserver + kube-controller-manager (1.20.2, built from Debian's
# source package), on loopback only. No kubelet: pods are never run.
#
#   control-plane.sh build          build (or reuse) the binaries under ~/.cache/serre
#   control-plane.sh start DIR      start everything with its state in DIR, write DIR/kubeconfig
#   control-plane.sh stop DIR       stop what `start DIR` started
#
# Environment: SERRE_CACHE (default ~/.cache/serre), SERRE_CP_PORT_BASE (default 16440:
# apiserver = base+3, etcd client = base+0, etcd peer = base+1, controller-manager = base+2),
# SERRE_CP_PARENT_PID (optional: stop everything once that process is gone).
set -euo pipefail

K8S_VERSION=1.20.2
CACHE=${SERRE_CACHE:-$HOME/.cache/serre}
K8S_DIR=$CACHE/kubernetes-$K8S_VERSION
BIN=$K8S_DIR/bin

log() { printf '[control-plane] %s\n' "$*" >&2; }

need_apt() {
  local missing=()
  for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

ensure_deb_src() {
  if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list; then
    log "adding a deb-src entry for bookworm"
    local uri
    uri=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    cat >/etc/apt/sources.list.d/serre-deb-src.sources <<EOF
Types: deb-src
URIs: ${uri:-http://deb.debian.org/debian}
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    apt-get update -qq
  fi
}

build() {
  need_apt etcd-server openssl
  if [ -x "$BIN/kube-apiserver" ] && [ -x "$BIN/kube-controller-manager" ]; then
    return 0
  fi
  need_apt golang-go rsync golang-github-modern-go-reflect2-dev dpkg-dev
  ensure_deb_src
  mkdir -p "$K8S_DIR"
  local work=$K8S_DIR/work
  rm -rf "$work" && mkdir -p "$work"
  log "fetching the Debian kubernetes source package"
  (cd "$work" && apt-get source --download-only -qq kubernetes >/dev/null)
  local tarball
  tarball=$(ls "$work"/kubernetes_*.orig.tar.gz | head -n1)
  tar -xzf "$tarball" -C "$work"
  local src=$work/kubernetes-$K8S_VERSION
  # Go >= 1.18 crashes the apiserver on custom-resource watches with the vendored reflect2 1.0.1.
  rm -rf "$src/vendor/github.com/modern-go/reflect2"
  cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 "$src/vendor/github.com/modern-go/reflect2"
  find "$src/vendor/github.com/modern-go/reflect2" -name '*_test.go' -delete
  local gopath=$K8S_DIR/gopath
  mkdir -p "$gopath/src/k8s.io"
  ln -sfn "$src" "$gopath/src/k8s.io/kubernetes"
  log "building kube-apiserver and kube-controller-manager (about 10 minutes cold)"
  (cd "$gopath/src/k8s.io/kubernetes" &&
    env HOME="$K8S_DIR" GOPATH="$gopath" GOCACHE="$CACHE/go-build" GO111MODULE=off GOFLAGS= \
      make WHAT="cmd/kube-apiserver cmd/kube-controller-manager" >"$K8S_DIR/build.log" 2>&1) || {
    tail -n 40 "$K8S_DIR/build.log" >&2
    exit 1
  }
  mkdir -p "$BIN"
  cp "$src/_output/local/bin/linux/amd64/kube-apiserver" "$src/_output/local/bin/linux/amd64/kube-controller-manager" "$BIN/"
  rm -rf "$work" "$gopath"
  log "binaries ready in $BIN"
}

wait_http() { # url seconds [curl args...]
  local url=$1 secs=$2
  shift 2
  for _ in $(seq 1 $((secs * 10))); do
    curl -fsS -o /dev/null "$@" "$url" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

start() {
  local dir=${1:?usage: control-plane.sh start DIR}
  build
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  local base=${SERRE_CP_PORT_BASE:-16440}
  local etcd_port=$base peer_port=$((base + 1)) cm_port=$((base + 2)) api_port=$((base + 3))
  local pki=$dir/pki
  mkdir -p "$pki" "$dir/etcd"
  chmod 700 "$dir" "$pki"
  if [ ! -f "$pki/ca.crt" ]; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=serre-dev-ca" \
      -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
      -keyout "$pki/apiserver.key" -out "$pki/apiserver.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' >"$pki/ext.cnf"
    openssl x509 -req -in "$pki/apiserver.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
      -days 3650 -extfile "$pki/ext.cnf" -out "$pki/apiserver.crt" 2>/dev/null
    openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
    openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
    local token
    token=$(openssl rand -hex 24)
    printf '%s,serre-admin,serre-admin,system:masters\n' "$token" >"$pki/tokens.csv"
    cat >"$dir/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: serre-dev
  cluster:
    server: https://127.0.0.1:$api_port
    certificate-authority: $pki/ca.crt
users:
- name: serre-admin
  user:
    token: $token
contexts:
- name: serre-dev
  context: {cluster: serre-dev, user: serre-admin}
current-context: serre-dev
EOF
    chmod 600 "$dir/kubeconfig" "$pki"/*.key "$pki/tokens.csv"
  fi

  log "starting etcd on 127.0.0.1:$etcd_port"
  etcd --name serre-dev --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "serre-dev=http://127.0.0.1:$peer_port" \
    --listen-metrics-urls "" --log-level warn >"$dir/etcd.log" 2>&1 &
  echo $! >"$dir/etcd.pid"
  wait_http "http://127.0.0.1:$etcd_port/health" 30 || { tail "$dir/etcd.log" >&2; exit 1; }

  log "starting kube-apiserver on https://127.0.0.1:$api_port"
  "$BIN/kube-apiserver" --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" --insecure-port 0 \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" \
    --service-account-issuer https://kubernetes.default.svc --service-account-key-file "$pki/sa.pub" \
    --service-account-signing-key-file "$pki/sa.key" --api-audiences https://kubernetes.default.svc \
    --token-auth-file "$pki/tokens.csv" --authorization-mode RBAC \
    --service-cluster-ip-range 10.96.0.0/16 --endpoint-reconciler-type none \
    --enable-admission-plugins NamespaceLifecycle,LimitRanger,ServiceAccount,ResourceQuota \
    --cert-dir "$dir/apiserver-certs" --logtostderr=true --v=0 >"$dir/apiserver.log" 2>&1 &
  echo $! >"$dir/apiserver.pid"
  local token
  token=$(cut -d, -f1 "$pki/tokens.csv")
  wait_http "https://127.0.0.1:$api_port/readyz" 60 --cacert "$pki/ca.crt" -H "Authorization: Bearer $token" ||
    { tail -n 30 "$dir/apiserver.log" >&2; exit 1; }

  log "starting kube-controller-manager"
  "$BIN/kube-controller-manager" --kubeconfig "$dir/kubeconfig" \
    --authentication-kubeconfig "$dir/kubeconfig" --authorization-kubeconfig "$dir/kubeconfig" \
    --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --use-service-account-credentials=false \
    --controllers '*,-nodeipam,-nodelifecycle,-cloud-node-lifecycle' --leader-elect=false \
    --bind-address 127.0.0.1 --secure-port "$cm_port" --port 0 \
    --logtostderr=true --v=0 >"$dir/controller-manager.log" 2>&1 &
  echo $! >"$dir/controller-manager.pid"

  if [ -n "${SERRE_CP_PARENT_PID:-}" ]; then
    # Tear down with the process that asked for us (a test binary), however it ends.
    (
      trap '' HUP
      while kill -0 "$SERRE_CP_PARENT_PID" 2>/dev/null; do sleep 1; done
      "$0" stop "$dir"
    ) >/dev/null 2>&1 </dev/null &
    disown
  fi
  log "ready: export KUBECONFIG=$dir/kubeconfig"
}

stop() {
  local dir=${1:?usage: control-plane.sh stop DIR}
  for p in controller-manager apiserver etcd; do
    if [ -f "$dir/$p.pid" ]; then
      kill "$(cat "$dir/$p.pid")" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$(cat "$dir/$p.pid")" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$(cat "$dir/$p.pid")" 2>/dev/null || true
      rm -f "$dir/$p.pid"
    fi
  done
}

case "${1:-}" in
  build) build ;;
  start) start "${2:-}" ;;
  stop) stop "${2:-}" ;;
  *) echo "usage: $0 build | start DIR | stop DIR" >&2; exit 2 ;;
esac
