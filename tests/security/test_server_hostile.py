"""The callback server and a flow's HTTP requests under hostile input: documented answers, nothing more.

Uses the server tests' harness (the real app, store and REST client with a small fake runtime), so what is
pinned down here is the server's own behaviour: HTTP requests of flows (schemes, the host allow-list,
redirects, timeouts, answer size, secrets in URLs), the cap on concurrent sessions, and callbacks that are
oversized, of the wrong type, unauthenticated, replayed, reordered or about other applications' calls.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator

import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestServer
from server.support import OUR_NUMBER, Harness, MakeHarness, dtmf, incoming

from flowengine.server.dispatcher import host_allowed
from flowengine.server.keys import STORE
from flowengine.server.logs import mask_number, mask_numbers


@pytest.fixture
async def target() -> AsyncIterator[TestServer]:
    """A local HTTP server standing in for the sites flows call."""

    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(3)
        return web.json_response({"late": True})

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * 200_000)

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("http://elsewhere.invalid/steal")

    app = web.Application()
    app.router.add_get("/ok", ok)
    app.router.add_get("/slow", slow)
    app.router.add_get("/big", big)
    app.router.add_get("/redirect", redirect)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


async def run_http(h: Harness, url: str) -> str:
    """Start a call, make the fake flow run its http action on ``url``, return what the flow was told."""
    h.runtime.http_url = url
    assert (await h.post(incoming("c-h"))).status == 200
    assert (await h.post(dtmf("c-h", "2"))).status == 200
    await h.settle(lambda: any(label.startswith("http:") for _, label in h.runtime.handled), timeout=5)
    return next(label for _, label in h.runtime.handled if label.startswith("http:"))


class TestHttpActions:
    @pytest.mark.parametrize(
        "url",
        [
            "file:///etc/passwd",
            "ftp://127.0.0.1/x",
            "gopher://127.0.0.1:70/",
            "data:text/plain,hi",
            "/relative",
        ],
    )
    async def test_only_http_and_https_are_allowed(self, make_harness: MakeHarness, url: str) -> None:
        h = await make_harness()
        told = await run_http(h, url)
        assert told.startswith("http:0:None:only http and https URLs are allowed")

    async def test_a_host_outside_the_allow_list_is_refused_and_counted(
        self, make_harness: MakeHarness, target: TestServer
    ) -> None:
        h = await make_harness(http_allow_hosts="crm.example.com, *.hooks.example")
        with structlog.testing.capture_logs() as logs:
            told = await run_http(h, str(target.make_url("/ok?token=s3cr3t")))
        assert told.startswith("http:0:None:host '127.0.0.1' is not in the allow-list")
        assert "s3cr3t" not in told
        assert any(entry["event"] == "http_action.refused" for entry in logs)
        assert "s3cr3t" not in repr(logs)
        metrics = await (await h.client.get("/metrics")).text()
        assert 'flowengine_errors_total{kind="http-action"} 1.0' in metrics

    async def test_a_host_on_the_allow_list_is_reached(
        self, make_harness: MakeHarness, target: TestServer
    ) -> None:
        h = await make_harness(http_allow_hosts="127.0.0.1")
        assert await run_http(h, str(target.make_url("/ok"))) == "http:200:{'ok': True}:"

    async def test_redirects_are_not_followed(self, make_harness: MakeHarness, target: TestServer) -> None:
        h = await make_harness(http_allow_hosts="127.0.0.1")
        assert await run_http(h, str(target.make_url("/redirect"))) == "http:302:None:"

    async def test_the_operator_timeout_caps_the_flow_timeout(
        self, make_harness: MakeHarness, target: TestServer
    ) -> None:
        h = await make_harness(http_timeout=0.2)  # the fake flow asks for 2 s; the server waits 3 s
        started = asyncio.get_running_loop().time()
        assert await run_http(h, str(target.make_url("/slow"))) == "http:0:None:timed out"
        assert asyncio.get_running_loop().time() - started < 2

    async def test_an_answer_above_the_size_limit_is_not_read(
        self, make_harness: MakeHarness, target: TestServer
    ) -> None:
        h = await make_harness(http_max_bytes=1000)
        assert (
            await run_http(h, str(target.make_url("/big")))
            == "http:200:None:the answer is larger than 1000 bytes"
        )

    @pytest.mark.parametrize(
        ("host", "allowed"),
        [
            ("crm.example.com", True),
            ("CRM.Example.com.", True),
            ("a.hooks.example", True),
            ("a.b.hooks.example", True),
            ("hooks.example", False),
            ("evilhooks.example", False),
            ("crm.example.com.evil.net", False),
            ("127.0.0.1", False),
            ("::1", True),
        ],
    )
    def test_host_matching(self, host: str, allowed: bool) -> None:
        assert host_allowed(host, ("crm.example.com", "*.hooks.example", "[::1]")) is allowed


class TestSessionCap:
    async def test_calls_above_the_cap_are_rejected_politely_and_counted(
        self, make_harness: MakeHarness
    ) -> None:
        h = await make_harness(max_sessions=2)
        for call in ("c-1", "c-2"):
            assert (await (await h.post(incoming(call))).json())["status"] == "started"
        with structlog.testing.capture_logs() as logs:
            response = await h.post(incoming("c-3"))
        assert response.status == 200
        body = await response.json()
        assert body["status"] == "ignored"
        assert body["reason"].startswith("at capacity")
        await h.settle(lambda: "POST /calls/c-3" in h.api.paths())
        assert [s.body for s in h.api.seen if s.path == "/calls/c-3"] == [{"state": "rejected"}]
        assert any(entry["event"] == "session.refused_at_capacity" for entry in logs)
        metrics = await (await h.client.get("/metrics")).text()
        assert 'flowengine_errors_total{kind="capacity"} 1.0' in metrics
        # the running calls are unaffected, and once one ends a new call is taken again
        assert (await (await h.post(dtmf("c-1", "9"))).json())["status"] == "handled"
        await h.post({"eventType": "hangup", "callId": "c-1", "time": "2012-11-14T16:23:00Z"})
        assert (await (await h.post(incoming("c-4"))).json())["status"] == "started"

    async def test_a_flood_of_new_calls_stays_within_the_cap(self, make_harness: MakeHarness) -> None:
        h = await make_harness(max_sessions=5)
        answers = await asyncio.gather(*(h.post(incoming(f"c-{n}")) for n in range(60)))
        statuses = [(await a.json())["status"] for a in answers]
        assert statuses.count("started") == 5
        assert statuses.count("ignored") == 55
        assert sum(1 for r in h.backend.sessions.values() if r.ended_at is None) == 5


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class TestHostileCallbacks:
    @pytest.mark.parametrize(
        ("body", "content_type", "status", "code"),
        [
            pytest.param(
                b"eventType=incomingcall&callId=c-1",
                "application/x-www-form-urlencoded",
                400,
                "malformed-body",
                id="form body",
            ),
            pytest.param(b"<xml/>", "text/xml", 400, "malformed-body", id="xml"),
            pytest.param(b"\xff\xfe\x00", "application/json", 400, "malformed-body", id="binary"),
            pytest.param(b"[1, 2]", "application/json", 400, "malformed-body", id="a list"),
            pytest.param(b'{"eventType": 5}', "application/json", 400, "invalid-event", id="wrong type"),
            pytest.param(b"{}", "application/json", 400, "invalid-event", id="no event type"),
            pytest.param(
                b"[" * 1500 + b"]" * 1500,
                "application/json",
                400,
                "malformed-body",
                id="deep json",
            ),
            pytest.param(b"x" * 5000, "application/json", 413, "body-too-large", id="oversized"),
        ],
    )
    async def test_bad_bodies_get_their_documented_answer(
        self, make_harness: MakeHarness, body: bytes, content_type: str, status: int, code: str
    ) -> None:
        h = await make_harness()
        response = await h.client.post("/callbacks/voice", data=body, headers={"Content-Type": content_type})
        assert response.status == status
        assert (await response.json())["error"]["code"] == code
        assert (await h.client.get("/healthz")).status == 200

    @pytest.mark.parametrize(
        "authorization",
        [
            None,
            basic("bandwidth", "wrong"),
            basic("other", "pa55word-xyz"),
            "Basic !!!not-base64",
            "Bearer pa55word-xyz",
            basic("bandwidth", "pa55word-xyz") + "x",
        ],
    )
    async def test_wrong_credentials_get_401_and_never_echo_the_password(
        self, make_harness: MakeHarness, authorization: str | None
    ) -> None:
        h = await make_harness(callback_user="bandwidth", callback_password="pa55word-xyz")
        headers = {} if authorization is None else {"Authorization": authorization}
        with structlog.testing.capture_logs() as logs:
            response = await h.post(incoming("c-1"), headers=headers)
        assert response.status == 401
        assert "pa55word" not in await response.text()
        assert "pa55word" not in repr(logs)
        assert h.runtime.handled == []

    async def test_a_replayed_event_has_no_second_effect(self, make_harness: MakeHarness) -> None:
        h = await make_harness()
        await h.post(incoming("c-1"))
        first = await (await h.post(dtmf("c-1", "9", 1))).json()
        replays = [await (await h.post(dtmf("c-1", "9", 1))).json() for _ in range(3)]
        assert first["status"] == "handled"
        assert {r["status"] for r in replays} == {"duplicate"}
        record = await h.app[STORE].load("s-c-1")
        assert record is not None
        assert record.snapshot["seen"] == ["dtmf:9"]  # the replays were refused at the store's commit

    async def test_events_arriving_out_of_order_are_handled_or_ignored_never_fail(
        self, make_harness: MakeHarness
    ) -> None:
        h = await make_harness()
        # events of a call before its incomingcall, then the call, then events after its hangup
        early = await h.post(dtmf("c-9", "1"))
        assert (await early.json())["status"] == "ignored"
        await h.post(incoming("c-9"))
        await h.post({"eventType": "hangup", "callId": "c-9", "time": "2012-11-14T16:24:00Z"})
        late = await h.post(dtmf("c-9", "5", 7))
        assert late.status == 200
        assert (await late.json())["status"] == "ignored"

    async def test_events_of_another_applications_calls_are_ignored(self, make_harness: MakeHarness) -> None:
        h = await make_harness()
        foreign = await h.post(incoming("c-x", to="+15559990000"))
        assert (await foreign.json())["status"] == "ignored"
        stray = await h.post(dtmf("c-never-seen", "1"))
        assert (await stray.json())["status"] == "ignored"
        assert h.api.seen == []
        assert h.backend.sessions == {}
        assert OUR_NUMBER != "+15559990000"


class TestMaskedNumbers:
    def test_numbers_are_masked_but_their_last_four_digits(self) -> None:
        line = "call from +19195551212 to 19195550000 (sip:+15555550100@x) session s-20261127 at 12:30:45"
        assert mask_number(line) == (
            "call from +*******1212 to *******0000 (sip:+*******0100@x) session s-20261127 at 12:30:45"
        )

    def test_the_processor_masks_nested_values(self) -> None:
        event = {"event": "session.started", "from": "+19195551212", "vars": {"phone": ["+442071234567"]}}
        assert mask_numbers(None, "info", event) == {
            "event": "session.started",
            "from": "+*******1212",
            "vars": {"phone": ["+********4567"]},
        }
