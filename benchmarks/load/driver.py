"""The load driver: plays the Bandwidth API for N concurrent calls of the IVR example (``flows/ivr.yaml``)
against a running ``flowengine serve`` (or the floor server), on loopback, bounded in time and count.

One process, two roles, both on raw asyncio protocols (:mod:`fasthttp`) so that the driver is not what is
measured:

* **the REST stand-in** answers every API request at once (``201`` with a ``Location`` for creations) and,
  like the API, turns what the engine asked for into the callback that follows it: a spoken prompt into
  ``speak`` ``done`` (with the audio's tag), a gather into a ``gather`` event with the caller's next digits,
  a dial into the agent's ``answer``, a bridge into the agent hanging up, the caller being hung up into the
  caller's ``hangup``;
* **the callback sender** sends the callbacks that are ready over ``--connections`` keep-alive connections,
  either as fast as they are answered (``--rate 0``) or paced at ``--rate`` events per second with
  coordinated-omission correction (a callback's latency counts from the moment it was due, so a slow server
  cannot hide its queue).

Calls follow the sequences of ``tests/runtime/test_example_flows.py``: incoming call, "Thanks for calling"
done, the menu's gather, ... By call index: 50% press 1 (sales: dial, agent answers, bridge, agent hangs up,
goodbye, hang up), 30% press 2 (support), 10% press 7 first (nomatch reprompt), 10% press nothing first
(noinput reprompt). Each finished call is replaced by a new one, so ``--concurrency`` calls are always live.

``--mode floor`` sends the same callbacks in the same order to the floor server (which POSTs once per
callback to the stand-in and decides nothing): a call's next callback is ready when the previous one is
answered. ``--mode idle`` starts ``--calls`` calls and leaves each waiting in the menu's gather (the idle
sessions' memory test).

Prints one JSON object with the figures, overall and by callback type (``by_type``). Measured only inside
the window after ``--warmup`` seconds.

    python benchmarks/load/driver.py --target http://127.0.0.1:8080 --standin-port 8099 --mode engine \\
        --concurrency 10000 --rate 5000 --warmup 10 --duration 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fasthttp import ClientConnection, HTTPError, post_request, response, serve

USER = "u-bench"
OURS = "+19195551000"
SALES = "+19195552001"
OK = response(200, "OK")
_SCRIPTS: tuple[tuple[str, ...], ...] = (
    ("1",),
    ("2",),
    ("1",),
    ("2",),
    ("1",),
    ("7", "1"),
    ("1",),
    ("2",),
    ("1",),
    ("", "2"),
)


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


@dataclass(slots=True)
class Call:
    index: int
    caller: str
    agent: str
    theirs: str
    digits: list[str]
    session: str = ""
    agent_tag: str = ""
    script: deque[bytes] = field(default_factory=deque)


# ------------------------------------------------------------------------------------------ callbacks


def _summary(latencies: list[float]) -> dict[str, float]:
    """Count, p50 and p99 (ms) of one callback type's latencies."""
    ordered = sorted(latencies)
    return {
        "events": len(ordered),
        "p50_ms": round(_percentile(ordered, 0.50) * 1000, 2),
        "p99_ms": round(_percentile(ordered, 0.99) * 1000, 2),
    }


_stamp: list[Any] = [-1, ""]  # the last millisecond formatted, and its text


def event_time() -> str:
    """Now, as the API writes an event's ``time`` (``2012-11-14T16:21:59.616Z``): the engine's dedup keys
    start with it, so the events must carry real, advancing times as the API's do."""
    now_ms = time.time_ns() // 1_000_000
    if now_ms != _stamp[0]:
        seconds, ms = divmod(now_ms, 1000)
        _stamp[0] = now_ms
        _stamp[1] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{ms:03d}Z"
    return str(_stamp[1])


def _uri(call_id: str) -> str:
    return f"https://api.catapult.inetwork.com/v1/users/{USER}/calls/{call_id}"


def incoming(call: Call) -> bytes:
    return orjson.dumps(
        {
            "eventType": "incomingcall",
            "from": call.theirs,
            "to": OURS,
            "callId": call.caller,
            "callUri": _uri(call.caller),
            "callState": "active",
            "applicationId": "a-bench",
            "time": event_time(),
        }
    )


def speak_done(call_id: str, tag: str) -> bytes:
    return orjson.dumps(
        {
            "eventType": "speak",
            "state": "PLAYBACK_STOP",
            "status": "done",
            "callId": call_id,
            "callUri": _uri(call_id),
            "tag": tag,
            "time": event_time(),
        }
    )


def gathered(call_id: str, gather_id: str, tag: str, digits: str) -> bytes:
    return orjson.dumps(
        {
            "eventType": "gather",
            "state": "completed",
            "digits": digits,
            "reason": "max-digits" if digits else "inter-digit-timeout",
            "callId": call_id,
            "gatherId": gather_id,
            "tag": tag,
            "time": event_time(),
        }
    )


def answered(call_id: str, tag: str, from_: str, to: str) -> bytes:
    return orjson.dumps(
        {
            "eventType": "answer",
            "from": from_,
            "to": to,
            "callId": call_id,
            "callUri": _uri(call_id),
            "callState": "active",
            "tag": tag,
            "time": event_time(),
        }
    )


def hung_up(call_id: str, tag: str | None, from_: str, to: str) -> bytes:
    data: dict[str, Any] = {
        "eventType": "hangup",
        "from": from_,
        "to": to,
        "callId": call_id,
        "callUri": _uri(call_id),
        "cause": "NORMAL_CLEARING",
        "time": event_time(),
    }
    if tag is not None:
        data["tag"] = tag
    return orjson.dumps(data)


def floor_script(call: Call) -> deque[bytes]:
    """The callbacks of ``call`` in the order the engine run sends them (tags are made up: the floor does
    not read them)."""
    script = deque([incoming(call), speak_done(call.caller, "s|a1")])
    for n, digits in enumerate(call.digits):
        script.append(gathered(call.caller, f"g-{call.index}-{n}", f"s|g{n}", digits))
        script.append(speak_done(call.caller, f"s|a{n + 2}"))
    tag = "s|call:agent"
    script += [
        answered(call.agent, tag, OURS, SALES),
        hung_up(call.agent, tag, OURS, SALES),
        speak_done(call.caller, "s|a9"),
        hung_up(call.caller, None, call.theirs, OURS),
    ]
    return script


# ----------------------------------------------------------------------------------------------- driver


class Driver:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        parts = urlsplit(args.target)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.frame = post_request(self.host, self.port, "/callbacks/voice")
        self.mode: str = args.mode
        self.interval = 1.0 / args.rate if args.rate > 0 else 0.0
        self.next_slot = 0.0
        self.ready: asyncio.Queue[tuple[Call, bytes, float, bool]] = asyncio.Queue()
        self.calls: dict[str, Call] = {}
        self.sessions: dict[str, Call] = {}
        self.numbers = itertools.count()
        self.live = 0
        self.inflight = 0
        self.stopping = False
        self.halted = False
        self.window = (float("inf"), float("inf"))
        # results
        self.latencies: list[float] = []
        self.latencies_by_type: dict[bytes, list[float]] = {}
        self.answers: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.rest_window = 0
        self.rest_total = 0
        self.rest_by_kind: Counter[str] = Counter()
        self.sent = 0
        self.completed = 0
        self.completed_window = 0
        self.idle = 0
        self.idle_done = asyncio.Event()

    # ---------------------------------------------------------------------------------- the calls

    def start_call(self) -> None:
        index = next(self.numbers)
        caller = f"c-{index}"
        call = Call(
            index=index,
            caller=caller,
            agent=f"c-{index}-agent",
            theirs=f"+1555{index:07d}",
            digits=list(_SCRIPTS[index % len(_SCRIPTS)]),
        )
        self.calls[caller] = call
        self.live += 1
        if self.mode == "floor":
            call.script = floor_script(call)
            self.push(call, call.script.popleft(), last=False)
        else:
            self.push(call, incoming(call), last=False)

    def push(self, call: Call, payload: bytes, *, last: bool) -> None:
        self.ready.put_nowait((call, payload, time.perf_counter(), last))

    def finish(self, call: Call) -> None:
        self.live -= 1
        self.completed += 1
        if self.window[0] <= time.perf_counter() < self.window[1]:
            self.completed_window += 1
        self.calls.pop(call.caller, None)
        self.calls.pop(call.agent, None)
        self.sessions.pop(call.session, None)
        if not self.stopping:
            self.start_call()

    # -------------------------------------------------------------------------------- REST stand-in

    def on_rest(self, method: bytes, target: bytes, body: bytes) -> bytes:
        self.rest_total += 1
        now = time.perf_counter()
        if self.window[0] <= now < self.window[1]:
            self.rest_window += 1
        parts = target.split(b"/")
        if self.mode == "floor" or len(parts) < 5 or parts[1] != b"v1" or method != b"POST":
            self.rest_by_kind["other" if self.mode != "floor" else "floor-post"] += 1
            return OK
        resource = parts[4:]
        try:
            data = orjson.loads(body) if body else {}
        except orjson.JSONDecodeError:
            self.rest_by_kind["bad-json"] += 1
            return response(400, "Bad Request")
        if resource[0] == b"bridges":
            return self._bridge(data)
        if resource[0] != b"calls":
            self.rest_by_kind["other"] += 1
            return OK
        if len(resource) == 1:
            return self._create_call(data)
        call_id = resource[1].decode()
        call = self.calls.get(call_id)
        if call is None:
            self.rest_by_kind["unknown-call"] += 1
            return OK
        if len(resource) == 2:
            return self._update_call(call, call_id, data)
        if resource[2] == b"audio":
            self.rest_by_kind["audio"] += 1
            tag = data.get("tag")
            if data.get("sentence") and isinstance(tag, str):
                if not call.session:
                    call.session = tag.partition("|")[0]
                    self.sessions[call.session] = call
                self.push(call, speak_done(call_id, tag), last=False)
            return OK
        if resource[2] == b"gather":
            if len(resource) > 3:
                self.rest_by_kind["stop-gather"] += 1
                return OK
            self.rest_by_kind["gather"] += 1
            gather_id = f"g-{call.index}-{len(call.digits)}"
            location = f"Location: /v1/users/{USER}/calls/{call_id}/gather/{gather_id}\r\n"
            if self.mode == "idle":
                self.idle += 1
                if self.idle >= self.args.calls:
                    self.idle_done.set()
            else:
                digits = call.digits.pop(0) if call.digits else "1"
                self.push(call, gathered(call_id, gather_id, str(data.get("tag", "")), digits), last=False)
            return response(201, "Created", headers=location)
        self.rest_by_kind["other"] += 1
        return OK

    def _create_call(self, data: dict[str, Any]) -> bytes:
        self.rest_by_kind["create-call"] += 1
        tag = str(data.get("tag", ""))
        call = self.sessions.get(tag.partition("|")[0])
        if call is None:
            self.rest_by_kind["create-call-unknown-session"] += 1
            return response(201, "Created", headers=f"Location: /v1/users/{USER}/calls/c-stray\r\n")
        call.agent_tag = tag
        self.calls[call.agent] = call
        self.push(call, answered(call.agent, tag, OURS, str(data.get("to", SALES))), last=False)
        return response(201, "Created", headers=f"Location: /v1/users/{USER}/calls/{call.agent}\r\n")

    def _update_call(self, call: Call, call_id: str, data: dict[str, Any]) -> bytes:
        state = data.get("state")
        self.rest_by_kind[f"call-{state}"] += 1
        if state == "completed":
            if call_id == call.caller:
                self.push(call, hung_up(call_id, None, call.theirs, OURS), last=True)
            else:
                self.push(call, hung_up(call_id, call.agent_tag, OURS, SALES), last=False)
        return OK

    def _bridge(self, data: dict[str, Any]) -> bytes:
        self.rest_by_kind["bridge"] += 1
        ids = data.get("callIds") or []
        call = next((self.calls[i] for i in ids if isinstance(i, str) and i in self.calls), None)
        if call is not None:
            # The caller and the agent talk; then the agent hangs up.
            self.push(call, hung_up(call.agent, call.agent_tag, OURS, SALES), last=False)
            name = f"b-{call.index}"
        else:
            name = "b-stray"
        return response(201, "Created", headers=f"Location: /v1/users/{USER}/bridges/{name}\r\n")

    # ------------------------------------------------------------------------------------- sending

    async def worker(self, conn: ClientConnection) -> None:
        ready = self.ready
        frame = self.frame
        interval = self.interval
        while True:
            call, payload, ready_at, last = await ready.get()
            if self.halted:
                return
            if interval:
                slot = max(self.next_slot, ready_at)
                self.next_slot = slot + interval
                delay = slot - time.perf_counter()
                if delay > 0.0005:
                    await asyncio.sleep(delay)
                start = slot
            else:
                start = time.perf_counter()
            self.sent += 1
            self.inflight += 1
            try:
                status, body = await conn.request(frame(payload))
            except HTTPError as exc:
                self.errors[str(exc)[:80]] += 1
                if conn.closed:
                    return
                continue
            finally:
                self.inflight -= 1
            end = time.perf_counter()
            window_start, window_end = self.window
            if window_start <= start < window_end:
                self.latencies.append(end - start)
                # Every payload starts with {"eventType":"...": the type is the text up to the next quote.
                kind = payload[14 : payload.find(b'"', 14)]
                by_type = self.latencies_by_type.get(kind)
                if by_type is None:
                    by_type = self.latencies_by_type[kind] = []
                by_type.append(end - start)
                at = body.find(b'"status":"')
                answer = body[at + 10 : body.find(b'"', at + 10)].decode() if at >= 0 else ""
                self.answers[f"{status} {answer}"] += 1
            if self.mode == "floor":
                if call.script:
                    self.push(call, call.script.popleft(), last=False)
                else:
                    self.finish(call)
            elif last:
                self.finish(call)

    async def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        raw = f"GET /healthz HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n\r\n".encode()
        while True:
            try:
                conn = await ClientConnection.open(self.host, self.port)
                try:
                    status, _ = await asyncio.wait_for(conn.request(raw), 2.0)
                finally:
                    conn.close()
                if status == 200:
                    return
            except (OSError, HTTPError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"driver: {self.args.target} did not become healthy in {timeout:g} s")
            await asyncio.sleep(0.1)

    async def run(self) -> dict[str, Any]:
        args = self.args
        standin = await serve(self.on_rest, "127.0.0.1", args.standin_port)
        try:
            await self.wait_healthy(args.startup_timeout)
            conns = [await ClientConnection.open(self.host, self.port) for _ in range(args.connections)]
            workers = [asyncio.create_task(self.worker(conn)) for conn in conns]
            started = time.perf_counter()
            if self.mode == "idle":
                return await self._run_idle(started, workers, conns)
            self.window = (started + args.warmup, started + args.warmup + args.duration)
            for _ in range(args.concurrency):
                self.start_call()
            while time.perf_counter() < self.window[1]:
                await asyncio.sleep(0.05)
                if self.sent >= args.max_events:
                    break
            ended = time.perf_counter()
            # Stop sending; wait for the answers to callbacks already sent (they count if sent in the window).
            self.stopping = self.halted = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._answered(), args.drain)
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            for conn in conns:
                conn.close()
            return self._report(min(ended, self.window[1]) - self.window[0])
        finally:
            standin.close()

    async def _answered(self) -> None:
        while self.inflight:
            await asyncio.sleep(0.01)

    async def _run_idle(
        self, started: float, workers: list[asyncio.Task[None]], conns: list[ClientConnection]
    ) -> dict[str, Any]:
        args = self.args
        self.window = (started, started + args.duration)
        for _ in range(args.calls):
            self.start_call()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.idle_done.wait(), args.duration)
        elapsed = time.perf_counter() - started
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        for conn in conns:
            conn.close()
        report = self._report(elapsed)
        report["idle_sessions"] = self.idle
        return report

    def _report(self, seconds: float) -> dict[str, Any]:
        latencies = sorted(self.latencies)
        seconds = max(seconds, 1e-9)
        return {
            "mode": self.mode,
            "target": self.args.target,
            "concurrency": self.args.concurrency if self.mode != "idle" else self.args.calls,
            "connections": self.args.connections,
            "offered_rate": self.args.rate,
            "window_s": round(seconds, 3),
            "events": len(latencies),
            "events_per_s": round(len(latencies) / seconds, 1),
            "p50_ms": round(_percentile(latencies, 0.50) * 1000, 2),
            "p99_ms": round(_percentile(latencies, 0.99) * 1000, 2),
            "max_ms": round((latencies[-1] if latencies else 0.0) * 1000, 2),
            "rest_ops": self.rest_window,
            "rest_ops_per_s": round(self.rest_window / seconds, 1),
            "calls_completed": self.completed_window,
            "calls_per_s": round(self.completed_window / seconds, 1),
            "by_type": {
                kind.decode(): _summary(values) for kind, values in sorted(self.latencies_by_type.items())
            },
            "answers": dict(self.answers.most_common()),
            "errors": dict(self.errors),
            "rest_by_kind": dict(self.rest_by_kind.most_common()),
            "sent_total": self.sent,
            "rest_total": self.rest_total,
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True, help="base URL of the server under test (loopback)")
    parser.add_argument("--standin-port", type=int, required=True, help="port of the REST stand-in")
    parser.add_argument("--mode", choices=("engine", "floor", "idle"), default="engine")
    parser.add_argument("--concurrency", type=int, default=10_000, help="live calls at any time")
    parser.add_argument("--calls", type=int, default=100_000, help="idle mode: sessions to leave waiting")
    parser.add_argument("--connections", type=int, default=64, help="callback connections (max in flight)")
    parser.add_argument(
        "--rate", type=float, default=0.0, help="callbacks per second (0: as fast as answered)"
    )
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds before measuring")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds measured (idle: time limit)")
    parser.add_argument("--max-events", type=int, default=5_000_000, help="stop after this many callbacks")
    parser.add_argument("--drain", type=float, default=5.0, help="seconds to wait for the last answers")
    parser.add_argument("--startup-timeout", type=float, default=60.0)
    parser.add_argument("--uvloop", action="store_true", help="run the driver on uvloop")
    args = parser.parse_args(argv)
    if urlsplit(args.target).hostname not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the target must be on loopback")
    if args.uvloop:
        import uvloop

        uvloop.install()
    report = asyncio.run(Driver(args).run())
    json.dump(report, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
