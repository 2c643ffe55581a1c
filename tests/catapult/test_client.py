"""The REST client against a small scripted fake of the API: paths, bodies, ids, errors, retries, limits."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestServer

from flowengine.catapult.client import (
    CatapultClient,
    RetryPolicy,
    location_id,
    parse_rate_limit_reset,
    redact_url,
)
from flowengine.catapult.transport import HttpTransport
from flowengine.errors import (
    CatapultAPIError,
    CatapultConnectionError,
    CatapultRateLimitError,
    ConfigError,
)

USER = "u-test"
TOKEN = "t-token"
SECRET = "s-very-secret"
NOW = 1_700_000_000.0


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    raw: bytes | None = None


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


class FakeAPI:
    """Answers requests from a script (one Reply per request, the last one repeating) and records them."""

    def __init__(self) -> None:
        self.script: list[Reply] = [Reply()]
        self.seen: list[Seen] = []

    def answer(self, *replies: Reply) -> None:
        self.script = list(replies)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(
            Seen(
                request.method,
                request.rel_url.raw_path,
                dict(request.query),
                dict(request.headers),
                await request.read(),
            )
        )
        reply = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.raw is not None:
            return web.Response(status=reply.status, body=reply.raw, headers=reply.headers)
        if reply.body is None:
            return web.Response(status=reply.status, headers=reply.headers)
        return web.Response(
            status=reply.status,
            body=orjson.dumps(reply.body),
            headers=reply.headers,
            content_type="application/json",
        )


class Sleeps:
    """A ``sleep`` seam that records the waits instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def fake() -> FakeAPI:
    return FakeAPI()


@pytest.fixture
async def server(fake: FakeAPI) -> AsyncIterator[TestServer]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


@pytest.fixture(params=["aiohttp", "transport"])
async def http(request: pytest.FixtureRequest) -> AsyncIterator[aiohttp.ClientSession | HttpTransport]:
    """Every client test runs over both HTTP clients the REST client accepts."""
    if request.param == "aiohttp":
        async with aiohttp.ClientSession() as session:
            yield session
    else:
        async with HttpTransport() as transport:
            yield transport


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


MakeClient = Callable[..., CatapultClient]


@pytest.fixture
def make_client(
    server: TestServer, http: aiohttp.ClientSession | HttpTransport, sleeps: Sleeps
) -> MakeClient:
    def make(**overrides: Any) -> CatapultClient:
        options: dict[str, Any] = {
            "user_id": USER,
            "token": TOKEN,
            "secret": SECRET,
            "base_url": str(server.make_url("/v1")),
            "sleep": sleeps,
            "clock": lambda: NOW,
            "jitter": lambda: 0.5,
        }
        options.update(overrides)
        return CatapultClient(http, **options)

    return make


def created(path: str) -> Reply:
    return Reply(201, headers={"Location": f"/v1/users/{USER}/{path}"})


Op = Callable[[CatapultClient], Awaitable[Any]]

OPERATIONS: list[Any] = [
    pytest.param(
        lambda c: c.create_call({"from": "+1", "to": "+2"}),
        "POST",
        "/calls",
        {"from": "+1", "to": "+2"},
        id="create_call",
    ),
    pytest.param(lambda c: c.answer_call("c-1"), "POST", "/calls/c-1", {"state": "active"}, id="answer"),
    pytest.param(lambda c: c.reject_call("c-1"), "POST", "/calls/c-1", {"state": "rejected"}, id="reject"),
    pytest.param(lambda c: c.hangup_call("c-1"), "POST", "/calls/c-1", {"state": "completed"}, id="hangup"),
    pytest.param(
        lambda c: c.transfer_call("c-1", {"transferTo": "+3"}),
        "POST",
        "/calls/c-1",
        {"state": "transferring", "transferTo": "+3"},
        id="transfer",
    ),
    pytest.param(
        lambda c: c.play_audio("c-1", {"sentence": "Hi", "voice": "susan"}),
        "POST",
        "/calls/c-1/audio",
        {"sentence": "Hi", "voice": "susan"},
        id="audio",
    ),
    pytest.param(
        lambda c: c.send_dtmf("c-1", "12#"), "POST", "/calls/c-1/dtmf", {"dtmfOut": "12#"}, id="dtmf"
    ),
    pytest.param(
        lambda c: c.create_gather("c-1", {"maxDigits": 1}),
        "POST",
        "/calls/c-1/gather",
        {"maxDigits": 1},
        id="gather",
    ),
    pytest.param(
        lambda c: c.stop_gather("c-1", "g-1"),
        "POST",
        "/calls/c-1/gather/g-1",
        {"state": "completed"},
        id="stop_gather",
    ),
    pytest.param(
        lambda c: c.create_bridge(["c-1", "c-2"]),
        "POST",
        "/bridges",
        {"bridgeAudio": True, "callIds": ["c-1", "c-2"]},
        id="bridge",
    ),
    pytest.param(
        lambda c: c.update_bridge("b-1", {"callIds": []}),
        "POST",
        "/bridges/b-1",
        {"callIds": []},
        id="update_bridge",
    ),
    pytest.param(
        lambda c: c.create_conference({"from": "+1"}),
        "POST",
        "/conferences",
        {"from": "+1"},
        id="conference",
    ),
    pytest.param(
        lambda c: c.add_member("cf-1", {"callId": "c-1"}),
        "POST",
        "/conferences/cf-1/members",
        {"callId": "c-1"},
        id="add_member",
    ),
    pytest.param(
        lambda c: c.update_member("cf-1", "m-1", {"state": "completed"}),
        "POST",
        "/conferences/cf-1/members/m-1",
        {"state": "completed"},
        id="update_member",
    ),
    pytest.param(
        lambda c: c.conference_audio("cf-1", {"sentence": "x"}),
        "POST",
        "/conferences/cf-1/audio",
        {"sentence": "x"},
        id="conference_audio",
    ),
    pytest.param(
        lambda c: c.create_transcription("r-1"),
        "POST",
        "/recordings/r-1/transcriptions",
        {},
        id="transcription",
    ),
    pytest.param(
        lambda c: c.send_message({"from": "+1", "to": "+2", "text": "hi"}),
        "POST",
        "/messages",
        {"from": "+1", "to": "+2", "text": "hi"},
        id="message",
    ),
    pytest.param(
        lambda c: c.create_application({"name": "a", "incomingCallUrl": "http://x/"}),
        "POST",
        "/applications",
        {"name": "a", "incomingCallUrl": "http://x/"},
        id="application",
    ),
    pytest.param(
        lambda c: c.update_phone_number("+19195551212", {"applicationId": "a-1"}),
        "POST",
        "/phoneNumbers/%2B19195551212",
        {"applicationId": "a-1"},
        id="phone_number_by_e164",
    ),
]


class TestOperations:
    @pytest.mark.parametrize(("op", "method", "path", "body"), OPERATIONS)
    async def test_each_operation_sends_the_documented_method_path_and_body(
        self, fake: FakeAPI, make_client: MakeClient, op: Op, method: str, path: str, body: Any
    ) -> None:
        fake.answer(created("x/new-id"))
        await op(make_client())
        (seen,) = fake.seen
        assert (seen.method, seen.path) == (method, f"/v1/users/{USER}{path}")
        assert orjson.loads(seen.body) == body
        assert seen.headers["Content-Type"] == "application/json"

    async def test_requests_carry_basic_auth_with_token_and_secret(
        self, fake: FakeAPI, make_client: MakeClient
    ) -> None:
        fake.answer(Reply(200, {"id": "c-1"}))
        await make_client().get_call("c-1")
        expected = base64.b64encode(f"{TOKEN}:{SECRET}".encode()).decode()
        assert fake.seen[0].headers["Authorization"] == f"Basic {expected}"

    @pytest.mark.parametrize(
        "location",
        [
            pytest.param(f"/v1/users/{USER}/calls/c-42", id="relative"),
            pytest.param(f"https://api.example/v1/users/{USER}/calls/c-42", id="absolute"),
            pytest.param(f"/v1/users/{USER}/calls/c-42/", id="trailing-slash"),
        ],
    )
    async def test_create_returns_the_id_from_the_location_header(
        self, fake: FakeAPI, make_client: MakeClient, location: str
    ) -> None:
        fake.answer(Reply(201, headers={"Location": location}))
        assert await make_client().create_call({"from": "+1", "to": "+2"}) == "c-42"

    async def test_reads_return_the_decoded_json(self, fake: FakeAPI, make_client: MakeClient) -> None:
        fake.answer(Reply(200, {"id": "c-1", "state": "active"}), Reply(200, [{"id": "c-1"}, "junk"]))
        client = make_client()
        assert await client.get_call("c-1") == {"id": "c-1", "state": "active"}
        assert await client.list_calls({"from": "+1"}) == [{"id": "c-1"}]
        assert fake.seen[1].query == {"from": "+1"}

    async def test_a_read_that_is_not_an_object_is_an_api_error(
        self, fake: FakeAPI, make_client: MakeClient
    ) -> None:
        fake.answer(Reply(200, raw=b"<html>", headers={"Content-Type": "text/html"}))
        with pytest.raises(CatapultAPIError, match="expected a JSON object, got no JSON body"):
            await make_client().get_call("c-1")

    async def test_media_upload_sends_raw_bytes_and_download_returns_them(
        self, fake: FakeAPI, make_client: MakeClient
    ) -> None:
        fake.answer(Reply(200), Reply(200, raw=b"RIFF....", headers={"Content-Type": "audio/wav"}))
        client = make_client()
        await client.upload_media("hello.wav", b"RIFF....", content_type="audio/wav")
        assert await client.download_media("hello.wav") == b"RIFF...."
        upload = fake.seen[0]
        assert (upload.method, upload.body, upload.headers["Content-Type"]) == (
            "PUT",
            b"RIFF....",
            "audio/wav",
        )

    async def test_message_batch_returns_one_result_per_message(
        self, fake: FakeAPI, make_client: MakeClient
    ) -> None:
        results = [{"result": "accepted", "location": "/m/m-1"}, {"result": "error", "error": {}}]
        fake.answer(Reply(202, results))
        assert await make_client().send_messages([{"text": "a"}, {"text": "b"}]) == results
        assert orjson.loads(fake.seen[0].body) == [{"text": "a"}, {"text": "b"}]


class TestErrors:
    async def test_an_error_answer_carries_status_category_code_message_method_and_url(
        self, fake: FakeAPI, make_client: MakeClient
    ) -> None:
        body = {
            "category": "not-found",
            "code": "call-not-found",
            "message": "The call c-9 could not be found",
            "details": [{"name": "requestMethod", "value": "GET"}],
        }
        fake.answer(Reply(404, body))
        with pytest.raises(CatapultAPIError) as info:
            await make_client().get_call("c-9")
        error = info.value
        assert (error.status, error.category, error.code) == (404, "not-found", "call-not-found")
        assert error.message == "The call c-9 could not be found"
        assert error.method == "GET"
        assert error.url.endswith(f"/v1/users/{USER}/calls/c-9")
        assert error.details == [{"name": "requestMethod", "value": "GET"}]
        assert len(fake.seen) == 1

    async def test_an_error_without_a_body_still_has_its_status(
        self, fake: FakeAPI, make_client: MakeClient
    ) -> None:
        fake.answer(Reply(400, raw=b"nope", headers={"Content-Type": "text/plain"}))
        with pytest.raises(CatapultAPIError, match="400 no error body") as info:
            await make_client().hangup_call("c-1")
        assert info.value.code == ""

    async def test_a_refused_connection_is_retried_then_raised(
        self, http: aiohttp.ClientSession | HttpTransport, sleeps: Sleeps, unused_tcp_port: int
    ) -> None:
        client = CatapultClient(
            http,
            user_id=USER,
            token=TOKEN,
            secret=SECRET,
            base_url=f"http://127.0.0.1:{unused_tcp_port}/v1",
            sleep=sleeps,
            jitter=lambda: 0.0,
        )
        with pytest.raises(CatapultConnectionError) as info:
            await client.create_call({"from": "+1", "to": "+2"})
        assert info.value.method == "POST"
        # A connection that never opened is safe to retry even for a create: 3 waits for 4 attempts.
        assert sleeps.waits == [0.125, 0.25, 0.5]

    async def test_every_request_times_out(self, fake: FakeAPI, make_client: MakeClient) -> None:
        fake.answer(Reply(200, {"id": "c-1"}, delay=1.0))
        client = make_client(timeout=0.05, retry=RetryPolicy(attempts=1))
        with pytest.raises(CatapultConnectionError, match="timed out"):
            await client.get_call("c-1")

    async def test_bad_settings_are_config_errors(self, http: aiohttp.ClientSession | HttpTransport) -> None:
        with pytest.raises(ConfigError, match="must be an http"):
            CatapultClient(http, user_id=USER, token="t", secret="s", base_url="ftp://x/v1")
        with pytest.raises(ConfigError, match="must not carry credentials"):
            CatapultClient(http, user_id=USER, token="t", secret="s", base_url="https://a:b@x/v1")
        with pytest.raises(ConfigError, match="user id is empty"):
            CatapultClient(http, user_id="", token="t", secret="s")
        with pytest.raises(ConfigError, match="attempts must be at least 1"):
            RetryPolicy(attempts=0)


class TestRetries:
    async def test_a_5xx_on_a_safe_operation_is_retried_with_growing_jittered_backoff(
        self, fake: FakeAPI, make_client: MakeClient, sleeps: Sleeps
    ) -> None:
        fake.answer(Reply(500), Reply(502), Reply(200, {"id": "c-1"}))
        assert await make_client().get_call("c-1") == {"id": "c-1"}
        assert len(fake.seen) == 3
        # equal jitter with jitter()=0.5: 0.75 of 0.25, then of 0.5
        assert sleeps.waits == [0.1875, 0.375]

    async def test_a_5xx_on_a_create_is_not_repeated(
        self, fake: FakeAPI, make_client: MakeClient, sleeps: Sleeps
    ) -> None:
        fake.answer(Reply(500, {"category": "backend", "code": "call-creation-failure"}))
        with pytest.raises(CatapultAPIError) as info:
            await make_client().create_call({"from": "+1", "to": "+2"})
        assert info.value.code == "call-creation-failure"
        assert len(fake.seen) == 1
        assert sleeps.waits == []

    async def test_call_unavailable_is_retried_even_for_audio(
        self, fake: FakeAPI, make_client: MakeClient
    ) -> None:
        fake.answer(Reply(503, {"category": "unavailable", "code": "call-unavailable"}), Reply(200))
        await make_client().play_audio("c-1", {"sentence": "Hi"})
        assert len(fake.seen) == 2

    async def test_retries_stop_after_the_policy_s_attempts(
        self, fake: FakeAPI, make_client: MakeClient
    ) -> None:
        fake.answer(Reply(500))
        with pytest.raises(CatapultAPIError) as info:
            await make_client(retry=RetryPolicy(attempts=3)).get_call("c-1")
        assert info.value.status == 500
        assert len(fake.seen) == 3


class TestRateLimits:
    @pytest.mark.parametrize(
        "reset",
        [
            pytest.param("1700000002500", id="epoch-ms-sample-form"),
            pytest.param("1700000002.5", id="epoch-seconds"),
        ],
    )
    async def test_429_waits_until_the_reset_time_then_retries(
        self, fake: FakeAPI, make_client: MakeClient, sleeps: Sleeps, reset: str
    ) -> None:
        # Both header forms mean 2.5 s from now.
        body = {"category": "too-many-requests", "code": "rate-limit-reached"}
        fake.answer(Reply(429, body, headers={"X-RateLimit-Reset": reset}), Reply(200, {"id": "c-1"}))
        assert await make_client().get_call("c-1") == {"id": "c-1"}
        assert sleeps.waits == [2.5]

    async def test_429_reads_the_reset_from_the_details_when_the_header_is_missing(
        self, fake: FakeAPI, make_client: MakeClient, sleeps: Sleeps
    ) -> None:
        body = {
            "category": "too-many-requests",
            "code": "rate-limit-reached",
            "details": [{"name": "rateLimitResetTime", "value": "1700000001000"}],
        }
        fake.answer(Reply(429, body), Reply(201, headers={"Location": "/x/a-1"}))
        assert await make_client().create_application({"name": "x"}) == "a-1"
        assert sleeps.waits == [1.0]

    async def test_429_with_a_reset_beyond_the_longest_wait_raises_at_once(
        self, fake: FakeAPI, make_client: MakeClient, sleeps: Sleeps
    ) -> None:
        fake.answer(Reply(429, headers={"X-RateLimit-Reset": str(int(NOW) + 3600)}))
        with pytest.raises(CatapultRateLimitError) as info:
            await make_client().get_call("c-1")
        assert info.value.retry_after == 3600
        assert info.value.status == 429
        assert sleeps.waits == []

    @pytest.mark.parametrize("code", ["call-rate-limit", "message-rate-limit"])
    async def test_403_rate_limit_backs_off_and_retries_even_a_create(
        self, fake: FakeAPI, make_client: MakeClient, sleeps: Sleeps, code: str
    ) -> None:
        limited = Reply(403, {"category": "limit", "code": code, "message": "You can create 1 calls"})
        fake.answer(limited, limited, created("calls/c-7"))
        assert await make_client().create_call({"from": "+1", "to": "+2"}) == "c-7"
        assert sleeps.waits == [0.75, 1.5]

    async def test_403_rate_limit_raises_a_rate_limit_error_when_attempts_run_out(
        self, fake: FakeAPI, make_client: MakeClient
    ) -> None:
        fake.answer(Reply(403, {"category": "limit", "code": "message-rate-limit"}))
        with pytest.raises(CatapultRateLimitError) as info:
            await make_client(retry=RetryPolicy(attempts=2)).send_message({"text": "x"})
        assert info.value.code == "message-rate-limit"
        assert info.value.retry_after is not None
        assert len(fake.seen) == 2

    async def test_other_403s_are_not_retried(self, fake: FakeAPI, make_client: MakeClient) -> None:
        fake.answer(Reply(403, {"category": "forbidden", "code": "call-invalid-state"}))
        with pytest.raises(CatapultAPIError) as info:
            await make_client().hangup_call("c-1")
        assert not isinstance(info.value, CatapultRateLimitError)
        assert len(fake.seen) == 1


class TestSecrecyAndObservation:
    async def test_the_secret_never_appears_in_logs_errors_or_repr(
        self, fake: FakeAPI, make_client: MakeClient
    ) -> None:
        fake.answer(Reply(500), Reply(404, {"code": "call-not-found"}))
        client = make_client()
        with structlog.testing.capture_logs() as logs, pytest.raises(CatapultAPIError) as info:
            await client.get_call("c-1")
        assert logs, "the client logs its retries and errors"
        everything = repr(logs) + str(info.value) + repr(client)
        assert SECRET not in everything
        assert base64.b64encode(f"{TOKEN}:{SECRET}".encode()).decode() not in everything

    async def test_the_observer_sees_every_attempt(self, fake: FakeAPI, make_client: MakeClient) -> None:
        seen: list[tuple[str, str]] = []
        fake.answer(Reply(500), Reply(200, {"id": "c-1"}))
        client = make_client(observer=lambda op, status, seconds: seen.append((op, status)))
        await client.get_call("c-1")
        assert seen == [("get_call", "500"), ("get_call", "200")]


class TestHelpers:
    @pytest.mark.parametrize(
        ("value", "wait"),
        [
            pytest.param("1479308598680", 1479308598.680 - 1479308590.0, id="ms"),
            pytest.param("1479308598", 8.0, id="seconds"),
            pytest.param("1479300000", 0.0, id="past"),
            pytest.param("soon", None, id="unreadable"),
            pytest.param("nan", None, id="nan"),
            pytest.param("-5", None, id="negative"),
        ],
    )
    def test_rate_limit_reset_accepts_seconds_or_milliseconds(self, value: str, wait: float | None) -> None:
        result = parse_rate_limit_reset(value, 1479308590.0)
        assert result == (pytest.approx(wait) if wait is not None else None)

    def test_location_id_and_redaction(self) -> None:
        assert location_id("") == ""
        assert location_id("/v1/users/u/bridges/brg-1") == "brg-1"
        assert redact_url("https://user:pw@host:8080/cb?x=1") == "https://host:8080/cb?x=1"
        assert redact_url("https://host/cb") == "https://host/cb"


class TestExecute:
    async def test_execute_sends_a_runtime_request_under_this_user(
        self, fake: FakeAPI, make_client: MakeClient
    ) -> None:
        fake.answer(created("calls/c-1/gather/g-9"))
        response = await make_client().execute(
            "POST", f"/v1/users/{USER}/calls/c-1/gather", {"maxDigits": 1}, operation="createGather"
        )
        assert response.location_id == "g-9"
        assert fake.seen[0].path == f"/v1/users/{USER}/calls/c-1/gather"

    @pytest.mark.parametrize(
        "path", ["/v1/users/u-other/calls", "/users/u-other/calls", "calls", "/calls/../../admin"]
    )
    async def test_execute_refuses_paths_outside_this_user(self, make_client: MakeClient, path: str) -> None:
        with pytest.raises(ValueError, match=r"does not belong|is not an API path"):
            await make_client().execute("GET", path)

    async def test_execute_retries_a_5xx_only_when_repeating_is_safe(
        self, fake: FakeAPI, make_client: MakeClient
    ) -> None:
        fake.answer(Reply(502), Reply(200))
        await make_client().execute("POST", "/calls/c-1", {"state": "completed"})
        assert len(fake.seen) == 2
        fake.seen.clear()
        fake.answer(Reply(502), Reply(200))
        with pytest.raises(CatapultAPIError):
            await make_client().execute("POST", "/calls/c-1/audio", {"sentence": "hi"})
        assert len(fake.seen) == 1

    @pytest.mark.parametrize(
        ("method", "path", "body", "safe"),
        [
            ("GET", "/calls/c-1", None, True),
            ("DELETE", "/media/a.wav", None, True),
            ("PUT", "/media/a.wav", None, True),
            ("POST", "/calls/c-1", {"state": "completed"}, True),
            ("POST", "/calls/c-1", {"state": "transferring", "transferTo": "+1"}, False),
            ("POST", "/calls/c-1/gather/g-1", {"state": "completed"}, True),
            ("POST", "/conferences/cf-1/members/m-1", {"mute": True}, True),
            ("POST", "/calls", {"to": "+1"}, False),
            ("POST", "/calls/c-1/gather", {}, False),
            ("POST", "/calls/c-1/audio", {}, False),
            ("POST", "/calls/c-1/dtmf", {}, False),
            ("POST", "/messages", {}, False),
        ],
    )
    def test_which_requests_are_safe_to_repeat(self, method: str, path: str, body: Any, safe: bool) -> None:
        from flowengine.catapult.client import is_safe_to_repeat

        assert is_safe_to_repeat(method, path, body) is safe


def _location_id_by_urlsplit(location: str) -> str:
    """What location_id returned before its fast path: the reference it must agree with."""
    from urllib.parse import urlsplit

    path = urlsplit(location).path.rstrip("/")
    return path.rsplit("/", 1)[-1] if path else ""


class TestHotPath:
    @pytest.mark.parametrize(
        "location",
        [
            "",
            "/",
            "c-1",
            "/v1/users/u/calls/c-1",
            "/v1/users/u/calls/c-1/",
            "https://api.example/v1/users/u/calls/c-1",
            "http://api.example:8080/v1/calls/c-1",
            "https://api.example",
            "https://api.example/",
            "https://api.example//calls/c-1",
            "https://user@api.example/calls/c-1",
            "https://[::1]:8080/calls/c-1",
            "HTTPS://API.EXAMPLE/calls/c-1",
            "/calls/c-1?page=2",
            "/calls/c-1#frag",
            "/calls/c-1/?x=/y",
            "//api.example/calls/c-1",
            "//api.example",
            " /calls/c-1 ",
            "/calls/c-\t1",
            "/calls/c\u00e9-1",
            "ftp://api.example/calls/c-1",
            "/calls/a:b",
            "mailto:x@y",
        ],
    )
    def test_location_id_agrees_with_urlsplit(self, location: str) -> None:
        assert location_id(location) == _location_id_by_urlsplit(location)

    def test_location_id_refuses_what_urlsplit_refuses(self) -> None:
        with pytest.raises(ValueError, match="IPv6"):
            location_id("https://[::1/calls/c-1")

    @pytest.mark.parametrize(
        ("path", "relative"),
        [
            pytest.param(f"/v1/users/{USER}/calls/c-1", "/calls/c-1", id="full"),
            pytest.param(f"/users/{USER}/calls/c-1", "/calls/c-1", id="without-version"),
            pytest.param("/calls/c..1/audio", "/calls/c..1/audio", id="dots-inside-a-segment"),
        ],
    )
    async def test_execute_accepts_these_paths(
        self, fake: FakeAPI, make_client: MakeClient, path: str, relative: str
    ) -> None:
        await make_client().execute("GET", path)
        assert fake.seen[0].path == f"/v1/users/{USER}{relative}"

    @pytest.mark.parametrize(
        ("method", "path", "body", "safe"),
        [
            ("post", "/calls/c-1", {"state": "completed"}, True),
            ("get", "/calls/c-1/audio", None, True),
            ("POST", "/calls/c-1/", {"state": "completed"}, False),
            ("POST", "/conferences/cf-1/members/m-1/", {}, False),
            ("POST", "/calls/c-1/members/m-1/x", {}, False),
            ("PATCH", "/calls/c-1", {}, False),
        ],
    )
    def test_more_requests_that_are_or_are_not_safe_to_repeat(
        self, method: str, path: str, body: Any, safe: bool
    ) -> None:
        from flowengine.catapult.client import is_safe_to_repeat

        assert is_safe_to_repeat(method, path, body) is safe

    async def test_failures_are_logged_with_the_operation_method_and_url(
        self, fake: FakeAPI, make_client: MakeClient
    ) -> None:
        fake.answer(Reply(500), Reply(404, {"code": "call-not-found"}))
        with structlog.testing.capture_logs() as logs, pytest.raises(CatapultAPIError):
            await make_client().get_call("c-1")
        failures = [entry for entry in logs if entry["event"] in ("catapult.retry", "catapult.error")]
        assert [entry["event"] for entry in failures] == ["catapult.retry", "catapult.error"]
        for entry in failures:
            assert (entry["operation"], entry["method"]) == ("get_call", "GET")
            assert entry["url"].endswith(f"/v1/users/{USER}/calls/c-1")

    async def test_a_custom_header_goes_with_the_client_s_own(
        self, fake: FakeAPI, make_client: MakeClient
    ) -> None:
        await make_client().upload_media("a.wav", b"RIFF", content_type="audio/wav")
        await make_client().create_call({"from": "+1"})
        upload, create = fake.seen
        assert upload.headers["Content-Type"] == "audio/wav"
        assert create.headers["Content-Type"] == "application/json"
        assert upload.headers["Authorization"] == create.headers["Authorization"]
        assert create.headers["Authorization"].startswith("Basic ")

    async def test_a_success_is_logged_at_debug_with_the_operation_method_url_and_status(
        self, fake: FakeAPI, make_client: MakeClient
    ) -> None:
        import logging

        saved = structlog.get_config()
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
        try:
            fake.answer(created("calls/c-1"))
            with structlog.testing.capture_logs() as logs:
                await make_client().create_call({"from": "+1"})
        finally:
            structlog.configure(**saved)
        (entry,) = [entry for entry in logs if entry["event"] == "catapult.ok"]
        assert (entry["operation"], entry["method"], entry["status"]) == ("create_call", "POST", 201)
        assert entry["url"].endswith(f"/v1/users/{USER}/calls")
        assert (entry["log_level"], entry["attempt"]) == ("debug", 1)
