# The dry-run checks against a real API server of deploy/dev/chart-check.sh, which sources this file;
# uses its helpers: pass, fail, kc, render, $WORK, $CHART, $HELM, $RELEASE, $NAMESPACE.

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
  # The shared test cluster may already hold the editor ClusterRole (the operator tests
  # apply it, identical to the chart's: see the manifests check). Helm refuses to render
  # an install over an object it does not own, which is not what this check is about:
  # mark it as this release's so Helm may adopt it.
  if KUBECONFIG=$kubeconfig kc get clusterrole serre-sandbox-editor >/dev/null 2>&1; then
    KUBECONFIG=$kubeconfig kc label --overwrite clusterrole serre-sandbox-editor app.kubernetes.io/managed-by=Helm >/dev/null
    KUBECONFIG=$kubeconfig kc annotate --overwrite clusterrole serre-sandbox-editor \
      meta.helm.sh/release-name="$RELEASE" meta.helm.sh/release-namespace="$ns" >/dev/null
  fi
  out=$(KUBECONFIG=$kubeconfig "$HELM" "${args[@]}" 2>&1 >/dev/null) || missing+=("a rendering once the Secrets exist: $(tail -n 2 <<<"$out" | tr '\n' ' ')")
  KUBECONFIG=$kubeconfig kc delete namespace "$ns" --wait=false >/dev/null 2>&1
  if [ ${#missing[@]} -ne 0 ]; then
    fail dry-run "required Secrets (production values, helm template --dry-run=server): ${missing[*]}"
  else
    pass dry-run "required Secrets: the install fails early naming each missing Secret or entry it cannot create (Garage token, database URL, data S3 key), and renders once they exist"
  fi
}
