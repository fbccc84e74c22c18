#!/usr/bin/env bash
# Installs the pinned third-party Wisp servers used by the integration tests
# into <repo>/.tools/ (git-ignored):
#
#   .tools/venv/      wisp-server-python (PyPI wisp-python, pinned with
#                     tools/wisp-python/requirements.txt)
#   .tools/wisp-js/   wisp-js (npm @mercuryworkshop/wisp-js, pinned with
#                     tools/wisp-js/package.json + package-lock.json)
#
# Idempotent and quiet on success: once everything is installed it writes
# .tools/installed-<hash of the pin files>, and a later run with the same pins
# returns at once. On failure it prints the installer output and exits non-zero.
#
# Environment:
#   WISP_TESTKIT_PYTHON   Python interpreter used to create the venv (default python3)
#   WISP_TESTKIT_NPM      npm executable (default npm)
#
# The marker hash is also computed by wisp-testkit (testkit/src/install.rs):
# keep PIN_FILES and the hashing scheme in sync with it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

TOOLS="$ROOT/.tools"
PIN_FILES=(
  scripts/install-servers.sh
  tools/wisp-python/requirements.txt
  tools/wisp-js/package.json
  tools/wisp-js/package-lock.json
)
# Files that must exist besides the marker for the installation to count.
ENTRY_POINTS=(
  .tools/venv/bin/python
  .tools/wisp-js/node_modules/@mercuryworkshop/wisp-js/src/bin/server_cli.mjs
)

PYTHON="${WISP_TESTKIT_PYTHON:-python3}"
NPM="${WISP_TESTKIT_NPM:-npm}"

hash="$(cat "${PIN_FILES[@]}" | sha256sum | cut -c1-16)"
marker="$TOOLS/installed-$hash"

installed=1
[[ -f "$marker" ]] || installed=0
for entry in "${ENTRY_POINTS[@]}"; do
  [[ -e "$entry" ]] || installed=0
done
if [[ "$installed" == 1 ]]; then
  exit 0
fi

mkdir -p "$TOOLS"
log="$TOOLS/install.log"
: >"$log"

fail() {
  echo "install-servers.sh: $1 (output below, also in $log)" >&2
  cat "$log" >&2
  exit 1
}

# Any previous marker belongs to other pins (or to an incomplete install).
rm -f "$TOOLS"/installed-*

# wisp-server-python: a fresh venv, then exactly the pinned set.
rm -rf "$TOOLS/venv"
"$PYTHON" -m venv "$TOOLS/venv" >>"$log" 2>&1 || fail "creating the Python venv failed"
PIP_DISABLE_PIP_VERSION_CHECK=1 "$TOOLS/venv/bin/pip" install --no-input \
  -r tools/wisp-python/requirements.txt >>"$log" 2>&1 ||
  fail "pip install of wisp-python failed"
"$TOOLS/venv/bin/python" -c 'import wisp.server' >>"$log" 2>&1 ||
  fail "wisp.server does not import after install"

# wisp-js: npm ci from the committed lock file, in .tools/wisp-js/ so that
# nothing is written under tools/.
mkdir -p "$TOOLS/wisp-js"
cp tools/wisp-js/package.json tools/wisp-js/package-lock.json "$TOOLS/wisp-js/"
(cd "$TOOLS/wisp-js" && "$NPM" ci --no-audit --no-fund --loglevel=error) >>"$log" 2>&1 ||
  fail "npm ci of wisp-js failed"

for entry in "${ENTRY_POINTS[@]}"; do
  [[ -e "$entry" ]] || fail "$entry is missing after install"
done

touch "$marker"
