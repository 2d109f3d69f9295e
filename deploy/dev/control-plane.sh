#!/usr/bin/env bash
# A real, local Kubernetes control plane for development and tests:
# etcd + kube-apiserver + kube-controller-manager (1.20.2, built from Debian's
# source package). The API server listens on the host address (deploy/dev/lib.sh,
# 10.250.0.1 by default: this machine and its local nodes only); etcd and the
# controller-manager on loopback. Pods run once deploy/dev/node.sh adds a node.
#
#   control-plane.sh build          build (or reuse) the binaries under ~/.cache/serre
#                                   (the node's kubelet, kube-proxy and kube-scheduler too)
#   control-plane.sh start DIR      start everything with its state in DIR, write DIR/kubeconfig
#   control-plane.sh stop DIR       stop what `start DIR` started (and its node, if any)
#
# Environment: SERRE_CACHE (default ~/.cache/serre), SERRE_CP_PORT_BASE (default 16440:
# apiserver = base+3, etcd client = base+0, etcd peer = base+1, controller-manager = base+2),
# SERRE_CP_PARENT_PID (optional: stop everything once that process is gone),
# SERRE_HOST_ADDR (default 10.250.0.1).
#
# Each running control plane holds a network index N (DIR/net-index): its Service range
# is 10.96.N.0/24 and its node, if any, lives in network namespace serre-nN. Two local
# clusters (deploy/dev/up.sh and the tests) therefore never share ports, Services or
# iptables rules.
set -euo pipefail
LOG_TAG=control-plane
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/lib.sh"

K8S_VERSION=1.20.2
CACHE=${SERRE_CACHE:-$HOME/.cache/serre}
K8S_DIR=$CACHE/kubernetes-$K8S_VERSION
BIN=$K8S_DIR/bin
# The control plane, and the node's own components (deploy/dev/node.sh).
K8S_BINARIES="kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy"

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
  local have=1
  for b in $K8S_BINARIES; do [ -x "$BIN/$b" ] || have=0; done
  [ "$have" = 1 ] && return 0
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
  local what
  what=$(printf 'cmd/%s ' $K8S_BINARIES)
  log "building $K8S_BINARIES (about 20 minutes cold)"
  (cd "$gopath/src/k8s.io/kubernetes" &&
    env HOME="$K8S_DIR" GOPATH="$gopath" GOCACHE="$CACHE/go-build" GO111MODULE=off GOFLAGS= \
      make WHAT="$what" >"$K8S_DIR/build.log" 2>&1) || {
    tail -n 40 "$K8S_DIR/build.log" >&2
    exit 1
  }
  mkdir -p "$BIN"
  for b in $K8S_BINARIES; do cp "$src/_output/local/bin/linux/amd64/$b" "$BIN/"; done
  rm -rf "$work" "$gopath"
  log "binaries ready in $BIN"
}

# A certificate signed by the cluster CA: cert PKI NAME SUBJECT EXTENSIONS
cert() {
  local pki=$1 name=$2 subj=$3 ext=$4
  openssl req -newkey rsa:2048 -nodes -subj "$subj" \
    -keyout "$pki/$name.key" -out "$pki/$name.csr" 2>/dev/null
  printf '%b' "$ext" >"$pki/$name.ext"
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 3650 -extfile "$pki/$name.ext" -out "$pki/$name.crt" 2>/dev/null
  rm -f "$pki/$name.csr" "$pki/$name.ext"
  chmod 600 "$pki/$name.key"
}

kubeconfig() { # FILE PKI API_PORT CREDENTIALS
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: serre-dev
  cluster:
    server: https://$SERRE_HOST_ADDR:$3
    certificate-authority: $2/ca.crt
users:
- name: serre-dev
  user:
    $4
contexts:
- name: serre-dev
  context: {cluster: serre-dev, user: serre-dev}
current-context: serre-dev
EOF
}

# The PKI of a cluster, made once (its version file names the layout and network index:
# an older layout, or another index, is made anew).
PKI_VERSION=3
make_pki() { # DIR API_PORT N
  local dir=$1 api_port=$2 n=$3 pki=$1/pki
  if [ "$(cat "$pki/version" 2>/dev/null)" = "$PKI_VERSION.$n.$api_port" ]; then return 0; fi
  rm -rf "$pki" && mkdir -p "$pki" && chmod 700 "$pki"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=serre-dev-ca" \
    -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
  local server_ext='basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n'
  local client_ext='basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n'
  cert "$pki" apiserver "/CN=kube-apiserver" \
    "subjectAltName=IP:$SERRE_HOST_ADDR,IP:127.0.0.1,IP:10.96.$n.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n$server_ext"
  # The API server's client identity towards kubelets (logs, exec, port-forward).
  cert "$pki" apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "$client_ext"
  # The node's identity (Node authorizer + NodeRestriction) and its serving certificate.
  cert "$pki" node-client "/O=system:nodes/CN=system:node:serre-node" "$client_ext"
  cert "$pki" node-serving "/CN=serre-node" "subjectAltName=IP:10.250.$n.2,DNS:serre-node\n$server_ext"
  cert "$pki" kube-proxy "/CN=system:kube-proxy" "$client_ext"
  cert "$pki" kube-scheduler "/CN=system:kube-scheduler" "$client_ext"
  # The API server's client certificate towards admission webhooks, from a CA of its own
  # (only the API server holds a certificate of it): Serre's webhook requires it
  # (operator --webhook-client-ca, chart webhook.clientCA), so it answers no one else.
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=serre-dev-webhook-client-ca" \
    -keyout "$pki/webhook-client-ca.key" -out "$pki/webhook-client-ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver-webhook-client" \
    -keyout "$pki/webhook-client.key" -out "$pki/webhook-client.csr" 2>/dev/null
  printf '%b' "$client_ext" >"$pki/webhook-client.ext"
  openssl x509 -req -in "$pki/webhook-client.csr" -CA "$pki/webhook-client-ca.crt" \
    -CAkey "$pki/webhook-client-ca.key" -CAcreateserial -days 3650 \
    -extfile "$pki/webhook-client.ext" -out "$pki/webhook-client.crt" 2>/dev/null
  rm -f "$pki/webhook-client.csr" "$pki/webhook-client.ext"
  # Every webhook ('*') gets that certificate.
  printf 'apiVersion: v1\nkind: Config\nusers:\n- name: "*"\n  user:\n    client-certificate: %s\n    client-key: %s\n' \
    "$pki/webhook-client.crt" "$pki/webhook-client.key" >"$pki/admission-webhooks.kubeconfig"
  local plugin
  {
    printf 'apiVersion: apiserver.config.k8s.io/v1\nkind: AdmissionConfiguration\nplugins:\n'
    for plugin in ValidatingAdmissionWebhook MutatingAdmissionWebhook; do
      printf -- '- name: %s\n  configuration:\n    apiVersion: apiserver.config.k8s.io/v1alpha1\n    kind: WebhookAdmission\n    kubeConfigFile: %s\n' \
        "$plugin" "$pki/admission-webhooks.kubeconfig"
    done
  } >"$pki/admission.yaml"
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
  local token
  token=$(openssl rand -hex 24)
  printf '%s,serre-admin,serre-admin,system:masters\n' "$token" >"$pki/tokens.csv"
  kubeconfig "$dir/kubeconfig" "$pki" "$api_port" "token: $token"
  local who
  for who in node-client kube-proxy kube-scheduler; do
    kubeconfig "$pki/$who.kubeconfig" "$pki" "$api_port" \
      "client-certificate: $pki/$who.crt
    client-key: $pki/$who.key"
  done
  chmod 600 "$dir/kubeconfig" "$pki"/*.key "$pki/tokens.csv" "$pki"/*.kubeconfig
  echo "$PKI_VERSION.$n.$api_port" >"$pki/version"
}

start() {
  local dir=${1:?usage: control-plane.sh start DIR}
  build
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  chmod 700 "$dir"
  ensure_host_address
  local n
  n=$(alloc_net_index "$dir")
  echo "$n" >"$dir/net-index"
  local base=${SERRE_CP_PORT_BASE:-16440}
  local etcd_port=$base peer_port=$((base + 1)) cm_port=$((base + 2)) api_port=$((base + 3))
  echo "$base" >"$dir/port-base"
  # Another cluster (or anything) on these ports would answer in this one's place.
  local p holder
  for p in "$etcd_port" "$peer_port" "$cm_port" "$api_port"; do
    holder=$(ss -Htlnp "sport = :$p" 2>/dev/null | head -n 1)
    if [ -n "$holder" ]; then
      log "port $p is already in use ($holder): stop that cluster or set SERRE_CP_PORT_BASE"
      exit 1
    fi
  done
  # The PKI and etcd's data name the network index and ports: a restart that got others
  # starts from a new cluster.
  if [ "$(cat "$dir/pki/version" 2>/dev/null)" != "$PKI_VERSION.$n.$api_port" ]; then rm -rf "$dir/etcd"; fi
  mkdir -p "$dir/etcd"
  make_pki "$dir" "$api_port" "$n"
  local pki=$dir/pki

  log "starting etcd on 127.0.0.1:$etcd_port"
  etcd --name serre-dev --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "serre-dev=http://127.0.0.1:$peer_port" \
    --listen-metrics-urls "" --log-level warn >"$dir/etcd.log" 2>&1 &
  echo $! >"$dir/etcd.pid"
  wait_http "http://127.0.0.1:$etcd_port/health" 30 && kill -0 "$(cat "$dir/etcd.pid")" 2>/dev/null ||
    { tail "$dir/etcd.log" >&2; exit 1; }

  log "starting kube-apiserver on https://$SERRE_HOST_ADDR:$api_port (Services 10.96.$n.0/24)"
  "$BIN/kube-apiserver" --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address "$SERRE_HOST_ADDR" --advertise-address "$SERRE_HOST_ADDR" --secure-port "$api_port" --insecure-port 0 \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" \
    --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" --kubelet-client-key "$pki/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority "$pki/ca.crt" --kubelet-preferred-address-types InternalIP \
    --service-account-issuer https://kubernetes.default.svc --service-account-key-file "$pki/sa.pub" \
    --service-account-signing-key-file "$pki/sa.key" --api-audiences https://kubernetes.default.svc \
    --token-auth-file "$pki/tokens.csv" --authorization-mode Node,RBAC \
    --service-cluster-ip-range "10.96.$n.0/24" \
    --enable-admission-plugins NamespaceLifecycle,LimitRanger,ServiceAccount,ResourceQuota,NodeRestriction \
    --admission-control-config-file "$pki/admission.yaml" \
    --cert-dir "$dir/apiserver-certs" --logtostderr=true --v=0 >"$dir/apiserver.log" 2>&1 &
  echo $! >"$dir/apiserver.pid"
  local token
  token=$(cut -d, -f1 "$pki/tokens.csv")
  wait_http "https://$SERRE_HOST_ADDR:$api_port/readyz" 60 --cacert "$pki/ca.crt" -H "Authorization: Bearer $token" ||
    { tail -n 30 "$dir/apiserver.log" >&2; exit 1; }

  log "starting kube-controller-manager"
  # The node lifecycle controller lifts a new node's not-ready taint. Each controller acts
  # as its own ServiceAccount of kube-system (as kubeadm sets it up): Serre's admission
  # webhook lets the pod-making controllers (job-controller, replicaset-controller, ...)
  # name a sandbox's Secrets, and no one else but the operator.
  "$BIN/kube-controller-manager" --kubeconfig "$dir/kubeconfig" \
    --authentication-kubeconfig "$dir/kubeconfig" --authorization-kubeconfig "$dir/kubeconfig" \
    --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --use-service-account-credentials=true \
    --controllers '*,-nodeipam,-cloud-node-lifecycle' --leader-elect=false \
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
  [ -d "$dir" ] || return 0
  dir=$(cd "$dir" && pwd)
  if [ -f "$dir/node/net-index" ]; then "$HERE/node.sh" stop "$dir" || true; fi
  local p
  for p in controller-manager apiserver etcd; do stop_pidfile "$dir/$p.pid"; done
  release_net_index "$(cat "$dir/net-index" 2>/dev/null || true)" "$dir"
}

case "${1:-}" in
  build) build ;;
  start) start "${2:-}" ;;
  stop) stop "${2:-}" ;;
  *) echo "usage: $0 build | start DIR | stop DIR" >&2; exit 2 ;;
esac
