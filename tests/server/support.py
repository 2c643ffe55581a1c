"""Test support: a scripted fake of the API, a small fake runtime, and a harness around the server app.

The fake runtime (``EchoRuntime``) stands in for the real one so that these tests pin down the server's own
job: routing, ordering, committing, executing, feeding results back, timers, errors and the HTTP answers.
Its one "flow" answers an inbound call on +15550000001, says hello, and reacts to a few events.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient

from flowengine.config import ServeConfig
from flowengine.errors import CatapultError
from flowengine.flow.model import Flow, State
from flowengine.server.dispatcher import BadCallback, HttpResult, NoSuchFlow, Routed, Step
from flowengine.store import MemoryBackend
from flowengine.typing import JSONObject, SnapshotData

USER = "u-test"
OUR_NUMBER = "+15550000001"
EXEC_TOKEN = "exec-token-123"


# ------------------------------------------------------------------------------------------ fake API


@dataclass
class Seen:
    method: str
    path: str
    body: Any


@dataclass
class FakeAPI:
    """Records REST requests; answers 201 + Location for creates, 200 otherwise, or scripted failures."""

    seen: list[Seen] = field(default_factory=list)
    fail: dict[str, tuple[int, JSONObject]] = field(default_factory=dict)
    delay: dict[str, float] = field(default_factory=dict)
    hold: dict[str, asyncio.Event] = field(default_factory=dict)  # path prefix -> answer once it is set
    counter: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        body = orjson.loads(raw) if raw else None
        path = request.path.removeprefix(f"/v1/users/{USER}")
        self.seen.append(Seen(request.method, path, body))
        for prefix, seconds in self.delay.items():
            if path.startswith(prefix):
                await asyncio.sleep(seconds)
        for prefix, gate in self.hold.items():
            if path.startswith(prefix):
                await gate.wait()
        for prefix, (status, error) in self.fail.items():
            if path.startswith(prefix):
                return web.json_response(error, status=status)
        if request.method == "POST" and path.count("/") in (1, 3):  # /calls, /calls/c-1/gather
            self.counter += 1
            return web.Response(status=201, headers={"Location": f"{request.path}/new-{self.counter}"})
        return web.Response(status=200)

    def paths(self) -> list[str]:
        return [f"{s.method} {s.path}" for s in self.seen]


# ------------------------------------------------------------------------------------- fake runtime


def rest(method: str, path: str, body: JSONObject | None, command_id: str | None = None) -> JSONObject:
    return {
        "kind": "rest",
        "method": method,
        "path": f"/v1/users/{USER}{path}",
        "body": body,
        "operation": "",
        "command_id": command_id,
    }


@dataclass(frozen=True)
class TimerFired:
    key: str


@dataclass(frozen=True)
class Result:
    command_id: str | None
    resource_id: str | None
    error: str | None


@dataclass(frozen=True)
class HttpDone:
    status: int
    json: Any
    error: str


class EchoRuntime:
    """A runtime with one voice flow, enough to exercise every path of the dispatcher."""

    def __init__(self, flows: Mapping[str, Flow]) -> None:
        self.flows = dict(flows)
        self.handled: list[tuple[str, str]] = []  # (session id, event description), in handling order
        self.replaced = 0
        self.http_url = "http://127.0.0.1:9/unused"

    def replace_flows(self, flows: Mapping[str, Flow]) -> None:
        self.flows = dict(flows)
        self.replaced += 1

    def parse(self, data: Mapping[str, object]) -> Routed:
        event_type = data.get("eventType")
        if not isinstance(event_type, str):
            raise BadCallback("eventType: missing or not a string")
        call_id = data.get("callId")
        if event_type not in ("incomingcall", "dtmf", "hangup", "speak"):
            return Routed(data, event_type, None, str(call_id or ""))
        if not isinstance(call_id, str) or not call_id:
            raise BadCallback("callId: missing or not a string")
        return Routed(dict(data), event_type, f"call:{call_id}", call_id)

    def _step(self, snapshot: JSONObject, **kwargs: Any) -> Step:
        return Step(
            session_id=str(snapshot["id"]),
            snapshot=snapshot,
            flow=str(snapshot["flow"]),
            state=str(snapshot["state"]),
            **kwargs,
        )

    def start(self, routed: Routed, now: float) -> Step | None:
        data = routed.event
        assert isinstance(data, dict)
        if (
            data.get("eventType") != "incomingcall"
            or data.get("to") != OUR_NUMBER
            or "echo" not in self.flows
        ):
            return None
        call = routed.call_id
        snapshot: JSONObject = {"id": f"s-{call}", "flow": "echo", "state": "greet", "call": call, "seen": []}
        self.handled.append((f"s-{call}", "start"))
        return self._step(
            snapshot,
            entries=[
                rest("POST", f"/calls/{call}", {"state": "active"}),
                rest("POST", f"/calls/{call}/audio", {"sentence": "Hello", "tag": "p1"}),
            ],
        )

    def start_outbound(self, flow: str, to: str, from_: str, variables: JSONObject, now: float) -> Step:
        if flow not in self.flows:
            raise NoSuchFlow(f"no flow {flow!r}")
        if to == "+15559999999":
            raise ValueError("that number is blocked")
        sid = f"x-{len(self.handled)}"
        snapshot: JSONObject = {
            "id": sid,
            "flow": flow,
            "state": "dialing",
            "call": "",
            "seen": [],
            "vars": variables,
        }
        self.handled.append((sid, "start_outbound"))
        return self._step(
            snapshot, entries=[rest("POST", "/calls", {"from": from_, "to": to, "tag": sid}, "dial")]
        )

    def handle(self, stored: SnapshotData, event: object, now: float) -> Step:
        snapshot = as_object(stored)
        seen = snapshot["seen"]
        assert isinstance(seen, list)
        sid = str(snapshot["id"])
        call = str(snapshot["call"])
        if isinstance(event, TimerFired):
            seen.append(f"timer:{event.key}")
            self.handled.append((sid, f"timer:{event.key}"))
            return self._step(snapshot, entries=[rest("POST", f"/calls/{call}/audio", {"sentence": "Tick"})])
        if isinstance(event, Result):
            seen.append(f"result:{event.command_id}:{event.resource_id}:{event.error}")
            self.handled.append((sid, seen[-1]))
            if event.error is not None:
                snapshot["state"] = "apologise"
                return self._step(snapshot, entries=[rest("POST", f"/calls/{call}", {"state": "completed"})])
            if event.command_id == "dial" and event.resource_id:
                snapshot["call"] = event.resource_id
                return self._step(snapshot, routes=[f"call:{event.resource_id}"])
            return self._step(snapshot)
        if isinstance(event, HttpDone):
            seen.append(f"http:{event.status}:{event.json}:{event.error}")
            self.handled.append((sid, seen[-1]))
            return self._step(snapshot)
        if event == "cancel":
            snapshot["state"] = "end"
            return self._step(
                snapshot, ended=True, entries=[rest("POST", f"/calls/{call}", {"state": "completed"})]
            )
        assert isinstance(event, dict)
        kind = event["eventType"]
        label = f"{kind}:{event.get('dtmfDigit', event.get('status', ''))}"
        seen.append(label)
        self.handled.append((sid, label))
        if kind == "hangup":
            snapshot["state"] = "end"
            return self._step(snapshot, ended=True, timers_cancel=["t1"])
        if kind == "dtmf" and event.get("dtmfDigit") == "1":
            return self._step(snapshot, timers_set={"t1": now + 0.05})
        if kind == "dtmf" and event.get("dtmfDigit") == "2":
            return self._step(
                snapshot,
                entries=[
                    {
                        "kind": "http",
                        "method": "GET",
                        "url": self.http_url,
                        "json": None,
                        "headers": {"X-Test": "1"},
                        "timeout": 2.0,
                        "command_id": "h1",
                    }
                ],
            )
        if kind == "dtmf" and event.get("dtmfDigit") == "3":
            return self._step(
                snapshot,
                entries=[
                    rest("POST", f"/calls/{call}/gather", {"maxDigits": 1}, "g"),
                    rest("POST", f"/calls/{call}/audio", {"sentence": "never sent"}),
                ],
            )
        if kind == "dtmf" and event.get("dtmfDigit") == "6":  # a gather whose result decides nothing more
            return self._step(
                snapshot, entries=[rest("POST", f"/calls/{call}/gather", {"maxDigits": 1}, "g")]
            )
        if kind == "dtmf" and event.get("dtmfDigit") == "4":
            return self._step(snapshot, logs=[("warning", "caller pressed 4")])
        return self._step(snapshot)

    def timer_event(self, key: str) -> object:
        return TimerFired(key)

    def result_event(
        self, entry: JSONObject, resource_id: str | None, error: CatapultError | None
    ) -> object | None:
        if entry.get("command_id") is None and error is None:
            return None
        return Result(
            entry.get("command_id"),
            resource_id,
            None if error is None else getattr(error, "code", "") or str(error),
        )  # type: ignore[arg-type]

    def http_event(self, entry: JSONObject, result: HttpResult) -> object:
        return HttpDone(result.status, result.json, result.error)

    def cancel(self, snapshot: SnapshotData, now: float) -> Step:
        return self.handle(snapshot, "cancel", now)

    def describe(self, stored: SnapshotData) -> JSONObject:
        snapshot = as_object(stored)
        return {
            "flow": snapshot["flow"],
            "state": snapshot["state"],
            "variables": snapshot.get("vars", {}),
            "steps": list(snapshot["seen"]),  # type: ignore[call-overload]
        }


def fake_loader(path: Path) -> Flow:
    text = path.read_text()
    if "broken" in text:
        from flowengine.errors import Diagnostic, FlowValidationError

        raise FlowValidationError([Diagnostic(str(path), 1, 1, "error", "this flow is broken")])
    name = text.strip().split()[0]
    return Flow(name=name, kind="voice", initial="a", states={"a": State("a")}, source_hash=text)


@dataclass
class Harness:
    client: TestClient[Any, Any]
    api: FakeAPI
    runtime: EchoRuntime
    backend: MemoryBackend
    flows_dir: Path
    config: ServeConfig
    app: web.Application

    async def post(self, data: Any, path: str = "/callbacks/voice", **kwargs: Any) -> aiohttp.ClientResponse:
        headers = {"Content-Type": "application/json", **kwargs.pop("headers", {})}
        return await self.client.post(path, data=orjson.dumps(data), headers=headers, **kwargs)

    async def settle(self, predicate: Callable[[], bool], timeout: float = 3.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("condition not reached in time")
            await asyncio.sleep(0.005)


MakeHarness = Callable[..., Awaitable[Harness]]


def incoming(call_id: str = "c-1", to: str = OUR_NUMBER) -> JSONObject:
    return {
        "eventType": "incomingcall",
        "from": "+15551230000",
        "to": to,
        "callId": call_id,
        "callUri": f"https://api.example/v1/users/{USER}/calls/{call_id}",
        "callState": "active",
        "applicationId": "a-1",
        "time": "2012-11-14T16:21:59.616Z",
    }


def dtmf(call_id: str, digit: str, n: int = 0) -> JSONObject:
    return {
        "eventType": "dtmf",
        "callId": call_id,
        "dtmfDigit": digit,
        "time": f"2012-11-14T16:22:{n:02d}.000Z",
    }


def as_object(snapshot: SnapshotData) -> JSONObject:
    """A snapshot as the store gave it back (JSON text or an object), as a new object."""
    value = orjson.loads(snapshot if isinstance(snapshot, bytes | str) else orjson.dumps(snapshot))
    assert isinstance(value, dict)
    return value
