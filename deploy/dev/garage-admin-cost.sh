#!/usr/bin/env bash
# Garage's CPU time per admin API call (docs/benchmarks.md, "Garage's admin calls"): starts a
# fresh single-node Garage (deploy/dev/garage.sh) in a temporary directory, runs
# deploy/dev/garage_admin_cost.py on it with N buckets and keys (default 300), stops it.
#
#   deploy/dev/garage-admin-cost.sh [N]
#
# Environment: SERRE_GARAGE_PORT_BASE (default 14800), SERRE_CACHE.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
DIR=$(mktemp -d /tmp/serre-garage-cost.XXXXXX)
trap '"$HERE/garage.sh" stop "$DIR" >/dev/null 2>&1 || true; rm -rf "$DIR"' EXIT
SERRE_GARAGE_PORT_BASE=${SERRE_GARAGE_PORT_BASE:-14800} "$HERE/garage.sh" start "$DIR" >&2
python3 "$HERE/garage_admin_cost.py" "$DIR" "${1:-300}"
