#!/usr/bin/env python3
"""DL/T 645-2007 meters for the enos-dlt645 tests, served by the PyPI library `dlt645` (3.2.0).

A test fixture, never shipped. Usage: dlt645_peer.py CONFIG_JSON, where CONFIG_JSON is
  {"tcp": true} or {"serial": "/dev/pts/N"},
  "meters": [{"address": "123456789012", "low_first": false,
              "values": {"02010100": 231.4, "04000101": "26120607"},
              "noise": false}]}
Each meter is the library's own MeterServerService (its frame codec, data map and answers,
abnormal replies included). The transport loop is ours: the library's servers serve one meter
each and cannot bind port 0, and several meters must share one line (RS-485 multi-drop), where a
meter keeps quiet on a frame for another address (the library would answer it with an error).

Prints "ready PORT" (TCP) or "ready" (serial) once listening, then one line
"time-sync ADDRESS YYYY-MM-DDTHH:MM:SS" per meter for each broadcast time sync it accepted.
"noise": before the meter's answer the peer sends garbage, the same answer for another address
and the answer with a wrong checksum: the master must discard all three and take the answer.
"""

import json
import socket
import sys

import dlt645
from dlt645.protocol.protocol import DLT645Protocol

BROADCAST = bytes([0x99] * 6)
WILDCARD = bytes([0xAA] * 6)


def make_meter(spec):
    meter = dlt645.MeterServerService(None)
    # The library compares the frame's address bytes as given; "low_first" makes the standard's
    # wire order (the low byte of the written address first).
    wire = bytes.fromhex(spec["address"])
    if spec.get("low_first"):
        wire = wire[::-1]
    meter.set_address(wire)
    for di_hex, value in spec.get("values", {}).items():
        di = int(di_hex, 16)
        setter = {0x00: meter.set_00, 0x02: meter.set_02, 0x04: meter.set_04}[di >> 24]
        if not setter(di, value):
            sys.exit(f"the library refused {value!r} for {di_hex}")
    return meter, spec


def answers(meters, frame):
    """What goes on the line for one request frame: the answers of the meters it addresses."""
    out = []
    addr = bytes(frame.addr)
    for meter, spec in meters:
        if addr not in (BROADCAST, WILDCARD) and addr != bytes(meter.address):
            continue  # another meter's frame: stay silent, as on a shared line
        reply = meter.handle_request(frame)
        if frame.ctrl_code == 0x08 and meter.time is not None:
            print(f"time-sync {spec['address']} {meter.time.isoformat()}", flush=True)
            meter.time = None
        if not reply:
            continue
        reply = bytes(reply)
        if spec.get("noise"):
            other = bytearray(reply)
            other[5] ^= 0x01  # another meter's address (the checksum made to match)
            other[-2] = (other[-2] + other[5] - reply[5]) & 0xFF
            bad_sum = bytearray(reply)
            bad_sum[-2] ^= 0xFF
            out += [b"\x00\x11\x22garbage", bytes(other), bytes(bad_sum)]
        out.append(reply)
    return out


def serve(read, write, meters):
    buf = b""
    while True:
        chunk = read()
        if not chunk:
            return
        buf += chunk
        while True:
            rest, frame = DLT645Protocol.deserialize_with_remaining(buf)
            if frame is None:
                buf = rest
                break
            buf = rest
            for piece in answers(meters, frame):
                write(piece)


def main():
    cfg = json.loads(sys.argv[1])
    meters = [make_meter(m) for m in cfg["meters"]]
    if cfg.get("serial"):
        import serial  # pyserial, a dependency of dlt645

        line = serial.Serial(cfg["serial"], 9600, timeout=None)
        print("ready", flush=True)
        serve(lambda: line.read(max(1, line.in_waiting)), line.write, meters)
        return
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    print("ready", srv.getsockname()[1], flush=True)
    while True:  # one master at a time, as a serial device server in transparent mode
        conn, _ = srv.accept()
        with conn:
            serve(lambda: conn.recv(1024), conn.sendall, meters)


if __name__ == "__main__":
    main()
