"""An OPC UA server built on Python asyncua, an implementation we did not write.

It serves one variable per model data type below Objects/Plant/Line1, a counter that ticks
every 50 ms (so a test can see values flowing), the `--generation` it was started with (so a
test can tell a restarted server from the old one), a read-only variable, an array the model
cannot hold, and `--bulk N` extra UInt32 variables (Bulk.0 … with value i) to exercise
batched reads.

Usage: opcua_server.py [--port N] [--generation N] [--log FILE] [--bulk N]
                       [--max-sessions N] [--secure --pki DIR --user U --password P]
`--max-sessions N` refuses a session beyond N (BadMaxConnectionsReached), as a PLC with few
session slots does; `Line1.Sessions` shows how many are active.
Prints the bound port on stdout once listening, then logs to stderr only. Every Write and
Read service call from a client is appended to --log as
`WRITE <node id> <variant type> <value> <status>` / `READ <number of nodes>`, so tests can
check what reached the server and how reads were batched.
"""

import argparse
import asyncio
import datetime
import logging
import socket
import sys
from pathlib import Path

from asyncua import Server, ua
from asyncua.common.callback import CallbackType
from asyncua.server.internal_session import InternalSession
from asyncua.server.user_managers import UserManager
from asyncua.crypto.permission_rules import User, UserRole

NS_URI = "urn:uaedge:test"

# (name, variant type, initial value); node ids are `ns=2;s=Line1.<name>`.
TYPED = [
    ("Bool", ua.VariantType.Boolean, True),
    ("SByte", ua.VariantType.SByte, -8),
    ("Byte", ua.VariantType.Byte, 200),
    ("Int16", ua.VariantType.Int16, -1600),
    ("UInt16", ua.VariantType.UInt16, 65000),
    ("Int32", ua.VariantType.Int32, -320000),
    ("UInt32", ua.VariantType.UInt32, 4000000000),
    ("Int64", ua.VariantType.Int64, -6400000000),
    ("UInt64", ua.VariantType.UInt64, 18446744073709551615),
    ("Float", ua.VariantType.Float, 1.5),
    ("Double", ua.VariantType.Double, 2.718281828459045),
    ("String", ua.VariantType.String, "PUMP-07"),
    (
        "DateTime",
        ua.VariantType.DateTime,
        datetime.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=datetime.timezone.utc),
    ),
]


class Users(UserManager):
    def __init__(self, user, password):
        self.user, self.password = user, password

    def get_user(self, iserver, username=None, password=None, certificate=None):
        if username == self.user and password == self.password:
            return User(role=UserRole.User)
        return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_line(path, line):
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--generation", type=int, default=0)
    p.add_argument("--log")
    p.add_argument("--bulk", type=int, default=0)
    p.add_argument("--secure", action="store_true")
    p.add_argument("--pki")
    p.add_argument("--user", default="operator")
    p.add_argument("--password", default="secret")
    p.add_argument("--max-sessions", type=int, default=0)
    args = p.parse_args()
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)

    if args.max_sessions:
        InternalSession.max_connections = args.max_sessions
    port = args.port or free_port()
    server = Server(user_manager=Users(args.user, args.password) if args.secure else None)
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/uaedge/")
    server.set_server_name("uaedge interop test server")
    if args.secure:
        from cryptography.x509.oid import ExtendedKeyUsageOID
        from asyncua.crypto.cert_gen import setup_self_signed_certificate

        pki = Path(args.pki)
        pki.mkdir(parents=True, exist_ok=True)
        uri = "urn:uaedge:test:server"
        await server.set_application_uri(uri)
        key, cert = pki / "server-key.pem", pki / "server-cert.der"
        await setup_self_signed_certificate(
            key, cert, uri, "127.0.0.1", [ExtendedKeyUsageOID.SERVER_AUTH],
            {"countryName": "DE", "organizationName": "uaedge tests", "commonName": "uaedge test server"},
        )
        await server.load_certificate(str(cert))
        await server.load_private_key(str(key))
        server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
        server.set_security_IDs(["Username"])
    else:
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])

    ns = await server.register_namespace(NS_URI)
    plant = await server.nodes.objects.add_folder(ua.NodeId("Plant", ns), ua.QualifiedName("Plant", ns))
    line = await plant.add_object(ua.NodeId("Line1", ns), ua.QualifiedName("Line1", ns))
    for name, vt, value in TYPED:
        var = await line.add_variable(ua.NodeId(f"Line1.{name}", ns), ua.QualifiedName(name, ns), ua.Variant(value, vt))
        await var.set_writable()
    counter = await line.add_variable(ua.NodeId("Line1.Counter", ns), ua.QualifiedName("Counter", ns), ua.Variant(0, ua.VariantType.Int32))
    await line.add_variable(ua.NodeId("Line1.Generation", ns), ua.QualifiedName("Generation", ns), ua.Variant(args.generation, ua.VariantType.UInt32))
    sessions = await line.add_variable(ua.NodeId("Line1.Sessions", ns), ua.QualifiedName("Sessions", ns), ua.Variant(0, ua.VariantType.UInt32))
    await line.add_variable(ua.NodeId("Line1.ReadOnly", ns), ua.QualifiedName("ReadOnly", ns), ua.Variant(1.0, ua.VariantType.Double))
    await line.add_variable(ua.NodeId("Line1.Array", ns), ua.QualifiedName("Array", ns), ua.Variant([1, 2, 3], ua.VariantType.Int32))
    speed = await line.add_variable(ua.NodeId(1001, ns), ua.QualifiedName("Speed", ns), ua.Variant(12.5, ua.VariantType.Double))
    await speed.set_writable()
    if args.bulk:
        bulk = await plant.add_folder(ua.NodeId("Bulk", ns), ua.QualifiedName("Bulk", ns))
        for i in range(args.bulk):
            await bulk.add_variable(ua.NodeId(f"Bulk.{i}", ns), ua.QualifiedName(f"B{i}", ns), ua.Variant(i, ua.VariantType.UInt32))
        # Advertise a limit below the bulk size so the client has to batch its reads.
        limit = server.get_node(ua.NodeId(ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead))
        await limit.write_value(ua.Variant(1000, ua.VariantType.UInt32))

    # Only what clients asked for: the server's own updates (the counter, its status) go
    # through the same service layer.
    async def on_write(event, _dispatcher):
        if not event.is_external:
            return
        for wv, status in zip(event.request_params.NodesToWrite, event.response_params):
            v = wv.Value.Value
            log_line(args.log, f"WRITE {wv.NodeId.to_string()} {v.VariantType.name} {v.Value!r} {status.name}")

    async def on_read(event, _dispatcher):
        if not event.is_external:
            return
        log_line(args.log, f"READ {len(event.request_params.NodesToRead)}")

    server.subscribe_server_callback(CallbackType.PostWrite, on_write)
    server.subscribe_server_callback(CallbackType.PreRead, on_read)

    async with server:
        print(port, flush=True)
        n = 0
        while True:
            await asyncio.sleep(0.05)
            n += 1
            await counter.write_value(ua.DataValue(ua.Variant(n, ua.VariantType.Int32), SourceTimestamp=datetime.datetime.now(datetime.timezone.utc)))
            # Activated sessions, as asyncua counts them against --max-sessions.
            await sessions.write_value(ua.Variant(InternalSession._current_connections, ua.VariantType.UInt32))


if __name__ == "__main__":
    asyncio.run(main())
