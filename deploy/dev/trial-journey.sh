#!/usr/bin/env bash
# A vendor's trial run through the gateway, as its users do it (curl + jq), each step
# checked; one line per step, and on a failure the step and the answer, exit status 1.
#
#   deploy/dev/trial-journey.sh STATE      STATE: install.sh's state directory (STATE/env)
#
#   1. tokens from the development OpenID provider (data team, tenant admin, vendor); the
#      Tenant allows the registry path the example model was pushed to (an ops step,
#      kubectl); the sandbox est-ensemble--air-quality (asked for if missing) is Ready
#   2. the data team uploads a CSV of yearly values for communes of Est Ensemble, each an
#      exact linear trend; a tenant admin adds the vendor to the sandbox and grants the
#      dataset to the sandbox
#   3. the vendor runs the example model (install.sh's image, by digest) on the grant and
#      waits until it Succeeded
#   4. its logs, its results (results.json, results.csv), and each commune's slope and
#      forecast in results.json equal the known ones
#   5. a failing model (--exit-code 3) ends Failed, its exit reason naming code 3
#   6. the run's report once its figures are final (bounded wait), measured or modelled;
#      with the install's Prometheus (PROMETHEUS_URL), CPU time and memory must be cAdvisor's
# Then prints the curl commands that fetch the run's logs, results and report (tokens in
# STATE/tokens/, valid for an hour).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE=$(cd "${1:?usage: trial-journey.sh STATE}" && pwd)
SANDBOX=est-ensemble--air-quality
TOK=$STATE/tokens
WORK=$STATE/trial-journey
STEP=
say() { printf '[trial-journey] %-8s %s\n' "$STEP" "$*"; }
die() { printf '[trial-journey] %-8s FAILED: %s\n' "$STEP" "$*" >&2; exit 1; }
# shellcheck source=deploy/dev/gateway-client.sh
. "$HERE/gateway-client.sh"
: "${MODEL_IMAGE:?STATE/env has no MODEL_IMAGE: run a newer install.sh up}"

STEP=tokens
ADMIN=est-ensemble-admins DATA=est-ensemble-data-team VENDOR=vendor
for c in $ADMIN $DATA $VENDOR; do token "$c"; done
say "tokens for $DATA, $ADMIN and $VENDOR from $OIDC_ISSUER (in $TOK)"

STEP=tenant
repo=$(allow_model_registry)
say "Tenant est-ensemble allows $repo (kubectl patch, as ops would)"

STEP=sandbox
ready_sandbox $DATA air-quality
say "$SANDBOX Ready (namespace $(body .cluster.namespace))"

STEP=dataset
# NO2 yearly means (µg/m³) 2015-2024, value = start + slope * (year - 2015): exact trends.
trends='Montreuil 32 -1.5
Bagnolet 35 -1.25
Pantin 38 -2
Bobigny 30 -0.75
Noisy-le-Sec 27 0.5'
{
  echo commune,year,value
  while read -r c a b; do
    for y in $(seq 2015 2024); do echo "$c,$y,$(jq -n "$a + $b * ($y - 2015)")"; done
  done <<<"$trends"
} >"$WORK/no2.csv"
upload $DATA no2-communes "$WORK/no2.csv" 'year:int64,value:float64'
say "the data team uploaded no2-communes ($(wc -l <"$WORK/no2.csv") lines of CSV): dataset $DATASET version $(body .latestVersion)"

STEP=grant
api $ADMIN '201|409' POST "/v1/sandboxes/$SANDBOX/members" -H 'Content-Type: application/json' -d '{"subject":"vendor"}'
say "vendor is a member of $SANDBOX (HTTP $CODE)"
api $ADMIN 201 POST /v1/grants -H 'Content-Type: application/json' -d '{"datasetId":"'"$DATASET"'",
  "grantee":{"sandbox":"'"$SANDBOX"'"},"columns":["commune","year","value"],"purpose":"Trial of a pollution trend model",
  "expiresAt":"'"$(date -u -d '+7 days' +%FT%TZ)"'"}'
GRANT=$(body .id)
say "the tenant admin granted it to $SANDBOX: grant $GRANT"

# run ARGS_JSON: the vendor starts the example model on the grant; RUN is its id
run() {
  api $VENDOR 201 POST "/v1/sandboxes/$SANDBOX/runs" -H 'Content-Type: application/json' -d '{
    "image":"'"$MODEL_IMAGE"'","args":'"$1"',"resources":{"cpu":"1","memory":"256Mi"},
    "grants":["'"$GRANT"'"],"kind":"inference","timeoutSeconds":300}'
  RUN=$(body .name)
  say "POST /v1/sandboxes/$SANDBOX/runs: 201, run $RUN ($MODEL_IMAGE $1)"
}
# wait_run: until the run is over (at most 300 s), printing its phase changes
wait_run() {
  local phase='' seen=''
  for _ in $(seq 1 300); do
    api $VENDOR 200 GET "/v1/sandboxes/$SANDBOX/runs/$RUN"
    phase=$(body .phase)
    [ "$phase" != "$seen" ] && say "run $RUN: $phase" && seen=$phase
    case $phase in Succeeded | Failed | TimedOut | Cancelled) return 0 ;; esac
    sleep 1
  done
  die "run $RUN still $phase after 300 s"
}
run_logs() { # CONTAINER: the run's log, as the vendor reads it
  api $VENDOR 200 GET "/v1/sandboxes/$SANDBOX/runs/$RUN/logs?container=$1&tailLines=200"
  cat "$WORK/body"
}

STEP=run
# 40 s of CPU first: cAdvisor samples a busy container every 10–20 s (10 s plus up to
# 100 % jitter), so it gets at least two samples, the last within 20 s of its end, and
# the gateway counts it as measured. 15 s was too short: CI once got a single sample.
run '["--group","commune","--x","year","--y","value","--burn-cpu-seconds","40"]'
wait_run
if [ "$(body .phase)" != Succeeded ]; then
  reason=$(body '.exitReason // "no exit reason"')
  die "run $RUN $(body .phase): $reason"$'\n'"fetch-grants log:"$'\n'"$(run_logs fetch-grants 2>&1)"$'\n'"trial log:"$'\n'"$(run_logs trial 2>&1)"
fi
OK_RUN=$RUN

STEP=logs
run_logs trial >"$WORK/trial.log"
{ grep -q '^serre-example-model started at ' "$WORK/trial.log" && grep -q "^read grant $GRANT: 50 rows" "$WORK/trial.log"; } ||
  die "the trial log lacks the start or 'read grant $GRANT: 50 rows':"$'\n'"$(cat "$WORK/trial.log")"
say "trial log ($(wc -l <"$WORK/trial.log") lines): $(grep -m1 '^serre-example-model started at' "$WORK/trial.log"); $(grep -m1 '^read grant' "$WORK/trial.log" | cut -c1-60)…"

STEP=results
api $VENDOR 200 GET "/v1/sandboxes/$SANDBOX/runs/$RUN/results"
[ "$(body '[.objects[].path] | sort | join(",")')" = results.csv,results.json ] ||
  die "want results.csv and results.json, got: $(body -c .)"
say "results of $RUN: $(body '[.objects[] | "\(.path) (\(.size) B)"] | join(", ")')"
api $VENDOR 200 GET "/v1/sandboxes/$SANDBOX/runs/$RUN/results/results.json"
cp "$WORK/body" "$WORK/results.json"
# shellcheck disable=SC2016 # jq's variables
while read -r c a b; do
  # The forecast is at 2025, the year after the last: start + 10 * slope.
  body -e --arg c "$c" --argjson s "$b" --argjson f "$(jq -n "$a + $b * 10")" \
    '.groups[] | select(.group == $c) | (.n == 10) and ((.slope - $s) | fabs < 1e-6)
      and ((.forecast - $f) | fabs < 1e-6) and (.r2 > 0.999999)' >/dev/null ||
    die "results.json: $c should have slope $b, forecast $(jq -n "$a + $b * 10") at 2025: $(body -c --arg c "$c" '.groups[] | select(.group == $c)')"
done <<<"$trends"
say "results.json: slope and 2025 forecast of all 5 communes as expected ($(body -r '[.groups[] | "\(.group) \(.slope)"] | join(", ")'))"

STEP=failing
run '["--group","commune","--x","year","--y","value","--exit-code","3"]'
wait_run
reason=$(body '.exitReason // ""')
{ [ "$(body .phase)" = Failed ] && [[ $reason == *"code 3"* ]]; } ||
  die "want Failed with exit code 3, got $(body .phase): $reason"
say "run $RUN Failed: $reason"

STEP=report
RUN=$OK_RUN
for _ in $(seq 1 120); do
  api $VENDOR 200 GET "/v1/sandboxes/$SANDBOX/runs/$RUN/report"
  [ "$(body .finalFigures)" = true ] && break
  sleep 1
done
final=$(body .finalFigures)
say "report of $RUN: finalFigures=$final, $(body '.figures | "\(.durationSeconds) s, \(.kwh) kWh at the meter, \(.gco2e) gCO2e; energy \(.energyMethod) (CPU: \(.figures.cpu_energy.method), \(.figures.cpu_energy.source))"')"
[ "$final" = true ] || say "(figures still provisional after 120 s: the accounting closes a run once its ledger covers the end, docs/energy.md)"
# With the install's Prometheus (install.sh), CPU time and memory are cAdvisor's.
if [ "$final" = true ] && [ -n "${PROMETHEUS_URL:-}" ]; then
  methods=$(body -c '.figures.figures | {cpu: .cpu_used.method, memory: .memory_used.method}')
  [ "$methods" = '{"cpu":"cadvisor","memory":"cadvisor"}' ] ||
    die "the report's CPU and memory should be measured by cAdvisor through $PROMETHEUS_URL: $methods"
  say "CPU time $(body '.figures.figures.cpu_used.value') core-s and memory measured (cadvisor, via $PROMETHEUS_URL); energy modelled from them"
fi

cat <<MSG

Trial run $RUN of $MODEL_IMAGE in sandbox $SANDBOX, as the vendor (token in $TOK/$VENDOR):
  T=\$(cat $TOK/$VENDOR); R=$GATEWAY_URL/v1/sandboxes/$SANDBOX/runs/$RUN
  curl -H "Authorization: Bearer \$T" "\$R/logs"                       # its log (container=fetch-grants: the init step)
  curl -H "Authorization: Bearer \$T" "\$R/results"                    # what it wrote to the sandbox bucket
  curl -H "Authorization: Bearer \$T" "\$R/results/results.json"       # one result (decrypted with the sandbox's SSE-C key)
  curl -H "Authorization: Bearer \$T" "\$R/report"                     # its figures (?format=html: the page)
Tokens last an hour; a new one: $HERE/trial-journey.sh runs again, or
  curl --cacert $OIDC_CA -u vendor:dev-secret-vendor -d grant_type=client_credentials -d resource=urn:serre:api $OIDC_ISSUER/token
MSG
