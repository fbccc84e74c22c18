#!/usr/bin/env bash
# Runs every test of the workspace on a fresh machine: installs what the tests need
# (the pinned wisp-server-python and wisp-js from PyPI/npm, into .tools/), then the
# formatting, lint and documentation checks, and all unit/integration/doc tests: interop
# against the real servers, the conformance cases, the server suite against three real
# servers (writing the merged HTML matrix to target/tmp/servers-report/), the client
# suite through three shims (our client, wisp-js 0.5.0, wisp-mux 5.1.0: harness/SHIM.md)
# against their baselines in harness/baselines/clients/, the HTML report
# in headless Chromium (installed with apt-get when missing; screenshots under
# target/tmp/html-report/), and the benchmark's smoke mode (a #[test] in bench/); then a
# bounded run of every fuzz target (fuzz/run.sh, fuzz/README.md).
#
# This is exactly what CI runs (.ci/run calls this script).
#
# Options:
#   --soak   after the normal steps, also run the ignored soak tests (client/tests/soak.rs,
#            release build, about 2 minutes): 1,000 streams x 1 MiB each way through wisp-js
#            with the client's heap in use checked afterwards, and 10,000 open/close cycles
#            that must leak no stream or task.
set -euo pipefail

SOAK=0
for arg in "$@"; do
  case "$arg" in
    --soak) SOAK=1 ;;
    -h|--help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "scripts/test.sh: unknown option $arg (options: --soak)" >&2
      exit 2
      ;;
  esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

step() { printf '\n==> %s\n' "$*"; }

# need CMD: installs the Debian package of the same name when CMD is missing (as root
# with apt-get), else fails with what to install.
need() {
  if command -v "$1" >/dev/null 2>&1; then
    return
  fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "$1 not found: installing it with apt-get"
    (apt-get update -qq && apt-get install -y -qq "$1") >/dev/null
  else
    echo "$1 not found: install it (Debian/Ubuntu: apt-get install $1)" >&2
    exit 1
  fi
}

step "installing the pinned third-party Wisp servers (wisp-python 0.9.0, wisp-js 0.5.0)"
bash scripts/install-servers.sh

step "headless Chromium for the HTML report's browser test (harness/tests/html.rs)"
need chromium

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo doc (rustdoc warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked

step "cargo test (unit, integration, interop, conformance cases, doc tests)"
# insta never writes snapshots when CI is set: a changed trace fails the run.
CI="${CI:-true}" cargo test --workspace --locked

step "cargo package (the crates.io crates: wisp-proto, wisp-client, wisp-cases, wisp-mock-server, wisp-testkit, wisp-harness)"
# Each crate packs with what it needs (the harness's CLI has its cases built in through
# wisp-cases); --no-verify keeps CI fast, drop it to build every package from its .crate.
cargo package --locked --allow-dirty --no-verify -p wisp-proto -p wisp-client -p wisp-cases \
  -p wisp-mock-server -p wisp-testkit -p wisp-harness

step "instruction counts (callgrind): ours within 5 % of bench/instructions.json"
need valgrind
cargo run -p wisp-bench --release --locked -- --instructions

step "fuzzing (fuzz/run.sh: every target for ${FUZZ_SECONDS:-30}s from fuzz/corpus/)"
# Installs the pinned cargo-fuzz when it is missing; any finding fails the run.
bash fuzz/run.sh

if [ "$SOAK" = 1 ]; then
  step "soak (release): 1,000 x 1 MiB streams through wisp-js, heap in use; 10,000 open/close cycles"
  cargo test --release --locked -p wisp-client --test soak -- --ignored --nocapture --test-threads 1
fi

step "all tests passed"
