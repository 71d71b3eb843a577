#!/usr/bin/env python3
"""A controlled station (IEC 60870-5-104 server) on 127.0.0.1 for the enos-iec104 tests, on c104.

    iec104_station.py PORT JSON [--tls CERT KEY CA]

JSON describes the station:
    {"ca": 1,
     "points": [{"ioa": 100, "type": "M_ME_NC_1", "value": 1.5, "quality": ["Invalid"]},
                {"ioa": 1000, "count": 10000, "type": "M_SP_NA_1", "value": true}],
     "commands": [{"ioa": 5000, "type": "C_SC_NA_1", "sbo": true}]}

Lines on stdin drive it; each is answered "ok ..." (or "error ...") on stdout, so a test
synchronises on output, never on sleeps:
    set IOA VALUE [QUALITY,QUALITY|-] [UNIX_MS]   new value (quality names as c104.Quality), optional time tag
    spontaneous IOA                              transmit the point with cause spontaneous
    refuse IOA | accept IOA                      answer later selects and executes on IOA negatively / positively
    ignore IOA                                   do not answer executes and direct commands (c104 answers every select)
    terminate IOA                                positively, and send ACTTERM after the execute's ACTCON
    quit
Unprompted lines: "ready" once listening, "connected", "clock UNIX_MS" on a clock sync,
"command IOA select|execute VALUE" for every command received.
"""
import datetime
import json
import os
import threading
import sys

import c104

UTC = datetime.timezone.utc


def out(line):
    print(line, flush=True)


def info_for(ptype, value, quality=None, recorded_at=None):
    """The c104 Information object of a monitor point type with `value`."""
    q = quality if quality is not None else c104.Quality()
    kind = ptype[2:4]
    if kind == "SP":
        return c104.SingleInfo(bool(value), q, recorded_at)
    if kind == "DP":
        return c104.DoubleInfo(c104.Double(int(value)), q, recorded_at)
    if kind == "ST":
        return c104.StepInfo(c104.Int7(int(value)), False, q, recorded_at)
    if kind == "BO":
        # Byte32(int) reads as zero in c104 2.2.1; bytes work
        return c104.BinaryInfo(c104.Byte32(int(value).to_bytes(4, "little")), q, recorded_at)
    if ptype in ("M_ME_NA_1", "M_ME_TD_1"):
        return c104.NormalizedInfo(c104.NormalizedFloat(float(value)), q, recorded_at)
    if ptype in ("M_ME_NB_1", "M_ME_TE_1"):
        return c104.ScaledInfo(c104.Int16(int(value)), q, recorded_at)
    if ptype in ("M_ME_NC_1", "M_ME_TF_1"):
        return c104.ShortInfo(float(value), q, recorded_at)
    if kind == "IT":
        return c104.BinaryCounterInfo(int(value), c104.UInt5(0), c104.BinaryCounterQuality(), recorded_at)
    raise ValueError("unsupported point type " + ptype)


def quality_of(names):
    q = c104.Quality()
    for n in names:
        q |= getattr(c104.Quality, n)
    return q


def main():
    port = int(sys.argv[1])
    spec = json.loads(sys.argv[2])
    security = None
    if len(sys.argv) > 3 and sys.argv[3] == "--tls":
        cert, key, ca = sys.argv[4:7]
        # Mutual TLS: the client must present a certificate signed by our CA.
        security = c104.TransportSecurity(validate=True, only_known=False)
        security.set_certificate(cert=cert, key=key)
        security.set_ca_certificate(cert=ca)
        security.set_version(min=c104.TlsVersion.TLS_1_2, max=c104.TlsVersion.TLS_1_2)
    server = c104.Server(ip="127.0.0.1", port=port, select_timeout_ms=5000, transport_security=security)
    if "k" in spec:
        # c104 queues a whole interrogation answer at once and drops what does not fit while it
        # waits for acknowledgements with its standard k=12: a large station needs a larger k.
        server.protocol_parameters.send_window_size = spec["k"]
    station = server.add_station(common_address=spec.get("ca", 1))
    types = {}
    for p in spec.get("points", []):
        ptype = p["type"]
        q = quality_of(p.get("quality", []))
        for ioa in range(p["ioa"], p["ioa"] + p.get("count", 1)):
            point = station.add_point(io_address=ioa, type=getattr(c104.Type, ptype))
            if point is None:
                sys.exit("cannot add point {} of type {} (IOA taken?)".format(ioa, ptype))
            point.info = info_for(ptype, p.get("value", 0), q)
            types[ioa] = ptype

    behaviour = {}  # IOA -> "accept" | "refuse" | "ignore" | "terminate"
    terminating = set()  # IOAs whose execute was accepted and is to be terminated
    points = {}

    def command_con_ioa(data):
        """The IOA of a command's ACTCON (an I frame of type 45-51, COT 7), else None."""
        if len(data) >= 16 and data[2] & 1 == 0 and 45 <= data[6] <= 51 and data[8] & 0x3F == 7:
            return data[12] | data[13] << 8 | data[14] << 16
        return None

    # c104 answers a select itself in SELECT_AND_EXECUTE mode, without calling back: "refuse"
    # turns the point to DIRECT mode, in which c104 refuses a select (negative ACTCON). The
    # callback sees the execute (and direct commands): "refuse" answers it negatively, "ignore"
    # not at all. c104 checks a callback's parameter names and annotations.
    def on_command(point: c104.Point, previous_info: c104.Information, message: c104.IncomingMessage) -> c104.ResponseState:
        ioa = point.io_address
        step = "select" if message.is_select_command else "execute"
        out("command {} {} {}".format(ioa, step, message.info.value))
        mode = behaviour.get(ioa)
        if mode == "refuse":
            return c104.ResponseState.FAILURE
        if mode == "ignore":
            return c104.ResponseState.NONE
        if mode == "terminate" and step == "execute":
            terminating.add(ioa)
        return c104.ResponseState.SUCCESS

    trace = os.environ.get("IEC104_PEER_TRACE")  # frames to stderr, for debugging a test

    def on_receive_raw(server: c104.Server, data: bytes) -> None:
        sys.stderr.write("received {}\n".format(c104.explain_bytes(apdu=data)))

    def on_send_raw(server: c104.Server, data: bytes) -> None:
        if trace:
            sys.stderr.write("sent {}\n".format(c104.explain_bytes(apdu=data)))
        ioa = command_con_ioa(data)
        # c104 never sends ACTTERM for a command: send it once the execute's ACTCON is out
        if ioa in terminating:
            terminating.discard(ioa)
            point = points[ioa]
            threading.Thread(target=lambda: point.transmit(cause=c104.Cot.ACTIVATION_TERMINATION)).start()

    for c in spec.get("commands", []):
        mode = c104.CommandMode.SELECT_AND_EXECUTE if c.get("sbo") else c104.CommandMode.DIRECT
        point = station.add_point(io_address=c["ioa"], type=getattr(c104.Type, c["type"]), command_mode=mode)
        if point is None:
            sys.exit("cannot add command point {} (IOA taken?)".format(c["ioa"]))
        point.on_receive(callable=on_command)
        points[c["ioa"]] = point

    def set_behaviour(ioa, mode):
        behaviour[ioa] = mode
        point = points[ioa]
        if mode == "refuse":
            point.command_mode = c104.CommandMode.DIRECT
        elif point.io_address in sbo_ioas:
            point.command_mode = c104.CommandMode.SELECT_AND_EXECUTE

    sbo_ioas = {c["ioa"] for c in spec.get("commands", []) if c.get("sbo")}
    server.on_send_raw(callable=on_send_raw)
    if trace:
        server.on_receive_raw(callable=on_receive_raw)

    def on_clock_sync(server: c104.Server, ip: str, date_time: datetime.datetime) -> c104.ResponseState:
        if date_time.tzinfo is None:
            date_time = date_time.replace(tzinfo=UTC)
        out("clock {}".format(int(date_time.timestamp() * 1000)))
        return c104.ResponseState.SUCCESS

    server.on_clock_sync(callable=on_clock_sync)
    def on_connect(server: c104.Server, ip: str) -> bool:
        out("connected")
        return True

    server.on_connect(callable=on_connect)
    server.start()
    out("ready")

    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        try:
            cmd, args = words[0], words[1:]
            if cmd == "quit":
                break
            if cmd == "set":
                ioa = int(args[0])
                value = json.loads(args[1])
                q = quality_of([] if len(args) < 3 or args[2] == "-" else args[2].split(","))
                at = datetime.datetime.fromtimestamp(int(args[3]) / 1000, tz=UTC) if len(args) > 3 else None
                station.get_point(io_address=ioa).info = info_for(types[ioa], value, q, at)
            elif cmd == "spontaneous":
                if not station.get_point(io_address=int(args[0])).transmit(cause=c104.Cot.SPONTANEOUS):
                    raise RuntimeError("transmit failed")
            elif cmd in ("refuse", "ignore", "accept", "terminate"):
                set_behaviour(int(args[0]), cmd)
            else:
                raise ValueError("unknown line " + line.strip())
            out("ok " + line.strip())
        except Exception as e:  # a test fixture: report, keep serving
            out("error {}: {}".format(line.strip(), e))
    server.stop()


if __name__ == "__main__":
    main()
