// An OPC UA client on node-opcua, a stack we did not write, driven by the Rust tests one
// JSON command per stdin line; each answer is one JSON line on stdout. Same protocol as
// opcua_o6.py (see its docstring for the commands): connect, browse, read, subscribe,
// changes, write, disconnect. node-opcua's own modules come from tests/interop/node (pinned
// by its package-lock.json), installed by tests/setup.sh under .build/node and found
// through NODE_PATH, which is why this is a CommonJS script (ESM ignores NODE_PATH).
//
// Events (as opcua_scada.py has them, with node-opcua's own filter helper):
//   events     {node?: notifier (default i=2253), fields: ["EventId", "AckedState.Id",
//              "ConditionId", ...]} -> {subscription, status}; `constructEventFilter`
//              selects each on BaseEventType, ConditionId as Part 9 says (ConditionType,
//              no browse path, the NodeId attribute)
//   event_list {timeout} -> {events: [{field: value}]} (field names with `/` for `.`)
//   call       {object, method, args: [[variant, value]]} -> {status}
//
// History (Part 11), times in µs since 1970 (node-opcua's Date keeps ms; the rest travels in
// the Date's `picoseconds` one way and the DataValue's sourcePicoseconds the other):
//   history_raw {node, start_us?, end_us?, num?, bounds?, max_pages?}
//              -> {values: [{value, status, source_us}], pages: [count per answer],
//                  statuses: [status per answer]}
//              HistoryRead (ReadRawModifiedDetails, not modified, TimestampsToReturn Both)
//              through session.historyRead, one request per page, following the
//              continuation points; one still held after `max_pages` is released
//   history_read_value {node, start_us, end_us} -> {status, values} node-opcua's own
//              session.readHistoryValue, one call (bounds on, Both, no paging)
//
// Extra to the shared protocol: connect takes `pki`, the folder where node-opcua's
// certificate manager keeps what it needs (it trusts the server's certificate on first
// sight there); without it, a temporary folder removed at exit. subscribe takes
// `disabled: true` (items created with MonitoringMode Disabled), and
//   set_mode   {mode: "Disabled"|"Sampling"|"Reporting"} -> {results: [status per item]}
//              each item's setMonitoringMode
"use strict";

const fs = require("fs");
const os = require("os");
const path = require("path");
const readline = require("readline");

// node-opcua logs (warnings included) with console.log: keep stdout for the answers.
const answer = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
console.log = console.info = console.warn = console.debug = console.error;

const {
  AttributeIds,
  BrowseDirection,
  ClientSubscription,
  DataType,
  HistoryReadRequest,
  MessageSecurityMode,
  MonitoringMode,
  NodeClass,
  NodeId,
  OPCUAClient,
  ReadRawModifiedDetails,
  SecurityPolicy,
  TimestampsToReturn,
  UserTokenType,
  VariantArrayType,
  coerceNodeId,
  constructEventFilter,
} = require("node-opcua-client");
const { OPCUACertificateManager } = require("node-opcua-certificate-manager");

const DEFAULT_URI = "urn:uaedge:tests:node-opcua-client";
const OPC_UA_NS = "http://opcfoundation.org/UA/";
const { NodeIdType } = NodeId;
const ID_PREFIX = {
  [NodeIdType.NUMERIC]: "i",
  [NodeIdType.STRING]: "s",
  [NodeIdType.GUID]: "g",
  [NodeIdType.BYTESTRING]: "b",
};

let client = null;
let session = null;
let subscription = null;
let monitored = [];
let namespaces = [];
let tempPki = null;
// Queued data changes, and the `changes` command waiting for the next one, if any.
const queued = [];
let wake = null;
// The same for events.
let eventSubscription = null;
const events = [];
let wakeEvents = null;

const seconds = (date) => (date ? date.getTime() / 1000 : null);

function plain(variant) {
  if (!variant || variant.dataType === DataType.Null) return null;
  const v = variant.value;
  if (variant.arrayType === VariantArrayType.Array && v) {
    return Array.from(v, (x) => plain({ dataType: variant.dataType, value: x }));
  }
  if (v instanceof Date) return seconds(v);
  // 64-bit integers come as [high, low] 32-bit words.
  if (variant.dataType === DataType.UInt64 || variant.dataType === DataType.Int64) {
    const big = (BigInt.asIntN(32, BigInt(v[0])) << 32n) | BigInt(v[1] >>> 0);
    return Number(variant.dataType === DataType.UInt64 ? BigInt.asUintN(64, big) : big);
  }
  if (Buffer.isBuffer(v)) return v.toString("hex");
  if (variant.dataType === DataType.NodeId) return nodeText(v);
  if (variant.dataType === DataType.LocalizedText) return v.text ?? null;
  if (variant.dataType === DataType.StatusCode) return v.name;
  if (typeof v === "number" || typeof v === "string" || typeof v === "boolean") return v;
  return String(v);
}

function dataValue(dv) {
  const empty = !dv.value || dv.value.dataType === DataType.Null;
  return {
    value: plain(dv.value),
    variant: empty ? null : DataType[dv.value.dataType],
    status: dv.statusCode.name,
    source: seconds(dv.sourceTimestamp),
    server: seconds(dv.serverTimestamp),
  };
}

// µs since 1970 -> a Date whose `picoseconds` carry the µs node-opcua encodes past the ms;
// none -> OPC UA's null time (node-opcua sends its minimum date as 0).
function usDate(us) {
  if (us === undefined || us === null) return null;
  const ms = Math.floor(us / 1000);
  const date = new Date(ms);
  date.picoseconds = (us - ms * 1000) * 1e6;
  return date;
}

// A DataValue read from history, its source time in µs.
function historyValue(dv) {
  const source = dv.sourceTimestamp;
  const us = source && source.getTime() * 1000 + Math.floor((dv.sourcePicoseconds || 0) / 1e6);
  return { value: plain(dv.value), status: dv.statusCode.name, source_us: source ? us : null };
}

const historyValues = (result) => (result.historyData && result.historyData.dataValues) || [];

// `nsu=<uri>;s=...` -> a NodeId with the server's index for that URI.
function node(text) {
  const m = /^nsu=([^;]*);(.*)$/.exec(text);
  if (!m) return coerceNodeId(text);
  const index = namespaces.indexOf(m[1]);
  if (index < 0) throw new Error(`the server has no namespace ${m[1]}`);
  return coerceNodeId(`ns=${index};${m[2]}`);
}

// A (Expanded)NodeId from the server -> `i=85` or `nsu=<uri>;s=...`.
function nodeText(id) {
  const value = Buffer.isBuffer(id.value) ? id.value.toString("hex") : String(id.value);
  const ident = `${ID_PREFIX[id.identifierType]}=${value}`;
  const uri = id.namespaceUri || namespaces[id.namespace];
  return id.namespace === 0 || uri === OPC_UA_NS ? ident : `nsu=${uri};${ident}`;
}

const ops = {
  async connect(cmd) {
    await ops.disconnect();
    let security = ["None", "None"];
    if (cmd.security && cmd.security !== "None") security = cmd.security.split(",");
    let pki = cmd.pki;
    if (!pki) {
      tempPki = tempPki || fs.mkdtempSync(path.join(os.tmpdir(), "uaedge-node-opcua-"));
      pki = tempPki;
    }
    const certificateManager = new OPCUACertificateManager({
      rootFolder: pki,
      automaticallyAcceptUnknownCertificate: true,
    });
    const options = {
      applicationUri: cmd.uri || DEFAULT_URI,
      clientCertificateManager: certificateManager,
      securityPolicy: SecurityPolicy[security[0]],
      securityMode: MessageSecurityMode[security[1]],
      endpointMustExist: false,
      // Fail at once rather than retry forever: the test decides what to do next.
      connectionStrategy: { maxRetry: 0, initialDelay: 100, maxDelay: 200 },
      requestedSessionTimeout: 60000,
    };
    if (cmd.cert) {
      options.certificateFile = cmd.cert;
      options.privateKeyFile = cmd.key;
    }
    if (options.securityPolicy === undefined || options.securityMode === undefined) {
      throw new Error(`unknown security ${cmd.security}`);
    }
    const c = OPCUAClient.create(options);
    await c.connect(cmd.url);
    try {
      const identity = cmd.user
        ? { type: UserTokenType.UserName, userName: cmd.user, password: cmd.password || "" }
        : { type: UserTokenType.Anonymous };
      session = await c.createSession(identity);
    } catch (e) {
      await c.disconnect();
      throw e;
    }
    client = c;
    namespaces = await session.readNamespaceArray();
    return { ok: true };
  },

  async browse(cmd) {
    const result = await session.browse({
      nodeId: node(cmd.node),
      browseDirection: BrowseDirection.Forward,
      referenceTypeId: "HierarchicalReferences",
      includeSubtypes: true,
      resultMask: 0x3f,
    });
    if (result.statusCode.isNotGood()) return { error: result.statusCode.name };
    return {
      references: (result.references || []).map((r) => ({
        name: r.browseName.name,
        nodeid: nodeText(r.nodeId),
        class: NodeClass[r.nodeClass],
      })),
    };
  },

  async read(cmd) {
    const values = await session.read(
      cmd.nodes.map((n) => ({ nodeId: node(n), attributeId: AttributeIds.Value })),
      0,
    );
    return { values: values.map(dataValue) };
  },

  async subscribe(cmd) {
    const interval = cmd.interval || 100;
    if (!subscription) {
      subscription = await session.createSubscription2({
        requestedPublishingInterval: interval,
        requestedLifetimeCount: 600,
        requestedMaxKeepAliveCount: 10,
        maxNotificationsPerPublish: 0,
        publishingEnabled: true,
        priority: 1,
      });
    }
    const results = [];
    for (const text of cmd.nodes) {
      try {
        const item = await subscription.monitor(
          { nodeId: node(text), attributeId: AttributeIds.Value },
          { samplingInterval: interval, queueSize: 10, discardOldest: true },
          TimestampsToReturn.Both,
          cmd.disabled ? MonitoringMode.Disabled : MonitoringMode.Reporting,
        );
        monitored.push(item);
        item.on("changed", (dv) => {
          queued.push({ ...dataValue(dv), nodeid: text });
          if (wake) wake();
        });
        results.push(item.statusCode.name);
      } catch (e) {
        results.push(e.message);
      }
    }
    return { results };
  },

  async set_mode(cmd) {
    const mode = MonitoringMode[cmd.mode];
    if (mode === undefined) return { error: `unknown mode ${cmd.mode}` };
    const results = [];
    for (const item of monitored) results.push((await item.setMonitoringMode(mode)).name);
    return { results };
  },

  async changes(cmd) {
    if (queued.length === 0) {
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, (cmd.timeout ?? 5) * 1000);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = null;
    }
    return { changes: queued.splice(0) };
  },

  async write(cmd) {
    const dataType = DataType[cmd.variant];
    if (dataType === undefined) return { error: `unsupported variant ${cmd.variant}` };
    const status = await session.write({
      nodeId: node(cmd.node),
      attributeId: AttributeIds.Value,
      value: { value: { dataType, value: cmd.value } },
    });
    return { status: status.name };
  },

  async events(cmd) {
    if (!eventSubscription) {
      eventSubscription = await session.createSubscription2({
        requestedPublishingInterval: cmd.publishing || 100,
        requestedLifetimeCount: 600,
        requestedMaxKeepAliveCount: 10,
        maxNotificationsPerPublish: 0,
        publishingEnabled: true,
        priority: 1,
      });
    }
    const names = cmd.fields.map((f) => f.replace(/\//g, "."));
    const filter = constructEventFilter(names);
    const item = await eventSubscription.monitor(
      { nodeId: node(cmd.node || "i=2253"), attributeId: AttributeIds.EventNotifier },
      { queueSize: 1000, filter, discardOldest: true },
      TimestampsToReturn.Neither,
    );
    item.on("changed", (fields) => {
      const entry = {};
      cmd.fields.forEach((name, i) => {
        entry[name] = plain(fields[i]);
      });
      entry.received = Date.now() / 1000;
      events.push(entry);
      if (wakeEvents) wakeEvents();
    });
    return { subscription: eventSubscription.subscriptionId, status: item.statusCode.name };
  },

  async event_list(cmd) {
    if (events.length === 0) {
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, (cmd.timeout ?? 5) * 1000);
        wakeEvents = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wakeEvents = null;
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    return { events: events.splice(0) };
  },

  async call(cmd) {
    const inputArguments = (cmd.args || []).map(([kind, value]) => {
      if (kind === "ByteString") return { dataType: DataType.ByteString, value: Buffer.from(value, "hex") };
      if (kind === "LocalizedText") return { dataType: DataType.LocalizedText, value: { text: value } };
      return { dataType: DataType[kind], value };
    });
    const result = await session.call({
      objectId: node(cmd.object),
      methodId: node(cmd.method),
      inputArguments,
    });
    return { status: result.statusCode.name };
  },

  async history_raw(cmd) {
    const nodeId = node(cmd.node);
    const request = (continuationPoint, release) =>
      new HistoryReadRequest({
        historyReadDetails: new ReadRawModifiedDetails({
          isReadModified: false,
          startTime: usDate(cmd.start_us),
          endTime: usDate(cmd.end_us),
          numValuesPerNode: cmd.num || 0,
          returnBounds: !!cmd.bounds,
        }),
        timestampsToReturn: TimestampsToReturn.Both,
        releaseContinuationPoints: release,
        nodesToRead: [{ nodeId, continuationPoint }],
      });
    const values = [];
    const pages = [];
    const statuses = [];
    let cp = null;
    for (let page = 0; page < (cmd.max_pages ?? 1000000); page++) {
      const response = await session.historyRead(request(cp, false));
      const [result] = response.results || [];
      if (!result) {
        return { error: "no result", status: response.responseHeader.serviceResult.name };
      }
      statuses.push(result.statusCode.name);
      const got = historyValues(result);
      pages.push(got.length);
      for (const dv of got) values.push(historyValue(dv));
      cp = result.continuationPoint?.length ? result.continuationPoint : null;
      if (!cp) break;
    }
    if (cp) await session.historyRead(request(cp, true));
    return { values, pages, statuses };
  },

  async history_read_value(cmd) {
    const [start, end] = [usDate(cmd.start_us), usDate(cmd.end_us)];
    const result = await session.readHistoryValue(node(cmd.node), start, end);
    return { status: result.statusCode.name, values: historyValues(result).map(historyValue) };
  },

  async disconnect() {
    const [c, s] = [client, session];
    client = session = subscription = eventSubscription = null;
    monitored = [];
    queued.length = 0;
    events.length = 0;
    if (s) await s.close(true);
    if (c) await c.disconnect();
    return { ok: true };
  },
};

async function main() {
  process.on("unhandledRejection", (e) => console.error("unhandled rejection:", e));
  process.stdout.write("ready\n");
  const lines = readline.createInterface({ input: process.stdin, terminal: false });
  for await (const line of lines) {
    if (!line.trim()) continue;
    let reply;
    try {
      const cmd = JSON.parse(line);
      const op = Object.hasOwn(ops, cmd.op) ? ops[cmd.op] : null;
      reply = op ? await op(cmd) : { error: `unknown op ${cmd.op}` };
    } catch (e) {
      // The Rust side shows it in the assertion message.
      reply = { error: String((e && e.message) || e) };
    }
    answer(reply);
  }
  try {
    await ops.disconnect();
  } finally {
    if (tempPki) fs.rmSync(tempPki, { recursive: true, force: true });
    process.exit(0);
  }
}

main();
