#!/usr/bin/env python3
"""A DNP3 outstation (TCP server) on 127.0.0.1 for the enos-dnp3 tests, on dnp3py.

    dnp3_outstation.py PORT JSON
    dnp3_outstation.py /dev/... JSON   (a serial line: one end of a socat PTY pair)

On a serial line JSON may also be {"outstations": [JSON, JSON, ...]}: several outstations on one
multi-drop line, each seeing every frame and answering those to its own address (dnp3py's own
connection handler serves each, over a channel fed from the line). Stdin lines then go to the
first outstation unless they start with "@ADDRESS ".

JSON describes it:
    {"address": 10, "master": 1,
     "bi": {"0": true}, "ai": {"5": 231}, "counter": {"2": 7}, "bo": [0, 1], "ao": [1]}
(binary inputs, analog inputs, counters with their first values; binary and analog outputs
that take commands). Every point starts ONLINE; events go to class 1. "events": N makes the
event buffer hold N events per class (dnp3py's default: 300); one more drops the oldest and
sets IIN2.3, event buffer overflow (dnp3py never clears that bit again).

Lines on stdin drive it; each is answered "ok LINE" (or "error LINE: why") on stdout, so a test
synchronises on output, never on sleeps:
    bi INDEX true|false [UNIX_MS]     a binary input change (an event, with its time when given)
    bi-burst INDEX COUNT              COUNT binary input changes in one go (false, true, ... ending
                                      with true when COUNT is even): no request is served in
                                      between, so more than the buffer holds overflows it
    ai INDEX VALUE [FLAG,FLAG]        an analog input change; flags by name (COMM_LOST, ...)
    counter INDEX VALUE [UNIX_MS]     a counter change (g22v5 events carry the time)
    refuse INDEX STATUS               answer commands to binary/analog output INDEX with status
                                      STATUS (a number, e.g. 4 not supported); "accept INDEX" undoes it
    drop                              close the master's connection (the server keeps listening)
    quit
Unprompted lines: "ready" once listening, "command KIND INDEX STEP VALUE" for every command the
outstation acts on or checks (KIND crob|ao, STEP select|operate|direct), "time UNIX_MS" when the
master sets its clock, "integrity poll" for every read of class 0 (g60v1) the master sends.
"""
import asyncio
import json
import os
import sys
import tty

from dnp3.core.enums import CommandStatus
from dnp3.core.flags import AnalogQuality, BinaryQuality, CounterQuality
from dnp3.core.timestamp import DNP3Timestamp
from dnp3.database import AnalogInputConfig, BinaryInputConfig, CounterConfig, Database, DatabaseConfig, EventBufferConfig
from dnp3.outstation import Outstation, OutstationConfig, OutstationTcpRunner
from dnp3.outstation.handler import CommandResult, DefaultCommandHandler


def out(line):
    print(line, flush=True)


class Handler(DefaultCommandHandler):
    """Accepts every command to a configured output unless told to refuse it; reports each."""

    def __init__(self, outputs):
        self.outputs = set(outputs)
        self.refused = {}

    def _answer(self, kind, index, step, value):
        out(f"command {kind} {index} {step} {value}")
        if index not in self.outputs:
            return CommandResult.not_supported("no such output")
        status = self.refused.get(index)
        if status is not None:
            return CommandResult(status=CommandStatus(status), message="refused by the test")
        return CommandResult.success()

    def select_binary_output(self, index, code, count, on_time, off_time):
        return self._answer("crob", index, "select", int(code))

    def operate_binary_output(self, index, code, count, on_time, off_time, select_sequence):
        return self._answer("crob", index, "operate", int(code))

    def direct_operate_binary_output(self, index, code, count, on_time, off_time):
        return self._answer("crob", index, "direct", int(code))

    def select_analog_output(self, index, value):
        return self._answer("ao", index, "select", value)

    def operate_analog_output(self, index, value, select_sequence):
        return self._answer("ao", index, "operate", value)

    def direct_operate_analog_output(self, index, value):
        return self._answer("ao", index, "direct", value)


def stamp(args, i):
    return DNP3Timestamp(milliseconds=int(args[i])) if len(args) > i else None


class LineChannel:
    """What dnp3py's connection handler reads and writes (read/write_all/close): one outstation's
    view of a shared serial line. Every octet read from the line is given to every outstation."""

    def __init__(self, line):
        self.line = line
        self.queue = asyncio.Queue()

    async def read(self, max_bytes):
        return await self.queue.get()

    async def write_all(self, data):
        await self.line.write(data)

    async def close(self):
        pass


class SerialLine:
    """A serial port (a PTY end) opened without blocking; reads fan out to every channel."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self.fd)  # no echo, no line discipline: DNP3 frames are binary
        self.channels = []
        self.lock = asyncio.Lock()
        asyncio.get_running_loop().add_reader(self.fd, self._readable)

    def channel(self):
        c = LineChannel(self)
        self.channels.append(c)
        return c

    def _readable(self):
        try:
            data = os.read(self.fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""  # the other end is closed (EIO): nothing to hand on
        if data:
            for c in self.channels:
                c.queue.put_nowait(data)

    async def write(self, data):
        async with self.lock:  # a frame is written whole, never interleaved with another's
            view = memoryview(data)
            while view:
                try:
                    n = os.write(self.fd, view)
                    view = view[n:]
                except BlockingIOError:
                    await asyncio.sleep(0.001)  # the PTY's buffer is full: let it drain


def build(spec):
    """One outstation from its JSON: (outstation, database, handler)."""
    if "events" in spec:
        buffer = EventBufferConfig(max_binary_events=int(spec["events"]), max_analog_events=0, max_counter_events=0)
        db = Database(config=DatabaseConfig(event_buffer_config=buffer))
    else:
        db = Database()
    for i, v in spec.get("bi", {}).items():
        db.add_binary_input(int(i), BinaryInputConfig(), value=bool(v), quality=BinaryQuality.ONLINE)
    for i, v in spec.get("ai", {}).items():
        db.add_analog_input(int(i), AnalogInputConfig(), value=v, quality=AnalogQuality.ONLINE)
    for i, v in spec.get("counter", {}).items():
        db.add_counter(int(i), CounterConfig(), value=int(v), quality=CounterQuality.ONLINE)
    for i in spec.get("bo", []):
        db.add_binary_output(int(i))
    for i in spec.get("ao", []):
        db.add_analog_output(int(i))
    handler = Handler([int(i) for i in spec.get("bo", [])] + [int(i) for i in spec.get("ao", [])])
    config = OutstationConfig(address=spec.get("address", 10), master_address=spec.get("master", 1))
    outstation = Outstation(config=config, database=db, handler=handler, time_handler=lambda t: out(f"time {t.milliseconds}"))
    serve = outstation.process_request

    def process_request(data, **kw):
        # function code 1 (READ) asking for g60v1 (class 0, all objects): an integrity poll
        if len(data) > 4 and data[1] == 1 and b"\x3c\x01\x06" in bytes(data[2:]):
            out("integrity poll")
        return serve(data, **kw)

    outstation.process_request = process_request
    return outstation, db, handler


async def main():
    where = sys.argv[1]
    spec = json.loads(sys.argv[2])
    specs = spec.get("outstations", [spec])
    stations = {s.get("address", 10): build(s) for s in specs}
    first = specs[0].get("address", 10)
    runners, tasks = [], []
    if where.startswith("/"):
        line = SerialLine(where)
        for outstation, _, _ in stations.values():
            runner = OutstationTcpRunner(outstation=outstation)
            runners.append(runner)
            tasks.append(asyncio.create_task(runner._handle_connection(line.channel())))
    else:
        outstation = stations[first][0]
        runner = OutstationTcpRunner(outstation=outstation, host="127.0.0.1", port=int(where))
        runners.append(runner)
        tasks.append(asyncio.create_task(runner.run()))
        while runner.local_address is None:
            await asyncio.sleep(0.01)  # the listener comes up in the runner's task
    out("ready")

    reader = asyncio.StreamReader()
    await asyncio.get_running_loop().connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        raw = await reader.readline()
        if not raw:
            break
        line = raw.decode().strip()
        args = line.split()
        try:
            if not args:
                continue
            address = first
            if args[0].startswith("@"):
                address, args = int(args[0][1:]), args[1:]
            _, db, handler = stations[address]
            runner = runners[0]
            if args[0] == "quit":
                break
            if args[0] == "bi":
                db.update_binary_input(int(args[1]), args[2] == "true", BinaryQuality.ONLINE, stamp(args, 3))
            elif args[0] == "bi-burst":
                count = int(args[2])
                for i in range(count):
                    db.update_binary_input(int(args[1]), i % 2 == 1, BinaryQuality.ONLINE, None)
            elif args[0] == "ai":
                q = AnalogQuality.ONLINE
                for name in (args[3].split(",") if len(args) > 3 else []):
                    q |= AnalogQuality[name]
                db.update_analog_input(int(args[1]), float(args[2]), q)
            elif args[0] == "counter":
                db.update_counter(int(args[1]), int(args[2]), CounterQuality.ONLINE, stamp(args, 3))
            elif args[0] == "refuse":
                handler.refused[int(args[1])] = int(args[2])
            elif args[0] == "accept":
                handler.refused.pop(int(args[1]), None)
            elif args[0] == "drop":
                task = runner._connection_task
                if task is None or task.done():
                    raise RuntimeError("no master is connected")
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
            else:
                raise ValueError("unknown command")
            out(f"ok {line}")
        except Exception as e:  # noqa: BLE001 - the test reads the reason
            out(f"error {line}: {e}")
    for r in runners:
        await r.stop()
    for t in tasks:
        t.cancel()


asyncio.run(main())
