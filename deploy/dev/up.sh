#!/usr/bin/env bash
# Serre's main job on a laptop, on embedded defaults: a real local control plane
# (kube-apiserver + etcd + controller-manager), Garage, the operator with storage, an
# example Tenant and Sandbox — shown Ready.
#
#   deploy/dev/up.sh          start everything (state in $SERRE_DEV_DIR, default /tmp/serre-dev)
#   deploy/dev/up.sh down     stop everything
set -euo pipefail
cd "$(dirname "$0")/../.."
DIR=${SERRE_DEV_DIR:-/tmp/serre-dev}
export SERRE_CACHE=${SERRE_CACHE:-$HOME/.cache/serre}
step() { printf '\n==> %s\n' "$*"; }

down() {
  [ -f "$DIR/operator.pid" ] && kill "$(cat "$DIR/operator.pid")" 2>/dev/null || true
  rm -f "$DIR/operator.pid"
  deploy/dev/garage.sh stop "$DIR/garage" 2>/dev/null || true
  deploy/dev/control-plane.sh stop "$DIR/cp" 2>/dev/null || true
  echo "stopped (state kept in $DIR; rm -rf it for a fresh start)"
}
if [ "${1:-}" = "down" ]; then down; exit 0; fi
[ -f "$DIR/operator.pid" ] && kill -0 "$(cat "$DIR/operator.pid")" 2>/dev/null && { echo "already running; '$0 down' first"; exit 1; }
mkdir -p "$DIR"

step "Building serre-operator"
cargo build -q -p serre-operator --bin serre-operator
BIN=target/debug/serre-operator

step "Control plane"
deploy/dev/control-plane.sh start "$DIR/cp"
export KUBECONFIG=$DIR/cp/kubeconfig

step "Garage"
SERRE_GARAGE_PORT_BASE=${SERRE_GARAGE_PORT_BASE:-13900} deploy/dev/garage.sh start "$DIR/garage"
set -a; . "$DIR/garage/env"; set +a

step "CRDs, ClusterRole, namespace and storage keys"
$BIN install
$BIN storage-keys

step "Operator (logs: $DIR/operator.log)"
$BIN run --http-addr 127.0.0.1:18080 --platform-egress "127.0.0.1/32:${SERRE_S3_ENDPOINT##*:}" >"$DIR/operator.log" 2>&1 &
echo $! >"$DIR/operator.pid"

step "Example Tenant and Sandbox"
expires=$(date -u -d '+30 days' +%Y-%m-%dT%H:%M:%SZ)
kubectl apply -f deploy/examples/tenant-est-ensemble.yaml 2>/dev/null
sed "s/expiresAt: .*/expiresAt: \"$expires\"/" deploy/examples/sandbox-mobility.yaml | kubectl apply -f - 2>/dev/null
for _ in $(seq 1 120); do
  phase=$(kubectl get sandbox mobility-forecast -o jsonpath='{.status.phase}' 2>/dev/null || true)
  [ "$phase" = "Ready" ] && break
  sleep 0.5
done
kubectl get tenants,sandboxes 2>/dev/null
kubectl get sandbox mobility-forecast -o jsonpath='{range .status.conditions[*]}{.type}={.status} ({.reason}): {.message}{"\n"}{end}' 2>/dev/null
[ "$phase" = "Ready" ] || { echo "the sandbox did not become Ready; see $DIR/operator.log" >&2; exit 1; }
cat <<MSG

Serre is running.
  export KUBECONFIG=$KUBECONFIG
  kubectl get sandboxes; kubectl -n serre-mobility-forecast get resourcequota,networkpolicy,rolebinding,secret
  curl -s 127.0.0.1:18080/metrics | grep serre_
Stop with: $0 down
MSG
