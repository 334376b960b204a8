#!/usr/bin/env bash
# The whole test suite, as CI runs it: install the test peers, then style, lints and every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/setup.sh
export UAEDGE_TEST_PYTHON="$PWD/.build/venv/bin/python"
export UAEDGE_TEST_NODE="$PWD/.build/node/bin/node"
export UAEDGE_TEST_NODE_MODULES="$PWD/.build/node/node_modules"
export UAEDGE_TEST_WEB_PYTHON="$PWD/.build/webtest/bin/python"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# Build every test first, then start the shipped-config run (seven minutes, mostly waiting
# for its scheduled faults) beside the rest instead of after it.
shipped=$(cargo test --workspace --no-run --message-format=json |
  python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "shipped_alarms" and m.get("executable"):
        print(m["executable"])')
[ -x "$shipped" ] || { echo "run: no shipped_alarms test binary" >&2; exit 1; }
mkdir -p target
# A session of its own, so that stopping it stops the uaedge and the peers it started.
# (Without job control the background child is no group leader, so setsid does not fork:
# $! is the test itself, and the group's id.)
setsid "$shipped" --include-ignored >target/shipped_alarms.log 2>&1 &
shipped_pid=$!
trap 'kill -- -"$shipped_pid" 2>/dev/null || true' EXIT
cargo test --workspace
echo "run: waiting for the shipped-config test (tests/shipped_alarms.rs)"
shipped_status=0
wait "$shipped_pid" || shipped_status=$?
trap - EXIT
kill -- -"$shipped_pid" 2>/dev/null || true
cat target/shipped_alarms.log
[ "$shipped_status" -eq 0 ] || { echo "run: shipped_alarms failed ($shipped_status)" >&2; exit 1; }
bash tests/fuzz.sh  # cargo fuzz targets, 60 s each (UAEDGE_FUZZ_SECS); see tests/fuzz.sh
# The .deb: build, lintian, install, upgrade, purge. Needs dpkg and root (or sudo).
if command -v dpkg >/dev/null 2>&1 && { [ "$(id -u)" -eq 0 ] || command -v sudo >/dev/null 2>&1; }; then
  bash tests/package.sh
else
  echo "package: skipped (needs dpkg and root or sudo)"
fi
