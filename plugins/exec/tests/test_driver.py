#!/usr/bin/env python3
"""A driver program for the exec driver's tests: speaks PROTOCOL.md, and misbehaves as
the environment variable MODE says:

  normal     answers everything; addresses: `const:<json>` reads that value,
             `counter` counts reads, `bad:...` is refused at configure,
             `refuse` refuses writes, `env` reads the names of its environment,
             `nnp` its NoNewPrivs flag, `fds` its open descriptors; a written
             value is read back
  crash      exits (status 3) at its CRASH_AFTER-th read (default 1)
  hang       answers hello and configure, then never a read
  garbage    prints a line that is not JSON after configure
  partial    prints half a line at the first read, then waits
  huge       prints a 100 MB line at the first read
  flood      floods stderr (and answers reads)
  push       says push and sends a data line before each readings answer
  pushflood  says push and pushes data lines without pause from a thread
  pushbig    says push and pushes one data line of 70,000 readings after configure
  unasked    sends a data line without having said push
  stubborn   ignores the end of stdin and SIGTERM, and starts a grandchild

With PIDFILE set it writes its pid there, and with GRANDCHILD set it starts a `sleep` of
its own first and writes that pid after its own.
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time

MODE = os.environ.get("MODE", "normal")
out = sys.stdout
lock = threading.Lock()


def send_raw(text):
    with lock:
        out.write(text)
        out.flush()


def send(obj):
    with lock:
        out.write(json.dumps(obj) + "\n")
        out.flush()


pids = [os.getpid()]
if MODE == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if MODE == "stubborn" or os.environ.get("GRANDCHILD"):
    pids.append(subprocess.Popen(["sleep", "1000"]).pid)
if os.environ.get("PIDFILE"):
    with open(os.environ["PIDFILE"], "w") as f:
        f.write(" ".join(map(str, pids)))

send({"type": "hello", "protocol": int(os.environ.get("PROTO", "1")), "driver": "test",
      "version": "1", "read": True, "write": True, "push": MODE in ("push", "pushflood", "pushbig")})


def flood():
    i = 0
    while True:
        i += 1
        line = json.dumps({"type": "data", "readings": [{"tag": 0, "value": i, "time": "2026-12-07T10:00:00Z"}] * 100}) + "\n"
        with lock:
            out.write(line)
            out.flush()


tags = []
written = {}
reads = 0
for line in sys.stdin:
    msg = json.loads(line)
    kind, rid = msg["type"], msg.get("id")
    if kind == "configure":
        tags = msg["tags"]
        errors = [{"tag": t["tag"], "message": "no such address " + t["address"]}
                  for t in tags if t["address"].startswith("bad:")]
        send({"type": "ok", "id": rid, "tag_errors": errors})
        if MODE == "pushflood":
            threading.Thread(target=flood, daemon=True).start()
        if MODE == "pushbig":
            send({"type": "data", "readings": [{"tag": 0, "value": v, "time": "2026-12-07T10:00:00Z"}
                                               for v in range(70000)]})
        if MODE == "unasked":
            send({"type": "data", "readings": []})
        if MODE == "garbage":
            send_raw("hello world\n")
        if MODE == "flood":
            for i in range(200000):
                sys.stderr.write("flood line %d\n" % i)
    elif kind == "read":
        reads += 1
        if MODE == "crash" and reads >= int(os.environ.get("CRASH_AFTER", "1")):
            sys.exit(3)
        if MODE == "hang":
            continue
        if MODE == "partial":
            send_raw('{"type":"readings","id":')
            time.sleep(1000)
        if MODE == "huge":
            send_raw('{"type":"readings","id":%d,"readings":[],"pad":"' % rid + "x" * 100_000_000 + '"}\n')
            continue
        readings = []
        for t in tags:
            a = t["address"]
            if t["tag"] in written:
                readings.append({"tag": t["tag"], "value": written[t["tag"]]})
            elif a.startswith("const:"):
                readings.append({"tag": t["tag"], "value": json.loads(a[6:])})
            elif a == "counter":
                readings.append({"tag": t["tag"], "value": reads})
            elif a == "env":
                readings.append({"tag": t["tag"], "value": ",".join(sorted(os.environ))})
            elif a == "fds":
                fds = sorted(int(f) for f in os.listdir("/proc/self/fd"))
                readings.append({"tag": t["tag"], "value": ",".join(map(str, fds))})
            elif a == "nnp":
                with open("/proc/self/status") as f:
                    nnp = next(l.split()[1] for l in f if l.startswith("NoNewPrivs:"))
                readings.append({"tag": t["tag"], "value": int(nnp)})
            elif a == "down":
                readings.append({"tag": t["tag"], "quality": "bad", "reason": "not_connected",
                                 "error": "device away"})
        if MODE == "push":
            send({"type": "data", "readings": [{"tag": 0, "value": reads * 100,
                                                 "time": "2026-12-07T10:00:00Z"}]})
        send({"type": "readings", "id": rid, "readings": readings})
    elif kind == "write":
        tag = next(t for t in tags if t["tag"] == msg["tag"])
        if tag["address"] == "refuse":
            send({"type": "error", "id": rid, "kind": "rejected", "message": "refused by test"})
        else:
            written[msg["tag"]] = msg["value"]
            send({"type": "ok", "id": rid})

if MODE == "stubborn":
    while True:
        time.sleep(1)
