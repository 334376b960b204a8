#!/usr/bin/env bash
# Runs the Node-RED comparison peer: generates the flow for the arguments (those of
# ../python_edge.py) into a fresh user directory and execs Node-RED, so the PID the load
# harness measures is Node-RED's own node process. Needs `bash examples/compare/setup.sh`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
nr=$(cd "$here/../../.." && pwd)/.build/compare/nodered
if [ ! -f "$nr/node_modules/node-red/red.js" ]; then
  echo "nodered/run.sh: Node-RED is not installed; run bash examples/compare/setup.sh" >&2
  exit 1
fi
userdir=$(mktemp -d "${TMPDIR:-/tmp}/uaedge-nodered.XXXXXX")
node "$here/make_flow.js" "$@" >"$userdir/flows.json"
cp "$here/settings.js" "$userdir/settings.js"
echo "nodered edge: Node-RED $(node -p "require('$nr/node_modules/node-red/package.json').version") with $(grep -c '"type": "modbus-read"' "$userdir/flows.json") modbus-read nodes, user dir $userdir" >&2
export NODE_PATH="$nr/node_modules"
# Node-RED logs to stdout; the contract is stderr.
exec node "$nr/node_modules/node-red/red.js" --userDir "$userdir" --settings "$userdir/settings.js" flows.json >&2
