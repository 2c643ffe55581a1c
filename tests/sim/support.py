"""Helpers for the simulator's tests: a harness around the simulator app over loopback HTTP, and a
receiver app that plays the customer's server and records every callback it gets."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from flowengine.sim import SIM_KEY, SimConfig, Simulator
from flowengine.sim.callbacks import basic_auth
from flowengine.typing import JSON

OURS = "+19195550001"
OTHER_OWNED = "+19195550002"
CALLER = "+13235550100"
AGENT = "+13235550199"


@dataclass
class Received:
    """One request the receiver got."""

    method: str
    path: str
    query: dict[str, str]
    multi_query: list[tuple[str, str]]
    body: Any
    headers: dict[str, str]

    @property
    def event(self) -> dict[str, Any]:
        """The event, whether it came as a JSON body or as query parameters."""
        return dict(self.body) if self.method == "POST" else dict(self.query)


@dataclass
class Receiver:
    """The customer's server: answers 200 except on paths told to fail or to stall."""

    server: TestServer | None = None
    received: list[Received] = field(default_factory=list)
    failing: set[str] = field(default_factory=set)
    stalling: set[str] = field(default_factory=set)
    on_event: Callable[[Received], Awaitable[None]] | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.Response:
        body: JSON = None
        if request.method == "POST":
            body = await request.json()
        item = Received(
            request.method,
            request.path,
            dict(request.query),
            list(request.query.items()),
            body,
            dict(request.headers),
        )
        self.received.append(item)
        if request.path in self.stalling:
            await asyncio.sleep(5)
        if request.path in self.failing:
            return web.Response(status=500, text="boom")
        if self.on_event is not None:
            await self.on_event(item)
        return web.Response(text="ok")

    def url(self, path: str = "/events") -> str:
        assert self.server is not None
        return str(self.server.make_url(path))

    def events(self, path: str | None = None) -> list[dict[str, Any]]:
        """Events that reached ``path`` (or any path) and were answered, in arrival order."""
        return [
            r.event
            for r in self.received
            if (path is None or r.path == path) and r.path not in self.failing and r.path not in self.stalling
        ]

    def types(self, call_id: str | None = None, path: str | None = None) -> list[str]:
        """The eventType of each event, with the status/reason/state that qualifies it."""
        found = []
        for event in self.events(path):
            if call_id is not None and event.get("callId") != call_id:
                continue
            name = event["eventType"]
            qualifier = event.get("status") or event.get("reason") or event.get("cause")
            found.append(f"{name}:{qualifier}" if qualifier else name)
        return found


@dataclass
class Harness:
    """The simulator over HTTP plus the receiver, with helpers that keep tests short."""

    client: TestClient[web.Request, web.Application]
    receiver: Receiver
    config: SimConfig

    @property
    def sim(self) -> Simulator:
        return self.client.app[SIM_KEY]

    def path(self, tail: str) -> str:
        return f"/v1/users/{self.config.user_id}{tail}"

    async def rest(
        self, method: str, tail: str, body: JSON = None, *, auth: bool = True, raw: bytes | None = None
    ) -> tuple[int, dict[str, str], Any]:
        """Call the REST API; returns status, headers and the decoded body (None when empty)."""
        kwargs: dict[str, Any] = {}
        if auth:
            kwargs["headers"] = {"Authorization": basic_auth(self.config.token, self.config.secret)}
        if raw is not None:
            kwargs["data"] = raw
        elif body is not None:
            kwargs["json"] = body
        async with self.client.request(method, self.path(tail), **kwargs) as response:
            data = await response.read()
            decoded: Any = None
            if data and response.content_type == "application/json":
                decoded = await response.json()
            elif data:
                decoded = data
            return response.status, dict(response.headers), decoded

    async def control(self, method: str, path: str, body: JSON = None) -> tuple[int, Any]:
        async with self.client.request(method, path, json=body) as response:
            return response.status, await response.json()

    async def ok(self, method: str, tail: str, body: JSON = None) -> Any:
        status, headers, data = await self.rest(method, tail, body)
        assert status in (200, 201, 202), (status, data)
        return headers.get("Location", "").rsplit("/", 1)[-1] if status == 201 else data

    async def advance(self, seconds: float) -> None:
        await self.sim.advance(seconds)

    async def own(
        self,
        number: str = OURS,
        *,
        auto_answer: bool = True,
        method: str = "POST",
        path: str = "/events",
        fallback: str | None = None,
        messages: bool = True,
    ) -> str:
        """Create an application pointing at the receiver and assign ``number`` to it."""
        app: dict[str, JSON] = {
            "name": "test",
            "incomingCallUrl": self.receiver.url(path),
            "autoAnswer": auto_answer,
            "callbackHttpMethod": method,
        }
        if messages:
            app["incomingMessageUrl"] = self.receiver.url("/messages")
        if fallback is not None:
            app["incomingCallFallbackUrl"] = self.receiver.url(fallback)
        app_id = await self.ok("POST", "/applications", app)
        await self.ok("POST", "/phoneNumbers", {"number": number, "applicationId": app_id})
        return str(app_id)

    async def inbound(self, from_: str = CALLER, to: str = OURS) -> str:
        status, body = await self.control("POST", "/sim/calls", {"from": from_, "to": to})
        assert status == 201, body
        await self.sim.settle()
        return str(body["callId"])

    async def outbound(self, to: str = AGENT, **extra: JSON) -> str:
        body: dict[str, JSON] = {"from": OURS, "to": to, "callbackUrl": self.receiver.url("/out"), **extra}
        return str(await self.ok("POST", "/calls", body))


HarnessFactory = Callable[..., Awaitable[Harness]]

DOCS_NUMBER = "+19195551212"  # the number the messages page's examples send from


async def account(harness: Harness) -> dict[str, str]:
    """One of every resource the examples name, by placeholder."""
    app_id = await harness.own(OURS)
    await harness.ok("POST", "/phoneNumbers", {"number": DOCS_NUMBER, "applicationId": app_id})
    await harness.own(OTHER_OWNED, auto_answer=False, path="/ringing")
    calls = {name: await harness.inbound() for name in ("callId", "callId1", "callId2", "callId3", "callId4")}
    member_call, recorded, gathering, speaking = [await harness.inbound() for _ in range(4)]
    ringing = await harness.inbound(to=OTHER_OWNED)
    bridge_id = await harness.ok("POST", "/bridges", {"callIds": [calls["callId1"], calls["callId2"]]})
    empty_bridge = await harness.ok("POST", "/bridges", {})
    conference_id = await harness.ok("POST", "/conferences", {"from": OURS})
    member_id = await harness.ok("POST", f"/conferences/{conference_id}/members", {"callId": member_call})
    await harness.ok("POST", f"/calls/{recorded}", {"recordingEnabled": "true"})
    await harness.advance(2)
    await harness.ok("POST", f"/calls/{recorded}", {"recordingEnabled": "false"})
    await harness.advance(1)
    [recording] = await harness.ok("GET", f"/calls/{recorded}/recordings")
    transcription_id = await harness.ok("POST", f"/recordings/{recording['id']}/transcriptions", {})
    await harness.advance(2)
    gather_id = await harness.ok("POST", f"/calls/{gathering}/gather", {"maxDigits": 3})
    await harness.ok(
        "POST", f"/calls/{speaking}/audio", {"fileUrl": "http://example.com/hold.mp3", "loopEnabled": True}
    )
    await harness.rest("PUT", "/media/hello.mp3", raw=b"ID3")
    message_id = await harness.ok("POST", "/messages", {"from": OURS, "to": CALLER, "text": "hi"})
    events = await harness.ok("GET", f"/calls/{calls['callId']}/events")
    numbers = await harness.ok("GET", "/phoneNumbers")
    user = harness.config.user_id
    return {
        "{{userId}}": user,
        "{userId}": user,
        "{user-id}": user,
        "{your_user_id}": user,
        "%2b{fromNumber}": quote(OURS, safe=""),
        "{fromNumber}": OURS,
        "{fromNumber1}": OURS,
        "{fromNumber2}": DOCS_NUMBER,
        "{number}": OURS,
        "{toNumber}": AGENT,
        "{toNumber1}": AGENT,
        "{toNumber2}": CALLER,
        "{sip:someone@somewhere.com:}": "sip:someone@somewhere.com",
        "{sip:someone@somewhere.com}": "sip:someone@somewhere.com",
        **{f"{{{name}}}": call_id for name, call_id in calls.items()},
        "{bridgeId}": bridge_id,
        "{gatherId}": gather_id,
        "{eventId}": events[0]["id"],
        "{conferenceId}": conference_id,
        "{memberId}": member_id,
        "{recordingId}": recording["id"],
        "{recording-id}": recording["id"],
        "{transcription-id}": transcription_id,
        "{mediaName}": "hello.mp3",
        "{mediaName1}": "hello.mp3",
        "{file.mp3}": "upload.mp3",
        "{messageId}": message_id,
        "{{applicationId}}": app_id,
        "{applicationId}": app_id,
        "{application_id}": app_id,
        "{numberId}": next(n["id"] for n in numbers if n["number"] == OURS),
        "{fallback_number}": "+19195550003",
        "ringing": ringing,
        "speaking": speaking,
        "emptyBridge": empty_bridge,
        "gathering": gathering,
    }
