#!/usr/bin/env bash
# Installs the two peers uaedge is compared with (README.md here) into .build/compare/:
# a Python venv with pymodbus, paho-mqtt and protobuf plus sparkplug_b_pb2.py compiled from
# Eclipse Tahu's sparkplug_b.proto, and an npm project with Node-RED,
# node-red-contrib-modbus and sparkplug-payload. Versions are pinned here and in
# nodered/package-lock.json. Safe to run again: it skips what is already in place.
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=examples/compare
OUT=.build/compare
mkdir -p "$OUT"

command -v mosquitto >/dev/null 2>&1 || echo "setup: mosquitto is missing (bash tests/setup.sh installs it); check.py and loadgen need it" >&2

VENV=$OUT/venv
STAMP=$VENV/.requirements
if [ ! -x "$VENV/bin/python" ] || ! cmp -s "$HERE/requirements.txt" "$STAMP"; then
  echo "setup: creating $VENV (pymodbus, paho-mqtt, protobuf)"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$HERE/requirements.txt"
  cp "$HERE/requirements.txt" "$STAMP"
  rm -f "$OUT/sparkplug_b_pb2.py"
fi

if [ ! -f "$OUT/sparkplug_b_pb2.py" ]; then
  # The proto ships inside the sparkplug-rs crate uaedge builds with; the tests find it
  # the same way (tests/sparkplug_support/mod.rs, proto_path).
  proto=$(cargo metadata --format-version 1 | "$VENV/bin/python" -c '
import json, os, sys
meta = json.load(sys.stdin)
pkg = next(p for p in meta["packages"] if p["name"] == "sparkplug-rs")
print(os.path.join(os.path.dirname(pkg["manifest_path"]), "protos", "sparkplug_b.proto"))')
  echo "setup: compiling $proto"
  "$VENV/bin/python" -m grpc_tools.protoc -I"$(dirname "$proto")" --python_out="$OUT" sparkplug_b.proto
fi

NR=$OUT/nodered
if [ ! -x "$NR/node_modules/.bin/node-red" ] || ! cmp -s "$HERE/nodered/package-lock.json" "$NR/package-lock.json"; then
  echo "setup: installing Node-RED, node-red-contrib-modbus and sparkplug-payload into $NR"
  mkdir -p "$NR"
  cp "$HERE/nodered/package.json" "$HERE/nodered/package-lock.json" "$NR/"
  (cd "$NR" && npm ci --no-audit --no-fund --loglevel=error)
fi
echo "setup: done"
