"""A pymodbus Modbus TCP device whose listener the test can stop and start in-process.

Holding registers 0-1 hold a uint32 (big-endian words) that counts the reads of register 0:
the first read returns 0, the next 1, and so on, across restarts. Every poll therefore sees
a new value, so a sample lost anywhere downstream shows as a gap, and the device's sense
of progress does not depend on anyone's wall clock.

Usage: modbus_counter.py [--port N]
Prints the bound port on stdout once listening. Then reads commands on stdin, one a line:
`stop` closes the listener and every open connection (as a device that reboots), `start`
listens again on the same port; each is answered with `stopped N` / `started N`, N being
the number of stops/starts so far, once done.
"""

import argparse
import asyncio
import logging
import sys

from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice


async def main():
    # A stop cuts requests off mid-flight on purpose; pymodbus would dump frames for each.
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    reads = 0

    async def count_reads(fc, start, address, _count, registers, set_values):
        nonlocal reads
        if set_values is None and fc in (3, 4) and address == 0:
            registers[0 - start] = (reads >> 16) & 0xFFFF
            registers[1 - start] = reads & 0xFFFF
            reads += 1
        return None

    def device():
        blocks = (
            [SimData(0, values=[False], datatype=DataType.BITS)],
            [SimData(0, values=[False], datatype=DataType.BITS)],
            [SimData(0, values=[0, 0, 0, 0], datatype=DataType.REGISTERS)],
            [SimData(0, values=[0], datatype=DataType.REGISTERS)],
        )
        return SimDevice(1, simdata=blocks, action=count_reads)

    # One datastore for the whole run, so the count survives restarts.
    dev = device()

    async def listen(port):
        server = ModbusTcpServer([dev], address=("127.0.0.1", port))
        await server.serve_forever(background=True)
        return server

    server = await listen(args.port)
    port = server.transport.sockets[0].getsockname()[1]
    print(port, flush=True)

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    stops = starts = 0
    while line := await reader.readline():
        cmd = line.decode().strip()
        if cmd == "stop" and server is not None:
            await server.shutdown()
            server = None
            stops += 1
            print(f"stopped {stops}", flush=True)
        elif cmd == "start" and server is None:
            server = await listen(port)
            starts += 1
            print(f"started {starts}", flush=True)
        else:
            print(f"ignored {cmd}", flush=True)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
