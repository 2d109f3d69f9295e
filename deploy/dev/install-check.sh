#!/usr/bin/env bash
# Checks of a real `helm install` (deploy/dev/install.sh up CLUSTER STATE ran first), one
# PASS or FAIL line each; exits non-zero if any fails.
#
#   deploy/dev/install-check.sh STATE
#
#   pods       operator (2 replicas) and gateway Running and Ready on the node, from the
#              images pushed by install.sh (pinned by digest), as uid 65532 with a read-only
#              root filesystem; the hook Job created the key Secrets
#   journey    the example Tenant and Sandbox become Ready (storage on Garage); a data-team
#              member asks the gateway for a sandbox with an OpenID token; it becomes Ready
#   trial-run  deploy/dev/trial-journey.sh: data uploaded and granted through the gateway,
#              the vendor's run of the example model Succeeded with the expected results
#              (logs, results, report through the gateway), a failing model ends Failed
#   metrics    the gateway's /metrics is served on its metrics port, not on the API port
#   cadvisor   the install's real Prometheus (deploy/dev/prometheus.sh, started by
#              install.sh) scrapes the kubelet's /metrics/cadvisor over HTTPS with a
#              ServiceAccount token allowed only nodes/metrics, and holds CPU and memory
#              series of Serre's own containers
#   failover   the leader operator Pod is killed: the other replica takes the Lease and a
#              sandbox created afterwards becomes Ready
#   upgrade    `helm upgrade` with a changed value (the default container CPU limit) rolls
#              the operator, and sandbox namespaces' LimitRanges follow
#   uninstall  `helm uninstall` removes the workloads and keeps the CRDs, Tenants, Sandboxes
#              and their namespaces, the key Secrets and the gateway's database volume;
#              `helm install` again finds the sandbox requested through the gateway
set -uo pipefail
LOG_TAG=install-check
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
. "$HERE/lib.sh"
STATE=$(cd "${1:?usage: install-check.sh STATE}" && pwd)
set -a; . "$STATE/env"; set +a
FAILED=0
REQUESTED=
pass() { printf 'PASS %-10s %s\n' "$1" "$2"; }
fail() { printf 'FAIL %-10s %s\n' "$1" "$2"; FAILED=1; }
kc() { kubectl "$@" 2>&1 | grep -v '^Warning: version difference'; return "${PIPESTATUS[0]}"; }
ns() { kc -n "$NAMESPACE" "$@"; }

wait_for() { # SECONDS COMMAND... : until the command succeeds
  local secs=$1
  shift
  for _ in $(seq 1 $((secs * 2))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
  return 1
}
sandbox_ready() { [ "$(kubectl get sandbox "$1" -o jsonpath='{.status.phase}' 2>/dev/null)" = Ready ]; }
token() {
  curl -fsS --cacert "$OIDC_CA" -u "$1:dev-secret-$1" -d grant_type=client_credentials \
    -d resource=urn:serre:api "$OIDC_ISSUER/token" | jq -r .access_token
}
leader() { kubectl -n "$NAMESPACE" get lease serre-operator-leader -o jsonpath='{.spec.holderIdentity}' 2>/dev/null; }
apply_sandbox() { # NAME
  sed -e "s/expiresAt: .*/expiresAt: \"$(date -u -d '+30 days' +%FT%TZ)\"/" \
    -e "s/^  name: mobility-forecast/  name: $1/" "$ROOT/deploy/examples/sandbox-mobility.yaml" | kc apply -f - >/dev/null
}

check_pods() {
  local want_op want_gw
  want_op=$(sed -n 's/^  digest: //p' "$VALUES" | head -n 1)
  want_gw=$(sed -n 's/^    digest: //p' "$VALUES" | head -n 1)
  local pods
  pods=$(ns get pods -l app.kubernetes.io/instance="$RELEASE" -o json)
  local summary
  summary=$(jq -r '.items[] | select(.metadata.ownerReferences[0].kind != "Job") |
    [.metadata.labels["app.kubernetes.io/component"], .status.phase,
     ([.status.containerStatuses[].ready] | all), .spec.nodeName,
     .spec.containers[0].image, (.status.containerStatuses[0].imageID // ""),
     (.spec.securityContext.runAsUser // .spec.containers[0].securityContext.runAsUser // 0),
     (.spec.containers[0].securityContext.readOnlyRootFilesystem // false)] | @tsv' <<<"$pods")
  local op gw
  op=$(awk -F'\t' '$1 == "operator" && $2 == "Running" && $3 == "true"' <<<"$summary" | wc -l)
  gw=$(awk -F'\t' '$1 == "gateway" && $2 == "Running" && $3 == "true"' <<<"$summary" | wc -l)
  if [ "$op" -eq 2 ] && [ "$gw" -eq 1 ]; then
    pass pods "operator 2/2 and gateway 1/1 Running and Ready on node $(awk -F'\t' '{print $4; exit}' <<<"$summary")"
  else
    fail pods "want 2 operator and 1 gateway Pods Ready, got:"$'\n'"$summary"
  fi
  if awk -F'\t' -v r="$REGISTRY/serre/" -v o="$want_op" -v g="$want_gw" '
      ($1 == "operator" && index($5, r "serre-operator") == 1 && index($5, o) && index($6, o)) ||
      ($1 == "gateway" && index($5, r "serre-api") == 1 && index($5, g) && index($6, g)) {n++}
      END {exit !(n == NR)}' <<<"$summary"; then
    pass pods "images from $REGISTRY pinned by digest, and the node ran those digests"
  else
    fail pods "images not the pushed digests:"$'\n'"$(cut -f1,5,6 <<<"$summary")"
  fi
  if awk -F'\t' '$7 != 65532 || $8 != "true" {bad++} END {exit bad > 0}' <<<"$summary"; then
    pass pods "every Serre container runs as uid 65532 with a read-only root filesystem"
  else
    fail pods "not uid 65532 with a read-only root:"$'\n'"$(cut -f1,7,8 <<<"$summary")"
  fi
  local s missing=
  for s in serre-storage-keys serre-gateway-data-keys; do
    ns get secret "$s" >/dev/null 2>&1 || missing+=" $s"
  done
  if [ -z "$missing" ]; then pass pods "the install hook created serre-storage-keys and serre-gateway-data-keys"
  else fail pods "Secrets missing after install:$missing"; fi
}

check_journey() {
  kc apply -f "$ROOT/deploy/examples/tenant-est-ensemble.yaml" >/dev/null
  apply_sandbox mobility-forecast
  if wait_for 120 sandbox_ready mobility-forecast; then
    local storage
    storage=$(kubectl get sandbox mobility-forecast -o jsonpath='{.status.conditions[?(@.type=="StorageReady")].status}')
    if [ "$storage" = True ]; then pass journey "example Sandbox Ready with StorageReady=True (a Garage bucket)"
    else fail journey "example Sandbox Ready but StorageReady=$storage"; fi
  else
    fail journey "example Sandbox not Ready in 120 s: $(kubectl get sandbox mobility-forecast -o jsonpath='{.status.conditions}')"
  fi
  # A name of its own: the check may run where up.sh already asked for air-quality.
  local tok code asked=ic-$(date +%H%M%S)
  tok=$(token est-ensemble-data-team)
  code=$(curl -sS -o "$STATE/create.json" -w '%{http_code}' -H "Authorization: Bearer $tok" \
    -H 'Content-Type: application/json' \
    -d '{"tenant":"est-ensemble","name":"'"$asked"'","purpose":"Check a sandbox requested through the gateway","resources":{"cpu":"1","memory":"1Gi","storage":"1Gi"},"expiresAt":"'"$(date -u -d '+1 day' +%FT%TZ)"'"}' \
    "$GATEWAY_URL/v1/sandboxes")
  REQUESTED=$(jq -r '.name // empty' "$STATE/create.json" 2>/dev/null)
  if [ "$code" = 201 ] && [ -n "$REQUESTED" ] && wait_for 120 sandbox_ready "$REQUESTED"; then
    pass journey "POST $GATEWAY_URL/v1/sandboxes with an OpenID token: 201, sandbox $REQUESTED Ready"
  else
    fail journey "POST /v1/sandboxes ($asked): HTTP $code $(head -c 300 "$STATE/create.json"); phase $(kubectl get sandbox "${REQUESTED:-?}" -o jsonpath='{.status.phase}' 2>&1)"
  fi
}

check_trial_run() {
  if "$HERE/trial-journey.sh" "$STATE" >"$STATE/trial-journey.log" 2>&1; then
    pass trial-run "the vendor's run Succeeded and a failing one Failed, through the gateway; $(grep -m1 -o 'results.json: .*' "$STATE/trial-journey.log")"
  else
    fail trial-run "$(grep -m1 'FAILED' "$STATE/trial-journey.log" | head -c 1500) (log: $STATE/trial-journey.log)"
  fi
}

# The gateway signs its audit log's head into its object store (every minute and at
# shutdown); `audit verify` run in its Pod, where the environment carries every flag, checks
# the database against the latest checkpoint, as docs/operations.md tells ops to.
check_audit() {
  local pod out
  pod=$(ns get pods -l app.kubernetes.io/component=gateway -o jsonpath='{.items[0].metadata.name}')
  verify() { kubectl -n "$NAMESPACE" exec "$pod" -- /usr/local/bin/serre-api audit verify 2>&1; }
  if wait_for 90 bash -c "kubectl -n $NAMESPACE exec $pod -- /usr/local/bin/serre-api audit verify 2>&1 | grep -q 'signature valid'" &&
    out=$(verify) && grep -q 'audit chain intact' <<<"$out"; then
    pass audit "audit verify in $pod: $(grep -o 'checkpoint of entry [0-9]*' <<<"$out") signature valid; $(grep -o 'audit chain intact: [0-9]* entries' <<<"$out")"
  else
    fail audit "audit verify in $pod: $(verify | head -c 600)"
  fi
}

check_metrics() {
  local ip port api_code metrics
  ip=$(ns get svc "$RELEASE-gateway-metrics" -o jsonpath='{.spec.clusterIP}')
  port=$(ns get svc "$RELEASE-gateway-metrics" -o jsonpath='{.spec.ports[?(@.name=="metrics")].port}')
  api_code=$(curl -s -o /dev/null -w '%{http_code}' "$GATEWAY_URL/metrics")
  metrics=$(curl -fsS "http://$ip:$port/metrics" 2>&1)
  if [ "$api_code" = 404 ] && grep -q '^serre_api_http_requests_total' <<<"$metrics"; then
    pass metrics "/metrics on Service $RELEASE-gateway-metrics ($ip:$port); the API port answers 404 for it"
  else
    fail metrics "API port /metrics: HTTP $api_code; metrics port '${port}': $(head -c 200 <<<"$metrics")"
  fi
}

# The install's Prometheus (install.sh: on the host address, scraping the kubelet's
# /metrics/cadvisor over HTTPS with a token allowed only nodes/metrics, as a cluster's
# monitoring does; the kubelet authenticates the token and authorizes nodes/metrics through
# the API server, webhook modes, node.sh). The gateway's accounting reads it.
check_cadvisor() {
  local cpu=0 mem=0 series
  query() { curl -fsS "$PROMETHEUS_URL/api/v1/query" --data-urlencode "query=$1" | jq -r '.data.result | length'; }
  for _ in $(seq 1 60); do
    cpu=$(query "container_cpu_usage_seconds_total{job=\"kubelet-cadvisor\",namespace=\"$NAMESPACE\",pod=~\"$RELEASE-operator-.*\",container!=\"\",container!=\"POD\"}")
    mem=$(query "container_memory_working_set_bytes{job=\"kubelet-cadvisor\",namespace=\"$NAMESPACE\",pod=~\"$RELEASE-gateway-.*\",container!=\"\",container!=\"POD\"}")
    [ "${cpu:-0}" -gt 0 ] && [ "${mem:-0}" -gt 0 ] && break
    sleep 1
  done
  series=$(curl -fsS "$PROMETHEUS_URL/api/v1/targets" | jq -r '.data.activeTargets[] | select(.labels.job == "kubelet-cadvisor") | "\(.scrapeUrl) \(.health) \(.lastError)"')
  if [ "${cpu:-0}" -gt 0 ] && [ "${mem:-0}" -gt 0 ]; then
    pass cadvisor "Prometheus $PROMETHEUS_URL scraped ${series%% *} (token allowed nodes/metrics only): CPU series of $cpu operator container(s), memory of $mem gateway container(s)"
  else
    fail cadvisor "no cAdvisor series of Serre's containers (operator CPU: ${cpu:-?}, gateway memory: ${mem:-?}); kubelet target: $series"
  fi
}

check_failover() {
  local before after start
  before=$(leader)
  if [ -z "$before" ]; then fail failover "no holder of Lease serre-operator-leader"; return; fi
  start=$(date +%s)
  ns delete pod "$before" --grace-period=0 --force >/dev/null 2>&1
  apply_sandbox failover-check
  if wait_for 90 bash -c "h=\$(kubectl -n $NAMESPACE get lease serre-operator-leader -o jsonpath='{.spec.holderIdentity}'); [ -n \"\$h\" ] && [ \"\$h\" != '$before' ]" &&
    wait_for 120 sandbox_ready failover-check; then
    after=$(leader)
    pass failover "leader $before killed; $after took the Lease and reconciled a new sandbox in $(($(date +%s) - start)) s"
  else
    fail failover "after killing $before: Lease holder '$(leader)', sandbox phase '$(kubectl get sandbox failover-check -o jsonpath='{.status.phase}')'"
  fi
  wait_for 120 kubectl -n "$NAMESPACE" rollout status deploy -l app.kubernetes.io/component=operator --timeout=5s
}

check_upgrade() {
  local before
  before=$(kubectl -n serre-mobility-forecast get limitrange -o jsonpath='{.items[0].spec.limits[0].default.cpu}')
  if ! "$HELM" upgrade "$RELEASE" "$ROOT/charts/serre" -n "$NAMESPACE" -f "$VALUES" \
    --set sandboxes.containerDefaults.cpuLimit=1500m --wait --timeout 5m >"$STATE/upgrade.log" 2>&1; then
    fail upgrade "helm upgrade failed: $(tail -n 3 "$STATE/upgrade.log")"
    return
  fi
  if wait_for 120 bash -c "[ \"\$(kubectl -n serre-mobility-forecast get limitrange -o jsonpath='{.items[0].spec.limits[0].default.cpu}')\" = 1500m ]"; then
    pass upgrade "helm upgrade --set sandboxes.containerDefaults.cpuLimit=1500m: LimitRange default cpu $before -> 1500m"
  else
    fail upgrade "LimitRange default cpu still $(kubectl -n serre-mobility-forecast get limitrange -o jsonpath='{.items[0].spec.limits[0].default.cpu}')"
  fi
}

check_uninstall() {
  if ! "$HELM" uninstall "$RELEASE" -n "$NAMESPACE" --wait >"$STATE/uninstall.log" 2>&1; then
    fail uninstall "helm uninstall failed: $(tail -n 3 "$STATE/uninstall.log")"
    return
  fi
  local left kept=() lost=()
  left=$(ns get deploy,pods -l app.kubernetes.io/instance="$RELEASE" -o name 2>/dev/null | grep -c . || true)
  kubectl get crd sandboxes.serre.metropolegrandparis.fr >/dev/null 2>&1 && kept+=(CRDs) || lost+=(CRDs)
  kubectl get tenant est-ensemble >/dev/null 2>&1 && kept+=(Tenant) || lost+=(Tenant)
  kubectl get sandbox mobility-forecast "$REQUESTED" >/dev/null 2>&1 && kept+=(Sandboxes) || lost+=(Sandboxes)
  kubectl get namespace serre-mobility-forecast >/dev/null 2>&1 && kept+=("sandbox namespace") || lost+=("sandbox namespace")
  ns get secret serre-storage-keys serre-gateway-data-keys >/dev/null 2>&1 && kept+=("key Secrets") || lost+=("key Secrets")
  ns get pvc -l app.kubernetes.io/component=gateway -o name 2>/dev/null | grep -q . && kept+=("gateway PVC") || lost+=("gateway PVC")
  if wait_for 60 bash -c "[ -z \"\$(kubectl -n $NAMESPACE get pods -l app.kubernetes.io/instance=$RELEASE -o name 2>/dev/null)\" ]" &&
    [ ${#lost[@]} -eq 0 ]; then
    pass uninstall "workloads gone; kept: ${kept[*]}"
  else
    fail uninstall "workloads left: $left; lost: ${lost[*]:-nothing}"
  fi
  if "$HELM" install "$RELEASE" "$ROOT/charts/serre" -n "$NAMESPACE" -f "$VALUES" --wait --timeout 5m >"$STATE/reinstall.log" 2>&1 &&
    wait_http "$GATEWAY_URL/readyz" 60; then
    local tok got
    tok=$(token est-ensemble-data-team)
    got=$(curl -fsS -H "Authorization: Bearer $tok" "$GATEWAY_URL/v1/sandboxes/$REQUESTED" 2>&1 | jq -r '.name // empty' 2>/dev/null)
    if [ -n "$got" ]; then pass uninstall "helm install again: the gateway still serves sandbox $REQUESTED"
    else fail uninstall "after reinstall, GET /v1/sandboxes/$REQUESTED: $got"; fi
  else
    fail uninstall "helm install after uninstall failed: $(tail -n 3 "$STATE/reinstall.log")"
  fi
}

check_pods
check_journey
check_trial_run
check_audit
check_metrics
check_cadvisor
check_failover
check_upgrade
check_uninstall
exit $FAILED
