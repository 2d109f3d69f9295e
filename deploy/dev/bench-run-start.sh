#!/usr/bin/env bash
# Run start latency (issue 12): from a vendor's POST /v1/sandboxes/{name}/runs to the
# example model's first instruction (its first log line, stamped by the model itself in
# µs), the image cached, one granted view of about 10 MB fetched by the init step. Runs on
# the Helm install of deploy/dev/up.sh (the gateway and operator Pods, the real node):
#
#   deploy/dev/bench-run-start.sh STATE [RUNS]    STATE: install.sh's state directory
#                                                 (/tmp/serre-dev/serre for up.sh); RUNS: 10
#
# One warm-up run first (its image pull and first fetch are reported apart), then RUNS runs
# one after the other. For each, the time from the POST to each milestone: the POST's
# answer (the gateway checked and recorded the run, created the TrialRun), the Job (the
# operator), the Pod (the Job controller), PodScheduled (the scheduler), the init step's
# first and last log lines (the kubelet stamps each line in ns: pod sandbox and container
# start, then the fetch of the view from the gateway) and the model's first line. The
# Kubernetes timestamps (TrialRun, Job, Pod, PodScheduled) have a 1 s resolution: those
# milestones are upper bounds (the end of the stamped second, "…By"). Prints p50 and p90 of
# each and writes them to STATE/bench-run-start/result.json.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE=$(cd "${1:?usage: bench-run-start.sh STATE [RUNS]}" && pwd)
RUNS=${2:-10}
TOK=$STATE/tokens
WORK=$STATE/bench-run-start
die() { printf '[bench-run-start] FAILED: %s\n' "$*" >&2; exit 1; }
say() { printf '[bench-run-start] %s\n' "$*"; }
# shellcheck source=deploy/dev/gateway-client.sh
. "$HERE/gateway-client.sh"
: "${MODEL_IMAGE:?STATE/env has no MODEL_IMAGE: run a newer install.sh up}"
export KUBECONFIG

DATA=est-ensemble-data-team ADMIN=est-ensemble-admins VENDOR=vendor
for c in $DATA $ADMIN $VENDOR; do token "$c"; done
allow_model_registry >/dev/null
ready_sandbox $DATA bench-runs
SANDBOX=est-ensemble--bench-runs
NS=$(body .cluster.namespace)

# ~10 MB of Parquet: yearly values of 200 communes with a random 40-hex-digit sensor id
# per row (it does not compress).
if [ ! -f "$WORK/view.csv" ]; then
  python3 - >"$WORK/view.csv" <<'PY'
import random
random.seed(12)
print("commune,year,value,sensor")
for i in range(430_000):
    c = i % 200
    print(f"commune-{c:03d},{2000 + i % 25},{c * 0.5 + (i % 25) * 0.1:.3f},{random.getrandbits(160):040x}")
PY
fi
upload $DATA bench-view "$WORK/view.csv" 'year:int64,value:float64'
api $ADMIN '201|409' POST "/v1/sandboxes/$SANDBOX/members" -H 'Content-Type: application/json' -d '{"subject":"vendor"}'
api $ADMIN 201 POST /v1/grants -H 'Content-Type: application/json' -d '{"datasetId":"'"$DATASET"'",
  "grantee":{"sandbox":"'"$SANDBOX"'"},"columns":["commune","year","value","sensor"],
  "purpose":"Run start latency benchmark","expiresAt":"'"$(date -u -d '+1 days' +%FT%TZ)"'"}'
GRANT=$(body .id)
api $ADMIN 200 GET "/v1/grants/$GRANT/data"
VIEW_BYTES=$(stat -c %s "$WORK/body")
say "grant $GRANT of $SANDBOX: a view of $VIEW_BYTES bytes"

ts() { date -d "$1" +%s.%N; } # RFC 3339 -> seconds
# one_run: start a run, wait until it is over, print its milestones (s after the POST) as
# one JSON object
one_run() {
  local t0 t1 run phase
  t0=$(date +%s.%N)
  api $VENDOR 201 POST "/v1/sandboxes/$SANDBOX/runs" -H 'Content-Type: application/json' -d '{
    "image":"'"$MODEL_IMAGE"'","args":["--group","commune","--x","year","--y","value"],
    "resources":{"cpu":"500m","memory":"256Mi"},"grants":["'"$GRANT"'"],
    "kind":"inference","timeoutSeconds":300}'
  t1=$(date +%s.%N)
  run=$(body .name)
  for _ in $(seq 1 600); do
    api $VENDOR 200 GET "/v1/sandboxes/$SANDBOX/runs/$run"
    phase=$(body .phase)
    case $phase in Succeeded) break ;; Failed | TimedOut | Cancelled) die "run $run $phase: $(body .exitReason)" ;; esac
    sleep 0.2
  done
  [ "$phase" = Succeeded ] || die "run $run still $phase after 120 s"
  api $VENDOR 200 GET "/v1/sandboxes/$SANDBOX/runs/$run/logs?container=fetch-grants&timestamps=true"
  local init_first init_last model
  init_first=$(ts "$(head -n 1 "$WORK/body" | cut -d' ' -f1)")
  init_last=$(ts "$(grep -v '^\[serre:' "$WORK/body" | tail -n 1 | cut -d' ' -f1)")
  api $VENDOR 200 GET "/v1/sandboxes/$SANDBOX/runs/$run/logs?limitBytes=1024"
  model=$(head -n 1 "$WORK/body" | sed -n 's/^serre-example-model started at \([^ ]*\) .*/\1/p')
  [ -n "$model" ] || die "run $run: no start line in $(head -c 300 "$WORK/body")"
  model=$(ts "$model")
  # The TrialRun, its Job and Pod carry the run's label.
  local k8s
  k8s=$(kubectl -n "$NS" get trialrun,job,pod -l "serre.metropolegrandparis.fr/run=$run" -o json 2>/dev/null) ||
    die "kubectl get the objects of $run"
  item() { jq -r --arg k "$1" "[.items[] | select(.kind == \$k)][0] | $2" <<<"$k8s"; }
  local tr job pod sched
  tr=$(item TrialRun .metadata.creationTimestamp)
  job=$(item Job .metadata.creationTimestamp)
  pod=$(item Pod .metadata.creationTimestamp)
  sched=$(item Pod '.status.conditions[] | select(.type == "PodScheduled") | .lastTransitionTime')
  # Kubernetes stamps objects to the second: each of those milestones happened before the
  # end of its stamped second, which is what is recorded (an upper bound).
  jq -cn --arg run "$run" --argjson t0 "$t0" --argjson t1 "$t1" --argjson tr "$(ts "$tr")" \
    --argjson job "$(ts "$job")" --argjson pod "$(ts "$pod")" --argjson sched "$(ts "$sched")" \
    --argjson i0 "$init_first" --argjson i1 "$init_last" --argjson m "$model" '{
      run: $run, posted: ($t1 - $t0), trialRunBy: ($tr + 1 - $t0), jobBy: ($job + 1 - $t0),
      podBy: ($pod + 1 - $t0), scheduledBy: ($sched + 1 - $t0), initFirstLine: ($i0 - $t0),
      initLastLine: ($i1 - $t0), modelFirstLine: ($m - $t0)}'
}

say "warm-up run (image pulled if not cached)"
one_run >"$WORK/warmup.json"
say "warm-up: $(jq -c . "$WORK/warmup.json")"
: >"$WORK/runs.jsonl"
for i in $(seq 1 "$RUNS"); do
  one_run >>"$WORK/runs.jsonl"
  say "run $i/$RUNS: model's first line $(tail -n 1 "$WORK/runs.jsonl" | jq -r '.modelFirstLine * 1000 | round / 1000') s after the POST"
done
jq -s --argjson bytes "$VIEW_BYTES" --arg image "$MODEL_IMAGE" '
  def pct(p): sort | .[((length - 1) * p | round)];
  . as $runs
  | {runs: length, viewBytes: $bytes, image: $image,
     milestones: (["posted", "trialRunBy", "jobBy", "podBy", "scheduledBy", "initFirstLine", "initLastLine", "modelFirstLine"]
       | map(. as $k | {key: $k, value: {p50: ($runs | map(.[$k]) | pct(0.5)), p90: ($runs | map(.[$k]) | pct(0.9))}})
       | from_entries)}' "$WORK/runs.jsonl" >"$WORK/result.json"
echo
printf '%-16s %8s %8s   (seconds after the POST; %s runs, view %s bytes; …By: upper bounds)\n' \
  milestone p50 p90 "$RUNS" "$VIEW_BYTES"
jq -r '.milestones | to_entries[] | "\(.key) \(.value.p50) \(.value.p90)"' "$WORK/result.json" |
  while read -r k a b; do printf '%-16s %8.3f %8.3f\n' "$k" "$a" "$b"; done
echo "result: $WORK/result.json"
