"""An OPC UA client on open62541 (through its Python bindings, o6), a stack we did not
write, driven by the Rust tests one JSON command per stdin line; each answer is one JSON
line on stdout. Same protocol as opcua_nodeopcua.js (see tests/opcua_support).

It prints `ready` first. Commands (`op`):
  connect     {url, security?: "None" | "<Policy>,<Mode>" (Policy: Basic256Sha256,
               Aes128_Sha256_RsaOaep or Aes256_Sha256_RsaPss; Mode: Sign or SignAndEncrypt),
               user?, password?, cert?: DER or PEM file, key?: PEM file,
               uri?: application URI (must match the certificate's),
               pki?: for node-opcua's certificate manager, unused here}
  browse      {node}                   -> {references: [{name, nodeid, class}]}
                                          forward hierarchical references
  read        {nodes: [nodeid]}        -> {values: [{value, variant, status, source, server}]}
  subscribe   {nodes, interval}        -> {results: [status per item]}; notifications queue up
  changes     {timeout}                -> {changes: [{nodeid, value, variant, status, source}]}
                                          (waits up to `timeout` s for at least one)
  write       {node, value, variant}   -> {status}
  disconnect  {}
NodeIds are strings; outside namespace 0 as `nsu=<uri>;s=...`, since o6 numbers namespaces
in its own process-wide table, not as the server does. Timestamps are Unix seconds, status
codes their OPC UA names ("Good", "BadNodeIdUnknown"). Errors come back as {error, status?},
with the stack's own warnings (e.g. why a session was refused) in `log`.

o6 runs without a licence file in "script mode", which ends the process after 10 minutes:
one process per test stays well below that.
"""

import json
import logging
import os
import queue
import sys

# o6 prints a banner on stdout when it loads: answers go to a copy of the original stdout
# and everything else that writes to fd 1 ends up on stderr.
answers = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)
sys.stdout = sys.stderr

import o6  # noqa: E402  (after the redirection above)
from o6.ns import ns0  # noqa: E402

POLICY_URI = "http://opcfoundation.org/UA/SecurityPolicy#"
MODES = {"None": 1, "Sign": 2, "SignAndEncrypt": 3}
DEFAULT_URI = "urn:uaedge:tests:o6-client"
# 100 ns ticks between 1601-01-01 (OPC UA's epoch) and 1970-01-01.
UNIX_EPOCH_TICKS = 116444736000000000

VARIANTS = {
    "Boolean": o6.Boolean,
    "SByte": o6.SByte,
    "Byte": o6.Byte,
    "Int16": o6.Int16,
    "UInt16": o6.UInt16,
    "Int32": o6.Int32,
    "UInt32": o6.UInt32,
    "Int64": o6.Int64,
    "UInt64": o6.UInt64,
    "Float": o6.Float,
    "Double": o6.Double,
    "String": str,
}
VARIANT_OF_TYPE = {t: name for name, t in VARIANTS.items()}


def status_name(code):
    """BAD_NODE_ID_UNKNOWN -> BadNodeIdUnknown, as the specification and the other peers
    spell it (o6 names its StatusCode members in upper snake case)."""
    code = o6.StatusCode(int(code))
    if code.name is None:
        return f"0x{int(code):08X}"
    return "".join(part.capitalize() for part in code.name.split("_"))


def seconds(t):
    return None if t is None else (int(t) - UNIX_EPOCH_TICKS) / 1e7


def plain(v):
    if isinstance(v, o6.DateTime):
        return seconds(v)
    if hasattr(v, "item"):  # numpy scalars
        return v.item()
    if isinstance(v, (int, float, str, bool)) or v is None:
        return v
    return str(v)


def variant(v):
    if v is None:
        return None
    if isinstance(v, o6.DateTime):
        return "DateTime"
    return VARIANT_OF_TYPE.get(type(v), type(v).__name__)


def data_value(dv):
    return {
        "value": plain(dv.value),
        "variant": variant(dv.value),
        "status": status_name(dv.status or 0),
        "source": seconds(dv.sourceTimestamp),
        "server": seconds(dv.serverTimestamp),
    }


class Recent(logging.Handler):
    """Keeps the stack's warnings and errors to explain a failed command."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines = []

    def emit(self, record):
        message = record.getMessage()
        # o6 offers its ECC policies too, which an RSA certificate cannot serve: noise.
        if "Could not add SecurityPolicy#Ecc" in message:
            return
        self.lines.append(message)
        print(f"o6: {message}", file=sys.stderr, flush=True)


class Session:
    def __init__(self):
        self.client = None
        self.name = None
        self.connections = 0
        self.subscription = None
        self.changes_queue = queue.Queue()
        self.log = Recent()
        self.logger = logging.getLogger("o6-peer")
        self.logger.setLevel(logging.WARNING)
        self.logger.addHandler(self.log)
        self.logger.propagate = False

    def connect(self, cmd):
        self.disconnect({})
        # A fresh client per connection; o6 keeps its namespace mappings per client name.
        self.connections += 1
        self.name = f"peer{self.connections}"
        kwargs = {}
        security = cmd.get("security", "None")
        if security != "None":
            policy, mode = security.split(",")
            kwargs.update(
                securityPolicy=POLICY_URI + policy,  # the short name alone matches no endpoint
                securityMode=MODES[mode],
                certificate=cmd["cert"],
                privateKey=cmd["key"],
                applicationUri=cmd.get("uri", DEFAULT_URI),
            )
        else:
            kwargs.update(securityPolicy=POLICY_URI + "None", securityMode=MODES["None"])
        if cmd.get("user"):
            kwargs.update(username=cmd["user"], password=cmd.get("password", ""))
        client = o6.Client(cmd["url"], logger=self.logger, name=self.name, **kwargs)
        client.config.timeout = 10000
        client.connect(createDefaultSubscription=False)
        self.client = client
        return {"ok": True}

    def node(self, text):
        """`nsu=<uri>;<id>` -> o6's `ns=<shortname>;<id>` for this client's mapping."""
        if not text.startswith("nsu="):
            return o6.NodeId(text)
        uri, ident = text[len("nsu=") :].split(";", 1)
        mine = [m for m in o6.ns.filter(uri=uri) if m.scope == self.name]
        if not mine:
            raise ValueError(f"the server has no namespace {uri}")
        return o6.NodeId(f"ns={mine[0].shortname};{ident}")

    @staticmethod
    def nodeid_text(node):
        """An (Expanded)NodeId in o6's table -> `i=85` or `nsu=<uri>;s=...`."""
        ident = node.id
        if isinstance(ident, int):
            kind = "i"
        elif isinstance(ident, str):
            kind = "s"
        elif isinstance(ident, (bytes, bytearray)):
            kind, ident = "b", ident.hex()
        else:
            kind = "g"
        ns = node.ns
        if isinstance(ns, int):
            ns = o6.ns[ns]
        if ns.uri == "http://opcfoundation.org/UA/":
            return f"{kind}={ident}"
        return f"nsu={ns.uri};{kind}={ident}"

    def browse(self, cmd):
        mask = int(
            ns0.datatypes.BrowseResultMask.BROWSE_NAME | ns0.datatypes.BrowseResultMask.NODE_CLASS
        )
        refs = self.client.browse(self.node(cmd["node"]), resultMask=mask)
        return {
            "references": [
                {
                    "name": r.browseName.name,
                    "nodeid": self.nodeid_text(r.nodeId),
                    "class": ns0.datatypes.NodeClass(int(r.nodeClass)).name.capitalize(),
                }
                for r in refs
            ]
        }

    def read(self, cmd):
        nodes = [self.node(n) for n in cmd["nodes"]]
        results = self.client.read(
            nodes, valueOnly=False, timestampsToReturn=ns0.datatypes.TimestampsToReturn.BOTH
        )
        return {"values": [data_value(dv) for dv in results]}

    def subscribe(self, cmd):
        interval = float(cmd.get("interval", 100))
        if self.subscription is None:
            self.subscription = self.client.createSubscription(publishingInterval=interval)
        results = []
        for text in cmd["nodes"]:

            def changed(dv, text=text):  # runs on o6's worker thread
                entry = data_value(dv)
                entry["nodeid"] = text
                self.changes_queue.put(entry)

            try:
                self.client.monitor(
                    self.node(text),
                    changed,
                    interval,
                    valueOnly=False,
                    subscription=self.subscription,
                    queueSize=10,
                )
                results.append("Good")
            except o6.StatusCodeError as e:
                results.append(status_name(e.code))
        return {"results": results}

    def changes(self, cmd):
        out = []
        try:
            out.append(self.changes_queue.get(timeout=cmd.get("timeout", 5)))
        except queue.Empty:
            return {"changes": []}
        while True:
            try:
                out.append(self.changes_queue.get_nowait())
            except queue.Empty:
                return {"changes": out}

    def write(self, cmd):
        value = cmd["value"]
        kind = VARIANTS.get(cmd["variant"])
        if kind is None:
            return {"error": f"unsupported variant {cmd['variant']}"}
        status = self.client.write(self.node(cmd["node"]), kind(value))
        return {"status": status_name(status)}

    def disconnect(self, cmd):
        if self.client is not None:
            client, self.client, self.subscription = self.client, None, None
            client.disconnect()
        return {"ok": True}


def main():
    session = Session()
    answers.write("ready\n")
    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        session.log.lines.clear()
        try:
            answer = getattr(session, cmd["op"])(cmd)
        except o6.StatusCodeError as e:
            answer = {"error": status_name(e.code), "status": status_name(e.code)}
        except Exception as e:  # the Rust side shows it in the assertion message
            answer = {"error": f"{type(e).__name__}: {e}"}
        if "error" in answer and session.log.lines:
            answer["log"] = session.log.lines[-5:]
        answers.write(json.dumps(answer) + "\n")
    session.disconnect({})


if __name__ == "__main__":
    main()
