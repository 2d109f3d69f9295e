#!/usr/bin/env bash
# Serre's whole test suite on a fresh Debian machine (this is what CI runs).
#
# Installs what the tests need (Debian packages, kubectl, helm, the Kubernetes 1.20.2
# binaries and Garage built once and cached under ~/.cache/serre), starts one local
# cluster (control plane and a real node) shared by every test binary, then runs:
# generated-manifest drift check, cargo fmt check, dependency licences (cargo-deny), the
# Rust tests of the whole workspace (unit; a real cluster and node running Serre's images and
# the example model; real Garage, PostgreSQL and OpenID provider; the PyPI Delta Sharing
# client; pySHACL against the official DCAT-AP shapes), the Helm chart checks (static, then a real `helm install` on a fresh
# cluster: Pods from the images built here, leader failover, upgrade, uninstall) and a
# brief cargo-fuzz run of the dataset ingest (deploy/dev/fuzz.sh).
#
# Every step must run: one that cannot (a missing tool that cannot be installed) fails
# the suite. Each step prints its wall time. Needs root (network namespaces, containerd).
# Runs beside deploy/dev/up.sh: its cluster takes ports from SERRE_CP_PORT_BASE (default
# 16440; up.sh uses 16540).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
LOG_TAG=test
. deploy/dev/lib.sh
export SERRE_CACHE=${SERRE_CACHE:-$HOME/.cache/serre}
# A clean clone gains nothing from incremental compilation; its caches cost gigabytes.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
export SERRE_CP_PORT_BASE=${SERRE_CP_PORT_BASE:-16440}

STEP_NAME=
STEP_START=
TIMES=()
step() {
  end_step
  STEP_NAME=$*
  STEP_START=$(date +%s)
  printf '\n==> %s\n' "$*"
}
end_step() {
  if [ -n "$STEP_NAME" ]; then
    local secs=$(($(date +%s) - STEP_START))
    TIMES+=("$(printf '%5d s  %s' "$secs" "$STEP_NAME")")
    printf '    (%s: %d s)\n' "$STEP_NAME" "$secs"
  fi
  STEP_NAME=
}
free_space() { # where cargo builds, and where the tests write
  df -h --output=target,avail "${CARGO_TARGET_DIR:-$ROOT/target}" /tmp 2>/dev/null |
    tail -n +2 | awk '{printf "%s %s free; ", $1, $2}'
}
SUITE_START=$(date +%s)

step "Debian packages, kubectl, helm"
need_apt etcd-server openssl curl jq postgresql unzip python3 python3-venv prometheus chromium chromium-driver
ensure_kubectl
ensure_helm

step "Python Delta Sharing client (PyPI delta-sharing 1.4.2 in a cached venv; used by api/tests/gateway/datasets.rs)"
VENV=$SERRE_CACHE/python-delta-sharing-1.4.2
if [ ! -x "$VENV/bin/python3" ] || ! "$VENV/bin/python3" -c 'import delta_sharing' 2>/dev/null; then
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/python3" -m pip install -q --disable-pip-version-check delta-sharing==1.4.2
fi
export PATH=$VENV/bin:$PATH

step "pySHACL (PyPI pyshacl 0.40.1 in a cached venv; api/tests/gateway/catalogue.rs validates the DCAT-AP export with it)"
SHACL_VENV=$SERRE_CACHE/python-pyshacl-0.40.1
if [ ! -x "$SHACL_VENV/bin/python3" ] || ! "$SHACL_VENV/bin/python3" -c 'import pyshacl' 2>/dev/null; then
  rm -rf "$SHACL_VENV"
  python3 -m venv "$SHACL_VENV"
  "$SHACL_VENV/bin/python3" -m pip install -q --disable-pip-version-check pyshacl==0.40.1
fi
# Its own venv, named by variable: the delta-sharing venv keeps `python3` on PATH.
export SERRE_PYSHACL_PYTHON=$SHACL_VENV/bin/python3

step "Kubernetes 1.20.2 binaries (cached)"
deploy/dev/control-plane.sh build
step "Garage (cached)"
deploy/dev/garage.sh install

WORK=$(mktemp -d /tmp/serre-test.XXXXXX)
cleanup() {
  deploy/dev/install.sh down "$WORK/serre" >/dev/null 2>&1 || true
  deploy/dev/control-plane.sh stop "$WORK/cp" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

step "Starting a shared local cluster (control plane and node)"
deploy/dev/control-plane.sh start "$WORK/cp"
deploy/dev/node.sh start "$WORK/cp"
export SERRE_TEST_KUBECONFIG=$WORK/cp/kubeconfig

step "Serre's images (dev profile) pushed to the test node's registry (trial runs run them)"
eval "$(deploy/dev/node.sh env "$WORK/cp")"
SERRE_CARGO_PROFILE=dev deploy/images.sh push "$REGISTRY"
export SERRE_TEST_IMAGES=$REGISTRY/serre
export SERRE_TEST_IMAGE_TAG=$(awk -F'"' '/^appVersion:/{print $2}' charts/serre/Chart.yaml)
# Pods reach a gateway under test on this address (deploy/dev/node.sh).
export SERRE_TEST_HOST_ADDR=$SERRE_HOST_ADDR

step "Generated manifests are up to date"
cargo run -q -p serre-operator -- manifests --check

step "The console's DSFR files match the pinned npm package (api/console/assets.sh)"
api/console/assets.sh check

step "Formatting"
cargo fmt --all -- --check

step "Dependency licences and sources (cargo-deny, deny.toml)"
# cargo-deny reads `cargo metadata` for every platform, so the crates of other platforms
# (windows-sys, …) must be in the local registry first: a fresh machine has only its own.
cargo fetch --locked
"$(cargo_tool cargo-deny 0.18.3)" deny --offline check licenses bans sources

step "Rust tests (workspace)"
mkdir -p "${CARGO_TARGET_DIR:-$ROOT/target}"
echo "disk before the build: $(free_space)"
set +e
cargo test --workspace --no-fail-fast 2>&1 | tee "$WORK/cargo-test.log"
status=${PIPESTATUS[0]}
set -e
echo "disk after the tests: $(free_space)"

step "Helm chart checks (lint, template, schema, dry-run, RBAC)"
chart=0
KUBECONFIG=$SERRE_TEST_KUBECONFIG deploy/dev/chart-check.sh || chart=$?

step "helm install on a fresh cluster: images, Pods Ready, failover, upgrade, uninstall"
install=0
deploy/dev/control-plane.sh stop "$WORK/cp"
rm -rf "$WORK/cp"
{
  deploy/dev/control-plane.sh start "$WORK/cp" &&
    deploy/dev/node.sh start "$WORK/cp" &&
    deploy/dev/install.sh up "$WORK/cp" "$WORK/serre" &&
    deploy/dev/install-check.sh "$WORK/serre"
} || install=$?

step "Fuzzing the dataset ingest briefly (cargo fuzz, ${SERRE_FUZZ_SECONDS:-20} s per target)"
fuzz=0
deploy/dev/fuzz.sh "${SERRE_FUZZ_SECONDS:-20}" || fuzz=$?
end_step

passed=$(grep -Eo 'test result: [a-zA-Z]+\. [0-9]+ passed; [0-9]+ failed' "$WORK/cargo-test.log" | awk '{s+=$4} END {print s+0}')
failed=$(grep -Eo 'test result: [a-zA-Z]+\. [0-9]+ passed; [0-9]+ failed' "$WORK/cargo-test.log" | awk '{s+=$6} END {print s+0}')
ok() { [ "$1" -eq 0 ] && echo ok || echo FAILED; }
echo
echo "wall time per step:"
printf '%s\n' "${TIMES[@]}"
echo "total: $(($(date +%s) - SUITE_START)) s"
echo
echo "chart checks: $(ok $chart)"
echo "helm install checks: $(ok $install)"
echo "fuzzing: $(ok $fuzz)"
echo "tests: $passed passed, $failed failed"
[ "$status" -eq 0 ] && [ "$chart" -eq 0 ] && [ "$install" -eq 0 ] && [ "$fuzz" -eq 0 ]
