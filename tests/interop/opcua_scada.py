"""An OPC UA client built on asyncua, an implementation we did not write, driven by the
Rust tests one JSON command per stdin line; each answer is one JSON line on stdout.

It prints `ready` first. Commands (`op`):
  connect     {url, security?: "None" | "Basic256Sha256,Sign" | "Basic256Sha256,SignAndEncrypt",
               user?, password?, pki?: folder for the client's own key and certificate}
  namespace   {uri}                    -> {index}
  browse      {}                       -> {nodes: [{path, nodeid, class, data_type, access,
                                            user_access, type_definition}]} under Objects/uaedge
  translate   {path: ["2:uaedge", ...]} (from the Objects folder) -> {nodeid}
  references  {node, max}              -> {references: [{type, forward, nodeid, name, class}],
                                            pages: [count per answer], statuses: [...]}
                                          every reference of a node both ways, at most `max`
                                          an answer (0: no limit), following BrowseNext
  read        {nodes: [nodeid]}        -> {values: [{value, variant, status, source, server}]}
  read_attr   {node, attr}             -> {value}
  subscribe   {nodes, publishing, sampling, deadband?: {type: "absolute"|"percent", value},
               count_only?: true (benchmarks: count notifications, keep none),
               disabled?: true (the items are created with MonitoringMode Disabled)}
              -> {results: [status per item]}; notifications queue up
  set_mode    {mode: "Disabled"|"Sampling"|"Reporting"} -> {results: [status per item]}
              SetMonitoringMode on every item of the subscription
  changes     {timeout}                -> {changes: [{nodeid, value, status, source, received}]}
                                          (waits up to `timeout` s for at least one)
  count       {}                       -> {count} notifications since the last count
  write       {node, value, variant}   -> {status}
  events      {node?: notifier (default the Server object), fields: [[type, "Path/Sub"]],
               where?: filter, publishing?} -> {subscription, status}
              an EventFilter selecting `fields` (type: a namespace-0 type number; an
              empty path selects the ConditionId); `where` is a tree of
              {op: "OfType", type} | {op: "GreaterThanOrEqual"|"Equals", field: [type, path],
              value: [variant, value]} | {op: "And"|"Or", args: [where, where]}
  event_list  {timeout, subscription?} -> {events: [{field: value}]} (waits up to `timeout`
                                          s for at least one; values as JSON, bytes as hex)
  event_count {}                       -> {count} event notifications since the last count
                                          (events with count_only: true keep none)
  call        {object, method, args: [[variant, value]]} -> {status, outputs}
  refresh     {subscription, item?}    -> {status} ConditionRefresh (ConditionRefresh2 with
                                          an item) on the ConditionType
  history_raw {node, start_us?, end_us?, num?, bounds?, max_pages?, release?, timestamps?}
              -> {values: [{value, variant, status, source_us}], pages: [count per answer],
                  statuses: [...], released?, after_release?}
              HistoryRead (ReadRawModifiedDetails), one request per page, following the
              continuation points; with `release` the first page's point is released, and
              reusing it afterwards is reported in `after_release`
  history_api {node, start_us, end_us, num} -> {values} asyncua's Node.read_raw_history
  history_processed {node, start_us, end_us, interval_ms, aggregates: [nodeid],
              percent_good?, percent_bad?, treat_uncertain_as_bad?}
              -> {results: [{status, values}]} one node per aggregate (ReadProcessedDetails)
  history_at_time {node, times_us, simple_bounds?} -> {status, values}
  history_raw_many {nodes, start_us, end_us, num} -> {statuses} one request for many nodes
  history_events {node, start_us?, end_us?, num?, fields, where?, max_pages?}
              -> {events: [{field: value}], statuses, pages} ReadEventDetails with an
              EventFilter selecting `fields` (as in `events`), following continuation points
  events_default {}                    -> {subscription} events from the Server object with
              asyncua's own default filter (BaseEventType's fields, an EventType InList);
              they are counted by event_count
  history_events_api {node, start_us, end_us, num?} -> {events: [{field: value}]}
              asyncua's Node.read_event_history (BaseEventType's fields)
  disconnect  {}
Errors come back as {error, status?}.
"""

import asyncio
import copy
import datetime
import json
import sys
import time
from pathlib import Path

from asyncua import Client, ua
from asyncua.common import events as events_module
from asyncua.crypto import cert_gen
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from cryptography.x509.oid import ExtendedKeyUsageOID

CLIENT_URI = "urn:uaedge:tests:asyncua-client"


def ts(t):
    if t is None:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=datetime.timezone.utc)
    return t.timestamp()


def plain(v):
    if isinstance(v, datetime.datetime):
        return ts(v)
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    if isinstance(v, (int, float, str, bool)) or v is None:
        return v
    if isinstance(v, ua.EUInformation):
        return {"unit_id": v.UnitId, "display_name": v.DisplayName.Text, "namespace": v.NamespaceUri}
    if isinstance(v, ua.Range):
        return {"low": v.Low, "high": v.High}
    if isinstance(v, ua.LocalizedText):
        return v.Text
    if isinstance(v, list):
        return [plain(x) for x in v]
    return str(v)


def data_value(dv):
    return {
        "value": plain(dv.Value.Value) if dv.Value is not None else None,
        "variant": dv.Value.VariantType.name if dv.Value is not None else None,
        "status": dv.StatusCode.name if dv.StatusCode is not None else "Good",
        "source": ts(dv.SourceTimestamp),
        "server": ts(dv.ServerTimestamp),
    }


EPOCH = datetime.datetime(1970, 1, 1)


def us_time(us):
    """µs since 1970 as the naive UTC datetime asyncua sends; None is OPC UA's null time."""
    if us is None:
        return ua.get_win_epoch()
    return EPOCH + datetime.timedelta(microseconds=us)


def us_of(t):
    if t is None:
        return None
    if t.tzinfo is not None:
        t = t.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return (t - EPOCH) // datetime.timedelta(microseconds=1)


def history_value(dv):
    out = data_value(dv)
    out["source_us"] = us_of(dv.SourceTimestamp)
    out["status_code"] = dv.StatusCode.value if dv.StatusCode is not None else 0
    out["server_us"] = us_of(dv.ServerTimestamp)
    return out


class Handler:
    def __init__(self):
        self.queue = asyncio.Queue()
        # Benchmarks only count: building an entry per change would make Python the limit.
        self.count_only = False
        self.count = 0

    def datachange_notification(self, node, val, data):
        self.count += 1
        if self.count_only:
            return
        dv = data.monitored_item.Value
        entry = history_value(dv)
        entry["nodeid"] = node.nodeid.to_string()
        entry["received"] = time.time()
        self.queue.put_nowait(entry)

    def status_change_notification(self, status):
        pass


# asyncua names an event's fields by their browse paths and takes the length of a null
# one; a null path is how open62541 clients select the ConditionId, so name it as if empty.
_from_event_fields = events_module.Event.from_event_fields


def _tolerant_from_event_fields(select_clauses, fields):
    clauses = [copy.copy(c) for c in select_clauses]
    for c in clauses:
        if c.BrowsePath is None:
            c.BrowsePath = []
    return _from_event_fields(clauses, fields)


events_module.Event.from_event_fields = staticmethod(_tolerant_from_event_fields)


def event_value(v):
    if isinstance(v, ua.NodeId):
        return v.to_string()
    if isinstance(v, ua.StatusCode):
        return v.name
    return plain(v)


class EventHandler:
    """Queues each event notification as {field name: value}."""

    def __init__(self, names, count_only=False):
        self.names = names
        self.queue = asyncio.Queue()
        # Benchmarks only count.
        self.count_only = count_only
        self.count = 0

    def event_notification(self, event):
        self.count += 1
        if self.count_only:
            return
        fields = event.event_fields
        entry = {name: event_value(f.Value) for name, f in zip(self.names, fields)}
        entry["received"] = time.time()
        self.queue.put_nowait(entry)

    def status_change_notification(self, status):
        pass


def attribute_operand(type_id, path):
    op = ua.SimpleAttributeOperand()
    op.TypeDefinitionId = ua.NodeId(type_id, 0)
    # An empty path is an empty array; null (None) a null one, as open62541 sends it.
    op.BrowsePath = [ua.QualifiedName(p, 0) for p in path.split("/")] if path else ([] if path == "" else None)
    op.AttributeId = ua.AttributeIds.Value if path else ua.AttributeIds.NodeId
    return op


def variant(spec):
    kind, value = spec
    if kind == "ByteString":
        value = bytes.fromhex(value) if value is not None else None
    elif kind == "LocalizedText":
        value = ua.LocalizedText(value) if value is not None else ua.LocalizedText()
    elif kind == "NodeId":
        value = ua.NodeId.from_string(value)
    return ua.Variant(value, getattr(ua.VariantType, kind))


def content_filter(spec):
    """A where clause from its JSON tree, elements in prefix order."""
    cf = ua.ContentFilter()

    def add(node):
        index = len(cf.Elements)
        element = ua.ContentFilterElement()
        element.FilterOperator = getattr(ua.FilterOperator, node["op"])
        cf.Elements.append(element)
        operands = []
        if node["op"] == "OfType":
            operands.append(ua.LiteralOperand(Value=ua.Variant(ua.NodeId(node["type"], 0))))
        elif node["op"] in ("And", "Or"):
            for arg in node["args"]:
                operands.append(ua.ElementOperand(Index=add(arg)))
        else:
            operands.append(attribute_operand(*node["field"]))
            operands.append(ua.LiteralOperand(Value=variant(node["value"])))
        # Malformed on purpose (tests of the server's refusals): one operand short.
        if node.get("drop_operand"):
            operands.pop()
        element.FilterOperands = operands
        return index

    if spec is not None:
        add(spec)
    return cf


class Session:
    def __init__(self):
        self.client = None
        self.handler = Handler()
        self.subscription = None
        # Event subscriptions by id: (subscription, handler).
        self.event_subs = {}

    async def connect(self, cmd):
        client = Client(cmd["url"], timeout=10)
        client.application_uri = CLIENT_URI
        security = cmd.get("security", "None")
        if security != "None":
            policy, mode = security.split(",")
            assert policy == "Basic256Sha256"
            pki = Path(cmd["pki"])
            pki.mkdir(parents=True, exist_ok=True)
            key, cert = pki / "client-key.pem", pki / "client-cert.der"
            await cert_gen.setup_self_signed_certificate(
                key, cert, CLIENT_URI, "localhost",
                [ExtendedKeyUsageOID.CLIENT_AUTH], {"commonName": "uaedge test client"},
            )
            await client.set_security(
                SecurityPolicyBasic256Sha256,
                certificate=str(cert),
                private_key=str(key),
                mode=getattr(ua.MessageSecurityMode, mode),
            )
        if cmd.get("user"):
            client.set_user(cmd["user"])
            client.set_password(cmd.get("password", ""))
        await client.connect()
        self.client = client
        return {"ok": True}

    async def namespace(self, cmd):
        return {"index": await self.client.get_namespace_index(cmd["uri"])}

    async def browse(self, cmd):
        objects = self.client.nodes.objects
        out = []
        root = None
        for child in await objects.get_children():
            if (await child.read_browse_name()).Name == "uaedge":
                root = child
        if root is None:
            return {"error": "no uaedge object under Objects"}
        stack = [(root, "uaedge")]
        # A node reached twice is listed once.
        seen = set()
        while stack:
            node, path = stack.pop()
            if node.nodeid in seen:
                continue
            seen.add(node.nodeid)
            cls = await node.read_node_class()
            entry = {"path": path, "nodeid": node.nodeid.to_string(), "class": cls.name}
            if cls == ua.NodeClass.Variable:
                dt = await node.read_data_type()
                entry["data_type"] = dt.to_string()
                entry["access"] = (await node.read_attribute(ua.AttributeIds.AccessLevel)).Value.Value
                entry["user_access"] = (await node.read_attribute(ua.AttributeIds.UserAccessLevel)).Value.Value
            td = await node.read_type_definition()
            entry["type_definition"] = td.to_string() if td is not None else None
            out.append(entry)
            refs = await node.get_references(
                refs=ua.ObjectIds.HierarchicalReferences,
                direction=ua.BrowseDirection.Forward,
                includesubtypes=True,
            )
            for r in refs:
                # The tree of the address space: the notifier hierarchy (HasEventSource,
                # HasNotifier) points at nodes the tree has elsewhere.
                if r.ReferenceTypeId in (ua.NodeId(36), ua.NodeId(48)):
                    continue
                child = self.client.get_node(r.NodeId)
                stack.append((child, path + "/" + r.BrowseName.Name))
        return {"nodes": out}

    async def references(self, cmd):
        desc = ua.BrowseDescription(
            NodeId=ua.NodeId.from_string(cmd["node"]),
            BrowseDirection=ua.BrowseDirection.Both,
            ReferenceTypeId=ua.NodeId(),
            IncludeSubtypes=True,
            NodeClassMask=0,
            ResultMask=ua.BrowseResultMask.All,
        )
        params = ua.BrowseParameters()
        params.View = ua.ViewDescription()
        params.View.Timestamp = ua.get_win_epoch()  # no view (asyncua's default is "now")
        params.RequestedMaxReferencesPerNode = cmd["max"]
        params.NodesToBrowse = [desc]
        result = (await self.client.uaclient.browse(params))[0]
        refs, pages, statuses = [], [], []
        # Bounded: a server that hands out continuation points forever fails the test.
        while len(pages) < 100:
            statuses.append(result.StatusCode.name)
            page = list(result.References or [])
            pages.append(len(page))
            refs += [
                {
                    "type": r.ReferenceTypeId.to_string(),
                    "forward": bool(r.IsForward),
                    "nodeid": r.NodeId.to_string(),
                    "name": r.BrowseName.to_string(),
                    "class": r.NodeClass.name,
                }
                for r in page
            ]
            if not result.ContinuationPoint:
                break
            nxt = ua.BrowseNextParameters()
            nxt.ReleaseContinuationPoints = False
            nxt.ContinuationPoints = [result.ContinuationPoint]
            result = (await self.client.uaclient.browse_next(nxt))[0]
        return {"references": refs, "pages": pages, "statuses": statuses}

    async def translate(self, cmd):
        node = await self.client.nodes.objects.get_child(cmd["path"])
        return {"nodeid": node.nodeid.to_string()}

    async def read(self, cmd):
        nodes = [self.client.get_node(n) for n in cmd["nodes"]]
        params = ua.ReadParameters()
        for n in nodes:
            rv = ua.ReadValueId()
            rv.NodeId = n.nodeid
            rv.AttributeId = ua.AttributeIds.Value
            params.NodesToRead.append(rv)
        params.TimestampsToReturn = ua.TimestampsToReturn.Both
        started = time.perf_counter()
        results = await self.client.uaclient.read(params)
        elapsed = time.perf_counter() - started
        return {"values": [data_value(dv) for dv in results], "seconds": elapsed}

    async def read_attr(self, cmd):
        node = self.client.get_node(cmd["node"])
        dv = await node.read_attribute(getattr(ua.AttributeIds, cmd["attr"]))
        return {"value": plain(dv.Value.Value)}

    async def subscribe(self, cmd):
        self.handler.count_only = cmd.get("count_only", False)
        if self.subscription is None:
            self.subscription = await self.client.create_subscription(cmd.get("publishing", 100), self.handler)
        nodes = [self.client.get_node(n) for n in cmd["nodes"]]
        mfilter = None
        if "deadband" in cmd:
            mfilter = ua.DataChangeFilter()
            mfilter.Trigger = ua.DataChangeTrigger.StatusValue
            mfilter.DeadbandType = 1 if cmd["deadband"]["type"] == "absolute" else 2
            mfilter.DeadbandValue = float(cmd["deadband"]["value"])
        mode = ua.MonitoringMode.Disabled if cmd.get("disabled") else ua.MonitoringMode.Reporting
        results = await self.subscription._subscribe(
            nodes, ua.AttributeIds.Value, mfilter, 0, mode, cmd.get("sampling", 100)
        )
        return {"results": [r if isinstance(r, int) else r.name for r in results]}

    async def set_mode(self, cmd):
        results = await self.subscription.set_monitoring_mode(getattr(ua.MonitoringMode, cmd["mode"]))
        return {"results": [r.name for r in results]}

    async def changes(self, cmd):
        out = []
        try:
            out.append(await asyncio.wait_for(self.handler.queue.get(), cmd.get("timeout", 5)))
        except asyncio.TimeoutError:
            return {"changes": []}
        while not self.handler.queue.empty():
            out.append(self.handler.queue.get_nowait())
        return {"changes": out}

    async def count(self, cmd):
        n, self.handler.count = self.handler.count, 0
        return {"count": n}

    async def write(self, cmd):
        node = self.client.get_node(cmd["node"])
        variant = ua.Variant(cmd["value"], getattr(ua.VariantType, cmd["variant"]))
        params = ua.WriteParameters()
        wv = ua.WriteValue()
        wv.NodeId = node.nodeid
        wv.AttributeId = ua.AttributeIds.Value
        wv.Value = ua.DataValue(variant)
        params.NodesToWrite = [wv]
        results = await self.client.uaclient.write(params)
        return {"status": results[0].name}

    async def events(self, cmd):
        names = [path or "ConditionId" for _, path in cmd["fields"]]
        handler = EventHandler(names, cmd.get("count_only", False))
        sub = await self.client.create_subscription(cmd.get("publishing", 100), handler)
        evfilter = ua.EventFilter()
        evfilter.SelectClauses = [attribute_operand(t, p) for t, p in cmd["fields"]]
        evfilter.WhereClause = content_filter(cmd.get("where"))
        node = self.client.get_node(cmd.get("node", "i=2253"))
        try:
            # async-opcua 0.19 grants an event item that asks for 0 (server default) a
            # queue of 1; SCADA clients ask for a real queue, as this does.
            await sub.subscribe_events(sourcenode=node, evfilter=evfilter, queuesize=cmd.get("queue", 1000))
            status = "Good"
        except ua.UaStatusCodeError as e:
            status = ua.StatusCode(e.code).name
        self.event_subs[sub.subscription_id] = (sub, handler)
        return {"subscription": sub.subscription_id, "status": status}

    async def events_default(self, cmd):
        handler = EventHandler([], count_only=True)
        sub = await self.client.create_subscription(50, handler)
        await sub.subscribe_events(queuesize=1000)
        self.event_subs[sub.subscription_id] = (sub, handler)
        return {"subscription": sub.subscription_id}

    async def event_list(self, cmd):
        sub_id = cmd.get("subscription") or next(iter(self.event_subs))
        queue = self.event_subs[sub_id][1].queue
        out = []
        try:
            out.append(await asyncio.wait_for(queue.get(), cmd.get("timeout", 5)))
        except asyncio.TimeoutError:
            return {"events": []}
        # What else arrived in the same publish, and shortly after.
        await asyncio.sleep(cmd.get("settle", 0.3))
        while not queue.empty():
            out.append(queue.get_nowait())
        return {"events": out}

    async def event_count(self, cmd):
        n = 0
        for _, handler in self.event_subs.values():
            n += handler.count
            handler.count = 0
        return {"count": n}

    async def call(self, cmd):
        request = ua.CallMethodRequest()
        request.ObjectId = ua.NodeId.from_string(cmd["object"])
        request.MethodId = ua.NodeId.from_string(cmd["method"])
        request.InputArguments = [variant(a) for a in cmd.get("args", [])]
        results = await self.client.uaclient.call([request])
        r = results[0]
        return {
            "status": r.StatusCode.name,
            "arguments": [c.name for c in (r.InputArgumentResults or [])],
            "outputs": [event_value(o.Value) for o in (r.OutputArguments or [])],
        }

    async def refresh(self, cmd):
        args = [["UInt32", cmd["subscription"]]]
        method = "i=3875"
        if "item" in cmd:
            args.append(["UInt32", cmd["item"]])
            method = "i=12912"
        return await self.call({"object": "i=2782", "method": method, "args": args})

    async def _history_read(self, nodes, details, cps=None, release=False, ttr="Source"):
        params = ua.HistoryReadParameters()
        params.HistoryReadDetails = details
        params.TimestampsToReturn = getattr(ua.TimestampsToReturn, ttr)
        params.ReleaseContinuationPoints = release
        for i, node in enumerate(nodes):
            valueid = ua.HistoryReadValueId()
            valueid.NodeId = ua.NodeId.from_string(node)
            valueid.IndexRange = ""
            if cps is not None and cps[i]:
                valueid.ContinuationPoint = cps[i]
            params.NodesToRead.append(valueid)
        return await self.client.uaclient.history_read(params)

    @staticmethod
    def _values(result):
        data = result.HistoryData
        return list(getattr(data, "DataValues", None) or []) if data is not None else []

    def _raw_details(self, cmd):
        details = ua.ReadRawModifiedDetails()
        details.IsReadModified = cmd.get("modified", False)
        details.StartTime = us_time(cmd.get("start_us"))
        details.EndTime = us_time(cmd.get("end_us"))
        details.NumValuesPerNode = cmd.get("num", 0)
        details.ReturnBounds = cmd.get("bounds", False)
        return details

    async def history_raw(self, cmd):
        details = self._raw_details(cmd)
        values, pages, statuses = [], [], []
        cp = bytes.fromhex(cmd["continuation"]) if "continuation" in cmd else None
        out = {}
        for _ in range(cmd.get("max_pages", 1_000_000)):
            [result] = await self._history_read([cmd["node"]], details, [cp], ttr=cmd.get("timestamps", "Source"))
            statuses.append(result.StatusCode.name)
            page = self._values(result)
            pages.append(len(page))
            values.extend(page)
            cp = result.ContinuationPoint
            if cmd.get("release") and cp:
                [released] = await self._history_read([cmd["node"]], details, [cp], release=True)
                out["released"] = released.StatusCode.name
                [again] = await self._history_read([cmd["node"]], details, [cp])
                out["after_release"] = again.StatusCode.name
                cp = None
            if not cp:
                break
        out.update({"values": [history_value(v) for v in values], "pages": pages,
                    "statuses": statuses, "continuation": cp.hex() if cp else None})
        return out

    async def history_raw_many(self, cmd):
        details = self._raw_details(cmd)
        results = await self._history_read(cmd["nodes"], details)
        return {"statuses": [r.StatusCode.name for r in results]}

    async def history_api(self, cmd):
        node = self.client.get_node(cmd["node"])
        values = await node.read_raw_history(us_time(cmd["start_us"]), us_time(cmd["end_us"]), cmd.get("num", 0))
        return {"values": [history_value(v) for v in values]}

    async def history_processed(self, cmd):
        details = ua.ReadProcessedDetails()
        details.StartTime = us_time(cmd.get("start_us"))
        details.EndTime = us_time(cmd.get("end_us"))
        details.ProcessingInterval = float(cmd["interval_ms"])
        details.AggregateType = [ua.NodeId.from_string(a) for a in cmd["aggregates"]]
        config = ua.AggregateConfiguration()
        custom = any(k in cmd for k in ("percent_good", "percent_bad", "treat_uncertain_as_bad"))
        config.UseServerCapabilitiesDefaults = not custom
        config.TreatUncertainAsBad = cmd.get("treat_uncertain_as_bad", True)
        config.PercentDataGood = cmd.get("percent_good", 100)
        config.PercentDataBad = cmd.get("percent_bad", 100)
        config.UseSlopedExtrapolation = False
        details.AggregateConfiguration = config
        nodes = [cmd["node"]] * len(cmd["aggregates"])
        results = await self._history_read(nodes, details)
        return {"results": [{"status": r.StatusCode.name,
                             "values": [history_value(v) for v in self._values(r)]} for r in results]}

    async def history_events(self, cmd):
        names = [path or "ConditionId" for _, path in cmd["fields"]]
        details = ua.ReadEventDetails()
        details.StartTime = us_time(cmd.get("start_us"))
        details.EndTime = us_time(cmd.get("end_us"))
        details.NumValuesPerNode = cmd.get("num", 0)
        details.Filter = ua.EventFilter()
        details.Filter.SelectClauses = [attribute_operand(t, p) for t, p in cmd["fields"]]
        details.Filter.WhereClause = content_filter(cmd.get("where"))
        events, statuses, pages = [], [], []
        cp = None
        for _ in range(cmd.get("max_pages", 1000)):
            [result] = await self._history_read([cmd["node"]], details, [cp], ttr="Both")
            statuses.append(result.StatusCode.name)
            page = list(getattr(result.HistoryData, "Events", None) or []) if result.HistoryData is not None else []
            pages.append(len(page))
            for e in page:
                events.append({n: event_value(f.Value) for n, f in zip(names, e.EventFields)})
            cp = result.ContinuationPoint
            if not cp:
                break
        return {"events": events, "statuses": statuses, "pages": pages}

    async def history_events_api(self, cmd):
        node = self.client.get_node(cmd["node"])
        found = await node.read_event_history(us_time(cmd["start_us"]), us_time(cmd["end_us"]), cmd.get("num", 0))
        out = []
        for e in found:
            out.append({k: event_value(v.Value) for k, v in e.get_event_props_as_fields_dict().items()})
        return {"events": out}

    async def history_at_time(self, cmd):
        details = ua.ReadAtTimeDetails()
        details.ReqTimes = [us_time(t) for t in cmd["times_us"]]
        details.UseSimpleBounds = cmd.get("simple_bounds", True)
        [result] = await self._history_read([cmd["node"]], details)
        return {"status": result.StatusCode.name,
                "values": [history_value(v) for v in self._values(result)]}

    async def disconnect(self, cmd):
        if self.client is not None:
            await self.client.disconnect()
            self.client = None
        return {"ok": True}


async def main():
    session = Session()
    loop = asyncio.get_running_loop()
    # Commands with 10,000 NodeIds are long lines.
    reader = asyncio.StreamReader(limit=64 * 1024 * 1024)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print("ready", flush=True)
    while True:
        line = await reader.readline()
        if not line:
            break
        cmd = json.loads(line)
        try:
            answer = await getattr(session, cmd["op"])(cmd)
        except ua.UaStatusCodeError as e:
            answer = {"error": str(e), "status": ua.StatusCode(e.code).name}
        except Exception as e:  # the Rust side shows it in the assertion message
            answer = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps(answer), flush=True)
    await session.disconnect({})


if __name__ == "__main__":
    asyncio.run(main())
