"""``flowengine call FLOW``: an interactive phone in the terminal, on the simulator, with no account.

Voice flows: the call is placed to the flow's number; everything the caller hears, and what the flow does
(transfers, dials, bridges, texts, HTTP requests), is printed as it happens. Type keys and Enter to press
them (``1``, ``42#``), ``w`` or ``w 10`` to wait, ``h`` to hang up, ``q`` to quit. Messaging flows: each line
you type is texted to the flow; its replies are printed; ``/q`` quits.

Time is the simulator's virtual clock, moved forward with real time (``--speed 10`` runs it ten times
faster). The flow's ``http`` actions are answered by ``--http URL_GLOB=STATUS`` rules (404 otherwise).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Mapping
from typing import TextIO

from flowengine.errors import FlowEngineError, FlowError
from flowengine.flow.model import Flow, Position
from flowengine.testing.harness import Harness
from flowengine.testing.runner import default_flow_loader, default_runtime_factory
from flowengine.testing.scenario import CannedResponse

_NOWHERE = Position("<command line>", 1, 1)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

_HELP_VOICE = "keys + Enter to press them, 'w [seconds]' to wait, 'h' to hang up, 'q' to quit"
_HELP_TEXT = "type a message + Enter to text it, '/q' to quit"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("flow", metavar="FLOW", help="the flow file to call (or text)")
    parser.add_argument(
        "--from", dest="caller", default="+15555550100", help="your number (default %(default)s)"
    )
    parser.add_argument("--to", dest="number", help="the flow's number to call (default: its first)")
    parser.add_argument(
        "--speed", type=float, default=1.0, help="virtual seconds per real second (default 1)"
    )
    parser.add_argument(
        "--http",
        action="append",
        default=[],
        metavar="URL_GLOB=STATUS",
        help="answer the flow's HTTP requests matching URL_GLOB with STATUS (repeatable)",
    )
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE", help="an env value for templates"
    )


def run(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    if args.speed <= 0:
        stderr.write("flowengine call: error: --speed must be positive\n")
        return EXIT_USAGE
    try:
        canned = [_canned(rule) for rule in args.http]
        env = dict(_pair(item, "--env") for item in args.env)
    except ValueError as exc:
        stderr.write(f"flowengine call: error: {exc}\n")
        return EXIT_USAGE
    try:
        flows = default_flow_loader(args.flow)
    except FlowError as exc:
        stderr.write(f"{exc}\n")
        return EXIT_USAGE
    except (FlowEngineError, OSError) as exc:
        stderr.write(f"flowengine call: error: cannot read {args.flow!r}: {exc}\n")
        return EXIT_USAGE
    phone = _Phone(flows, args, canned, env, stdout)
    return asyncio.run(phone.run(sys.stdin))


def _pair(item: str, flag: str) -> tuple[str, str]:
    name, sep, value = item.partition("=")
    if not sep or not name:
        raise ValueError(f"{flag} takes NAME=VALUE, not {item!r}")
    return name, value


def _canned(rule: str) -> CannedResponse:
    url, status = _pair(rule, "--http")
    if not status.isdigit() or not 100 <= int(status) <= 599:
        raise ValueError(f"--http status must be 100..599, not {status!r}")
    return CannedResponse(url=url, pos=_NOWHERE, status=int(status))


class _Phone:
    """The terminal phone: reads commands, drives the harness, prints what happens."""

    def __init__(
        self,
        flows: Mapping[str, Flow],
        args: argparse.Namespace,
        canned: list[CannedResponse],
        env: dict[str, str],
        out: TextIO,
    ) -> None:
        self.flows = flows
        self.flow: Flow = next(iter(self.flows.values()))
        self.caller: str = args.caller
        self.number: str = args.number or (self.flow.numbers[0] if self.flow.numbers else "+15555550000")
        self.speed: float = args.speed
        self.out = out
        rules = [*canned, CannedResponse(url="*", pos=_NOWHERE, status=404)]
        self.harness = Harness(
            default_runtime_factory(self.flows, env),
            numbers=list(dict.fromkeys([self.number, *self.flow.numbers])),
            canned=rules,
            phones={},
        )
        self.call_id: str | None = None
        self._printed = 0
        self._observed = 0
        self._done = asyncio.Event()

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    async def run(self, stdin: TextIO) -> int:
        harness = self.harness
        await harness.setup()
        voice = self.flow.kind == "voice"
        self.say(
            f"flowengine call: {self.flow.name} ({self.flow.kind}) at {self.number}, you are {self.caller}"
        )
        self.say(_HELP_VOICE if voice else _HELP_TEXT)
        if voice:
            self.call_id = harness.sim.place_call(self.caller, self.number).id
        ticker = asyncio.create_task(self._tick())
        loop = asyncio.get_running_loop()
        try:
            while not self._done.is_set():
                line = await loop.run_in_executor(None, stdin.readline)
                if not line:
                    break
                if not await self._command(line.strip(), voice):
                    break
        finally:
            self._done.set()
            ticker.cancel()
            await asyncio.gather(ticker, return_exceptions=True)
            await harness.close()
        self.say("bye")
        return EXIT_OK

    async def _command(self, line: str, voice: bool) -> bool:
        harness = self.harness
        if not voice:
            if line == "/q":
                return False
            if line:
                harness.sim.send_sms(self.caller, self.number, line)
                await harness.settle()
                self._print_new()
            return True
        if line == "q":
            return False
        if line == "h":
            if self.call_id is not None and not harness.sim.voice.call(self.call_id).ended:
                harness.sim.hangup(self.call_id)
                await harness.settle()
            self._print_new()
            return True
        if line.startswith("w"):
            amount = line[1:].strip() or "5"
            try:
                seconds = float(amount)
            except ValueError:
                self.say(f"? wait how long: {amount!r} is not a number of seconds")
                return True
            await harness.advance(seconds)
            self._print_new()
            return True
        if line and all(key in "0123456789*#ABCD" for key in line):
            if self.call_id is None or harness.sim.voice.call(self.call_id).ended:
                self.say("? the call has ended")
                return True
            harness.sim.press(self.call_id, line)
            await harness.settle()
            self._print_new()
            return True
        if line:
            self.say(f"? {_HELP_VOICE}")
        return True

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(0.05)
            now = loop.time()
            await self.harness.advance((now - last) * self.speed)
            last = now
            self._print_new()
            if self.call_id is not None and self.harness.sim.voice.call(self.call_id).ended:
                self.say("(the call has ended; 'q' to quit)")
                self._done.set()
                return

    def _print_new(self) -> None:
        harness = self.harness
        if self.call_id is not None:
            entries = harness.sim.voice.call(self.call_id).transcript
            for entry in entries[self._printed :]:
                if entry.kind == "heard":
                    self.say(f"  << {entry.text}")
                elif entry.kind in ("call", "pressed"):
                    self.say(f"  -- {entry.kind} {entry.text}")
            self._printed = len(entries)
        for item in harness.observations[self._observed :]:
            if item.kind == "sms" and item.data.get("to") == self.caller:
                self.say(f"  << text: {item.text}")
            elif item.kind in ("transfer", "dial", "bridge", "http"):
                self.say(f"  -- {item.kind} {item.text}")
        self._observed = len(harness.observations)
        for problem in harness.problems:
            self.say(f"  !! {problem}")
        harness.problems.clear()
