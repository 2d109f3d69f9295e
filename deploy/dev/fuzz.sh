#!/usr/bin/env bash
# Fuzz the dataset ingest (serre_api::data::ingest_csv / ingest_parquet) with cargo-fuzz.
#
#   deploy/dev/fuzz.sh [SECONDS]     (default 60 seconds per target)
#
# Each target runs on a fresh copy of its committed seed corpus (api/fuzz/corpus/<target>),
# so the checkout is not modified. The property: every input gives Ok (readable Parquet
# whose row count equals the report's) or a DataError; a panic, an abort, a leak, a timeout
# or an out-of-memory is a failure. Exits non-zero on the first failing target and prints
# the path of the crashing input (reproduce with the command printed).
#
# Needs the nightly toolchain (rustup). cargo-fuzz is installed into ~/.cargo/bin when
# missing; the build goes to $SERRE_FUZZ_TARGET_DIR (default ~/.cache/serre/fuzz-target),
# outside the checkout, so that warm CI runs reuse it.
set -euo pipefail

SECONDS_PER_TARGET="${1:-60}"
if ! [[ "$SECONDS_PER_TARGET" =~ ^[0-9]+$ ]] || [ "$SECONDS_PER_TARGET" -lt 1 ]; then
    echo "usage: $0 [SECONDS]   (seconds per target, default 60)" >&2
    exit 2
fi
TARGETS=(ingest_csv ingest_parquet)

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
FUZZ_DIR="$ROOT/api/fuzz"
export CARGO_TARGET_DIR="${SERRE_FUZZ_TARGET_DIR:-$HOME/.cache/serre/fuzz-target}"
export PATH="$HOME/.cargo/bin:$PATH"

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzz.sh: installing the nightly toolchain" >&2
    rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz into ~/.cargo/bin" >&2
    cargo install cargo-fuzz --locked
fi

mkdir -p "$CARGO_TARGET_DIR"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/serre-fuzz.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
# Crash inputs are kept here (not deleted with $WORK) so CI can upload them.
ARTIFACTS="${SERRE_FUZZ_ARTIFACTS:-$CARGO_TARGET_DIR/artifacts}"

cd "$FUZZ_DIR"
start=$(date +%s)
cargo +nightly fuzz build
echo "fuzz.sh: build took $(( $(date +%s) - start )) s"

status=0
for target in "${TARGETS[@]}"; do
    corpus="$WORK/corpus/$target"
    artifacts="$ARTIFACTS/$target"
    mkdir -p "$corpus" "$artifacts"
    cp -R "$FUZZ_DIR/corpus/$target/." "$corpus/"
    # Inputs that once crashed a target are replayed on every run.
    if [ -d "$FUZZ_DIR/regressions/$target" ]; then
        cp -R "$FUZZ_DIR/regressions/$target/." "$corpus/"
    fi
    log="$WORK/$target.log"
    echo "fuzz.sh: $target for ${SECONDS_PER_TARGET} s (artifacts in $artifacts)"
    set +e
    cargo +nightly fuzz run "$target" "$corpus" -- \
        -max_total_time="$SECONDS_PER_TARGET" \
        -rss_limit_mb=2048 \
        -timeout=30 \
        -print_final_stats=1 \
        -artifact_prefix="$artifacts/" \
        >"$log" 2>&1
    rc=$?
    set -e
    tail -n 40 "$log"
    if [ "$rc" -ne 0 ]; then
        status=1
        echo "fuzz.sh: $target FAILED (exit $rc)" >&2
        grep -E '^(thread .* panicked|==[0-9]+==ERROR)' "$log" >&2 || true
        crash=$(grep -oE 'Test unit written to [^ ]+' "$log" | tail -n 1 | sed 's/^Test unit written to //')
        if [ -n "$crash" ]; then
            echo "fuzz.sh: crashing input: $crash" >&2
            echo "fuzz.sh: reproduce with: (cd api/fuzz && cargo +nightly fuzz run $target $crash)" >&2
        fi
    else
        echo "fuzz.sh: $target OK"
    fi
done
exit "$status"
