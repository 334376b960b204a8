#!/usr/bin/env python3
"""A Siemens S7 driver for uaedge's `exec` driver (protocol 1, plugins/exec/PROTOCOL.md).

uaedge starts this program and talks to it in JSON lines: requests on stdin, answers on
stdout. Logs go to stderr, where uaedge picks them up with the device's name.

The PLC is reached with python-snap7 (`pip install python-snap7==3.3.0`), over ISO-on-TCP
as any S7-300/400/1200/1500 with PUT/GET access allowed. Its address comes from the
environment, which uaedge sets from the device's `env:` option:

    S7_HOST     the PLC's address (required)
    S7_PORT     TCP port (default 102)
    S7_RACK     rack (default 0)
    S7_SLOT     slot (default 1; 2 for most S7-300 CPUs)
    S7_TIMEOUT  seconds to wait for the PLC to connect or answer (default 2)

Tag addresses (data blocks only; the tag's `type` says how the bytes are read):

    DB1.DBX0.0     one bit                    bool
    DB1.DBB1       one byte                   uint8, int8
    DB1.DBW2       a word (2 bytes)           int16, uint16
    DB1.DBD4       a double word (4 bytes)    int32, uint32, float32 (REAL)
    DB1.DBL12      8 bytes                    int64, uint64, float64 (LREAL)
    DB1.DBS20.16   an S7 STRING[16] at byte 20 (2 header bytes + 16 characters)  string

S7 stores every value big-endian. Each poll reads, for every data block, the bytes from
its first tag to the end of its last in one request.
"""

import json
import logging
import math
import os
import re
import socket
import struct
import sys

from snap7.client import Client
from snap7.error import S7ConnectionError, S7Error, S7PacketLostError, S7TimeoutError

VERSION = "1.0"

log = logging.getLogger("s7")

# The tag types this driver serves on byte, word, double word and 8-byte addresses, as
# Python struct formats ('>' = big-endian, as S7 stores them).
NUMBER_FORMATS = {
    "int8": ">b",
    "uint8": ">B",
    "int16": ">h",
    "uint16": ">H",
    "int32": ">i",
    "uint32": ">I",
    "float32": ">f",
    "int64": ">q",
    "uint64": ">Q",
    "float64": ">d",
}
WIDTHS = {"B": 1, "W": 2, "D": 4, "L": 8}

BIT_ADDRESS = re.compile(r"DB(\d+)\.DBX(\d+)\.(\d+)")
NUMBER_ADDRESS = re.compile(r"DB(\d+)\.DB([BWDL])(\d+)")
STRING_ADDRESS = re.compile(r"DB(\d+)\.DBS(\d+)\.(\d+)")


class ConfigError(Exception):
    """A tag this driver cannot serve: reported in the `configure` answer."""


class WriteError(Exception):
    """A write that failed; `kind` is the protocol's error kind."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind


class Tag:
    """One configured tag: where its bytes are in which data block, and how to read them."""

    def __init__(self, index, name, type_, address, writable):
        self.index = index
        self.name = name
        self.type = type_
        self.writable = writable
        self.bit = None  # for bool tags
        self.max_length = None  # for string tags
        self.db, self.start, self.size = self.parse(str(address or "").strip().upper(), type_)

    def parse(self, address, type_):
        """(data block, first byte, byte count) of `address`, or ConfigError."""
        if m := BIT_ADDRESS.fullmatch(address):
            db, byte, bit = (int(g) for g in m.groups())
            if bit > 7:
                raise ConfigError(f"{address}: the bit must be 0..7")
            if type_ != "bool":
                raise ConfigError(f"{address} is a bit: its type must be bool, not {type_}")
            self.bit = bit
            size = 1
        elif m := NUMBER_ADDRESS.fullmatch(address):
            db, letter, byte = int(m[1]), m[2], int(m[3])
            size = WIDTHS[letter]
            fits = [t for t, f in NUMBER_FORMATS.items() if struct.calcsize(f) == size]
            if type_ not in fits:
                raise ConfigError(
                    f"{address} is {size} byte(s) wide: its type must be {' or '.join(fits)}, not {type_}"
                )
        elif m := STRING_ADDRESS.fullmatch(address):
            db, byte, max_length = (int(g) for g in m.groups())
            if not 1 <= max_length <= 254:
                raise ConfigError(f"{address}: an S7 STRING holds 1..254 characters")
            if type_ != "string":
                raise ConfigError(f"{address} is a STRING: its type must be string, not {type_}")
            self.max_length = max_length
            size = 2 + max_length
        else:
            raise ConfigError(
                f"{address!r} is not an S7 address this driver reads "
                "(DB<n>.DBX<byte>.<bit>, DB<n>.DBB|DBW|DBD|DBL<byte> or DB<n>.DBS<byte>.<length>)"
            )
        if not 1 <= db <= 65535:
            raise ConfigError(f"{address}: data blocks are numbered 1..65535")
        if byte + size > 65536:
            raise ConfigError(f"{address}: beyond the 64 KiB a data block can address")
        return db, byte, size

    def decode(self, data):
        """The JSON value of this tag's bytes."""
        if self.bit is not None:
            return bool(data[0] >> self.bit & 1)
        if self.max_length is not None:
            # S7 STRING: maximum length, actual length, then the characters (one byte each).
            length = min(data[1], self.max_length)
            return data[2 : 2 + length].decode("latin-1")
        value = struct.unpack(NUMBER_FORMATS[self.type], data)[0]
        if isinstance(value, float) and not math.isfinite(value):
            return "NaN" if math.isnan(value) else ("inf" if value > 0 else "-inf")
        return value

    def encode(self, value):
        """The bytes to write for `value` (for a bool: the bit's value), or WriteError."""

        def mismatch(why):
            return WriteError("type_mismatch", f"{self.name}: {value!r} {why}")

        if self.type == "bool":
            if not isinstance(value, bool):
                raise mismatch("is not a bool")
            return value
        if self.type == "string":
            if not isinstance(value, str):
                raise mismatch("is not a string")
            try:
                text = value.encode("latin-1")
            except UnicodeEncodeError:
                raise mismatch("has characters an S7 STRING cannot hold (Latin-1 only)") from None
            if len(text) > self.max_length:
                raise mismatch(f"is longer than the STRING's {self.max_length} characters")
            # From the length byte on: the PLC's declared maximum (byte 0) is left alone.
            return bytes([len(text)]) + text
        fmt = NUMBER_FORMATS[self.type]
        if self.type.startswith("float"):
            if isinstance(value, str) and value in ("NaN", "inf", "-inf"):
                value = float(value)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise mismatch(f"is not a number for {self.type}")
        else:
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if isinstance(value, bool) or not isinstance(value, int):
                raise mismatch(f"is not an integer for {self.type}")
        try:
            return struct.pack(fmt, value)
        except (struct.error, OverflowError):
            raise mismatch(f"does not fit {self.type}") from None


class Plc:
    """The connection to the PLC: made when first needed, dropped on a connection error
    and made again at the next read or write."""

    def __init__(self, host, port, rack, slot, timeout):
        self.host, self.port, self.rack, self.slot = host, port, rack, slot
        self.timeout = timeout
        self.client = None
        self.last_failure = None  # logged once, not at every poll

    def connect(self):
        """The connected client, or S7ConnectionError."""
        if self.client is not None:
            return self.client
        try:
            # python-snap7 waits a fixed 5 s for a PLC that does not answer, as long as
            # uaedge's default request_timeout: a quick TCP probe first keeps an
            # unreachable PLC's cost to S7_TIMEOUT.
            socket.create_connection((self.host, self.port), timeout=self.timeout).close()
            client = Client()
            client.connect(self.host, self.rack, self.slot, self.port)
            # ...and the same limit for each answer of a PLC that stops answering.
            client.connection.socket.settimeout(self.timeout)
        except (OSError, S7Error) as e:
            where = f"{self.host}:{self.port} (rack {self.rack}, slot {self.slot})"
            failure = f"cannot connect to {where}: {e}"
            if failure != self.last_failure:
                log.warning("%s; trying again at each read", failure)
                self.last_failure = failure
            raise S7ConnectionError(failure) from None
        log.info("connected to %s:%s (rack %s, slot %s)", self.host, self.port, self.rack, self.slot)
        self.client, self.last_failure = client, None
        return client

    def drop(self, error):
        log.warning("connection to %s:%s lost: %s", self.host, self.port, error)
        self.close()

    def close(self):
        if self.client is not None:
            try:
                self.client.disconnect()
            except (OSError, S7Error):
                pass
            self.client = None


# The errors that mean the link is gone or out of step (rather than the PLC refusing one
# request): the connection is dropped and made again.
LINK_ERRORS = (S7ConnectionError, S7TimeoutError, S7PacketLostError, OSError)


class Driver:
    def __init__(self, plc):
        self.plc = plc
        self.tags = {}  # index -> Tag, only the ones this driver serves
        self.tag_by_tag = set()  # DBs whose span the PLC refused: read tag by tag

    def configure(self, request):
        self.tags, self.tag_by_tag = {}, set()
        tag_errors = []
        for t in request.get("tags", []):
            try:
                tag = Tag(t["tag"], t["name"], t["type"], t["address"], t.get("writable", False))
            except ConfigError as e:
                tag_errors.append({"tag": t["tag"], "message": str(e)})
                continue
            self.tags[tag.index] = tag
        log.info("%d tag(s) configured, %d refused", len(self.tags), len(tag_errors))
        answer = {"type": "ok", "id": request["id"]}
        if tag_errors:
            answer["tag_errors"] = tag_errors
        return answer

    def read(self, request):
        by_db = {}
        for tag in self.tags.values():
            by_db.setdefault(tag.db, []).append(tag)
        readings = []
        try:
            client = self.plc.connect()
            for db, tags in sorted(by_db.items()):
                readings += self.read_db(client, db, tags)
        except LINK_ERRORS as e:
            # Unreachable, or lost during this poll: the tags not read yet turn Bad, and the
            # next read tries to connect again.
            if self.plc.client is not None:
                self.plc.drop(e)
            done = {r["tag"] for r in readings}
            readings += [
                bad(t, "not_connected", str(e)) for t in self.tags.values() if t.index not in done
            ]
        return {"type": "readings", "id": request["id"], "readings": readings}

    def read_db(self, client, db, tags):
        """Readings of one data block's tags, from one request for the span they cover."""
        if db in self.tag_by_tag:
            return [self.read_one(client, tag) for tag in tags]
        start = min(t.start for t in tags)
        end = max(t.start + t.size for t in tags)
        try:
            data = client.db_read(db, start, end - start)
        except LINK_ERRORS:
            raise
        except S7Error as e:
            # The PLC refused the span (a tag beyond the end of the DB, a DB that does not
            # exist): from now on read this DB tag by tag, so that only the tags at fault
            # turn Bad.
            log.warning("DB%d bytes %d..%d refused (%s): reading its tags one by one",
                        db, start, end, e)
            self.tag_by_tag.add(db)
            return [self.read_one(client, tag) for tag in tags]
        return [good(tag, data[tag.start - start : tag.start - start + tag.size]) for tag in tags]

    def read_one(self, client, tag):
        try:
            data = client.db_read(tag.db, tag.start, tag.size)
        except LINK_ERRORS:
            raise
        except S7Error as e:
            where = f"DB{tag.db} bytes {tag.start}..{tag.start + tag.size}"
            return bad(tag, "device_failure", f"{where}: {e}")
        return good(tag, data)

    def write(self, request):
        tag = self.tags.get(request.get("tag"))
        if tag is None:
            raise WriteError("rejected", f"tag {request.get('tag')} has no address this driver serves")
        if not tag.writable:
            raise WriteError("not_writable", f"{tag.name} is not writable")
        encoded = tag.encode(request.get("value"))
        try:
            client = self.plc.connect()
        except S7ConnectionError as e:
            raise WriteError("not_connected", str(e)) from None
        try:
            if tag.bit is not None:
                # Read the byte, set or clear the bit, write the byte back (as python-snap7's
                # db_write_bool does). Not atomic: a bit the PLC program changes in the same
                # byte between the two requests is overwritten.
                byte = client.db_read(tag.db, tag.start, 1)
                mask = 1 << tag.bit
                byte[0] = (byte[0] | mask) if encoded else (byte[0] & ~mask)
                client.db_write(tag.db, tag.start, byte)
            elif tag.max_length is not None:
                client.db_write(tag.db, tag.start + 1, bytearray(encoded))
            else:
                client.db_write(tag.db, tag.start, bytearray(encoded))
        except LINK_ERRORS as e:
            self.plc.drop(e)
            raise WriteError("not_connected", str(e)) from None
        except S7Error as e:
            raise WriteError("rejected", f"the PLC refused the write to {tag.name}: {e}") from None
        log.info("wrote %r to %s", request.get("value"), tag.name)
        return {"type": "ok", "id": request["id"]}


def good(tag, data):
    return {"tag": tag.index, "value": tag.decode(bytes(data))}


def bad(tag, reason, error):
    return {"tag": tag.index, "quality": "bad", "reason": reason, "error": error}


def send(message):
    # One JSON object a line; json.dumps escapes every newline inside strings.
    sys.stdout.write(json.dumps(message, allow_nan=False) + "\n")
    sys.stdout.flush()


def plc_from_environment():
    """The Plc of S7_HOST, S7_PORT, ...; ValueError with what is wrong."""
    host = os.environ.get("S7_HOST", "").strip()
    if not host:
        raise ValueError("S7_HOST is not set: give the PLC's address in the device's env option")
    numbers = {}
    for name, default in [("S7_PORT", 102), ("S7_RACK", 0), ("S7_SLOT", 1), ("S7_TIMEOUT", 2.0)]:
        text = os.environ.get(name, "").strip()
        try:
            numbers[name] = type(default)(text) if text else default
        except ValueError:
            raise ValueError(f"{name}={text!r} is not a number") from None
    return Plc(host, numbers["S7_PORT"], numbers["S7_RACK"], numbers["S7_SLOT"],
               numbers["S7_TIMEOUT"])


def main():
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(message)s")
    logging.getLogger("snap7").setLevel(logging.WARNING)

    send({"type": "hello", "protocol": 1, "driver": "s7", "version": VERSION,
          "read": True, "write": True, "push": False})
    try:
        driver, setup_error = Driver(plc_from_environment()), None
    except ValueError as e:
        driver, setup_error = None, str(e)
        log.error("%s", setup_error)

    # uaedge sends one request at a time and waits for its answer; it closes stdin to stop us.
    for line in sys.stdin:
        try:
            request = json.loads(line)
            kind, request_id = request["type"], request["id"]
        except (ValueError, TypeError, KeyError):
            log.error("not a request: %.200s", line)
            continue
        try:
            if setup_error:
                send({"type": "error", "id": request_id, "kind": "rejected", "message": setup_error})
            elif kind == "configure":
                send(driver.configure(request))
            elif kind == "read":
                send(driver.read(request))
            elif kind == "write":
                try:
                    send(driver.write(request))
                except WriteError as e:
                    log.warning("write refused (%s): %s", e.kind, e)
                    send({"type": "error", "id": request_id, "kind": e.kind, "message": str(e)})
            else:
                log.error("unknown request type %r", kind)
                send({"type": "error", "id": request_id, "kind": "rejected",
                      "message": f"unknown request {kind!r}"})
        except BrokenPipeError:
            break
        except Exception as e:  # a bug here: say so, and let uaedge restart the driver
            log.exception("%s request failed", kind)
            send({"type": "error", "id": request_id, "kind": "rejected",
                  "message": f"driver error: {e}"})
    if driver is not None:
        driver.plc.close()


if __name__ == "__main__":
    main()
