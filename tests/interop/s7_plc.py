"""A Siemens S7 PLC for the exec driver's test (tests/exec_s7.rs), built on python-snap7's
server, an S7 implementation we did not write.

    s7_plc.py --port PORT

It serves DB1 (64 bytes) on 127.0.0.1:PORT with the contents below, prints
`ready` on stdout once it listens, then takes one JSON command per stdin line and answers
one JSON line on stdout:

    {"op": "get", "start": 2, "size": 2}       -> {"hex": "fb2e"}
    {"op": "set", "start": 2, "hex": "0102"}   -> {"ok": true}
    {"op": "reads"}                            -> {"reads": [[db, start, size], ...]}
        the reads the server answered (refused ones are not counted) since the last
        `reads`, oldest first

(get and set: DB1 only, the test needs no other.) Errors come back as {"error": "..."}. It exits when
stdin closes. python-snap7's own log goes to stderr.

DB1 at start (big-endian, as S7 stores every value):

    0    bool   DBX0.0 = true, DBX0.3 = true (byte 0 = 0x09)
    1    int8   DBB1   = -5
    2    int16  DBW2   = -1234
    4    float32 DBD4  = 1480.5
    8    uint32 DBD8   = 4000000000
    12   float64 DBL12 = 2.718281828459045
    20   STRING[16] DBS20.16 = "PUMP-07"
    38   int16  DBW38  = 120          (the test's writable setpoint)
    40   int64  DBL40  = -1234567890123
    48   uint16 DBW48  = 65000
    50   int32  DBD50  = -123456789
    54   uint8  DBB54  = 200
    55   bool   DBX55.0..7 = 0        (writable bits)
    56   uint64 DBL56  = 12345678901234567890
"""

import argparse
import json
import logging
import struct
import sys

from snap7.server import Server
from snap7.type import SrvArea

DB_NUMBER = 1


DB_SIZE = 64


def initial_db():
    db = bytearray(DB_SIZE)
    db[0] = 0b0000_1001
    struct.pack_into(">b", db, 1, -5)
    struct.pack_into(">h", db, 2, -1234)
    struct.pack_into(">f", db, 4, 1480.5)
    struct.pack_into(">I", db, 8, 4_000_000_000)
    struct.pack_into(">d", db, 12, 2.718281828459045)
    text = b"PUMP-07"
    db[20] = 16  # STRING[16]: maximum length, actual length, then the characters
    db[21] = len(text)
    db[22 : 22 + len(text)] = text
    struct.pack_into(">h", db, 38, 120)
    struct.pack_into(">q", db, 40, -1234567890123)
    struct.pack_into(">H", db, 48, 65000)
    struct.pack_into(">i", db, 50, -123456789)
    struct.pack_into(">B", db, 54, 200)
    struct.pack_into(">Q", db, 56, 12345678901234567890)
    return db


def answer(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def handle(server, db, reads, cmd):
    op = cmd.get("op")
    if op == "reads":
        taken = []
        while reads:
            taken.append(reads.pop(0))
        return {"reads": taken}
    start = int(cmd.get("start", 0))
    # The server's client threads read and write the same bytearray under the area's lock.
    server.lock_area(SrvArea.DB, DB_NUMBER)
    try:
        if op == "get":
            size = int(cmd["size"])
            if start < 0 or size < 0 or start + size > len(db):
                return {"error": f"range {start}+{size} is outside DB1 ({len(db)} bytes)"}
            return {"hex": db[start : start + size].hex()}
        if op == "set":
            data = bytes.fromhex(cmd["hex"])
            if start < 0 or start + len(data) > len(db):
                return {"error": f"range {start}+{len(data)} is outside DB1 ({len(db)} bytes)"}
            db[start : start + len(data)] = data
            return {"ok": True}
        return {"error": f"unknown op {op!r}"}
    finally:
        server.unlock_area(SrvArea.DB, DB_NUMBER)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    # python-snap7 warns of every refused read (the test reads a DB that does not exist).
    logging.basicConfig(stream=sys.stderr, level=logging.ERROR,
                        format="s7_plc: %(levelname)s %(message)s")

    db = initial_db()
    server = Server(log=False)
    server.register_area(SrvArea.DB, DB_NUMBER, db)
    # Called by the server's client threads for each read it answered: DB number, first
    # byte, byte count.
    reads = []
    server.set_read_events_callback(lambda e: reads.append([e.EvtParam2, e.EvtParam3, e.EvtParam4]))
    # start_to binds one interface; a test's PLC listens on loopback only.
    server.start_to("127.0.0.1", args.port)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    try:
        for line in sys.stdin:
            line = line.strip()
            if not line:
                continue
            try:
                cmd = json.loads(line)
                answer(handle(server, db, reads, cmd))
            except (ValueError, KeyError, TypeError) as e:
                answer({"error": f"bad command {line!r}: {e}"})
    finally:
        server.stop()


if __name__ == "__main__":
    main()
