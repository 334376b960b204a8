// Writes to stdout the Node-RED flow (flows.json) a user would build by hand in the editor
// for the comparison scenario; generated only because 10k registers are too many to click.
// Same arguments as ../python_edge.py. Per unit (one Modbus device, one modbus-client
// connection): a Modbus-Read node per <=125-register chunk polling every period, all wired
// into one function node that builds Sparkplug payloads with sparkplug-payload; every
// message goes out through one mqtt out node. An inject node connects the broker with the
// NDEATH Will, and a status node on the mqtt out node sends NBIRTH once it is connected.
"use strict";

const MAX_REGS_PER_READ = 125;

function parseArgs(argv) {
  const wanted = ["modbus-host", "modbus-port", "units", "registers", "start", "period-ms",
    "broker-host", "broker-port", "group", "node"];
  const args = { start: "0", "period-ms": "100" };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, "");
    if (!wanted.includes(key) || i + 1 >= argv.length) {
      throw new Error(`unexpected argument ${argv[i]}; expected --${wanted.join(" --")}`);
    }
    args[key] = argv[i + 1];
  }
  for (const key of wanted) {
    if (args[key] === undefined) throw new Error(`missing --${key}`);
  }
  return {
    modbusHost: args["modbus-host"],
    modbusPort: Number(args["modbus-port"]),
    units: args.units.split(",").filter((u) => u !== "").map(Number),
    registers: Number(args.registers),
    start: Number(args.start),
    periodMs: Number(args["period-ms"]),
    brokerHost: args["broker-host"],
    brokerPort: Number(args["broker-port"]),
    group: args.group,
    node: args.node,
  };
}

// Function node bodies. Flow context holds the node-wide Sparkplug state (seq, bdSeq, and
// `birth`, a counter bumped by every NBIRTH, unset while offline) so all nodes share it.

const CONNECT = (a) => `// Connect to the broker with the Sparkplug NDEATH as Will (it carries a binary payload,
// which the broker node's own Will field cannot hold).
const sp = global.get("sparkplug");
const bdSeq = 0;
flow.set("bdSeq", bdSeq);
flow.set("seq", 0);
const death = sp.encodePayload({
    timestamp: Date.now(),
    metrics: [{ name: "bdSeq", type: "UInt64", value: bdSeq }],
});
return {
    action: "connect",
    broker: { will: { topic: "spBv1.0/${a.group}/NDEATH/${a.node}", payload: Buffer.from(death), qos: 1, retain: false } },
};
`;

const BIRTH = (a) => `// NBIRTH whenever the mqtt out node reports a connection; each unit then sends its DBIRTH.
// Headless, Node-RED would only show a broken connection in the editor: log it once.
if (msg.status.fill !== "green") {
    flow.set("birth", undefined);
    if (msg.status.fill === "red" && !context.get("reported")) {
        context.set("reported", true);
        node.error("MQTT broker ${a.brokerHost}:${a.brokerPort}: " + msg.status.text);
    }
    return null;
}
context.set("reported", false);
const sp = global.get("sparkplug");
const now = Date.now();
flow.set("seq", 0);
flow.set("birth", (flow.get("births") || 0) + 1);
flow.set("births", flow.get("birth"));
const payload = sp.encodePayload({
    timestamp: now,
    seq: 0,
    metrics: [
        { name: "bdSeq", type: "UInt64", value: flow.get("bdSeq") },
        { name: "Node Control/Rebirth", type: "Boolean", value: false },
    ],
});
return { topic: "spBv1.0/${a.group}/NBIRTH/${a.node}", payload: Buffer.from(payload), qos: 1 };
`;

const UNIT = (a, unit) => `// Unit ${unit}: holding registers ${a.start}..${a.start + a.registers - 1} arrive in chunks
// (msg.topic = first address of the chunk). DBIRTH once every register has been read,
// then DDATA with the registers that changed.
const FIRST = ${a.start};
const COUNT = ${a.registers};
const sp = global.get("sparkplug");
const now = Date.now();
let st = context.get("state");
if (!st) {
    st = { values: new Array(COUNT), seen: 0, born: undefined };
    context.set("state", st);
}
const base = Number(msg.topic) - FIRST;
const changed = [];
for (let i = 0; i < msg.payload.length; i++) {
    const v = msg.payload[i];
    const old = st.values[base + i];
    if (old === undefined) {
        st.seen++;
    } else if (old !== v) {
        changed.push({ name: "hr" + (FIRST + base + i), type: "UInt16", value: v, timestamp: now });
    }
    st.values[base + i] = v;
}
const birth = flow.get("birth");
if (birth === undefined || st.seen < COUNT) {
    return null;
}
const seq = (flow.get("seq") + 1) % 256;
let kind, metrics;
if (st.born !== birth) {
    st.born = birth;
    kind = "DBIRTH";
    metrics = st.values.map((v, k) => ({ name: "hr" + (FIRST + k), type: "UInt16", value: v, timestamp: now }));
} else if (changed.length > 0) {
    kind = "DDATA";
    metrics = changed;
} else {
    return null;
}
flow.set("seq", seq);
const payload = sp.encodePayload({ timestamp: now, seq, metrics });
return { topic: "spBv1.0/${a.group}/" + kind + "/${a.node}/unit${unit}", payload: Buffer.from(payload), qos: 1 };
`;

function functionNode(id, tab, name, func, wires) {
  return {
    id, type: "function", z: tab, name, func, outputs: 1, timeout: 0, noerr: 0,
    initialize: "", finalize: "", libs: [], x: 500, y: 0, wires: [wires],
  };
}

function flow(a) {
  const tab = "tab.compare";
  const broker = "mqtt.broker";
  const out = "mqtt.out";
  const nodes = [
    { id: tab, type: "tab", label: `Sparkplug edge ${a.group}/${a.node}`, disabled: false, info: "" },
    {
      id: broker, type: "mqtt-broker", name: "plant broker", broker: a.brokerHost, port: String(a.brokerPort),
      clientid: `nodered-edge-${a.group}-${a.node}`, autoConnect: false, usetls: false, protocolVersion: "4",
      keepalive: "30", cleansession: true, autoUnsubscribe: true,
      birthTopic: "", birthQos: "0", birthPayload: "", birthMsg: {},
      closeTopic: "", closeQos: "0", closePayload: "", closeMsg: {},
      willTopic: "", willQos: "0", willPayload: "", willMsg: {},
      userProps: "", sessionExpiry: "",
    },
    { id: out, type: "mqtt out", z: tab, name: "Sparkplug out", topic: "", qos: "1", retain: "false",
      respTopic: "", contentType: "", userProps: "", correl: "", expiry: "", broker, x: 800, y: 0, wires: [] },
    { id: "inject.connect", type: "inject", z: tab, name: "start", props: [{ p: "payload" }], repeat: "",
      crontab: "", once: true, onceDelay: 0.1, topic: "", payload: "", payloadType: "date", x: 100, y: 0,
      wires: [["fn.connect"]] },
    functionNode("fn.connect", tab, "connect with NDEATH will", CONNECT(a), [out]),
    { id: "status.mqtt", type: "status", z: tab, name: "broker state", scope: [out], x: 100, y: 40,
      wires: [["fn.birth"]] },
    functionNode("fn.birth", tab, "NBIRTH", BIRTH(a), [out]),
  ];
  for (const unit of a.units) {
    const client = `modbus.client.${unit}`;
    const fn = `fn.unit.${unit}`;
    nodes.push({
      id: client, type: "modbus-client", name: `unit${unit}`, clienttype: "tcp", bufferCommands: true,
      stateLogEnabled: false, queueLogEnabled: false, failureLogEnabled: true,
      tcpHost: a.modbusHost, tcpPort: String(a.modbusPort), tcpType: "DEFAULT",
      serialPort: "/dev/ttyUSB", serialType: "RTU-BUFFERD", serialBaudrate: "9600", serialDatabits: "8",
      serialStopbits: "1", serialParity: "none", serialConnectionDelay: "100",
      serialAsciiResponseStartDelimiter: "0x3A",
      unit_id: String(unit), commandDelay: "1", clientTimeout: "1000", reconnectOnTimeout: true,
      reconnectTimeout: "2000", parallelUnitIdsAllowed: true,
    });
    nodes.push(functionNode(fn, tab, `unit${unit} to Sparkplug`, UNIT(a, unit), [out]));
    for (let adr = a.start; adr < a.start + a.registers; adr += MAX_REGS_PER_READ) {
      const quantity = Math.min(MAX_REGS_PER_READ, a.start + a.registers - adr);
      nodes.push({
        id: `modbus.read.${unit}.${adr}`, type: "modbus-read", z: tab, name: `unit${unit} hr${adr}`,
        topic: String(adr), showStatusActivities: false, logIOActivities: false, showErrors: true,
        unitid: String(unit), dataType: "HoldingRegister", adr: String(adr), quantity: String(quantity),
        rate: String(a.periodMs), rateUnit: "ms", delayOnStart: false, startDelayTime: "",
        server: client, useIOFile: false, ioFile: "", useIOForPayload: false, emptyMsgOnFail: false,
        x: 200, y: 0, wires: [[fn], []],
      });
    }
  }
  return nodes;
}

try {
  process.stdout.write(JSON.stringify(flow(parseArgs(process.argv.slice(2))), null, 1) + "\n");
} catch (e) {
  process.stderr.write(`make_flow: ${e.message}\n`);
  process.exit(2);
}
