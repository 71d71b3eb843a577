#!/usr/bin/env python3
"""A DNP3 outstation (TCP server) on 127.0.0.1 for the enos-dnp3 tests, on dnp3py.

    dnp3_outstation.py PORT JSON

JSON describes it:
    {"address": 10, "master": 1,
     "bi": {"0": true}, "ai": {"5": 231}, "counter": {"2": 7}, "bo": [0, 1], "ao": [1]}
(binary inputs, analog inputs, counters with their first values; binary and analog outputs
that take commands). Every point starts ONLINE; events go to class 1.

Lines on stdin drive it; each is answered "ok LINE" (or "error LINE: why") on stdout, so a test
synchronises on output, never on sleeps:
    bi INDEX true|false [UNIX_MS]     a binary input change (an event, with its time when given)
    ai INDEX VALUE [FLAG,FLAG]        an analog input change; flags by name (COMM_LOST, ...)
    counter INDEX VALUE [UNIX_MS]     a counter change (g22v5 events carry the time)
    refuse INDEX STATUS               answer commands to binary/analog output INDEX with status
                                      STATUS (a number, e.g. 4 not supported); "accept INDEX" undoes it
    drop                              close the master's connection (the server keeps listening)
    quit
Unprompted lines: "ready" once listening, "command KIND INDEX STEP VALUE" for every command the
outstation acts on or checks (KIND crob|ao, STEP select|operate|direct), "time UNIX_MS" when the
master sets its clock.
"""
import asyncio
import json
import sys

from dnp3.core.enums import CommandStatus
from dnp3.core.flags import AnalogQuality, BinaryQuality, CounterQuality
from dnp3.core.timestamp import DNP3Timestamp
from dnp3.database import AnalogInputConfig, BinaryInputConfig, CounterConfig, Database
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


async def main():
    port = int(sys.argv[1])
    spec = json.loads(sys.argv[2])
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
    runner = OutstationTcpRunner(outstation=outstation, host="127.0.0.1", port=port)
    server = asyncio.create_task(runner.run())
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
            if args[0] == "quit":
                break
            if args[0] == "bi":
                db.update_binary_input(int(args[1]), args[2] == "true", BinaryQuality.ONLINE, stamp(args, 3))
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
    await runner.stop()
    server.cancel()


asyncio.run(main())
