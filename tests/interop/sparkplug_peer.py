"""A Sparkplug B host-side peer built on paho-mqtt and Google's protobuf runtime, with the
bindings compiled at start from Eclipse Tahu's sparkplug_b.proto: an encoder and decoder
we did not write.

Usage: sparkplug_peer.py --port N --proto PATH/sparkplug_b.proto

Subscribes to `spBv1.0/#` (QoS 1), prints {"ready": true} once the SUBACK is in, then one
JSON line per message received: topic, qos, retain, and the decoded payload (STATE as its
JSON). Reads commands from stdin, one JSON object per line:
  {"publish": TOPIC, "metrics": [{"name"|"alias", "datatype": N, "value": V}], "qos": 0|1}
  {"publish": TOPIC, "hex": "..."}                   raw bytes (malformed payloads)
  {"publish": TOPIC, "json": {...}, "retain": true}  a JSON payload (STATE)
Every publish is confirmed with {"published": TOPIC} after its PUBACK (QoS 1).
"""

import argparse
import importlib
import json
import os
import shutil
import sys
import tempfile
import threading

import paho.mqtt.client as mqtt
from grpc_tools import protoc

INT_TYPES = {1: 8, 2: 16, 3: 32}  # signed narrow types, sign-extended in int_value


def load_bindings(proto):
    out = tempfile.mkdtemp(prefix="sparkplug_pb_")
    try:
        folder, name = os.path.split(os.path.abspath(proto))
        rc = protoc.main(["protoc", "-I" + folder, "--python_out=" + out, name])
        if rc != 0:
            raise SystemExit("protoc failed on " + proto)
        sys.path.insert(0, out)
        try:
            return importlib.import_module(name[:-len(".proto")] + "_pb2")
        finally:
            sys.path.remove(out)
    finally:
        # Gone once imported: the tests kill this peer, so an atexit hook would not run.
        shutil.rmtree(out, True)


def signed(v, bits):
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def metric_value(m):
    kind = m.WhichOneof("value")
    if kind is None:
        return None
    v = getattr(m, kind)
    dt = m.datatype
    if dt in INT_TYPES:
        return signed(v, INT_TYPES[dt])
    if dt == 4:  # Int64 in long_value, two's complement
        return signed(v, 64)
    return v


def prop_value(p):
    kind = p.WhichOneof("value")
    return None if kind is None else getattr(p, kind)


def decode(pb, payload):
    p = pb.Payload()
    p.ParseFromString(payload)
    out = {"metrics": []}
    if p.HasField("timestamp"):
        out["timestamp"] = p.timestamp
    if p.HasField("seq"):
        out["seq"] = p.seq
    for m in p.metrics:
        d = {"datatype": m.datatype, "value": metric_value(m)}
        if m.HasField("name"):
            d["name"] = m.name
        if m.HasField("alias"):
            d["alias"] = m.alias
        if m.HasField("timestamp"):
            d["timestamp"] = m.timestamp
        if m.is_historical:
            d["is_historical"] = True
        if m.is_null:
            d["is_null"] = True
        if m.HasField("properties"):
            d["properties"] = {
                k: prop_value(v) for k, v in zip(m.properties.keys, m.properties.values)
            }
        out["metrics"].append(d)
    return out


def encode(pb, metrics):
    p = pb.Payload()
    for spec in metrics:
        m = p.metrics.add()
        if "name" in spec:
            m.name = spec["name"]
        if "alias" in spec:
            m.alias = spec["alias"]
        m.datatype = spec["datatype"]
        v, dt = spec["value"], spec["datatype"]
        if dt in (1, 2, 3, 5, 6, 7):
            m.int_value = v & 0xFFFFFFFF
        elif dt in (4, 8, 13):
            m.long_value = v & 0xFFFFFFFFFFFFFFFF
        elif dt == 9:
            m.float_value = v
        elif dt == 10:
            m.double_value = v
        elif dt == 11:
            m.boolean_value = v
        else:
            m.string_value = v
    return p.SerializeToString()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--proto", required=True)
    args = parser.parse_args()
    pb = load_bindings(args.proto)
    lock = threading.Lock()
    plock = threading.Lock()
    pending = {}

    def emit(obj):
        with lock:
            sys.stdout.write(json.dumps(obj) + "\n")
            sys.stdout.flush()

    def on_connect(client, userdata, flags, reason, properties):
        client.subscribe("spBv1.0/#", qos=1)

    def on_subscribe(client, userdata, mid, reasons, properties):
        emit({"ready": True})

    def on_message(client, userdata, msg):
        rec = {"topic": msg.topic, "qos": msg.qos, "retain": bool(msg.retain)}
        try:
            if "/STATE/" in msg.topic:
                rec["state"] = json.loads(msg.payload)
            else:
                rec.update(decode(pb, msg.payload))
        except Exception as e:  # a payload our decoder rejects is itself a finding
            rec["error"] = str(e)
            rec["hex"] = msg.payload.hex()
        emit(rec)

    def on_publish(client, userdata, mid, reason, properties):
        with plock:
            topic = pending.pop(mid, None)
        emit({"published": topic})

    # A persistent session: a broker restart keeps our subscription and queues what
    # arrives while we reconnect, so the test sees every message in order.
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id="sparkplug-peer", clean_session=False
    )
    client.reconnect_delay_set(min_delay=1, max_delay=1)
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.on_publish = on_publish
    client.connect("127.0.0.1", args.port, keepalive=30)
    client.loop_start()
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        cmd = json.loads(line)
        topic = cmd["publish"]
        if "hex" in cmd:
            data = bytes.fromhex(cmd["hex"])
        elif "json" in cmd:
            data = json.dumps(cmd["json"]).encode()
        else:
            data = encode(pb, cmd["metrics"])
        # Held across publish so the PUBACK callback cannot look before the mid is noted.
        with plock:
            info = client.publish(
                topic, data, qos=cmd.get("qos", 1), retain=cmd.get("retain", False)
            )
            pending[info.mid] = topic
    client.loop_stop()


if __name__ == "__main__":
    main()
