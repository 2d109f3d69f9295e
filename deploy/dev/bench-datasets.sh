#!/usr/bin/env bash
# Dataset benchmarks (release build, one thread each; figures are ratios against a
# baseline measured in the same run):
#   1. POST /v1/grants' materialisation (decrypt, project, filter, pseudonymise, write
#      Parquet, encrypt and store) against DuckDB's COPY of the same query (threads=1);
#   2. serving the view from Garage through BlobStore::get_stream (decrypting) against a
#      plain S3 GET of an unencrypted copy from the same bucket, then the peak memory of a
#      `Range: bytes=0-` read of the whole view (streamed, and in one buffer).
#
#   deploy/dev/bench-datasets.sh [SIZE_MB]     default 1024 (MB of Parquet input)
#
# Needs PyPI duckdb 2.0.1 in a cached venv (~/.cache/serre/python-duckdb-2.0.1, made here if
# missing; the bench fails without it) and Garage
# (deploy/dev/garage.sh builds it once under ~/.cache/serre). The synthetic dataset is
# generated once into ~/.cache/serre/bench/ and reused.
set -euo pipefail
cd "$(dirname "$0")/../.."
SIZE_MB=${1:-${SERRE_BENCH_SIZE_MB:-1024}}
CACHE=${SERRE_CACHE:-$HOME/.cache/serre}
DUCKDB_VENV=$CACHE/python-duckdb-2.0.1
if ! "$DUCKDB_VENV/bin/python3" -c 'import duckdb' 2>/dev/null; then
  echo "[bench] PyPI duckdb 2.0.1 into $DUCKDB_VENV" >&2
  rm -rf "$DUCKDB_VENV"
  python3 -m venv "$DUCKDB_VENV"
  "$DUCKDB_VENV/bin/python3" -m pip install -q --disable-pip-version-check duckdb==2.0.1
fi
export SERRE_BENCH_DUCKDB_PYTHON=$DUCKDB_VENV/bin/python3
exec cargo bench -p serre-api --bench materialise -- --size-mb "$SIZE_MB" --serve "${@:2}"
