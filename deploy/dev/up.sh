#!/usr/bin/env bash
# Serre's main job on a laptop, on embedded defaults: a real local control plane
# (kube-apiserver + etcd + controller-manager), Garage, the operator with storage, the
# gateway (SQLite, development token issuer), an example Tenant and Sandbox — shown
# Ready — and a sandbox requested through the gateway.
#
#   deploy/dev/up.sh          start everything (state in $SERRE_DEV_DIR, default /tmp/serre-dev)
#   deploy/dev/up.sh down     stop everything
set -euo pipefail
cd "$(dirname "$0")/../.."
DIR=${SERRE_DEV_DIR:-/tmp/serre-dev}
export SERRE_CACHE=${SERRE_CACHE:-$HOME/.cache/serre}
step() { printf '\n==> %s\n' "$*"; }

down() {
  for p in gateway operator; do
    [ -f "$DIR/$p.pid" ] && kill "$(cat "$DIR/$p.pid")" 2>/dev/null || true
    rm -f "$DIR/$p.pid"
  done
  deploy/dev/garage.sh stop "$DIR/garage" 2>/dev/null || true
  deploy/dev/control-plane.sh stop "$DIR/cp" 2>/dev/null || true
  echo "stopped (state kept in $DIR; rm -rf it for a fresh start)"
}
if [ "${1:-}" = "down" ]; then down; exit 0; fi
[ -f "$DIR/operator.pid" ] && kill -0 "$(cat "$DIR/operator.pid")" 2>/dev/null && { echo "already running; '$0 down' first"; exit 1; }
mkdir -p "$DIR"

step "Building serre-operator and serre-api"
cargo build -q -p serre-operator --bin serre-operator -p serre-api --bin serre-api
BIN=target/debug/serre-operator
API=target/debug/serre-api

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
$BIN run --http-addr 127.0.0.1:18080 --platform-egress "127.0.0.1/32:${SERRE_S3_ENDPOINT##*:}" \
  --gateway-url http://127.0.0.1:15480 --run-fetch-image serre-api:dev >"$DIR/operator.log" 2>&1 &
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
step "Gateway (logs: $DIR/gateway.log)"
$API serve --environment development --dev-issuer --kubeconfig "$KUBECONFIG" \
  --data-dir "$DIR/api" --listen 127.0.0.1:15480 --policies-dir policies >"$DIR/gateway.log" 2>&1 &
echo $! >"$DIR/gateway.pid"
for _ in $(seq 1 100); do curl -fsS -o /dev/null 127.0.0.1:15480/readyz 2>/dev/null && break; sleep 0.2; done
curl -fsS 127.0.0.1:15480/readyz >/dev/null || { echo "the gateway did not become ready; see $DIR/gateway.log" >&2; exit 1; }
TOKEN=$($API dev-token --data-dir "$DIR/api" --sub alice@est-ensemble.fr --groups ept-est-ensemble-data)
echo "A data-team member asks for a sandbox within the self-service policy:"
curl -sS -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d '{"tenant":"est-ensemble","name":"air-quality","purpose":"Test air-quality sensor forecasting models","resources":{"cpu":"2","memory":"4Gi","storage":"10Gi"},"expiresAt":"'"$(date -u -d '+10 days' +%FT%TZ)"'"}' \
  127.0.0.1:15480/v1/sandboxes
echo
echo "$TOKEN" >"$DIR/alice.token"

cat <<MSG

Serre is running.
  export KUBECONFIG=$KUBECONFIG
  Gateway: http://127.0.0.1:15480 (OpenAPI at /openapi.json); a token for alice (data team of
  est-ensemble) is in $DIR/alice.token; mint others with
    $API dev-token --data-dir $DIR/api --sub bob --groups ept-est-ensemble-admins
  curl -s -H "Authorization: Bearer \$(cat $DIR/alice.token)" 127.0.0.1:15480/v1/sandboxes
  kubectl get sandboxes; kubectl -n serre-mobility-forecast get resourcequota,networkpolicy,rolebinding,secret
  curl -s 127.0.0.1:18080/metrics | grep serre_
  Trial runs (docs/trial-runs.md): POST /v1/sandboxes/{name}/runs; the operator makes the Job
  (this local control plane has no kubelet: pods are created, never run). Usage and budget:
  curl -s -H "Authorization: Bearer \$(cat $DIR/alice.token)" 127.0.0.1:15480/v1/tenants/est-ensemble/usage
Stop with: $0 down
MSG
