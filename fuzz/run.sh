#!/usr/bin/env bash
# Bounded fuzzing run (what scripts/test.sh and CI run): installs the pinned cargo-fuzz when
# it is missing, checks the fuzz crate (lockfile, rustfmt, clippy), builds every target and
# runs each one for FUZZ_SECONDS (default 30) from the committed corpus. Any finding (a
# panic, a timeout over FUZZ_TIMEOUT seconds for one input, memory over the limits) fails
# the run; the input is left in fuzz/artifacts/TARGET/.
#
#   bash fuzz/run.sh                      # every target, 30 s each
#   FUZZ_SECONDS=300 bash fuzz/run.sh codec client_conn
#
# New inputs the fuzzer finds go to a scratch directory, never into fuzz/corpus/ (which
# holds the generated seeds and regression inputs; see fuzz/README.md).
set -euo pipefail

CARGO_FUZZ_VERSION="0.13.2"
FUZZ_SECONDS="${FUZZ_SECONDS:-30}"
FUZZ_TIMEOUT="${FUZZ_TIMEOUT:-10}"
TARGETS=(codec info_records client_conn server_packets case_loader)
if [ "$#" -gt 0 ]; then
    TARGETS=("$@")
fi

FUZZ_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$FUZZ_DIR"

# cargo-fuzz drives rustc with unstable flags; this lets the stable toolchain accept them.
export RUSTC_BOOTSTRAP=1

if [ "$(cargo fuzz --version 2>/dev/null || true)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
    echo "installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
fi

# cargo-fuzz has no --locked: check the lockfile first, so a stale one fails here instead
# of being rewritten.
cargo metadata --locked --format-version 1 >/dev/null
cargo fmt -- --check
cargo clippy --locked --all-targets -- -D warnings

cargo fuzz build -s none

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for target in "${TARGETS[@]}"; do
    echo "==> fuzz target $target: ${FUZZ_SECONDS}s"
    mkdir -p "$scratch/$target" "corpus/$target"
    cargo fuzz run -s none "$target" "$scratch/$target" "corpus/$target" -- \
        -max_total_time="$FUZZ_SECONDS" \
        -timeout="$FUZZ_TIMEOUT" \
        -rss_limit_mb=2048 \
        -malloc_limit_mb=512 \
        -print_final_stats=1 2>"$scratch/$target.log" || {
        tail -n 60 "$scratch/$target.log"
        echo "fuzz target $target found a bug: the input is in fuzz/artifacts/$target/" >&2
        exit 1
    }
    grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' "$scratch/$target.log" || true
done
echo "fuzzing: no finding in ${#TARGETS[@]} target(s)"
