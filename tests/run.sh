#!/usr/bin/env bash
# The whole test suite, as CI runs it: install the test peers, then style, lints and every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/setup.sh
export UAEDGE_TEST_PYTHON="$PWD/.build/venv/bin/python"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
