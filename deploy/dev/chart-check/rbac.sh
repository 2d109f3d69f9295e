# The rbac checks (the operator binary as the chart's ServiceAccount) of deploy/dev/chart-check.sh, which sources this file;
# uses its helpers: pass, fail, kc, render, $WORK, $CHART, $HELM, $RELEASE, $NAMESPACE.

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
  local label=$1 envfile=$2 base port
  shift 2
  base=$(free_port_base)
  port=$((base + 1))
  OPERATOR_LOG=$WORK/operator-$label.log
  (
    while IFS='=' read -r name value; do
      [ -n "$name" ] && export "$name=$value"
    done <"$envfile"
    # Out of the cluster, the API server reaches the admission webhook by URL (this
    # machine), not through the chart's Service: the operator serves it on loopback.
    if [ "${SERRE_WEBHOOK:-}" = true ]; then
      unset SERRE_WEBHOOK_SERVICE
      export SERRE_WEBHOOK_URL=https://127.0.0.1:$((base + 2))
    fi
    export KUBECONFIG=$WORK/operator.kubeconfig POD_NAME=chart-check-operator \
      SERRE_HTTP_ADDR=127.0.0.1:$port SERRE_WEBHOOK_ADDR=127.0.0.1:$((base + 2)) \
      SERRE_EXPIRY_GRACE=5s SERRE_LOG_FORMAT=text \
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
  allowedRegistries: [registry.example]
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
      fail rbac "could not start a private control plane: $(tail -n 3 "$WORK/cp-rbac.log" 2>/dev/null | tr '\n' ' ')"
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
# get on the two key Secrets by name, patch on the gateway's (its audit key on upgrade) and
# create Secrets, in the release namespace only.
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
    "patch secrets/serre-gateway-data-keys -n $NAMESPACE" "create secrets -n $NAMESPACE"; do
    # shellcheck disable=SC2086 # a probe is several words
    kc auth can-i $probe --as "$sa" >/dev/null || missing+=("$probe")
  done
  for probe in "get secrets/serre-api-database -n $NAMESPACE" "list secrets -n $NAMESPACE" \
    "update secrets/serre-storage-keys -n $NAMESPACE" "patch secrets/serre-storage-keys -n $NAMESPACE" \
    "update secrets/serre-gateway-data-keys -n $NAMESPACE" \
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
    pass rbac "key hook ServiceAccount: get the two key Secrets by name, patch the gateway's by name, create Secrets, in $NAMESPACE only; nothing else"
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
# TrialRuns and their token Secrets (deleted when the run is over), read and cancel them,
# record their usage, read the run's pod and its log, read the Secret sandbox-storage
# (results); nothing else there (no Secret read but that one), and none of it in any
# other namespace.
rbac_gateway_in_sandbox() {
  local ns=$1 sa=system:serviceaccount:$NAMESPACE:$RELEASE-gateway g=serre.metropolegrandparis.fr
  local probe missing=() allowed=()
  for _ in $(seq 1 20); do kc auth can-i create secrets -n "$ns" --as "$sa" >/dev/null && break; sleep 0.5; done
  for probe in "create secrets -n $ns" "delete secrets/x-token -n $ns" "create trialruns.$g -n $ns" "get trialruns.$g/x -n $ns" \
    "patch trialruns.$g/x -n $ns" "patch trialruns.$g/x -n $ns --subresource status" \
    "list pods -n $ns" "get pods/x -n $ns" "get pods/x -n $ns --subresource log" \
    "get secrets/sandbox-storage -n $ns"; do
    # shellcheck disable=SC2086 # a probe is several words
    kc auth can-i $probe --as "$sa" >/dev/null || missing+=("$probe")
  done
  for probe in "get secrets -n $ns" "list secrets -n $ns" "deletecollection secrets -n $ns" \
    "get secrets/x-token -n $ns" "watch secrets -n $ns" "patch secrets/sandbox-storage -n $ns" \
    "update secrets/x-token -n $ns" "delete secrets/x-token -n default" \
    "create secrets -n default" "create trialruns.$g -n default" "delete trialruns.$g/x -n $ns" \
    "create pods -n $ns" "delete pods/x -n $ns" "create pods/x -n $ns --subresource exec" \
    "create jobs.batch -n $ns" \
    "get secrets/sandbox-storage -n default" "list pods -n default" "get pods/x -n default" \
    "get pods/x -n default --subresource log" "list pods --all-namespaces"; do
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
  pass rbac "gateway in a sandbox namespace (bound by the operator): create TrialRuns and their token Secrets (delete those), get/patch them and their status, get/list pods and their logs, get the Secret sandbox-storage; no other Secret read, nothing elsewhere"
}

# The tenant's groups (the sandbox's editors, bound by the operator to the editor
# ClusterRole in the sandbox namespace) run and inspect workloads there but have no right
# on Secrets: neither the bucket's keys (sandbox-storage) nor run tokens (<run>-token).
rbac_editors_in_sandbox() {
  local ns=$1 probe missing=() allowed=()
  local as=(--as chart-check-editor --as-group chart-check-admins)
  for _ in $(seq 1 20); do kc auth can-i create pods -n "$ns" "${as[@]}" >/dev/null && break; sleep 0.5; done
  for probe in "create pods -n $ns" "get pods/x -n $ns --subresource log" "create jobs.batch -n $ns" \
    "create configmaps -n $ns"; do
    # shellcheck disable=SC2086 # a probe is several words
    kc auth can-i $probe "${as[@]}" >/dev/null || missing+=("$probe")
  done
  for probe in "get secrets/sandbox-storage -n $ns" "get secrets/x-token -n $ns" "list secrets -n $ns" \
    "watch secrets -n $ns" "create secrets -n $ns" "patch secrets/sandbox-storage -n $ns" \
    "update secrets/sandbox-storage -n $ns" "delete secrets/x-token -n $ns" "create pods -n default"; do
    # shellcheck disable=SC2086 # a probe is several words
    kc auth can-i $probe "${as[@]}" >/dev/null && allowed+=("$probe")
  done
  if [ ${#missing[@]} -ne 0 ]; then
    fail rbac "in sandbox namespace $ns the tenant's editors may not: ${missing[*]}"
    return 1
  elif [ ${#allowed[@]} -ne 0 ]; then
    fail rbac "in sandbox namespace $ns the tenant's editors may also: ${allowed[*]}"
    return 1
  fi
  pass rbac "sandbox editors (the tenant's groups): run pods and Jobs and read their logs in $ns; no right on its Secrets (sandbox-storage, run tokens), nothing elsewhere"
}

# Default values, storage off: the operator has no right on Secrets but its webhook
# certificate's, none on ConfigMaps, and provisions and deletes a sandbox with what it has;
# its admission webhook (on by default) makes its certificate Secret and applies its
# configuration, owned by the operator's ClusterRole, with that right alone.
rbac_plain() {
  local name=chart-check-plain probe allowed=() missing=() step=ok refused out
  local vwc=$RELEASE-sandbox-policy cert=$RELEASE-operator-webhook-tls
  # The chart's RBAC is in force (the authorizer follows RBAC objects with a short delay).
  for _ in $(seq 1 20); do can list sandboxes.serre.metropolegrandparis.fr && break; sleep 0.5; done
  for probe in "get secrets -n $NAMESPACE" "get secrets/sandbox-storage -n default" \
    "get configmaps -n $NAMESPACE" "create configmaps -n $NAMESPACE" "list secrets -n $NAMESPACE" \
    "get secrets/serre-storage-keys -n $NAMESPACE" "delete secrets/$cert -n $NAMESPACE" \
    "get secrets/$cert -n default" "patch validatingwebhookconfigurations/other" \
    "delete validatingwebhookconfigurations/$vwc" "list validatingwebhookconfigurations" \
    "patch mutatingwebhookconfigurations/$vwc" "get clusterroles/cluster-admin" "patch clusterroles/$RELEASE-operator"; do
    # shellcheck disable=SC2086 # a probe is several words
    can $probe && allowed+=("$probe")
  done
  for probe in "get secrets/$cert -n $NAMESPACE" "patch secrets/$cert -n $NAMESPACE" "create secrets -n $NAMESPACE" \
    "get validatingwebhookconfigurations/$vwc" "patch validatingwebhookconfigurations/$vwc" \
    "create validatingwebhookconfigurations" "get clusterroles/$RELEASE-operator"; do
    # shellcheck disable=SC2086 # a probe is several words
    can $probe || missing+=("$probe")
  done
  if [ ${#allowed[@]} -ne 0 ]; then
    fail rbac "storage off, yet the ServiceAccount may: ${allowed[*]}"
    return 1
  fi
  if [ ${#missing[@]} -ne 0 ]; then
    fail rbac "webhook on, yet the ServiceAccount may not: ${missing[*]}"
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
  # The webhook's configuration: applied by the operator, trusting the CA of its Secret,
  # and owned by the ClusterRole (helm uninstall removes it).
  if [ -n "$step" ]; then
    local ca bundle owner
    ca=$(kc get secret -n "$NAMESPACE" "$cert" -o jsonpath='{.data.ca\.crt}' 2>/dev/null)
    bundle=$(kc get validatingwebhookconfiguration "$vwc" -o jsonpath='{.webhooks[0].clientConfig.caBundle}' 2>/dev/null)
    owner=$(kc get validatingwebhookconfiguration "$vwc" -o jsonpath='{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}' 2>/dev/null)
    if [ -z "$ca" ] || [ "$ca" != "$bundle" ] || [ "$owner" != "ClusterRole/$RELEASE-operator" ]; then
      fail rbac "storage off: webhook configuration $vwc (caBundle of Secret $cert: $([ -n "$ca" ] && [ "$ca" = "$bundle" ] && echo yes || echo no), owner: ${owner:-none})"
      step=
    fi
  fi
  [ -n "$step" ] && { rbac_editors_in_sandbox "serre-$name" || step=; }
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
  pass rbac "storage off (default values): no right on Secrets but its webhook certificate's, none on ConfigMaps; webhook certificate made and configuration applied (owned by the ClusterRole); sandbox provisioned and deleted, no request refused"
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
  local tsecret tkey tpath mpath tokenfile keys datakeys out rv mnt=$WORK/mnt
  tsecret=$(kc get -n "$NAMESPACE" "$dep" -o jsonpath="{.spec.template.spec.volumes[$vol].secret.secretName}")
  tkey=$(kc get -n "$NAMESPACE" "$dep" -o jsonpath="{.spec.template.spec.volumes[$vol].secret.items[0].key}")
  tpath=$(kc get -n "$NAMESPACE" "$dep" -o jsonpath="{.spec.template.spec.volumes[$vol].secret.items[0].path}")
  mpath=$(kc get -n "$NAMESPACE" "$dep" -o jsonpath="{.spec.template.spec.containers[0].volumeMounts[$vol].mountPath}")
  tokenfile=$(sed -n 's/^SERRE_GARAGE_ADMIN_TOKEN_FILE=//p' "$envfile")
  keys=$(sed -n 's/^SERRE_STORAGE_KEYS_SECRET=//p' "$envfile")
  datakeys=$(sed -n 's/^SERRE_STORAGE_DATA_KEYS_SECRET=//p' "$envfile")
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

  # Least privilege: the storage rules are in force, and no more than them. In the release
  # namespace the operator reads its two key Secrets by name, patches the data keys one,
  # may create Secrets (the data keys Secret, when missing), and reads no other Secret:
  # not the gateway's keys.
  local probe allowed=() missing=()
  for _ in $(seq 1 20); do can get secrets/sandbox-storage -n default && break; sleep 0.5; done
  for probe in "get secrets/sandbox-storage -n default" "get secrets/$keys -n $NAMESPACE" \
    "get secrets/$datakeys -n $NAMESPACE" "patch secrets/$datakeys -n $NAMESPACE" \
    "create secrets -n $NAMESPACE"; do
    # shellcheck disable=SC2086 # a probe is several words
    can $probe || missing+=("$probe")
  done
  for probe in "list secrets --all-namespaces" "get secrets/other -n default" \
    "create secrets -n default" "patch secrets/$keys -n $NAMESPACE" "update secrets/$keys -n $NAMESPACE" \
    "list secrets -n $NAMESPACE" "watch secrets -n $NAMESPACE" \
    "get secrets/serre-gateway-data-keys -n $NAMESPACE" "patch secrets/serre-gateway-data-keys -n $NAMESPACE" \
    "delete secrets/serre-gateway-data-keys -n $NAMESPACE" "get secrets/serre-api-database -n $NAMESPACE" \
    "get secrets/serre-dk-x -n $NAMESPACE" "get secrets/$tsecret -n $NAMESPACE" \
    "delete secrets/$datakeys -n $NAMESPACE" "update secrets/$datakeys -n $NAMESPACE" \
    "delete secrets/$keys -n $NAMESPACE" \
    "patch configmaps/serre-deletion-x -n $NAMESPACE" \
    "delete configmaps/serre-deletion-x -n $NAMESPACE" "list configmaps -n $NAMESPACE" \
    "get configmaps -n default"; do
    # shellcheck disable=SC2086 # a probe is several words
    can $probe && allowed+=("$probe")
  done
  if [ ${#missing[@]} -ne 0 ]; then
    fail rbac "storage on, but the Role or ClusterRole lacks its storage rules: ${missing[*]}"
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
    dk=$(kc get secret "$datakeys" -n "$NAMESPACE" -o json | jq -r '.data["chart-check"] // empty')
    pubkey=$(kc get configmap serre-signing-public-key -n "$NAMESPACE" -o go-template='{{index .data "key-id"}}')
    bucket=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" \
      "$admin/v2/GetBucketInfo?globalAlias=serre-chart-check")
    if [ "$endpoint" != "$s3" ] || [ -z "$sse" ]; then
      fail rbac "Secret $sbx/sandbox-storage lacks the S3 endpoint ($endpoint) or the SSE-C key"
      step=
    elif [ -z "$dk" ]; then
      fail rbac "no wrapped data key for chart-check in Secret $NAMESPACE/$datakeys"
      step=
    elif [ -z "$pubkey" ] || [ "$pubkey" = stale ]; then
      fail rbac "the operator did not publish its verification key (key-id '$pubkey')"
      step=
    elif [ "$bucket" != 200 ]; then
      fail rbac "no bucket serre-chart-check in Garage (GetBucketInfo: $bucket)"
      step=
    fi
  fi
  # The Secret sandbox-storage exists now: the sandbox's editors still may not read it.
  [ -n "$step" ] && { rbac_editors_in_sandbox "$sbx" || step=; }
  if [ -n "$step" ]; then
    # The sandbox policy (admission webhook, on by default) refuses a pod without the
    # restricted settings, naming the rule and field.
    out=$(kc run -n "$sbx" chart-check-bad --image registry.example/idle:1 --restart Never 2>&1)
    if ! grep -q "Serre's sandbox policy refuses Pod" <<<"$out" ||
      ! grep -q 'spec.automountServiceAccountToken: must be false' <<<"$out"; then
      fail rbac "a pod breaking the sandbox policy was not refused by the webhook: $out"
      step=
    fi
  fi
  if [ -n "$step" ]; then
    # A pod the expiry must stop (never scheduled: there is no kubelet), compliant with
    # the sandbox policy. Admission refuses pods until the namespace's default
    # ServiceAccount exists: retry a little.
    local compliant='{"apiVersion": "v1", "spec": {"automountServiceAccountToken": false,
      "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
      "containers": [{"name": "chart-check-pod", "image": "registry.example/idle:1",
        "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]}}'
    for _ in $(seq 1 20); do
      out=$(kc run -n "$sbx" chart-check-pod --image registry.example/idle:1 --restart Never --overrides "$compliant") && break
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
    elif [ -n "$(kc get secret "$datakeys" -n "$NAMESPACE" -o json | jq -r '.data["chart-check"] // empty')" ]; then
      fail rbac "the wrapped data key of chart-check (Secret $NAMESPACE/$datakeys) outlived the sandbox"
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
    pass rbac "storage on (values-production.yaml, Garage): the operator reads only its two key Secrets by name (not the gateway's keys); Lease held, sandbox provisioned with StorageReady=True (bucket, sandbox-storage Secret, wrapped data key entry, public key), orphan deleted, a pod breaking the sandbox policy refused by the webhook, a compliant pod stopped at expiry, storage destroyed with a verified certificate $cert, sandbox, namespace and tenant deleted; Events: $events"
  fi
}
