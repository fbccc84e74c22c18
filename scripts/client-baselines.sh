#!/usr/bin/env bash
# Regenerates the client baselines (harness/baselines/clients/*.yaml) from runs of the
# three shims, keeping the line (verdict and explanation) of every entry whose outcome the
# old baseline accepts: only new cases and changed outcomes need a comment written by hand
# afterwards (they get the run's first reason). Review the diff before committing.
#
#   bash scripts/client-baselines.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/install-servers.sh
cargo build --locked -p wisp-harness -p shim-wisp-client -p shim-wisp-mux --bins
W=target/debug/wisp-conformance
B=harness/baselines/clients
run() { # run NAME SHIM
  # Exit 1 (verdicts differ from the old baseline) is what a regeneration is for.
  "$W" client --shim "$2" -j 16 -q --expect "$B/$1.yaml" --write-baseline "$B/$1.yaml" >/dev/null || [ $? = 1 ]
  echo "wrote $B/$1.yaml"
}
run wisp-client target/debug/shim-wisp-client
run wisp-mux-5.1.0 target/debug/shim-wisp-mux
run wisp-js-0.5.0 "node shims/wisp-js/shim.mjs"
git --no-pager diff --stat -- "$B"
