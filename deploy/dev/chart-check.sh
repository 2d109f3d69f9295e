#!/usr/bin/env bash
# Check the Helm chart charts/serre. One PASS or FAIL line per check; exits non-zero
# if any check fails.
#
#   deploy/dev/chart-check.sh [CHECK...]
#
# With no CHECK, every check below runs in order; otherwise only those named (e.g.
# `chart-check.sh lint template schema`, which needs neither cargo nor a cluster).
#
#   manifests       the generated CRDs and editor ClusterRole match the Rust types
#   lint            helm lint --strict, default values and values-production.yaml
#                   ("default values" here and below add only gateway.oidc.issuer, which
#                   the gateway, on by default, requires; see DEFAULTS below)
#   template        helm template renders, default and production values; the storage
#                   objects (env, token volume, RBAC) appear only with storage.enabled;
#                   the gateway Deployment is hardened, probed, never in development mode,
#                   sets only variables serre-api reads, and takes its database URL from a
#                   Secret file with PostgreSQL (production) or SQLite on a PVC (default)
#   schema          every charts/serre/ci/bad/*.yaml is rejected by values.schema.json for
#                   the reason its "# expect:" line names; every ci/good/*.yaml passes
#   dry-run         kubectl apply --dry-run=server of the default, production and
#                   storage-on (ci/good/storage-on.yaml) renderings (CRDs included) on a real
#                   API server: $KUBECONFIG if set, else a control plane started here
#   rbac            the operator binary runs with the chart's environment under the
#                   chart's ServiceAccount (a real token) on a private control plane, with no
#                   request refused: the ClusterRole and Role are sufficient. Default values
#                   (storage off): a sandbox is provisioned and deleted. Production values
#                   (storage on, against a real Garage from deploy/dev/garage.sh): a sandbox
#                   goes through its life (provision with StorageReady=True, change, expiry,
#                   deletion with a verified deletion certificate; the admission webhook,
#                   served by URL here, refuses a pod that breaks the sandbox policy and
#                   admits a compliant one). `kubectl auth can-i`
#                   probes check that the storage rules grant nothing more, and that the
#                   gateway's ServiceAccount may do exactly the calls of api/src/cluster.rs on
#                   tenants and sandboxes, and nothing on Secrets (the gateway is not run).
#
# Environment: SERRE_CACHE (default ~/.cache/serre: helm is kept under helm-<version>/,
# Garage under garage-<version>/), KUBECONFIG (cluster for the dry-run),
# SERRE_CHART_CHECK_CP_PORT_BASE (ports of the first control plane started here; default:
# a free range; never SERRE_CP_PORT_BASE, which names the caller's own cluster),
# SERRE_GARAGE_PORT_BASE (Garage's ports: S3 = base, RPC = base+1, admin = base+3;
# default 13990), SERRE_OPERATOR_BIN (the operator binary the rbac check runs; default
# target/debug/serre-operator, which the manifests check builds), SERRE_CHART_CHECK_KEEP=1
# (keep the temp dir).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CHART=$ROOT/charts/serre
LOG_TAG=chart-check
# shellcheck source=deploy/dev/lib.sh
. "$ROOT/deploy/dev/lib.sh"  # log, ensure_helm (HELM, HELM_VERSION)
RELEASE=serre
NAMESPACE=serre-system

cd "$ROOT" || exit 2
WORK=$(mktemp -d -t serre-chart-check.XXXXXX)
FAILED=0
# The only value "default values" checks add: the gateway (on by default) requires an
# OpenID provider. Passed as a file before any other, so a later -f can still unset it.
GATEWAY_ISSUER_VALUES=$WORK/gateway-issuer.yaml
printf 'gateway:\n  oidc:\n    issuer: https://login.example.org/realms/serre\n' >"$GATEWAY_ISSUER_VALUES"
DEFAULTS=(-f "$GATEWAY_ISSUER_VALUES")
CP_DIRS=()
CP_KUBECONFIG=
OPERATOR_BIN=${SERRE_OPERATOR_BIN:-$ROOT/target/debug/serre-operator}
OPERATOR_PID=
OPERATOR_LOG=
GARAGE_PORT_BASE=${SERRE_GARAGE_PORT_BASE:-13990}
GARAGE_DIR=

pass() { printf 'PASS %-10s %s\n' "$1" "$2"; }
fail() {
  printf 'FAIL %-10s %s\n' "$1" "${2:0:600}"
  FAILED=1
}
# kubectl against 1.20 warns about the version skew on every call: drop those lines.
kc() { kubectl "$@" 2>&1 | grep -v '^Warning: version difference' ; return "${PIPESTATUS[0]}"; }

cleanup() {
  if [ -n "$OPERATOR_PID" ]; then
    kill "$OPERATOR_PID" 2>/dev/null
    wait "$OPERATOR_PID" 2>/dev/null
  fi
  if [ -n "$GARAGE_DIR" ]; then
    "$ROOT/deploy/dev/garage.sh" stop "$GARAGE_DIR" >/dev/null 2>&1
  fi
  for d in "${CP_DIRS[@]}"; do
    "$ROOT/deploy/dev/control-plane.sh" stop "$d" >/dev/null 2>&1
  done
  if [ "${SERRE_CHART_CHECK_KEEP:-0}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A free range of 4 ports for a control plane (etcd, etcd peer, controller-manager, apiserver).
free_port_base() {
  local base
  for _ in $(seq 1 50); do
    base=$((20000 + (RANDOM % 2000) * 4))
    if ! ss -Htln 2>/dev/null | awk '{print $4}' | grep -Eq ":($base|$((base + 1))|$((base + 2))|$((base + 3)))\$"; then
      echo "$base"
      return 0
    fi
  done
  return 1
}

# start_control_plane DIR: sets CP_KUBECONFIG. Not in a subshell: cleanup must see CP_DIRS.
# The control plane also stops by itself once this script is gone (SERRE_CP_PARENT_PID).
start_control_plane() {
  local dir=$1 base
  base=${SERRE_CHART_CHECK_CP_PORT_BASE:-$(free_port_base)}
  # A second control plane may not reuse that base.
  [ ${#CP_DIRS[@]} -gt 0 ] && base=$(free_port_base)
  CP_DIRS+=("$dir")
  CP_KUBECONFIG=
  SERRE_CP_PORT_BASE=$base SERRE_CP_PARENT_PID=$$ "$ROOT/deploy/dev/control-plane.sh" start "$dir" >"$dir.log" 2>&1 ||
    { tail -n 20 "$dir.log" >&2; return 1; }
  CP_KUBECONFIG=$dir/kubeconfig
}

render() { # NAME [helm args...] -> $WORK/NAME.yaml
  local name=$1
  shift
  "$HELM" template "$RELEASE" "$CHART" --namespace "$NAMESPACE" "$@" >"$WORK/$name.yaml" 2>"$WORK/$name.err" || return 1
  # helm can exit 0 and leave nothing when the disk is full: an empty rendering is a failure.
  if ! grep -q '^kind:' "$WORK/$name.yaml"; then
    echo "the rendering has no object (free space where it was written: $(df -h --output=avail "$WORK" | tail -n 1 | tr -d ' '))" >>"$WORK/$name.err"
    return 1
  fi
}

# The checks, one file per family (sourced: they share this script's helpers).
for f in static template dry-run rbac; do
  # shellcheck source=/dev/null
  . "$ROOT/deploy/dev/chart-check/$f.sh"
done

# --- run ------------------------------------------------------------------------------
ALL_CHECKS=(manifests lint template schema dry-run rbac)
SELECTED=("$@")
[ ${#SELECTED[@]} -eq 0 ] && SELECTED=("${ALL_CHECKS[@]}")
for c in "${SELECTED[@]}"; do
  [[ " ${ALL_CHECKS[*]} " == *" $c "* ]] || { echo "chart-check: unknown check '$c' (known: ${ALL_CHECKS[*]})" >&2; exit 2; }
done
selected() { [[ " ${SELECTED[*]} " == *" $1 "* ]]; }
if ensure_helm; then
  pass helm "helm $HELM_VERSION at $HELM"
else
  fail helm "could not install helm $HELM_VERSION"
  exit 1
fi
selected manifests && check_manifests
selected lint && check_lint
selected template && check_template
selected schema && check_schema
own=
if selected dry-run; then
  if [ -n "${KUBECONFIG:-}" ]; then
    log "dry run on KUBECONFIG=$KUBECONFIG; the rbac check starts a private control plane"
    check_dry_run "$KUBECONFIG"
  elif start_control_plane "$WORK/cp"; then
    own=$CP_KUBECONFIG
    check_dry_run "$own"
  else
    fail dry-run "could not start a control plane (deploy/dev/control-plane.sh)"
  fi
fi
selected rbac && check_rbac "$own"

if [ "$FAILED" -ne 0 ]; then
  echo "chart-check: FAILED"
  exit 1
fi
echo "chart-check: all checks passed"
