"""A Sparkplug B edge node for Modbus TCP devices, written the way a plant engineer would
write one in Python: pymodbus's asyncio client, paho-mqtt, and the protobuf bindings of
Eclipse Tahu's sparkplug_b.proto. It is the comparison peer for examples/loadgen.rs
(see README.md next to it), so it does only what uaedge does in that scenario.

Usage (after `bash examples/compare/setup.sh`):
  .build/compare/venv/bin/python examples/compare/python_edge.py --modbus-host 127.0.0.1 \
      --modbus-port P --units 1,2,3 --registers R --start 0 --period-ms 100 \
      --broker-host 127.0.0.1 --broker-port B --group G --node N

Every unit is a device with its own connection and polling task: holding registers
[start, start+R) are read every period with FC3 in requests of at most 125 registers.
Sparkplug: NBIRTH (bdSeq) on connect, a DBIRTH per unit once its first complete read is
in, then DDATA with the registers that changed since the last publish; QoS 1; NDEATH as
the MQTT Will. Logs one line at start and errors only, to stderr.
"""

import argparse
import asyncio
import logging
import signal
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

# setup.sh compiles sparkplug_b.proto into .build/compare/ rather than committing
# generated code.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / ".build" / "compare"))
import sparkplug_b_pb2 as spb  # noqa: E402

MAX_REGS_PER_READ = 125
UINT16 = 6
UINT64 = 8
BOOLEAN = 11

log = logging.getLogger("python_edge")


def now_ms():
    return time.time_ns() // 1_000_000


class EdgeNode:
    def __init__(self, args, loop):
        self.args = args
        self.loop = loop
        self.units = [int(u) for u in args.units.split(",") if u]
        self.prefix = f"spBv1.0/{args.group}"
        self.bd_seq = 0
        self.seq = 0
        self.online = False
        # Units whose DBIRTH went out in the current MQTT session.
        self.born = set()
        # Last values published per unit (None until the unit's first complete read).
        self.published = {u: None for u in self.units}
        self.mqtt = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"python-edge-{args.group}-{args.node}",
            clean_session=True,
        )
        self.mqtt.on_connect = self.on_connect
        self.mqtt.on_disconnect = self.on_disconnect
        self.set_will()

    # --- MQTT session (paho calls these from its network thread) ---

    def set_will(self):
        p = spb.Payload(timestamp=now_ms())
        p.metrics.add(name="bdSeq", datatype=UINT64, long_value=self.bd_seq)
        topic = f"{self.prefix}/NDEATH/{self.args.node}"
        self.mqtt.will_set(topic, p.SerializeToString(), qos=1)

    def on_connect(self, _client, _userdata, _flags, reason_code, _properties):
        if reason_code.is_failure:
            log.error("MQTT connect refused: %s", reason_code)
            return
        # Sparkplug state is touched only from the event loop, so births and data
        # cannot interleave their sequence numbers.
        self.loop.call_soon_threadsafe(self.go_online)

    def on_disconnect(self, _client, _userdata, _flags, reason_code, _properties):
        if reason_code != 0:
            log.error("MQTT connection lost: %s", reason_code)
        self.loop.call_soon_threadsafe(self.go_offline)

    def go_online(self):
        self.online = True
        self.born.clear()
        self.seq = 0
        p = spb.Payload(timestamp=now_ms(), seq=0)
        p.metrics.add(name="bdSeq", datatype=UINT64, long_value=self.bd_seq)
        p.metrics.add(name="Node Control/Rebirth", datatype=BOOLEAN, boolean_value=False)
        self.mqtt.publish(f"{self.prefix}/NBIRTH/{self.args.node}", p.SerializeToString(), qos=1)
        for unit, values in self.published.items():
            if values is not None:
                self.publish_birth(unit, values, now_ms())

    def go_offline(self):
        if not self.online:
            return
        self.online = False
        # The broker has sent (or will send) this session's NDEATH; the next session
        # announces itself with the next bdSeq.
        self.bd_seq = (self.bd_seq + 1) % 256
        self.set_will()

    # --- Sparkplug messages (event loop only) ---

    def next_seq(self):
        self.seq = (self.seq + 1) % 256
        return self.seq

    def publish_birth(self, unit, values, ts):
        p = spb.Payload(timestamp=ts, seq=self.next_seq())
        start = self.args.start
        for i, v in enumerate(values):
            p.metrics.add(name=f"hr{start + i}", datatype=UINT16, int_value=v, timestamp=ts)
        self.mqtt.publish(f"{self.prefix}/DBIRTH/{self.args.node}/unit{unit}", p.SerializeToString(), qos=1)
        self.born.add(unit)

    def on_read(self, unit, values, stamps):
        """A complete read of one unit: `stamps[i]` is when values[i]'s request returned."""
        last = self.published[unit]
        self.published[unit] = values
        if not self.online:
            return
        if unit not in self.born:
            self.publish_birth(unit, values, stamps[-1])
            return
        p = spb.Payload(timestamp=now_ms())
        start = self.args.start
        for i, v in enumerate(values):
            if v != last[i]:
                p.metrics.add(name=f"hr{start + i}", datatype=UINT16, int_value=v, timestamp=stamps[i])
        if p.metrics:
            p.seq = self.next_seq()
            self.mqtt.publish(f"{self.prefix}/DDATA/{self.args.node}/unit{unit}", p.SerializeToString(), qos=1)

    # --- Modbus polling, one task per unit ---

    async def poll(self, unit):
        a = self.args
        chunks = [
            (addr, min(MAX_REGS_PER_READ, a.start + a.registers - addr))
            for addr in range(a.start, a.start + a.registers, MAX_REGS_PER_READ)
        ]
        client = AsyncModbusTcpClient(a.modbus_host, port=a.modbus_port, timeout=2, retries=0)
        period = a.period_ms / 1000
        next_tick = self.loop.time()
        failing = False
        while True:
            try:
                if not client.connected and not await client.connect():
                    raise ModbusException("cannot connect")
                values, stamps = [], []
                for addr, count in chunks:
                    rr = await client.read_holding_registers(addr, count=count, device_id=unit)
                    if rr.isError():
                        raise ModbusException(f"exception response {rr}")
                    ts = now_ms()
                    values.extend(rr.registers)
                    stamps.extend([ts] * count)
                failing = False
                self.on_read(unit, values, stamps)
            except (ModbusException, OSError) as e:
                if not failing:
                    log.error("unit %d: read failed: %s", unit, e)
                failing = True
                client.close()
            next_tick += period
            delay = next_tick - self.loop.time()
            if delay < 0:
                # Overran the period: skip the missed ticks instead of bursting to catch up.
                next_tick = self.loop.time()
                delay = 0
            await asyncio.sleep(delay)

    async def run(self):
        a = self.args
        self.mqtt.connect_async(a.broker_host, a.broker_port, keepalive=30)
        self.mqtt.loop_start()
        log.warning(
            "python edge %s/%s: %d units x %d registers every %d ms from %s:%d to mqtt %s:%d",
            a.group, a.node, len(self.units), a.registers, a.period_ms,
            a.modbus_host, a.modbus_port, a.broker_host, a.broker_port,
        )
        tasks = [asyncio.create_task(self.poll(u)) for u in self.units]
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        for t in tasks:
            t.cancel()
        if self.online:
            # A deliberate shutdown announces its death itself, as Sparkplug asks.
            p = spb.Payload(timestamp=now_ms())
            p.metrics.add(name="bdSeq", datatype=UINT64, long_value=self.bd_seq)
            info = self.mqtt.publish(f"{self.prefix}/NDEATH/{a.node}", p.SerializeToString(), qos=1)
            try:
                info.wait_for_publish(2)
            except (RuntimeError, ValueError) as e:
                log.error("NDEATH not delivered: %s", e)
        self.mqtt.disconnect()
        self.mqtt.loop_stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modbus-host", required=True)
    parser.add_argument("--modbus-port", type=int, required=True)
    parser.add_argument("--units", required=True, help="comma-separated unit ids")
    parser.add_argument("--registers", type=int, required=True)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--period-ms", type=int, default=100)
    parser.add_argument("--broker-host", required=True)
    parser.add_argument("--broker-port", type=int, required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--node", required=True)
    args = parser.parse_args()
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(name)s: %(message)s")
    # pymodbus logs every failed request itself; our own line per failure is enough.
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

    async def run():
        await EdgeNode(args, asyncio.get_running_loop()).run()

    asyncio.run(run())


if __name__ == "__main__":
    main()
