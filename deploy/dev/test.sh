#!/usr/bin/env bash
# Serre's whole test suite on a fresh Debian machine (this is what CI runs).
#
# Installs what the tests need (Debian packages, Kubernetes 1.20 control plane and
# Garage built once and cached under ~/.cache/serre), starts one control plane shared
# by every test binary, then runs: generated-manifest drift check, cargo fmt check,
# the Rust tests of the whole workspace (unit, real control plane, real Garage, real
# PostgreSQL and OpenID provider, the PyPI Delta Sharing client), the Helm chart checks,
# and a brief cargo-fuzz run of the dataset ingest (deploy/dev/fuzz.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
export SERRE_CACHE=${SERRE_CACHE:-$HOME/.cache/serre}
# A clean clone gains nothing from incremental compilation; its caches cost gigabytes.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
step() { printf '\n==> %s\n' "$*"; }
free_space() { # where cargo builds, and where the tests write
  df -h --output=target,avail "${CARGO_TARGET_DIR:-$ROOT/target}" /tmp 2>/dev/null |
    tail -n +2 | awk '{printf "%s %s free; ", $1, $2}'
}

step "Debian packages"
need=()
for p in etcd-server openssl curl jq postgresql unzip; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || need+=("$p")
done
# nodejs/npm may come from elsewhere on the image: only install what is really missing.
need=($(printf '%s\n' "${need[@]}" | grep -v '^$' || true))
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

step "Python Delta Sharing client (PyPI delta-sharing, used by api/tests/datasets.rs)"
python3 -c 'import delta_sharing' 2>/dev/null ||
  python3 -m pip install -q --disable-pip-version-check delta-sharing==1.4.2

step "Kubernetes control plane binaries (cached)"
deploy/dev/control-plane.sh build
step "Garage (cached)"
deploy/dev/garage.sh install

WORK=$(mktemp -d /tmp/serre-test.XXXXXX)
cleanup() {
  deploy/dev/control-plane.sh stop "$WORK/cp" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

step "Starting a shared control plane"
SERRE_CP_PORT_BASE=${SERRE_CP_PORT_BASE:-16440} deploy/dev/control-plane.sh start "$WORK/cp"
export SERRE_TEST_KUBECONFIG=$WORK/cp/kubeconfig

step "Generated manifests are up to date"
cargo run -q -p serre-operator -- manifests --check

step "Formatting"
cargo fmt --all -- --check

step "Rust tests (workspace)"
mkdir -p "${CARGO_TARGET_DIR:-$ROOT/target}"
echo "disk before the build: $(free_space)"
set +e
cargo test --workspace --no-fail-fast 2>&1 | tee "$WORK/cargo-test.log"
status=${PIPESTATUS[0]}
set -e
echo "disk after the tests: $(free_space)"

step "Helm chart checks"
chart=0
KUBECONFIG=$SERRE_TEST_KUBECONFIG deploy/dev/chart-check.sh || chart=$?

step "Fuzzing the dataset ingest briefly (cargo fuzz, ${SERRE_FUZZ_SECONDS:-20} s per target)"
fuzz=0
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  deploy/dev/fuzz.sh "${SERRE_FUZZ_SECONDS:-20}" || fuzz=$?
else
  echo "fuzz: no nightly toolchain on this machine; fuzzing NOT run" >&2
  fuzz=skipped
fi

passed=$(grep -Eo 'test result: [a-zA-Z]+\. [0-9]+ passed; [0-9]+ failed' "$WORK/cargo-test.log" | awk '{s+=$4} END {print s+0}')
failed=$(grep -Eo 'test result: [a-zA-Z]+\. [0-9]+ passed; [0-9]+ failed' "$WORK/cargo-test.log" | awk '{s+=$6} END {print s+0}')
echo
echo "chart checks: $([ $chart -eq 0 ] && echo ok || echo FAILED)"
echo "fuzzing: $(case $fuzz in 0) echo ok ;; skipped) echo 'not run (no nightly toolchain)' ;; *) echo FAILED ;; esac)"
echo "tests: $passed passed, $failed failed"
[ "$status" -eq 0 ] && [ "$chart" -eq 0 ] && { [ "$fuzz" = 0 ] || [ "$fuzz" = skipped ]; }
