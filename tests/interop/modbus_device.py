"""A Modbus TCP device built on pymodbus, an implementation we did not write.

The Rust test describes the device's contents as JSON (register values by type and byte
order); this script lays them into pymodbus's own datastore using pymodbus's own
converters, so the encoding the driver must decode comes from an independent source.

Usage: modbus_device.py --spec SPEC.json --log REQUESTS.log [--port N]
Prints the bound port on stdout once listening, then logs to stderr only. Every request is
appended to the log as `unit fc address count [written values]`, so tests can count
requests (coalescing) and inspect writes.
"""

import argparse
import asyncio
import json
import sys

from pymodbus.client import ModbusTcpClient
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

DT = ModbusTcpClient.DATATYPE
TYPES = {
    "int16": DT.INT16,
    "uint16": DT.UINT16,
    "int32": DT.INT32,
    "uint32": DT.UINT32,
    "int64": DT.INT64,
    "uint64": DT.UINT64,
    "float32": DT.FLOAT32,
    "float64": DT.FLOAT64,
}


def swap_bytes(regs):
    return [((r & 0xFF) << 8) | (r >> 8) for r in regs]


def encode(entry):
    """Registers for one value, in the entry's byte order (ABCD, CDAB, BADC, DCBA)."""
    kind, value, order = entry["type"], entry["value"], entry.get("order", "ABCD")
    if kind in ("int8", "uint8"):
        return [value & 0xFF]
    if kind == "string":
        regs = ModbusTcpClient.convert_to_registers(value, DT.STRING)
        return regs + [0] * (entry["length"] // 2 + entry["length"] % 2 - len(regs))
    word_order = "little" if order in ("CDAB", "DCBA") else "big"
    regs = ModbusTcpClient.convert_to_registers(value, TYPES[kind], word_order=word_order)
    if order in ("BADC", "DCBA"):
        regs = swap_bytes(regs)
    return regs


def unit_blocks(unit):
    """pymodbus SimData blocks for one unit id: (coils, discrete, holding, input)."""
    blocks = []
    for table in ("co", "di"):
        # pymodbus wants every table to hold something; one unused entry is harmless.
        size = max(unit.get(table + "_size", 0), 1)
        bits = [False] * size
        for address, value in unit.get(table, []):
            bits[address] = bool(value)
        blocks.append([SimData(0, values=bits, datatype=DataType.BITS)])
    for table in ("hr", "ir"):
        size = max(unit.get(table + "_size", 0), 1)
        regs = [0] * size
        for entry in unit.get(table, []):
            if entry["type"] == "bit":
                regs[entry["address"]] |= (1 if entry["value"] else 0) << entry["bit"]
                continue
            for i, r in enumerate(encode(entry)):
                regs[entry["address"] + i] = r
        blocks.append([SimData(0, values=regs, datatype=DataType.REGISTERS)])
    return tuple(blocks)


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--spec", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    with open(args.spec) as f:
        spec = json.load(f)
    log = open(args.log, "a", buffering=1)

    def action_for(unit_id):
        async def action(fc, _start, address, count, _regs, set_values):
            written = "" if set_values is None else " " + " ".join(str(int(v)) for v in set_values)
            log.write(f"{unit_id} {fc} {address} {count}{written}\n")
            return None

        return action

    devices = [
        SimDevice(int(uid), simdata=unit_blocks(unit), action=action_for(int(uid)))
        for uid, unit in spec["units"].items()
    ]
    server = ModbusTcpServer(devices, address=("127.0.0.1", args.port))
    await server.serve_forever(background=True)
    port = server.transport.sockets[0].getsockname()[1]
    print(port, flush=True)
    await server.serving


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
