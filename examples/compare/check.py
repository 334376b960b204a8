"""Checks that the comparison peers work, without the load harness: starts mosquitto on a
free port and a pymodbus server whose holding registers change every 100 ms, runs each
peer (python_edge.py, nodered/run.sh) for a while, SIGKILLs it, and decodes everything it
published with the sparkplug_b_pb2 compiled by setup.sh. Exits non-zero if a peer's
births, data, sequence numbers, values or death are wrong.

Usage: .build/compare/venv/bin/python examples/compare/check.py [--seconds 10] [--peer python|nodered]
"""

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / ".build" / "compare"))
import sparkplug_b_pb2 as spb  # noqa: E402

UNITS = [1, 2, 3]
START = 10
REGISTERS = 300  # three requests per unit: 125 + 125 + 50
PERIOD_MS = 100
PEERS = {
    "python": [str(ROOT / ".build/compare/venv/bin/python"), str(ROOT / "examples/compare/python_edge.py")],
    "nodered": ["bash", str(ROOT / "examples/compare/nodered/run.sh")],
}


def register(unit, address, tick):
    """Value of a register at a 100 ms tick: each register steps at its own pace (every
    1 to 4 ticks), so DDATA has to carry only some of them."""
    return (tick // (1 + address % 4) + 1000 * unit + address) & 0xFFFF


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_mosquitto(folder):
    port = free_port()
    conf = Path(folder) / "mosquitto.conf"
    user = "user root\n" if os.getuid() == 0 else ""
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n{user}")
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    raise SystemExit("mosquitto did not start (bash tests/setup.sh installs it)")


def start_modbus():
    """A pymodbus server in a thread of its own; returns its port once it listens."""
    ready = threading.Event()
    port = []

    def action_for(unit):
        async def action(_fc, start_address, address, count, registers, set_values):
            if set_values is None:
                tick = time.time_ns() // 100_000_000
                for a in range(address, address + count):
                    registers[a - start_address] = register(unit, a, tick)
            return None

        return action

    async def serve():
        devices = []
        for unit in UNITS:
            blocks = (
                [SimData(0, values=[False], datatype=DataType.BITS)],
                [SimData(0, values=[False], datatype=DataType.BITS)],
                [SimData(0, values=[0] * (START + REGISTERS), datatype=DataType.REGISTERS)],
                [SimData(0, values=[0], datatype=DataType.REGISTERS)],
            )
            devices.append(SimDevice(unit, simdata=blocks, action=action_for(unit)))
        server = ModbusTcpServer(devices, address=("127.0.0.1", 0))
        await server.serve_forever(background=True)
        port.append(server.transport.sockets[0].getsockname()[1])
        ready.set()
        await server.serving

    threading.Thread(target=lambda: asyncio.run(serve()), daemon=True).start()
    if not ready.wait(10):
        raise SystemExit("pymodbus server did not start")
    return port[0]


class Recorder:
    """Every Sparkplug message of one group, decoded, in arrival order."""

    def __init__(self, broker_port, group):
        self.messages = []
        self.lock = threading.Lock()
        subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"check-{group}")
        self.client.on_connect = lambda c, *_: c.subscribe(f"spBv1.0/{group}/#", qos=1)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = self.on_message
        self.client.connect("127.0.0.1", broker_port)
        self.client.loop_start()
        if not subscribed.wait(10):
            raise SystemExit("subscription to the broker failed")

    def on_message(self, _client, _userdata, msg):
        p = spb.Payload()
        p.ParseFromString(msg.payload)
        with self.lock:
            self.messages.append((msg.topic, p, time.time()))

    def stop(self):
        self.client.loop_stop()
        self.client.disconnect()
        with self.lock:
            return list(self.messages)


def check(messages, group, node):
    """Problems found in what one peer published, plus a summary line."""
    problems = []
    kind_of = lambda topic: topic.split("/")[2]  # noqa: E731
    topics = [t for t, _, _ in messages]
    names = {f"hr{a}" for a in range(START, START + REGISTERS)}
    births = [(t, p) for t, p, _ in messages if kind_of(t) == "NBIRTH"]
    if len(births) != 1 or topics[0] != f"spBv1.0/{group}/NBIRTH/{node}":
        return [f"expected one NBIRTH first, got {topics[:3]}"], ""
    nbirth = births[0][1]
    bd_seq = {m.name: m.long_value for m in nbirth.metrics}.get("bdSeq")
    if nbirth.seq != 0 or bd_seq is None:
        problems.append(f"NBIRTH seq {nbirth.seq}, bdSeq {bd_seq}")

    # Sequence numbers: one counter for the whole edge node, NBIRTH 0, wrapping at 256.
    expected = 0
    for t, p, _ in messages:
        if kind_of(t) == "NDEATH":
            continue
        if p.seq != expected:
            problems.append(f"{t}: seq {p.seq}, expected {expected}")
            break
        expected = (expected + 1) % 256

    ddata = {u: 0 for u in UNITS}
    metrics = {u: 0 for u in UNITS}
    last = {}
    wrong_value = 0
    for t, p, arrived in messages:
        kind = kind_of(t)
        if kind not in ("DBIRTH", "DDATA"):
            continue
        unit = int(t.split("/")[-1].removeprefix("unit"))
        if kind == "DBIRTH":
            got = {m.name for m in p.metrics}
            if unit in {u for (u, _) in last} or got != names:
                problems.append(f"{t}: second DBIRTH or wrong metrics ({len(got)} of {len(names)})")
        elif (unit, f"hr{START}") not in last:
            problems.append(f"{t} before its DBIRTH")
            continue
        else:
            ddata[unit] += 1
            metrics[unit] += len(p.metrics)
        for m in p.metrics:
            if m.datatype != 6 or m.WhichOneof("value") != "int_value" or m.name not in names:
                problems.append(f"{t}: metric {m.name} datatype {m.datatype} {m.WhichOneof('value')}")
                continue
            if kind == "DDATA" and last.get((unit, m.name)) == m.int_value:
                problems.append(f"{t}: {m.name} republished unchanged ({m.int_value})")
            last[(unit, m.name)] = m.int_value
            # The value must be one the server held around the metric's timestamp, which in
            # turn must be at most a second before the message arrived.
            address, tick = int(m.name[2:]), m.timestamp // 100
            if not any(register(unit, address, k) == m.int_value for k in range(tick - 3, tick + 2)):
                wrong_value += 1
            if not arrived * 1000 - 1000 <= m.timestamp <= arrived * 1000 + 100:
                problems.append(f"{t}: {m.name} timestamp {m.timestamp} vs arrival {arrived * 1000:.0f}")
                break
    if wrong_value:
        problems.append(f"{wrong_value} metric values the server never held near their timestamp")
    for u in UNITS:
        if ddata[u] < 5:
            problems.append(f"unit{u}: only {ddata[u]} DDATA")
    deaths = [p for t, p, _ in messages if kind_of(t) == "NDEATH"]
    death_seq = [m.long_value for p in deaths for m in p.metrics if m.name == "bdSeq"]
    if death_seq != [bd_seq]:
        problems.append(f"NDEATH bdSeq {death_seq}, NBIRTH bdSeq {bd_seq}")
    summary = (
        f"{len(messages)} messages: NBIRTH bdSeq={bd_seq}, "
        f"{sum(1 for t in topics if kind_of(t) == 'DBIRTH')} DBIRTH x {len(names)} metrics, "
        + ", ".join(f"unit{u} {ddata[u]} DDATA/{metrics[u]} metrics" for u in UNITS)
        + f", seq ran to {(expected - 1) % 256}, NDEATH bdSeq={death_seq}"
    )
    return problems, summary


def run_peer(name, seconds, modbus_port, broker_port, folder):
    group, node = f"check-{name}", "edge1"
    recorder = Recorder(broker_port, group)
    args = [
        "--modbus-host", "127.0.0.1", "--modbus-port", str(modbus_port),
        "--units", ",".join(map(str, UNITS)), "--registers", str(REGISTERS), "--start", str(START),
        "--period-ms", str(PERIOD_MS), "--broker-host", "127.0.0.1", "--broker-port", str(broker_port),
        "--group", group, "--node", node,
    ]
    # TMPDIR: Node-RED's throwaway user directory goes into our temporary folder, so it is
    # removed even though the peer is killed.
    peer = subprocess.Popen(PEERS[name] + args, env={**os.environ, "TMPDIR": folder})
    time.sleep(seconds)
    # A crash, not a clean stop: the NDEATH that arrives must be the broker's Will.
    peer.send_signal(signal.SIGKILL)
    peer.wait()
    time.sleep(1)
    return check(recorder.stop(), group, node)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--peer", choices=sorted(PEERS), action="append")
    args = parser.parse_args()
    failed = False
    with tempfile.TemporaryDirectory(prefix="compare-check-") as folder:
        broker, broker_port = start_mosquitto(folder)
        try:
            modbus_port = start_modbus()
            for name in args.peer or ["python", "nodered"]:
                problems, summary = run_peer(name, args.seconds, modbus_port, broker_port, folder)
                print(f"{name}: {'FAIL' if problems else 'ok'}: {summary}", flush=True)
                for p in problems[:10]:
                    print(f"  {p}", flush=True)
                failed |= bool(problems)
        finally:
            broker.terminate()
            broker.wait()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
