#!/usr/bin/env python3
"""An IEC 62056-21 mode C meter (data readout) for the plugin tests. Ours, standard library only.

A test fixture, never shipped. Usage: iec62056_meter.py CONFIG_JSON, where CONFIG_JSON is
  {"tcp": true} or {"serial": "/dev/pts/N"},
  "address": "" (answer any sign-on) or the device address it answers to,
  "ident": "ISK5MT174-0001" (manufacturer, baud character 0-6, identification),
  "values": {"1.8.0": "001234.567*kWh", "32.7.0": "230.1*V"}}
Each readout counts up 1.8.0 by 0.001 so a test sees fresh values. Prints "ready PORT" (TCP) or
"ready" (serial) once listening, then "readout N" after each data block it sent.

Per readout: sign-on "/?ADDRESS!\\r\\n" -> "/XXXZIDENT\\r\\n"; "ACK 0 Z 0 \\r\\n" (option select,
data readout) -> "STX lines ! \\r\\n ETX BCC", BCC the XOR of the bytes after STX up to ETX.
"""

import json
import os
import socket
import sys
import termios
import tty

ACK, STX, ETX = 0x06, 0x02, 0x03


class Meter:
    def __init__(self, cfg):
        self.address = cfg.get("address", "")
        self.ident = cfg.get("ident", "ISK5MT174-0001")
        self.values = dict(cfg.get("values", {"1.8.0": "001234.567*kWh"}))
        self.readouts = 0

    def block(self):
        lines = "".join(f"{obis}({v})\r\n" for obis, v in self.values.items()) + "!\r\n"
        body = lines.encode() + bytes([ETX])
        bcc = 0
        for b in body:
            bcc ^= b
        return bytes([STX]) + body + bytes([bcc])

    def tick(self):
        v = self.values.get("1.8.0")
        if v is not None:
            num, _, unit = v.partition("*")
            self.values["1.8.0"] = f"{float(num) + 0.001:010.3f}" + (f"*{unit}" if unit else "")

    def serve(self, read, write):
        """One connection: answers sign-ons until the line closes."""
        buf = b""
        state = "idle"
        while True:
            chunk = read()
            if not chunk:
                return
            buf += chunk
            while b"\r\n" in buf:
                line, buf = buf.split(b"\r\n", 1)
                if state == "idle" and line.startswith(b"/?") and line.endswith(b"!"):
                    addr = line[2:-1].decode(errors="replace")
                    if addr and self.address and addr != self.address:
                        continue  # another meter's sign-on: keep quiet
                    write(f"/{self.ident}\r\n".encode())
                    state = "identified"
                elif state == "identified" and len(line) == 4 and line[0] == ACK:
                    write(self.block())
                    self.readouts += 1
                    self.tick()
                    print(f"readout {self.readouts}", flush=True)
                    state = "idle"
                else:
                    state = "idle"  # anything else ends the session, as a meter's timeout would


def main():
    cfg = json.loads(sys.argv[1])
    meter = Meter(cfg)
    if cfg.get("serial"):
        fd = os.open(cfg["serial"], os.O_RDWR | os.O_NOCTTY)
        tty.setraw(fd)
        termios.tcflush(fd, termios.TCIOFLUSH)
        print("ready", flush=True)
        meter.serve(lambda: os.read(fd, 1024), lambda b: os.write(fd, b))
        return
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    print(f"ready {srv.getsockname()[1]}", flush=True)
    while True:
        conn, _ = srv.accept()
        with conn:
            try:
                meter.serve(lambda: conn.recv(1024), conn.sendall)
            except OSError:
                pass


if __name__ == "__main__":
    main()
