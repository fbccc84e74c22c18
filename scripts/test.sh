#!/usr/bin/env bash
# Runs every test of the workspace on a fresh machine: installs what the tests need
# (the pinned wisp-server-python and wisp-js from PyPI/npm, into .tools/), then the
# formatting, lint and documentation checks, and all unit/integration/doc tests: interop
# against the real servers, the conformance cases, the server suite against three real
# servers, and the benchmark's smoke mode (a #[test] in bench/); then a bounded run of
# every fuzz target (fuzz/run.sh, fuzz/README.md).
#
# This is exactly what CI runs (.ci/run calls this script).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

step() { printf '\n==> %s\n' "$*"; }

step "installing the pinned third-party Wisp servers (wisp-python 0.9.0, wisp-js 0.5.0)"
bash scripts/install-servers.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo doc (rustdoc warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked

step "cargo test (unit, integration, interop, conformance cases, doc tests)"
# insta never writes snapshots when CI is set: a changed trace fails the run.
CI="${CI:-true}" cargo test --workspace --locked

step "instruction counts (callgrind): ours within 5 % of bench/instructions.json"
if ! command -v valgrind >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "valgrind not found: installing it with apt-get"
    (apt-get update -qq && apt-get install -y -qq valgrind) >/dev/null
  else
    echo "valgrind not found: install it (Debian/Ubuntu: apt-get install valgrind)" >&2
    exit 1
  fi
fi
cargo run -p wisp-bench --release --locked -- --instructions

step "fuzzing (fuzz/run.sh: every target for ${FUZZ_SECONDS:-30}s from fuzz/corpus/)"
# Installs the pinned cargo-fuzz when it is missing; any finding fails the run.
bash fuzz/run.sh

step "all tests passed"
