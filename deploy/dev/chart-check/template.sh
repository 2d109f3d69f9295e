# The template checks (helm template renderings, asserted object by object) of deploy/dev/chart-check.sh, which sources this file;
# uses its helpers: pass, fail, kc, render, $WORK, $CHART, $HELM, $RELEASE, $NAMESPACE.

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
    'name: SERRE_STORAGE_DATA_KEYS_SECRET'
    'value: "/var/run/serre/garage/admin-token"' 'mountPath: /var/run/serre/garage'
    'readOnly: true' 'secretName: serre-garage-admin-token' 'fsGroup: 65532'
    'resources: \["configmaps"\]' 'resourceNames: \["sandbox-storage"\]'
    'resourceNames: \["serre-storage-keys", "serre-storage-data-keys"\]')
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
  check_template_webhook
  # The operator's Role reads its two key Secrets by name: a data keys Secret named like
  # the gateway's keys would hand those to it, so the chart refuses it.
  local out
  if out=$("$HELM" template "$RELEASE" "$CHART" -n "$NAMESPACE" -f "$CHART/values-production.yaml" \
    --set storage.dataKeysSecret=serre-gateway-data-keys 2>&1); then
    fail template "storage.dataKeysSecret = the gateway's keys Secret was accepted"
  elif ! grep -q "storage.dataKeysSecret must name a Secret of its own" <<<"$out"; then
    fail template "storage.dataKeysSecret = the gateway's keys Secret failed for another reason: $(tail -n 1 <<<"$out")"
  else
    pass template "the operator's data keys Secret may not be the gateway's (nor its own keys Secret)"
  fi
  check_template_gateway
  check_template_gateway_ops
  check_template_keys
  check_template_node_energy
}

# The sandbox policy admission webhook (webhook.*, on by default): the operator serves it
# on its own container port behind a ClusterIP Service on 443, with the environment that
# names that Service, the configuration and certificate Secret it manages and the
# ClusterRole owning the configuration; its RBAC names each object (create excepted);
# nothing of it with webhook.enabled=false.
check_template_webhook() {
  local op svc cr role off missing=() leaked=() want
  local vwc=$RELEASE-sandbox-policy secret=$RELEASE-operator-webhook-tls service=$RELEASE-operator-webhook
  op=$(gateway_doc "$WORK/default.yaml" Deployment "$RELEASE-operator")
  svc=$(gateway_doc "$WORK/default.yaml" Service "$service")
  cr=$(gateway_doc "$WORK/default.yaml" ClusterRole "$RELEASE-operator")
  role=$(gateway_doc "$WORK/default.yaml" Role "$RELEASE-operator")
  for want in '- name: webhook' 'containerPort: 9443' 'name: SERRE_WEBHOOK$' 'value: "true"' \
    'value: "0.0.0.0:9443"' "value: \"$service\"" "value: \"$vwc\"" "value: \"$secret\"" \
    'name: SERRE_WEBHOOK_TIMEOUT_SECONDS' 'name: SERRE_WEBHOOK_OWNER_CLUSTER_ROLE' \
    "value: \"system:serviceaccount:$NAMESPACE:$RELEASE-operator\""; do
    grep -q -- "$want" <<<"$op" || missing+=("operator Deployment: $want")
  done
  grep -A1 'name: SERRE_WEBHOOK_OWNER_CLUSTER_ROLE' <<<"$op" | grep -q "value: \"$RELEASE-operator\"" ||
    missing+=("the configuration owned by ClusterRole $RELEASE-operator")
  grep -A1 'name: SERRE_WEBHOOK_TIMEOUT_SECONDS' <<<"$op" | grep -q 'value: "5"' || missing+=("timeout 5 s")
  { grep -q 'type: ClusterIP' <<<"$svc" && grep -q 'port: 443' <<<"$svc" && grep -q 'targetPort: webhook' <<<"$svc" &&
    grep -q 'app.kubernetes.io/component: operator' <<<"$svc"; } || missing+=("Service $service (ClusterIP, 443 -> webhook, operator pods)")
  grep -A3 'validatingwebhookconfigurations' <<<"$cr" | grep -q "resourceNames: \[\"$vwc\"\]" ||
    missing+=("ClusterRole: the configuration by name")
  grep -B1 -A2 'resources: \["clusterroles"\]' <<<"$cr" | grep -A1 'verbs: \["get"\]' | grep -q "resourceNames: \[\"$RELEASE-operator\"\]" ||
    missing+=("ClusterRole: get its own ClusterRole by name")
  grep -A2 'verbs: \["get", "patch"\]' <<<"$role" | grep -q "resourceNames: \[\"$secret\"\]" ||
    missing+=("Role: get/patch the certificate Secret by name")
  grep -q 'verbs: \["get", "patch", "delete"\]\|verbs: \[.*"delete".*\]' <<<"$(grep -A2 validatingwebhookconfigurations <<<"$cr")" &&
    leaked+=("ClusterRole: delete on webhook configurations")
  if ! render webhook-off "${DEFAULTS[@]}" --set webhook.enabled=false; then
    missing+=("webhook-off rendering: $(tail -n 1 "$WORK/webhook-off.err")")
  else
    off=$(gateway_doc "$WORK/webhook-off.yaml" Deployment "$RELEASE-operator")
    grep -q 'SERRE_WEBHOOK\|containerPort: 9443' <<<"$off" && leaked+=("webhook off: the operator still serves it")
    grep -q "name: $service" "$WORK/webhook-off.yaml" && leaked+=("webhook off: its Service")
    gateway_doc "$WORK/webhook-off.yaml" ClusterRole "$RELEASE-operator" | grep -q 'validatingwebhookconfigurations' &&
      leaked+=("webhook off: rights on webhook configurations")
    gateway_doc "$WORK/webhook-off.yaml" Role "$RELEASE-operator" | grep -q 'resources: \["secrets"\]' &&
      leaked+=("webhook off (storage off): rights on Secrets")
  fi
  if render webhook-scoped "${DEFAULTS[@]}" --set-string 'webhook.namespaceSelector.serre\.metropolegrandparis\.fr/tenant=est-ensemble'; then
    grep -A1 'name: SERRE_WEBHOOK_NAMESPACE_SELECTOR' "$WORK/webhook-scoped.yaml" |
      grep -q 'value: "serre.metropolegrandparis.fr/tenant=est-ensemble"' || missing+=("webhook.namespaceSelector as key=value")
  else
    missing+=("webhook-scoped rendering: $(tail -n 1 "$WORK/webhook-scoped.err")")
  fi
  grep -q 'SERRE_WEBHOOK_CLIENT_CA\|webhook-client-ca' <<<"$op" && leaked+=("no webhook.clientCA: a client CA anyway")
  local client_ca=$WORK/webhook-client-ca.crt
  openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=chart-check-webhook-client-ca \
    -keyout "$WORK/webhook-client-ca.key" -out "$client_ca" 2>/dev/null
  if render webhook-client-ca "${DEFAULTS[@]}" --set-file "webhook.clientCA=$client_ca"; then
    local with_ca cm
    with_ca=$(gateway_doc "$WORK/webhook-client-ca.yaml" Deployment "$RELEASE-operator")
    cm=$(gateway_doc "$WORK/webhook-client-ca.yaml" ConfigMap "$RELEASE-operator-webhook-client-ca")
    grep -A1 'name: SERRE_WEBHOOK_CLIENT_CA' <<<"$with_ca" | grep -q 'value: "/etc/serre/webhook-client-ca/ca.crt"' &&
      grep -A1 'mountPath: /etc/serre/webhook-client-ca' <<<"$with_ca" | grep -q 'readOnly: true' &&
      grep -A1 'name: webhook-client-ca' <<<"$with_ca" | grep -q 'configMap:' &&
      grep -q "$(sed -n 2p "$client_ca")" <<<"$cm" || missing+=("webhook.clientCA: ConfigMap mounted and SERRE_WEBHOOK_CLIENT_CA")
  else
    missing+=("webhook-client-ca rendering: $(tail -n 1 "$WORK/webhook-client-ca.err")")
  fi
  if [ ${#missing[@]} -ne 0 ]; then
    fail template "admission webhook, the rendering lacks: ${missing[*]}"
  elif [ ${#leaked[@]} -ne 0 ]; then
    fail template "admission webhook, the rendering has what it must not: ${leaked[*]}"
  else
    pass template "admission webhook: container port 9443 behind Service $service:443, configuration $vwc owned by the operator's ClusterRole, RBAC by name (configuration, certificate Secret, ClusterRole), timeout 5 s, scoped by webhook.namespaceSelector, only the API server's certificate answered with webhook.clientCA, the operator's ServiceAccount as its platform user; nothing of it when disabled"
  fi
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
  grep -A1 'verbs: \["patch"\]' <<<"$role" | grep -q 'resourceNames: \["serre-gateway-data-keys"\]' || missing+=("Role: patch on the gateway's key Secret by name")
  [ "$(grep -c 'verbs:' <<<"$role")" = 3 ] && grep -q 'verbs: \["get"\]' <<<"$role" && grep -q 'verbs: \["create"\]' <<<"$role" &&
    ! grep -q 'resources: \["[^s]' <<<"$role" || leaked+=("Role: more than get by name, patch of the gateway's by name and create, on Secrets")
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
