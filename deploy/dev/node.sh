#!/usr/bin/env bash
# A real node for the local cluster of deploy/dev/control-plane.sh: containerd + runc + CNI
# plugins (Debian), kubelet, kube-proxy and kube-scheduler 1.20.2 (built from Debian's
# source by control-plane.sh build), and a loopback-only image registry (Debian
# docker-registry) that the node pulls from. Pods are scheduled, pulled, started,
# restarted and killed by the real kubelet; Services work through kube-proxy (iptables).
#
#   node.sh start DIR     add a node to the cluster whose state is in DIR (control-plane.sh
#                         start DIR ran first); waits until the Node is Ready
#   node.sh stop DIR      stop it (control-plane.sh stop DIR does it too)
#   node.sh env DIR       print the node's addresses as shell assignments (REGISTRY=...)
#
# Layout. The node lives in its own network namespace `serre-nN` (N = DIR/net-index) and
# its own mount namespace, so that two local clusters (deploy/dev/up.sh and the tests)
# never share ports, iptables rules, pod log directories or cgroups:
#   - a veth pair: 10.250.N.1 (this machine's side) — 10.250.N.2 (the node's InternalIP);
#   - Pods get 10.244.N.0/24 on the bridge `cni0`; Services 10.96.N.0/24 (control-plane.sh);
#     this machine routes both to the node, so scripts and tests reach Pods and ClusterIPs;
#   - Pods reach this machine's services on the host address (SERRE_HOST_ADDR,
#     deploy/dev/lib.sh): the API server, Garage, the registry, a gateway under test;
#   - pods' cgroups under /serre-nN; /var/log/pods of the node is DIR/node/log/pods.
# No cluster DNS (no CoreDNS in reachable registries): Pods reach Services by ClusterIP
# and the environment variables the kubelet injects. No NetworkPolicy enforcement (no
# policy-capable CNI plugin in reachable registries): policies are stored, not enforced.
#
# Environment: SERRE_CACHE (default ~/.cache/serre), SERRE_NODE_PARENT_PID (stop once that
# process is gone), SERRE_HOST_ADDR (default 10.250.0.1).
set -euo pipefail
LOG_TAG=node
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/lib.sh"

CACHE=${SERRE_CACHE:-$HOME/.cache/serre}
BIN=$CACHE/kubernetes-1.20.2/bin
NODE_NAME=serre-node
NS_DIR=/run/serre-ns

node_apt() {
  need_apt containerd runc containernetworking-plugins iptables conntrack docker-registry buildah gcc libc6-dev
}

# Run a command inside the node's network and mount namespaces.
in_node() { nsenter --net="/run/netns/serre-n$N" --mount="$NS_DIR/mnt-$N" "$@"; }

# Start a long-lived node process NAME (nsenter execs it: the pid file names it).
node_process() { # NAME COMMAND...
  local name=$1
  shift
  nsenter --net="/run/netns/serre-n$N" --mount="$NS_DIR/mnt-$N" "$@" >"$NODE/$name.log" 2>&1 &
  echo $! >"$NODE/$name.pid"
}

setup_network() {
  local netns=serre-n$N host_if=svh$N node_if=svn$N
  ip netns add "$netns" 2>/dev/null || true
  if ! ip link show "$host_if" >/dev/null 2>&1; then
    ip link add "$host_if" type veth peer name "$node_if"
    ip link set "$node_if" netns "$netns"
  fi
  ip addr replace "10.250.$N.1/24" dev "$host_if"
  ip link set "$host_if" up
  ip netns exec "$netns" sh -euc "
    ip link set lo up
    ip addr replace 10.250.$N.2/24 dev $node_if
    ip link set $node_if up
    ip route replace default via 10.250.$N.1
    sysctl -qw net.ipv4.ip_forward=1
    sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || true
  "
  ip route replace "10.244.$N.0/24" via "10.250.$N.2"
  ip route replace "10.96.$N.0/24" via "10.250.$N.2"
}

teardown_network() {
  ip route del "10.244.$N.0/24" 2>/dev/null || true
  ip route del "10.96.$N.0/24" 2>/dev/null || true
  ip link del "svh$N" 2>/dev/null || true
  ip netns del "serre-n$N" 2>/dev/null || true
}

# A mount namespace kept alive by a bind mount of its nsfs file, in which the node's own
# /var/log/pods and /var/log/containers are mounted over the machine's.
setup_mounts() {
  mkdir -p "$NS_DIR"
  if ! mountpoint -q "$NS_DIR"; then
    mount --bind "$NS_DIR" "$NS_DIR"
    mount --make-private "$NS_DIR"
  fi
  mkdir -p /var/log/pods /var/log/containers "$NODE/log/pods" "$NODE/log/containers"
  # A namespace left by an earlier node whose DIR was since removed still mounts the old,
  # deleted directories (the kubelet then fails "mkdir /var/log/pods/…: no such file"):
  # keep it only if its /var/log/pods is this node's.
  local want seen
  want=$(stat -c %d:%i "$NODE/log/pods")
  seen=$(nsenter --mount="$NS_DIR/mnt-$N" stat -c %d:%i /var/log/pods 2>/dev/null || true)
  if [ "$seen" != "$want" ]; then
    umount "$NS_DIR/mnt-$N" 2>/dev/null || true
    touch "$NS_DIR/mnt-$N"
    unshare --mount="$NS_DIR/mnt-$N" --propagation private sh -euc "
      mount --bind '$NODE/log/pods' /var/log/pods
      mount --bind '$NODE/log/containers' /var/log/containers
    "
  fi
}

teardown_mounts() {
  umount "$NS_DIR/mnt-$N" 2>/dev/null || true
  rm -f "$NS_DIR/mnt-$N"
}

registry_start() {
  local port=$1
  mkdir -p "$NODE/registry"
  cat >"$NODE/registry.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $NODE/registry
  delete:
    enabled: true
http:
  addr: $SERRE_HOST_ADDR:$port
YAML
  docker-registry serve "$NODE/registry.yml" >"$NODE/registry.log" 2>&1 &
  echo $! >"$NODE/registry.pid"
  wait_http "http://$SERRE_HOST_ADDR:$port/v2/" 20 || { tail -n 20 "$NODE/registry.log" >&2; exit 1; }
}

# The Pod sandbox ("pause") image: a static program that waits for a signal.
pause_image() {
  local ref=$REGISTRY/serre/pause:1
  if curl -fsS -o /dev/null "http://$REGISTRY/v2/serre/pause/manifests/1" \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json' 2>/dev/null; then
    return 0
  fi
  local work=$NODE/pause-build
  mkdir -p "$work"
  cat >"$work/pause.c" <<'C'
#include <signal.h>
#include <unistd.h>
static void bye(int sig) { (void)sig; _exit(0); }
int main(void) {
  signal(SIGINT, bye);
  signal(SIGTERM, bye);
  for (;;) pause();
}
C
  gcc -static -O2 -o "$work/pause" "$work/pause.c"
  local ctr
  ctr=$(buildah --storage-driver vfs from scratch)
  buildah --storage-driver vfs copy "$ctr" "$work/pause" /pause >/dev/null
  buildah --storage-driver vfs config --entrypoint '["/pause"]' --user 65535:65535 "$ctr"
  buildah --storage-driver vfs commit -q --format oci "$ctr" "$ref" >/dev/null
  buildah --storage-driver vfs rm "$ctr" >/dev/null
  buildah --storage-driver vfs push -q --tls-verify=false "$ref" "docker://$ref"
  rm -rf "$work"
}

containerd_config() {
  mkdir -p "$NODE/cni" "$NODE/certs.d/$REGISTRY" "$NODE/containerd"
  cat >"$NODE/certs.d/$REGISTRY/hosts.toml" <<TOML
server = "http://$REGISTRY"
[host."http://$REGISTRY"]
  capabilities = ["pull", "resolve"]
TOML
  cat >"$NODE/cni/10-serre.conflist" <<JSON
{
  "cniVersion": "0.4.0",
  "name": "serre",
  "plugins": [
    {
      "type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
      "ipam": {
        "type": "host-local", "dataDir": "$NODE/cni-ipam",
        "ranges": [[{"subnet": "10.244.$N.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
  cat >"$NODE/containerd.toml" <<TOML
version = 2
root = "$NODE/containerd/root"
state = "$NODE/containerd/state"
[grpc]
  address = "$NODE/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$REGISTRY/serre/pause:1"
  # Root here lacks CAP_SYS_RESOURCE: lowering oom_score_adj would fail every container.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$NODE/cni"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$NODE/certs.d"
TOML
}

kubelet_config() {
  cat >"$NODE/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
cgroupRoot: /serre-n$N
failSwapOn: false
enforceNodeAllocatable: []
readOnlyPort: 0
address: 10.250.$N.2
port: 10250
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: $PKI/node-serving.crt
tlsPrivateKeyFile: $PKI/node-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization:
  mode: Webhook
serializeImagePulls: false
# A development machine's disk is shared with builds: evict only when it is really full.
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 95
resolvConf: /etc/resolv.conf
maxPods: 110
YAML
  # Pods' cgroups live under their own root, apart from any other local node's.
  local c
  for c in /sys/fs/cgroup/*/; do mkdir -p "$c/serre-n$N"; done
}

start_node_processes() {
  log "starting containerd"
  node_process containerd containerd --config "$NODE/containerd.toml"
  for _ in $(seq 1 100); do [ -S "$NODE/containerd.sock" ] && break; sleep 0.1; done
  [ -S "$NODE/containerd.sock" ] || { tail -n 20 "$NODE/containerd.log" >&2; exit 1; }

  log "starting kubelet ($NODE_NAME, InternalIP 10.250.$N.2)"
  node_process kubelet "$BIN/kubelet" --config "$NODE/kubelet.yaml" --kubeconfig "$PKI/node-client.kubeconfig" \
    --container-runtime remote --container-runtime-endpoint "unix://$NODE/containerd.sock" \
    --root-dir "$NODE/kubelet" --cert-dir "$NODE/kubelet-pki" --node-ip "10.250.$N.2" \
    --containerd "$NODE/containerd.sock" \
    --hostname-override "$NODE_NAME" --logtostderr=true --v=1

  log "starting kube-proxy and kube-scheduler"
  node_process kube-proxy "$BIN/kube-proxy" --kubeconfig "$PKI/kube-proxy.kubeconfig" --proxy-mode iptables \
    --cluster-cidr "10.244.$N.0/24" --hostname-override "$NODE_NAME" \
    --conntrack-max-per-core 0 --conntrack-tcp-timeout-established 0 --conntrack-tcp-timeout-close-wait 0 \
    --metrics-bind-address 127.0.0.1:10249 --healthz-bind-address 127.0.0.1:10256 \
    --logtostderr=true --v=0
  node_process kube-scheduler "$BIN/kube-scheduler" --kubeconfig "$PKI/kube-scheduler.kubeconfig" \
    --authentication-kubeconfig "$PKI/kube-scheduler.kubeconfig" \
    --authorization-kubeconfig "$PKI/kube-scheduler.kubeconfig" \
    --leader-elect=false --bind-address 127.0.0.1 --secure-port 10259 --port 0 \
    --logtostderr=true --v=0
}

wait_ready() {
  local kc="kubectl --kubeconfig $DIR/kubeconfig"
  for _ in $(seq 1 120); do
    if [ "$($kc get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ] &&
      [ -z "$($kc get node "$NODE_NAME" -o jsonpath='{.spec.taints}' 2>/dev/null)" ]; then
      return 0
    fi
    sleep 1
  done
  log "the node did not become Ready; last kubelet lines:"
  tail -n 30 "$NODE/kubelet.log" >&2
  exit 1
}

load() { # DIR: set DIR, N, NODE, PKI, REGISTRY
  DIR=$(cd "${1:?usage: node.sh start|stop|env DIR}" && pwd)
  [ -f "$DIR/net-index" ] || { log "no control plane in $DIR: run control-plane.sh start $DIR first"; exit 1; }
  N=$(cat "$DIR/net-index")
  NODE=$DIR/node
  PKI=$DIR/pki
  local base
  base=$(cat "$DIR/port-base")
  REGISTRY_PORT=$((base + 5))
  REGISTRY=$SERRE_HOST_ADDR:$REGISTRY_PORT
}

start() {
  load "$1"
  [ -x "$BIN/kubelet" ] || "$HERE/control-plane.sh" build
  node_apt
  ensure_kubectl
  if [ -f "$NODE/kubelet.pid" ] && kill -0 "$(cat "$NODE/kubelet.pid")" 2>/dev/null; then
    log "already running"
    return 0
  fi
  mkdir -p "$NODE"
  echo "$N" >"$NODE/net-index"
  setup_network
  setup_mounts
  log "starting the image registry on $REGISTRY"
  registry_start "$REGISTRY_PORT"
  pause_image
  containerd_config
  kubelet_config
  start_node_processes
  wait_ready
  if [ -n "${SERRE_NODE_PARENT_PID:-}" ]; then
    (
      trap '' HUP
      while kill -0 "$SERRE_NODE_PARENT_PID" 2>/dev/null; do sleep 1; done
      "$0" stop "$DIR"
    ) >/dev/null 2>&1 </dev/null &
    disown
  fi
  log "node $NODE_NAME Ready; images: $REGISTRY; Pods 10.244.$N.0/24; Services $(cat "$DIR/service-cidr" 2>/dev/null || echo "10.96.$N.0/24")"
}

stop() {
  load "$1"
  local p
  for p in kube-scheduler kube-proxy kubelet; do stop_pidfile "$NODE/$p.pid"; done
  # Containers outlive containerd (their shims): stop them first, then containerd.
  if [ -S "$NODE/containerd.sock" ]; then
    local ids
    ids=$(in_node ctr --address "$NODE/containerd.sock" -n k8s.io tasks ls -q 2>/dev/null || true)
    for id in $ids; do in_node ctr --address "$NODE/containerd.sock" -n k8s.io tasks kill -s KILL "$id" >/dev/null 2>&1 || true; done
    sleep 0.5
    for id in $ids; do in_node ctr --address "$NODE/containerd.sock" -n k8s.io tasks delete -f "$id" >/dev/null 2>&1 || true; done
  fi
  pkill -f "containerd-shim-runc-v2 -namespace k8s.io -address $NODE/containerd.sock" 2>/dev/null || true
  stop_pidfile "$NODE/containerd.pid"
  stop_pidfile "$NODE/registry.pid"
  # Kubelet mounts (secrets, emptyDirs, rootfs) live in the node's mount namespace.
  teardown_mounts
  teardown_network
  rm -f "$NODE/net-index"
}

env_cmd() {
  load "$1"
  printf 'REGISTRY=%s\nNODE_IP=10.250.%s.2\nPOD_CIDR=10.244.%s.0/24\nSERVICE_CIDR=10.96.%s.0/24\nHOST_ADDR=%s\n' \
    "$REGISTRY" "$N" "$N" "$N" "$SERRE_HOST_ADDR"
}

case "${1:-}" in
  start) start "${2:-}" ;;
  stop) stop "${2:-}" ;;
  env) env_cmd "${2:-}" ;;
  *) echo "usage: $0 start DIR | stop DIR | env DIR" >&2; exit 2 ;;
esac
