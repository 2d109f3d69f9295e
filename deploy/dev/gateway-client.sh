# shellcheck shell=bash
# Calling the gateway of a local install as its users do (curl + jq), for the scripts that
# walk a user journey against it (trial-journey.sh, bench-run-start.sh). Source it after
# setting STATE (install.sh's state directory, whose env file it loads), TOK (a directory
# for tokens), WORK (a scratch directory) and a `die MESSAGE` function.
set -a
# shellcheck source=/dev/null
. "$STATE/env"
set +a
mkdir -p "$TOK" "$WORK" && chmod 700 "$TOK"

token() { # CLIENT: an access token from the development OpenID provider, into $TOK/CLIENT
  curl -fsS --cacert "$OIDC_CA" -u "$1:dev-secret-$1" -d grant_type=client_credentials \
    -d resource=urn:serre:api "$OIDC_ISSUER/token" | jq -er .access_token >"$TOK/$1" ||
    die "no token for client $1 from $OIDC_ISSUER"
  chmod 600 "$TOK/$1"
}

# api WHO EXPECTED METHOD PATH [curl args...]: the answer's body in $WORK/body; any other
# status than EXPECTED (a list like "201|409") fails the step with the body.
CODE=
api() {
  local who=$1 want=$2 method=$3 path=$4
  shift 4
  CODE=$(curl -sS -o "$WORK/body" -w '%{http_code}' -X "$method" \
    -H "Authorization: Bearer $(cat "$TOK/$who")" "$@" "$GATEWAY_URL$path") || CODE=000
  [[ $CODE =~ ^($want)$ ]] || die "$method $path as $who: HTTP $CODE, want $want: $(head -c 2000 "$WORK/body")"
}
body() { jq -r "$@" "$WORK/body"; }

# allow_model_registry: the Tenant est-ensemble allows the registry path the example model
# was pushed to (an ops step, kubectl); prints that path.
allow_model_registry() {
  local repo=${MODEL_IMAGE%@*}
  [[ ${repo##*/} == *:* ]] && repo=${repo%:*}
  if ! kubectl get tenant est-ensemble -o json | jq -e --arg r "$repo" '.spec.allowedRegistries | index($r)' >/dev/null; then
    kubectl patch tenant est-ensemble --type json \
      -p "[{\"op\":\"add\",\"path\":\"/spec/allowedRegistries/-\",\"value\":\"$repo\"}]" >/dev/null 2>&1 ||
      die "kubectl patch tenant est-ensemble"
  fi
  echo "$repo"
}

# ready_sandbox WHO NAME: the sandbox est-ensemble--NAME, asked for if missing, until Ready
ready_sandbox() {
  local who=$1 name=$2
  api "$who" '200|404' GET "/v1/sandboxes/est-ensemble--$name"
  if [ "$CODE" = 404 ]; then
    api "$who" 201 POST /v1/sandboxes -H 'Content-Type: application/json' -d '{"tenant":"est-ensemble",
      "name":"'"$name"'","purpose":"Test air-quality sensor forecasting models",
      "resources":{"cpu":"2","memory":"4Gi","storage":"10Gi"},"expiresAt":"'"$(date -u -d '+10 days' +%FT%TZ)"'"}'
  fi
  for _ in $(seq 1 120); do
    [ "$(body '.cluster.phase // empty')" = Ready ] && return 0
    sleep 1
    api "$who" 200 GET "/v1/sandboxes/est-ensemble--$name"
  done
  die "est-ensemble--$name not Ready in 120 s: $(body -c .cluster)"
}

# upload WHO NAME CSV TYPES: the CSV as dataset NAME of est-ensemble (a new version when it
# exists); DATASET is its id
upload() {
  local who=$1 name=$2 csv=$3 types=$4
  api "$who" '201|409' POST "/v1/datasets?tenant=est-ensemble&name=$name&classification=open&types=$types" \
    -H 'Content-Type: text/csv' --data-binary @"$csv"
  if [ "$CODE" = 409 ]; then
    api "$who" 200 GET /v1/datasets
    local id
    # shellcheck disable=SC2016 # jq's variables
    id=$(body --arg n "$name" '.[] | select(.tenant == "est-ensemble" and .name == $n) | .id')
    api "$who" 201 POST "/v1/datasets/$id/versions?types=$types" \
      -H 'Content-Type: text/csv' --data-binary @"$csv"
  fi
  # shellcheck disable=SC2034 # read by the sourcing script
  DATASET=$(body .id)
}
