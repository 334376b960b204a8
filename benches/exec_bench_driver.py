#!/usr/bin/env python3
"""The driver program of `cargo bench --bench exec`: answers every read with one batched
`readings` line, each tag a counter, so that every reading is a change. Kept lean, so that
what is measured is uaedge's side of the boundary."""
import json
import sys

out = sys.stdout
out.write('{"type":"hello","protocol":1,"driver":"bench","read":true}\n')
out.flush()
tags = []
n = 0
for line in sys.stdin:
    msg = json.loads(line)
    if msg["type"] == "configure":
        tags = [t["tag"] for t in msg["tags"]]
        out.write('{"type":"ok","id":%d}\n' % msg["id"])
    elif msg["type"] == "read":
        n += 1
        body = ",".join('{"tag":%d,"value":%d}' % (t, n + t) for t in tags)
        out.write('{"type":"readings","id":%d,"readings":[%s]}\n' % (msg["id"], body))
    out.flush()
