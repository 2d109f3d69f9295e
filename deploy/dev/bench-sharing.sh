#!/usr/bin/env bash
# Delta Sharing serving, end to end (issue 15 §3): the real PyPI `delta-sharing` client
# (1.4.2) reads a grant through the gateway's file links (range reads of the encrypted view
# in Garage, decrypted by the gateway), against the same client stack reading the same
# bytes straight from Garage (a presigned GET of an unencrypted copy). Target ≥ 0.8× the
# direct read's throughput, the gateway's memory flat during the transfer.
#
#   deploy/dev/bench-sharing.sh [SIZE_MB] [ROUNDS]      defaults 256 and 3
#
# Starts its own Garage (deploy/dev/garage.sh) and the gateway (release build, SQLite,
# development issuer, data in Garage), uploads a synthetic open dataset of about SIZE_MB
# of Parquet, grants it to a vendor, fetches the vendor's sharing profile, then runs
# deploy/dev/bench_sharing.py. Environment: SERRE_BENCH_BIN (default
# target/release/serre-api, built if missing), SERRE_BENCH_PORT (gateway, default 14660),
# SERRE_GARAGE_PORT_BASE (default 14600), SERRE_CACHE.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SIZE_MB=${1:-256}
ROUNDS=${2:-3}
PORT=${SERRE_BENCH_PORT:-14660}
export SERRE_GARAGE_PORT_BASE=${SERRE_GARAGE_PORT_BASE:-14600}
CACHE=${SERRE_CACHE:-$HOME/.cache/serre}
BIN=${SERRE_BENCH_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/serre-api}
URL=http://127.0.0.1:$PORT
log() { printf '[bench-sharing] %s\n' "$*" >&2; }

VENV=$CACHE/python-delta-sharing-1.4.2
if ! "$VENV/bin/python3" -c 'import delta_sharing' 2>/dev/null; then
  log "PyPI delta-sharing 1.4.2 into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/python3" -m pip install -q --disable-pip-version-check delta-sharing==1.4.2
fi
PY=$VENV/bin/python3
if [ -z "${SERRE_BENCH_BIN:-}" ] && [ ! -x "$BIN" ]; then
  log "building the release binary"
  (cd "$ROOT" && cargo build --release -p serre-api -q)
fi

WORK=$(mktemp -d /tmp/serre-bench-sharing-XXXXXX)
GATEWAY_PID=
cleanup() {
  if [ -n "$GATEWAY_PID" ]; then kill "$GATEWAY_PID" 2>/dev/null || true; fi
  "$ROOT/deploy/dev/garage.sh" stop "$WORK/garage" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

"$ROOT/deploy/dev/garage.sh" start "$WORK/garage" >/dev/null
# shellcheck disable=SC1091
. "$WORK/garage/env"
ADMIN=$(cat "$SERRE_GARAGE_ADMIN_TOKEN_FILE")
admin() { curl -fsS -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' -d "$2" "$SERRE_GARAGE_ADMIN_ENDPOINT/v2/$1"; }
BUCKET_ID=$(admin CreateBucket '{"globalAlias":"serre-datasets"}' | jq -r .id)
KEY=$(admin CreateKey '{"name":"bench"}')
KEY_ID=$(jq -r .accessKeyId <<<"$KEY")
jq -r .secretAccessKey <<<"$KEY" >"$WORK/s3-secret"
admin AllowBucketKey "{\"bucketId\":\"$BUCKET_ID\",\"accessKeyId\":\"$KEY_ID\",\"permissions\":{\"read\":true,\"write\":true,\"owner\":true}}" >/dev/null

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
mkdir -p "$WORK/data"
"$BIN" serve --listen "127.0.0.1:$PORT" --environment development --dev-issuer --no-cluster \
  --tenants-file "$WORK/tenants.yaml" --data-dir "$WORK/data" --database-url "sqlite://$WORK/data/serre-api.db" \
  --policies-dir "$ROOT/policies" --public-url "$URL" --upload-limit $((SIZE_MB * 4 * 1024 * 1024)) \
  --data-store s3 --data-s3-endpoint "$SERRE_S3_ENDPOINT" --data-s3-bucket serre-datasets \
  --data-s3-access-key-id "$KEY_ID" --data-s3-secret-key-file "$WORK/s3-secret" \
  --log-format json 2>"$WORK/gateway.log" &
GATEWAY_PID=$!
for _ in $(seq 1 300); do curl -fsS -o /dev/null "$URL/readyz" 2>/dev/null && break; sleep 0.1; done
curl -fsS -o /dev/null "$URL/readyz" || { tail -n 20 "$WORK/gateway.log" >&2; exit 1; }
token() { "$BIN" dev-token --data-dir "$WORK/data" --sub "$1" ${2:+--groups "$2"} --ttl 2h; }
BOB=$(token bob est-ensemble-data)
ALICE=$(token alice est-ensemble-admins)
ACME=$(token acme "")

# A synthetic open dataset: ids, ages, a random 40-hex-digit column (hardly compressible).
"$PY" - "$WORK/input.parquet" "$SIZE_MB" <<'EOF'
import os, sys
import pyarrow as pa, pyarrow.parquet as pq
path, size_mb = sys.argv[1], int(sys.argv[2])
rows = size_mb * 1024 * 1024 // 44
w = None
for start in range(0, rows, 1 << 20):
    n = min(1 << 20, rows - start)
    raw = os.urandom(20 * n).hex()
    t = pa.table({"id": pa.array(range(start, start + n), pa.int64()),
                  "age": pa.array([(i * 7919) % 100 for i in range(start, start + n)], pa.int64()),
                  "tag": pa.array([raw[i * 40:(i + 1) * 40] for i in range(n)])})
    w = w or pq.ParquetWriter(path, t.schema, compression="zstd")
    w.write_table(t)
w.close()
EOF
log "uploading $(du -m "$WORK/input.parquet" | cut -f1) MB of Parquet"
DS=$(curl -fsS -H "Authorization: Bearer $BOB" -H 'Content-Type: application/vnd.apache.parquet' \
  --data-binary "@$WORK/input.parquet" "$URL/v1/datasets?tenant=est-ensemble&name=bench&classification=open&description=Bench")
DS_ID=$(jq -r .id <<<"$DS")
EXPIRES=$(date -u -d '+3 days' +%Y-%m-%dT%H:%M:%SZ)
GRANT=$(curl -fsS -H "Authorization: Bearer $ALICE" -H 'Content-Type: application/json' \
  -d "{\"datasetId\":\"$DS_ID\",\"grantee\":{\"vendor\":\"acme\"},\"columns\":[\"id\",\"age\",\"tag\"],\"purpose\":\"Bench\",\"expiresAt\":\"$EXPIRES\"}" \
  "$URL/v1/grants")
GID=$(jq -r .id <<<"$GRANT")
curl -fsS -H "Authorization: Bearer $ACME" "$URL/v1/grants/$GID/profile" >"$WORK/profile.json"
curl -fsS -H "Authorization: Bearer $ACME" -o "$WORK/view.parquet" "$URL/v1/grants/$GID/data"
log "view: $(stat -c %s "$WORK/view.parquet") bytes, $(jq .view.rows <<<"$GRANT") rows"

"$PY" "$ROOT/deploy/dev/bench_sharing.py" "$WORK/profile.json" "est-ensemble.bench.$GID" "$WORK/view.parquet" \
  "$SERRE_S3_ENDPOINT" serre-datasets "$KEY_ID" "$(cat "$WORK/s3-secret")" "$GATEWAY_PID" "$ROUNDS" >"$WORK/result.json"

echo
echo "delta-sharing 1.4.2, $ROUNDS rounds (alternating order); $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%Y-%m-%dT%H:%MZ)"
jq -r '
  def mbs(t): (.bytes / 1048576 / t);
  def med(a): (a | sort | .[(length / 2 | floor)]);
  . as $r |
  "view: \(.bytes) bytes, \(.rows) rows",
  "| round | load_as_pandas via gateway s | same read from Garage s | ratio | range reads via gateway s | from Garage s | ratio |",
  "|---|---|---|---|---|---|---|",
  (range(0; .pandas | length) as $i |
    "| \($i + 1) | \(.pandas[$i].gateway * 1000 | round / 1000) | \(.pandas[$i].garage * 1000 | round / 1000) | \((.pandas[$i].garage / .pandas[$i].gateway) * 100 | round / 100) | \(.ranges[$i].gateway * 1000 | round / 1000) | \(.ranges[$i].garage * 1000 | round / 1000) | \((.ranges[$i].garage / .ranges[$i].gateway) * 100 | round / 100) |"),
  "median throughput ratio (gateway / direct, target >= 0.8): load_as_pandas \(med([.pandas[] | .garage / .gateway]) * 100 | round / 100), range reads \(med([.ranges[] | .garage / .gateway]) * 100 | round / 100)",
  "range reads: gateway \(mbs(med([.ranges[].gateway])) | round) MB/s, Garage direct \(mbs(med([.ranges[].garage])) | round) MB/s",
  "gateway RSS: \(.rss_kb_before / 1024 | round) MB before, peak \(.rss_kb_peak / 1024 | round) MB during its reads (+\((.rss_kb_peak - .rss_kb_before) / 1024 * 10 | round / 10) MB)"
' "$WORK/result.json"
