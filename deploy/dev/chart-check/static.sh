# The manifests, lint and schema checks of deploy/dev/chart-check.sh, which sources this file;
# uses its helpers: pass, fail, kc, render, $WORK, $CHART, $HELM, $RELEASE, $NAMESPACE.

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
