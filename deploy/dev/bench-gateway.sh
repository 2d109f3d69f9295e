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
URL=http://127.0.0.1:$PORT

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

# wrk's "99%" latency in milliseconds.
p99_ms() {
  awk '$1 == "99%" {
    v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
    if (u == "us") v = v / 1000; else if (u == "s") v = v * 1000;
    printf "%.2f", v }' "$1"
}
rps() { awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$1"; }

run_wrk() { # name path token
  local out=$WORK/$1.wrk
  local header=()
  if [ -n "$3" ]; then header=(-H "Authorization: Bearer $3"); fi
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
  local token
  if [ "$ISSUER_KIND" = oidc ]; then
    # A member of est-ensemble (groups est-ensemble-data), RS256.
    token=$(curl -fsS -u est-ensemble-data:dev-secret-est-ensemble-data -d grant_type=client_credentials \
      -d resource=urn:serre:api "$ISSUER/token" | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
  else
    token=$("$BIN" dev-token --data-dir "$data" --sub bench --groups est-ensemble-data --ttl 2h)
  fi
  local expires
  expires=$(date -u -d '+10 days' +%Y-%m-%dT%H:%M:%SZ)
  curl -fsS -o /dev/null -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d "{\"tenant\":\"est-ensemble\",\"name\":\"bench\",\"purpose\":\"Gateway benchmark\",\"resources\":{\"cpu\":\"2\",\"memory\":\"4Gi\",\"storage\":\"10Gi\"},\"expiresAt\":\"$expires\"}" \
    "$URL/v1/sandboxes"
  # Check the path answers 200 before timing it.
  curl -fsS -o /dev/null -H "Authorization: Bearer $token" "$URL/v1/sandboxes/est-ensemble--bench"

  log "$backend: /healthz"
  read -r h_rps h_p99 < <(run_wrk "$backend-healthz" /healthz "")
  log "$backend: GET /v1/sandboxes/{name}"
  read -r s_rps s_p99 < <(run_wrk "$backend-sandbox" /v1/sandboxes/est-ensemble--bench "$token")

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
echo "wrk -t $THREADS -c $CONNECTIONS -d $DURATION --latency; token: $ISSUER_KIND; $(nproc) cores; $(date -u +%Y-%m-%dT%H:%MZ)"
echo
cat "$WORK/results.md"
