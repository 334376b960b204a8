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
cargo test --workspace
bash tests/fuzz.sh  # cargo fuzz targets, 60 s each (UAEDGE_FUZZ_SECS); see tests/fuzz.sh
# The .deb: build, lintian, install, upgrade, purge. Needs dpkg and root (or sudo).
if command -v dpkg >/dev/null 2>&1 && { [ "$(id -u)" -eq 0 ] || command -v sudo >/dev/null 2>&1; }; then
  bash tests/package.sh
else
  echo "package: skipped (needs dpkg and root or sudo)"
fi
