#!/usr/bin/env bash
# Serre's main job on one machine, on embedded defaults: a real local Kubernetes 1.20.2
# cluster (control plane and one node: containerd, kubelet, kube-proxy), Serre's images
# built and pushed to the node's registry, Serre installed with `helm install
# charts/serre` (operator and gateway as Pods, SQLite, storage on Garage, the development
# OpenID provider over HTTPS), then an example Tenant and Sandbox shown Ready, a sandbox
# requested through the gateway, and a vendor's trial run of the example model in it
# through the gateway (deploy/dev/trial-journey.sh: data uploaded and granted, the run
# Succeeded, its logs, results and report fetched).
#
#   deploy/dev/up.sh          start everything (state in $SERRE_DEV_DIR, default /tmp/serre-dev)
#   deploy/dev/up.sh down     stop everything (state kept; rm -rf it for a fresh start)
#
# Runs beside the tests: its cluster takes ports from SERRE_CP_PORT_BASE (default 16540),
# the tests' from 16440. Needs root (network namespaces, containerd), as CI has.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
LOG_TAG=up
. deploy/dev/lib.sh
DIR=${SERRE_DEV_DIR:-/tmp/serre-dev}
export SERRE_CACHE=${SERRE_CACHE:-$HOME/.cache/serre}
step() { printf '\n==> %s\n' "$*"; }
kc() { kubectl "$@" 2>&1 | grep -v '^Warning: version difference'; return "${PIPESTATUS[0]}"; }

down() {
  if [ -f "$DIR/console-forward.pid" ]; then
    kill "$(cat "$DIR/console-forward.pid")" 2>/dev/null || true
    rm -f "$DIR/console-forward.pid"
  fi
  deploy/dev/install.sh down "$DIR/serre" 2>/dev/null || true
  deploy/dev/control-plane.sh stop "$DIR/cp" 2>/dev/null || true
  echo "stopped (state kept in $DIR; rm -rf it for a fresh start)"
}
if [ "${1:-}" = "down" ]; then down; exit 0; fi
if [ -f "$DIR/cp/kubeconfig" ] && KUBECONFIG=$DIR/cp/kubeconfig kubectl get --raw /readyz >/dev/null 2>&1; then
  echo "already running; '$0 down' first"
  exit 1
fi
mkdir -p "$DIR"

step "Kubernetes 1.20.2: control plane and node (binaries built once, cached in $SERRE_CACHE)"
deploy/dev/control-plane.sh build
SERRE_CP_PORT_BASE=${SERRE_CP_PORT_BASE:-16540} deploy/dev/control-plane.sh start "$DIR/cp"
deploy/dev/node.sh start "$DIR/cp"
export KUBECONFIG=$DIR/cp/kubeconfig
kc get nodes -o wide

step "Serre's images and helm install charts/serre"
deploy/dev/install.sh up "$DIR/cp" "$DIR/serre"
set -a; . "$DIR/serre/env"; set +a

step "Example Tenant and Sandbox"
expires=$(date -u -d '+30 days' +%Y-%m-%dT%H:%M:%SZ)
kc apply -f deploy/examples/tenant-est-ensemble.yaml
sed "s/expiresAt: .*/expiresAt: \"$expires\"/" deploy/examples/sandbox-mobility.yaml | kc apply -f -
phase=
for _ in $(seq 1 240); do
  phase=$(kubectl get sandbox mobility-forecast -o jsonpath='{.status.phase}' 2>/dev/null || true)
  [ "$phase" = "Ready" ] && break
  sleep 0.5
done
kc get tenants,sandboxes
kc get sandbox mobility-forecast -o jsonpath='{range .status.conditions[*]}{.type}={.status} ({.reason}): {.message}{"\n"}{end}'
if [ "$phase" != "Ready" ]; then
  echo "the sandbox did not become Ready; operator logs:" >&2
  kc -n "$NAMESPACE" logs -l app.kubernetes.io/component=operator --tail=30 >&2 || true
  exit 1
fi

step "A data-team member asks the gateway for a sandbox (OpenID client credentials)"
token() { # CLIENT -> an access token from the development OpenID provider
  curl -fsS --cacert "$OIDC_CA" -u "$1:dev-secret-$1" -d grant_type=client_credentials \
    -d resource=urn:serre:api "$OIDC_ISSUER/token" | jq -r .access_token
}
TOKEN=$(token est-ensemble-data-team)
printf '%s' "$TOKEN" >"$DIR/data-team.token"
code=$(curl -sS -o "$DIR/air-quality.json" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
  -H 'Content-Type: application/json' \
  -d '{"tenant":"est-ensemble","name":"air-quality","purpose":"Test air-quality sensor forecasting models","resources":{"cpu":"2","memory":"4Gi","storage":"10Gi"},"expiresAt":"'"$(date -u -d '+10 days' +%FT%TZ)"'"}' \
  "$GATEWAY_URL/v1/sandboxes")
case $code in
  201) echo "POST /v1/sandboxes: 201 Created" ;;
  # A restart on a kept state directory: the request of an earlier run is still there.
  409) echo "POST /v1/sandboxes: 409, already requested by an earlier run; GET it:"
    curl -fsS -H "Authorization: Bearer $TOKEN" "$GATEWAY_URL/v1/sandboxes/est-ensemble--air-quality" \
      >"$DIR/air-quality.json" ;;
  *) echo "POST /v1/sandboxes failed: HTTP $code $(cat "$DIR/air-quality.json")" >&2; exit 1 ;;
esac
jq -c . "$DIR/air-quality.json"
phase=
for _ in $(seq 1 240); do
  phase=$(kubectl get sandbox est-ensemble--air-quality -o jsonpath='{.status.phase}' 2>/dev/null || true)
  [ "$phase" = "Ready" ] && break
  sleep 0.5
done
kc get sandbox est-ensemble--air-quality
[ "$phase" = "Ready" ] || { echo "the requested sandbox did not become Ready" >&2; exit 1; }

step "A vendor's trial run of the example model in it, through the gateway"
deploy/dev/trial-journey.sh "$DIR/serre" | tee "$DIR/trial-journey.log"
RUN=$(sed -n 's/^Trial run \(run-[0-9a-f]*\) .*/\1/p' "$DIR/trial-journey.log")

step "The web console and the serre CLI, on this machine's loopback"
# The console signs people in with the authorization code flow; the development provider
# accepts loopback redirect addresses (any port, RFC 8252), and the console derives its
# own address from the Host header on loopback only: a kubectl port-forward to the
# gateway's Service gives both.
CONSOLE_PORT=${SERRE_CONSOLE_PORT:-15480}
gw_svc=$(kubectl -n "$NAMESPACE" get svc -l app.kubernetes.io/component=gateway \
  -o jsonpath='{range .items[*]}{.metadata.name} {.spec.ports[0].port}{"\n"}{end}' | grep -v metrics | head -n 1)
[ -n "$gw_svc" ] || { echo "no gateway Service in $NAMESPACE" >&2; exit 1; }
if [ -f "$DIR/console-forward.pid" ]; then kill "$(cat "$DIR/console-forward.pid")" 2>/dev/null || true; fi
setsid kubectl -n "$NAMESPACE" port-forward --address 127.0.0.1 "svc/${gw_svc% *}" "$CONSOLE_PORT:${gw_svc#* }" \
  >"$DIR/console-forward.log" 2>&1 </dev/null &
echo $! >"$DIR/console-forward.pid"
CONSOLE_URL=http://127.0.0.1:$CONSOLE_PORT
wait_http "$CONSOLE_URL/console" 30 || { cat "$DIR/console-forward.log" >&2; echo "the console does not answer at $CONSOLE_URL/console" >&2; exit 1; }
# Sign-in starts at the provider (a redirect to its authorization endpoint).
signin=$(curl -sS -o /dev/null -w '%{http_code} %{redirect_url}' "$CONSOLE_URL/console/connexion")
case $signin in
  30[23]" $OIDC_ISSUER"*) echo "console: $CONSOLE_URL/console (sign-in redirects to $OIDC_ISSUER)" ;;
  *) echo "the console's sign-in does not lead to the provider: $signin" >&2; exit 1 ;;
esac

cat <<MSG

Serre is running on a local Kubernetes 1.20.2 cluster (one node), installed with Helm:
  export KUBECONFIG=$KUBECONFIG
  kubectl -n $NAMESPACE get pods -o wide        # the operator (2 replicas) and the gateway
  $HELM -n $NAMESPACE status $RELEASE           # values: $VALUES
Gateway: $GATEWAY_URL (its ClusterIP, reachable from this machine; OpenAPI at /openapi.json)
  A token for the est-ensemble data team is in $DIR/data-team.token; others from the
  development OpenID provider (clients in deploy/dev/oidc-provider/clients.json):
    curl --cacert $OIDC_CA -u est-ensemble-admin:dev-secret-est-ensemble-admin \\
      -d grant_type=client_credentials -d resource=urn:serre:api $OIDC_ISSUER/token
  curl -s -H "Authorization: Bearer \$(cat $DIR/data-team.token)" $GATEWAY_URL/v1/sandboxes
  kubectl get sandboxes; kubectl -n serre-mobility-forecast get resourcequota,networkpolicy,secret
Trial run $RUN of the example model in est-ensemble--air-quality Succeeded; as the vendor:
  T=\$(cat $DIR/serre/tokens/vendor); R=$GATEWAY_URL/v1/sandboxes/est-ensemble--air-quality/runs/$RUN
  curl -H "Authorization: Bearer \$T" \$R/logs; curl -H "Authorization: Bearer \$T" \$R/results
  curl -H "Authorization: Bearer \$T" \$R/results/results.json; curl -H "Authorization: Bearer \$T" \$R/report
  (the whole journey, again: deploy/dev/trial-journey.sh $DIR/serre; its last run: $DIR/trial-journey.log)
Web console: $CONSOLE_URL/console (kubectl port-forward to the gateway, running in the
  background; log in $DIR/console-forward.log). « Se connecter » leads to the development
  provider's sign-in page ($OIDC_ISSUER, certificate from the local cluster's CA $OIDC_CA:
  the browser asks to accept it). Development accounts (password = dev-secret-<account>):
    est-ensemble-data    a data-team member of Est Ensemble
    est-ensemble-admin   a tenant admin of Est Ensemble (approvals, audit log)
    vendor               a vendor (only what it was granted)
  docs/console.md shows each page.
The serre CLI, signed in with the device flow (same accounts):
  cargo build -p serre-cli && SSL_CERT_FILE=$OIDC_CA target/debug/serre login \\
    --issuer $OIDC_ISSUER --gateway $GATEWAY_URL
  target/debug/serre sandboxes list; target/debug/serre --help   (docs/cli.md)
Garage (S3): $S3_ENDPOINT. No cluster DNS here: Pods reach Services by ClusterIP.
Stop with: $0 down
MSG
