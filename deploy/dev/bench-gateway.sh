#!/usr/bin/env bash
# Benchmark of the gateway's authenticated read path, with wrk on loopback:
# `GET /v1/sandboxes/{name}` = bearer JWT verification + Cedar decision + database read +
# audit append (hash-chained, committed before the answer), on SQLite and on PostgreSQL,
# and `/healthz` on the same process as the ceiling. The token is an RS256 access token
# from the local OpenID provider (deploy/dev/oidc-provider.sh), or with
# SERRE_BENCH_ISSUER=dev an ES256 token of the development issuer.
#
#   deploy/dev/bench-gateway.sh [sqlite|postgres|all]      (default: all)
#
# Production-like (issue 15): SERRE_BENCH_TOKENS=1000 SERRE_BENCH_SANDBOXES=1000 mints that
# many distinct access tokens from the OpenID provider and creates that many sandboxes;
# wrk (a Lua script) then sends request i with token i mod N and sandbox (7919 i) mod M,
# so neither one cached token nor one hot row serves the run. Defaults: 1 and 1.
#
# Environment: SERRE_BENCH_DURATION (wrk duration, default 20s), SERRE_BENCH_CONNECTIONS
# (default 32), SERRE_BENCH_THREADS (wrk threads, default 1), SERRE_BENCH_PORT (gateway,
# default 15470), SERRE_BENCH_PG_PORT (PostgreSQL, default 15471), SERRE_BENCH_OIDC_PORT
# (OpenID provider, default 15472), SERRE_BENCH_ISSUER (`oidc` or `dev`), SERRE_BENCH_BIN (gateway
# binary; default target/release/serre-api, built if missing). Needs Debian's `wrk`
# (installed if missing); PostgreSQL comes from deploy/dev/postgres.sh.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WHICH=${1:-all}
DURATION=${SERRE_BENCH_DURATION:-20s}
CONNECTIONS=${SERRE_BENCH_CONNECTIONS:-32}
THREADS=${SERRE_BENCH_THREADS:-1}
PORT=${SERRE_BENCH_PORT:-15470}
PG_PORT=${SERRE_BENCH_PG_PORT:-15471}
OIDC_PORT=${SERRE_BENCH_OIDC_PORT:-15472}
ISSUER_KIND=${SERRE_BENCH_ISSUER:-oidc}
BIN=${SERRE_BENCH_BIN:-$ROOT/target/release/serre-api}
TOKENS=${SERRE_BENCH_TOKENS:-1}
SANDBOXES=${SERRE_BENCH_SANDBOXES:-1}
URL=http://127.0.0.1:$PORT
export SERRE_BENCH_WORK=

log() { printf '[bench] %s\n' "$*" >&2; }

if ! command -v wrk >/dev/null; then
  log "installing wrk from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
if [ -z "${SERRE_BENCH_BIN:-}" ]; then
  log "building the release binary"
  (cd "$ROOT" && cargo build --release -p serre-api -q)
fi

WORK=$(mktemp -d /tmp/serre-bench-XXXXXX)
SERRE_BENCH_WORK=$WORK
chmod 711 "$WORK" # PostgreSQL runs as serre-pg when we are root
GATEWAY_PID=
cleanup() {
  if [ -n "$GATEWAY_PID" ]; then kill "$GATEWAY_PID" 2>/dev/null || true; fi
  if [ -d "$WORK/pg" ]; then "$ROOT/deploy/dev/postgres.sh" stop "$WORK/pg" || true; fi
  if [ -d "$WORK/idp" ]; then "$ROOT/deploy/dev/oidc-provider.sh" stop "$WORK/idp" || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

cat >"$WORK/tenants.yaml" <<'EOF'
apiVersion: serre.metropolegrandparis.fr/v1alpha1
kind: Tenant
metadata: {name: est-ensemble}
spec:
  displayName: Est Ensemble
  kind: EPT
  members: [{group: est-ensemble-admins, role: admin}, {group: est-ensemble-data, role: member}]
  allowance: {cpu: "16", memory: 64Gi, storage: 500Gi, gpus: 1, sandboxes: 5}
EOF
if [ "$SANDBOXES" -gt 1 ]; then
  sed -i "s/allowance: .*/allowance: {cpu: \"$((SANDBOXES * 2))\", memory: $((SANDBOXES * 4))Gi, storage: $((SANDBOXES * 10))Gi, gpus: 1, sandboxes: $SANDBOXES}/" \
    "$WORK/tenants.yaml"
fi
# Request i: token i mod N, sandbox (7919 i) mod M (tokens.txt, paths.txt; one per line).
cat >"$WORK/many.lua" <<'EOF'
local dir = os.getenv("SERRE_BENCH_WORK")
local tokens, paths = {}, {}
for line in io.lines(dir .. "/tokens.txt") do tokens[#tokens + 1] = "Bearer " .. line end
for line in io.lines(dir .. "/paths.txt") do paths[#paths + 1] = line end
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i * 7919) % #paths + 1], { Authorization = tokens[i % #tokens + 1] })
end
EOF

# wrk's "99%" latency in milliseconds.
p99_ms() {
  awk '$1 == "99%" {
    v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
    if (u == "us") v = v / 1000; else if (u == "s") v = v * 1000;
    printf "%.2f", v }' "$1"
}
rps() { awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$1"; }

run_wrk() { # name path token (token "many": the Lua script's tokens and paths)
  local out=$WORK/$1.wrk
  local header=()
  if [ "$3" = many ]; then header=(-s "$WORK/many.lua"); elif [ -n "$3" ]; then header=(-H "Authorization: Bearer $3"); fi
  wrk -t "$THREADS" -c "$CONNECTIONS" -d 3s "${header[@]}" "$URL$2" >/dev/null # warm-up
  wrk -t "$THREADS" -c "$CONNECTIONS" -d "$DURATION" --latency "${header[@]}" "$URL$2" >"$out"
  if grep -q "Non-2xx" "$out"; then
    cat "$out" >&2
    log "error responses during $1: the run is not valid"
    exit 1
  fi
  echo "$(rps "$out") $(p99_ms "$out")"
}

if [ "$ISSUER_KIND" = oidc ]; then
  SERRE_OIDC_PORT=$OIDC_PORT SERRE_OIDC_TOKEN_TTL=7200 "$ROOT/deploy/dev/oidc-provider.sh" start "$WORK/idp"
  ISSUER=$(cat "$WORK/idp/issuer")
  IDENTITY=(--oidc-issuer "$ISSUER" --data-keys-dir "$WORK/data-keys")
  # Production mode needs the dataset keys (unused by this benchmark).
  mkdir -m 700 "$WORK/data-keys"
  printf kek-bench >"$WORK/data-keys/kek-active"
  openssl rand -base64 32 >"$WORK/data-keys/kek.kek-bench"
  openssl rand -base64 32 >"$WORK/data-keys/data-secret"
  openssl genpkey -algorithm ed25519 -out "$WORK/data-keys/audit-signing-key.pem"
  KEYS=(--data-keys-dir "$WORK/data-keys")
else
  IDENTITY=(--environment development --dev-issuer)
  KEYS=()
fi

bench() { # backend database-url
  local backend=$1 db=$2 data=$WORK/$1
  mkdir -p "$data"
  "$BIN" serve --listen "127.0.0.1:$PORT" "${IDENTITY[@]}" --no-cluster \
    --tenants-file "$WORK/tenants.yaml" --data-dir "$data" --database-url "$db" \
    --policies-dir "$ROOT/policies" --log-format json 2>"$data/gateway.log" &
  GATEWAY_PID=$!
  for _ in $(seq 1 100); do curl -fsS -o /dev/null "$URL/readyz" 2>/dev/null && break; sleep 0.1; done
  local token i
  : >"$WORK/tokens.txt"
  for i in $(seq 1 "$TOKENS"); do
    if [ "$ISSUER_KIND" = oidc ]; then
      # A member of est-ensemble (groups est-ensemble-data), RS256; each token distinct.
      token=$(curl -fsS -u est-ensemble-data:dev-secret-est-ensemble-data -d grant_type=client_credentials \
        -d resource=urn:serre:api "$ISSUER/token" | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
    else
      token=$("$BIN" dev-token --data-dir "$data" --sub "bench-$i" --groups est-ensemble-data --ttl 2h)
    fi
    echo "$token" >>"$WORK/tokens.txt"
  done
  [ "$(sort -u "$WORK/tokens.txt" | wc -l)" -eq "$TOKENS" ] || { log "the tokens are not all distinct"; exit 1; }
  local expires name
  expires=$(date -u -d '+10 days' +%Y-%m-%dT%H:%M:%SZ)
  : >"$WORK/paths.txt"
  for i in $(seq 1 "$SANDBOXES"); do
    name=bench
    [ "$SANDBOXES" -gt 1 ] && name=$(printf 'bench-%04d' "$i")
    curl -fsS -o /dev/null -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
      -d "{\"tenant\":\"est-ensemble\",\"name\":\"$name\",\"purpose\":\"Gateway benchmark\",\"resources\":{\"cpu\":\"1\",\"memory\":\"2Gi\",\"storage\":\"5Gi\"},\"expiresAt\":\"$expires\"}" \
      "$URL/v1/sandboxes"
    echo "/v1/sandboxes/est-ensemble--$name" >>"$WORK/paths.txt"
  done
  # Check the paths answer 200 (with the first and the last token) before timing them.
  curl -fsS -o /dev/null -H "Authorization: Bearer $(head -n 1 "$WORK/tokens.txt")" "$URL$(head -n 1 "$WORK/paths.txt")"
  curl -fsS -o /dev/null -H "Authorization: Bearer $token" "$URL$(tail -n 1 "$WORK/paths.txt")"
  local how=$token
  [ "$TOKENS" -gt 1 ] || [ "$SANDBOXES" -gt 1 ] && how=many

  log "$backend: /healthz"
  read -r h_rps h_p99 < <(run_wrk "$backend-healthz" /healthz "")
  log "$backend: GET /v1/sandboxes/{name}"
  read -r s_rps s_p99 < <(run_wrk "$backend-sandbox" "$(head -n 1 "$WORK/paths.txt")" "$how")

  kill -TERM "$GATEWAY_PID"
  wait "$GATEWAY_PID" || true
  GATEWAY_PID=
  local verify
  verify=$("$BIN" audit verify --data-dir "$data" "${KEYS[@]}" --database-url "$db" | grep "audit chain" | cut -d';' -f1)
  local ratio
  ratio=$(awk -v a="$s_rps" -v b="$h_rps" 'BEGIN { printf "%.2f", a / b }')
  printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$backend" "$s_rps" "$s_p99" "$h_rps" "$h_p99" "$ratio" "$verify" >>"$WORK/results.md"
}

printf '| backend | GET /v1/sandboxes/{name} req/s | p99 ms | /healthz req/s | p99 ms | ratio | audit after the run |\n|---|---|---|---|---|---|---|\n' >"$WORK/results.md"
case "$WHICH" in
  sqlite | all) bench sqlite "sqlite://$WORK/sqlite/serre-api.db" ;;
esac
case "$WHICH" in
  postgres | all)
    SERRE_PG_PORT=$PG_PORT "$ROOT/deploy/dev/postgres.sh" start "$WORK/pg"
    bench postgres "$(cat "$WORK/pg/url")"
    ;;
esac
echo
echo "wrk -t $THREADS -c $CONNECTIONS -d $DURATION --latency; token: $ISSUER_KIND; $TOKENS distinct tokens, $SANDBOXES sandboxes; $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%Y-%m-%dT%H:%MZ)"
echo
cat "$WORK/results.md"
