#!/usr/bin/env python3
"""An OPC UA server on 127.0.0.1 for the collector's OPC UA tests, on asyncua (test fixture).

    opcua_server.py PORT DIR [--secure [--all-policies]] [--user NAME:PASSWORD] [--user-cert] [--bench N] [--init NODE=VALUE ...]

Namespace "urn:enos:test" (index 2) holds Double ns=2;s=P (231.5), Int32 ns=2;i=1001 (7),
Float ns=2;g=09087e75-8e5e-499b-954f-f2a9603db28a (1.25), UInt16 ns=2;b=AQID (3), Double
ns=2;s=Setpoint (0, writable), Double ns=2;s=Locked (0, not writable). --init sets a starting
value (a restarted server that comes back with another value).

--secure: the only endpoint is Basic256Sha256 SignAndEncrypt, with the server certificate
DIR/server_cert.der and key DIR/server_key.pem (made on first start, kept for a restart).
--all-policies (with --secure): six endpoints instead, Basic256Sha256, Aes128_Sha256_RsaOaep and
Aes256_Sha256_RsaPss, each in Sign and in SignAndEncrypt.
Without it the only endpoint is None. --user: user name and password are the only identity
accepted (anonymous refused). --user-cert (with --secure): makes the user certificates
DIR/user_cert.der (key DIR/user_key.pem), the only identity accepted, and
DIR/stranger_cert.der (key DIR/stranger_key.pem), refused.

--bench N (the benchmark, enos-bench --opcua): N more Double variables ns=2;s=B00000 ...
(five digits), starting at 0, in the folder ns=2;s=Bench.

Lines on stdin drive it; each is answered "ok LINE" (or "error ...") on stdout, so a test
synchronises on output, never on sleeps:
    set NODE VALUE [STATUS|-] [UNIX_MS]   new value (type of the node), status code name, source time
    get NODE                              answered "ok get NODE VALUE"
    rate VALUES_PER_S                     (--bench) change the bench variables round robin at
                                          this rate, in steps of 10 ms (0 stops)
    sent                                  (--bench) answered "ok sent COUNT": changes made so far
    quit
Unprompted: "ready" once listening.
"""
import asyncio
import datetime
import sys
from pathlib import Path

from asyncua import Server, ua
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.crypto.permission_rules import User, UserRole
from cryptography.x509.oid import ExtendedKeyUsageOID

URI = "urn:enos:test"
NODES = {
    "ns=2;s=P": (231.5, ua.VariantType.Double, False),
    "ns=2;i=1001": (7, ua.VariantType.Int32, False),
    "ns=2;g=09087e75-8e5e-499b-954f-f2a9603db28a": (1.25, ua.VariantType.Float, False),
    "ns=2;b=AQID": (3, ua.VariantType.UInt16, False),
    "ns=2;s=Setpoint": (0.0, ua.VariantType.Double, True),
    "ns=2;s=Locked": (0.0, ua.VariantType.Double, False),
}


def out(line):
    print(line, flush=True)


class Users:
    """Accepts exactly one user name and password, or one user certificate (DER)."""

    def __init__(self, name=None, password=None, cert=None):
        self.name, self.password, self.cert = name, password, cert

    def get_user(self, iserver, username=None, password=None, certificate=None):
        if self.name is not None and username == self.name and password == self.password:
            return User(role=UserRole.User)
        if self.cert is not None and certificate is not None and _der(certificate) == self.cert:
            return User(role=UserRole.User)
        return None


def _der(certificate):
    if isinstance(certificate, (bytes, bytearray)):
        return bytes(certificate)
    from cryptography.hazmat.primitives.serialization import Encoding
    return certificate.public_bytes(Encoding.DER)


async def user_certificates(pki):
    """The accepted user certificate's DER (and a stranger's, made for refusal tests)."""
    for who in ("user", "stranger"):
        await setup_self_signed_certificate(
            pki / f"{who}_key.pem", pki / f"{who}_cert.der", f"urn:enos:test:{who}", "127.0.0.1",
            [ExtendedKeyUsageOID.CLIENT_AUTH], {"commonName": f"EnOS test {who}"}
        )
    return (pki / "user_cert.der").read_bytes()


def typed(text, vtype):
    if vtype in (ua.VariantType.Double, ua.VariantType.Float):
        return float(text)
    return int(text)


async def main():
    port, pki = int(sys.argv[1]), Path(sys.argv[2])
    args = sys.argv[3:]
    user = args[args.index("--user") + 1].split(":", 1) if "--user" in args else None
    init = {}
    if "--init" in args:
        for a in args[args.index("--init") + 1:]:
            if a.startswith("--"):
                break
            node, value = a.rsplit("=", 1)
            init[node] = value
    user_cert = None
    if "--user-cert" in args:
        pki.mkdir(parents=True, exist_ok=True)
        user_cert = await user_certificates(pki)
    server = Server(user_manager=Users(*user) if user else Users(cert=user_cert) if user_cert else None)
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/enos/test")
    server.set_server_name("EnOS test server")
    await server.set_application_uri("urn:enos:test:server")
    if "--secure" in args:
        pki.mkdir(parents=True, exist_ok=True)
        key, cert = pki / "server_key.pem", pki / "server_cert.der"
        await setup_self_signed_certificate(
            key, cert, "urn:enos:test:server", "127.0.0.1", [ExtendedKeyUsageOID.SERVER_AUTH], {"commonName": "EnOS test server"}
        )
        await server.load_certificate(str(cert))
        await server.load_private_key(str(key))
        if "--all-policies" in args:
            server.set_security_policy([
                ua.SecurityPolicyType.Basic256Sha256_Sign,
                ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
                ua.SecurityPolicyType.Aes128Sha256RsaOaep_Sign,
                ua.SecurityPolicyType.Aes128Sha256RsaOaep_SignAndEncrypt,
                ua.SecurityPolicyType.Aes256Sha256RsaPss_Sign,
                ua.SecurityPolicyType.Aes256Sha256RsaPss_SignAndEncrypt,
            ])
        else:
            server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
    else:
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    if user:
        server.set_identity_tokens([ua.UserNameIdentityToken])
    elif user_cert:
        server.set_identity_tokens([ua.X509IdentityToken])
    idx = await server.register_namespace(URI)
    assert idx == 2, idx
    objects = server.nodes.objects
    plant = await objects.add_object(ua.NodeId("Plant", idx), ua.QualifiedName("Plant", idx))
    nodes = {}
    for text, (value, vtype, writable) in NODES.items():
        nid = ua.NodeId.from_string(text)
        start = typed(init[text], vtype) if text in init else value
        var = await plant.add_variable(nid, ua.QualifiedName(text.split("=")[-1][:20], idx), ua.Variant(start, vtype))
        if writable:
            await var.set_writable()
        nodes[text] = (var, vtype)
    loop = asyncio.get_running_loop()
    bench = []
    if "--bench" in args:
        folder = await objects.add_folder(ua.NodeId("Bench", idx), ua.QualifiedName("Bench", idx))
        for i in range(int(args[args.index("--bench") + 1])):
            var = await folder.add_variable(ua.NodeId(f"B{i:05}", idx), ua.QualifiedName(f"B{i:05}", idx), ua.Variant(0.0, ua.VariantType.Double))
            bench.append(var.nodeid)
    # i: the last value written, never repeated (an equal value would be no data change)
    changer = {"rate": 0, "sent": 0, "task": None, "carry": 0.0, "i": 0}

    async def change_bench():
        # a fixed schedule (not sleep-after-work), so the offered rate holds while the server keeps up
        tick, start = 0.01, loop.time()
        while changer["rate"] > 0:
            start += tick
            due = changer["rate"] * tick + changer["carry"]
            n, changer["carry"] = int(due), due - int(due)
            now = datetime.datetime.now(datetime.timezone.utc)
            for _ in range(n):
                changer["i"] += 1
                i = changer["i"]
                dv = ua.DataValue(ua.Variant(float(i), ua.VariantType.Double), SourceTimestamp=now)
                await server.write_attribute_value(bench[i % len(bench)], dv)
            changer["sent"] += n
            await asyncio.sleep(max(0.0, start - loop.time()))

    async with server:
        out("ready")
        while True:
            line = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
            if not line or line == "quit":
                return
            try:
                words = line.split()
                if words[0] == "rate":
                    changer["rate"] = float(words[1])
                    if changer["rate"] > 0 and (changer["task"] is None or changer["task"].done()):
                        changer["task"] = asyncio.create_task(change_bench())
                    out("ok " + line)
                    continue
                if words[0] == "sent":
                    out(f"ok sent {changer['sent']}")
                    continue
                var, vtype = nodes[words[1]]
                if words[0] == "set":
                    status = ua.StatusCode(getattr(ua.StatusCodes, words[3])) if len(words) > 3 and words[3] != "-" else ua.StatusCode()
                    at = None
                    if len(words) > 4:
                        at = datetime.datetime.fromtimestamp(int(words[4]) / 1000, datetime.timezone.utc)
                    dv = ua.DataValue(ua.Variant(typed(words[2], vtype), vtype), StatusCode=status, SourceTimestamp=at)
                    await var.write_value(dv)
                    out("ok " + line)
                elif words[0] == "get":
                    out(f"ok {line} {(await var.read_data_value(raise_on_bad_status=False)).Value.Value}")
                else:
                    out("error unknown command " + line)
            except Exception as e:  # a fixture: say it and go on
                out(f"error {line}: {e!r}")


if __name__ == "__main__":
    asyncio.run(main())
