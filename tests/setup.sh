#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian/Ubuntu machine: system packages from
# Debian's archive, the Python peers (independent implementations we test against) into a
# virtualenv under .build/ and the Node.js ones (node-opcua) into .build/node. Safe to run
# again; it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

need_apt=()
command -v mosquitto >/dev/null 2>&1 || need_apt+=(mosquitto)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
# libfaketime, for the fault suite's wall clock jumps (tests/faults.rs).
command -v faketime >/dev/null 2>&1 || need_apt+=(faketime)
# Node.js and npm, for the node-opcua peer (tests/opcua_clients.rs).
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]} from the Debian archive"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

VENV=.build/venv
REQ=tests/interop/requirements.txt
STAMP="$VENV/.requirements"
if [ ! -x "$VENV/bin/python" ] || ! cmp -s "$REQ" "$STAMP"; then
  echo "setup: creating $VENV with the Python test peers"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQ"
  cp "$REQ" "$STAMP"
fi
# node-opcua is ES modules only, loaded with require(): that needs Node.js >= 20.19 (Debian
# 12's own nodejs is 18 and cannot load it). Say so here rather than in every test.
if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number);
    process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)'; then
  echo "setup: node-opcua needs Node.js 20.19 or later, this is $(node --version)" >&2
  exit 1
fi
# node-opcua, exactly as tests/interop/node/package-lock.json pins it. The tests find it
# through NODE_PATH (tests/run.sh exports the folder; tests/common falls back to it).
NODE_DIR=.build/node
NODE_SRC=tests/interop/node
if [ ! -d "$NODE_DIR/node_modules" ] \
  || ! cmp -s "$NODE_SRC/package.json" "$NODE_DIR/.package.json" \
  || ! cmp -s "$NODE_SRC/package-lock.json" "$NODE_DIR/.package-lock.json"; then
  echo "setup: installing the Node.js test peers into $NODE_DIR"
  rm -rf "$NODE_DIR"
  mkdir -p "$NODE_DIR"
  cp "$NODE_SRC/package.json" "$NODE_SRC/package-lock.json" "$NODE_DIR/"
  # --loglevel=error: node-opcua declares Node.js >= 22.13 in each of its ~60 packages and
  # npm warns for every one; it runs on Node.js 20.19 and later (checked above).
  npm ci --prefix "$NODE_DIR" --no-audit --no-fund --loglevel=error
  # Stamps written last, so an interrupted install is redone next time.
  cp "$NODE_SRC/package.json" "$NODE_DIR/.package.json"
  cp "$NODE_SRC/package-lock.json" "$NODE_DIR/.package-lock.json"
fi
echo "setup: done"
