"""Hostile input never crashes the simulator: every route answers bad bodies and queries with a
documented error body (a 4xx), never a 500 or a dropped connection."""

from __future__ import annotations

import random
import re
from typing import Any

import pytest

from flowengine.sim.control import CONTROL_ROUTES
from flowengine.sim.resources import ROUTES

from .support import Harness, HarnessFactory, account

NASTY: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    2**63 - 1,
    1e308,
    -0.5,
    "",
    " ",
    "NaN",
    "Infinity",
    "-1",
    "x" * 5000,
    "\u0000\ud7ff",
    "+19195550001",
    "sip:a@b",
    "http://127.0.0.1:9/x",
    [],
    [None],
    ["a", 1],
    {},
    {"sentence": {"nested": True}},
]
RAW_BODIES = [b"", b"null", b"[]", b'"text"', b"{", b"\xff\xfe", b"[1, 2, 3]", b'{"a": NaN}', b"1e999"]


#: Property names read by the simulator's routes, to fuzz with hostile values.
FIELDS = [
    "state", "from", "to", "text", "sentence", "fileUrl", "callIds", "callId", "digits", "seconds", "maxDigits",
    "interDigitTimeout", "terminatingDigits", "prompt", "bridgeAudio", "mute", "hold", "media", "transferTo",
    "whisperAudio", "recordingEnabled", "callbackUrl", "callbackTimeout", "mode", "after", "outcome", "code",
]  # fmt: skip


def bodies(rng: random.Random, count: int) -> list[Any]:
    found: list[Any] = []
    for _ in range(count):
        keys = rng.sample(FIELDS, rng.randint(1, 4))
        found.append({key: rng.choice(NASTY) for key in keys})
    return found


def fill(path: str, values: dict[str, str]) -> str:
    names = {
        "callId": "{callId}",
        "gatherId": "{gatherId}",
        "eventId": "{eventId}",
        "bridgeId": "{bridgeId}",
        "conferenceId": "{conferenceId}",
        "memberId": "{memberId}",
        "recordingId": "{recordingId}",
        "transcriptionId": "{transcription-id}",
        "mediaName": "{mediaName}",
        "messageId": "{messageId}",
        "applicationId": "{applicationId}",
        "numberId": "{numberId}",
        "number": "{fromNumber}",
        "key": "{callId}",
        "domainId": "{domainId}",
        "endpointId": "{endpointId}",
    }
    return re.sub(r"\{(\w+)\}", lambda m: values[names[m.group(1)]].replace("+", "%2B"), path)


def assert_documented_error(status: int, body: Any, what: str) -> None:
    assert status < 500, what
    if status >= 400:
        assert set(body) >= {"category", "code", "message", "details"}, what


@pytest.mark.parametrize(
    "route", [r for r in ROUTES if r.method != "GET"], ids=lambda r: f"{r.method} {r.path}"
)
async def test_rest_routes_refuse_bad_bodies_with_documented_errors(
    make_harness: HarnessFactory, route: Any
) -> None:
    harness = await make_harness()
    values = await account(harness)
    if "{domainId}" in route.path:
        domain_id = await harness.ok("POST", "/domains", {"name": "fuzz", "description": "fuzz"})
        endpoint = {"name": "desk", "credentials": {"password": "s3cret!"}}
        values["{domainId}"] = domain_id
        values["{endpointId}"] = await harness.ok("POST", f"/domains/{domain_id}/endpoints", endpoint)
    tail = fill(route.path, values)
    if route.root:  # served under /v1, not under the user: make the user part of the path vanish
        tail = "/../.." + tail
    rng = random.Random(route.path)
    for body in bodies(rng, 25):
        status, _, reply = await harness.rest(route.method, tail, body)
        assert_documented_error(status, reply, f"{route.method} {tail} {body!r}")
    for raw in RAW_BODIES:
        status, _, reply = await harness.rest(route.method, tail, raw=raw)
        assert_documented_error(status, reply, f"{route.method} {tail} {raw!r}")


async def test_list_routes_refuse_bad_queries(harness: Harness) -> None:
    for query in (
        "page=-1",
        "size=100000",
        "size=abc",
        "sortOrder=sideways",
        "fromDateTime=yesterday",
        "sortKeyLT=x",
    ):
        for family in ("calls", "bridges", "messages", "recordings", "applications", "phoneNumbers"):
            status, _, reply = await harness.rest("GET", f"/{family}?{query}")
            assert_documented_error(status, reply, f"{family}?{query}")


async def test_control_routes_refuse_bad_bodies(harness: Harness) -> None:
    values = await account(harness)
    rng = random.Random(7)
    for method, path, _ in CONTROL_ROUTES:
        if method == "GET" or path == "/sim/settle":
            continue
        target = fill(path, values)
        for body in [*bodies(rng, 10), {"seconds": "NaN"}, {"seconds": 1e999}]:
            async with harness.client.request(method, target, json=body) as response:
                reply = await response.json()
            assert_documented_error(response.status, reply, f"{method} {target} {body!r}")
        for raw in RAW_BODIES:
            async with harness.client.request(method, target, data=raw) as response:
                reply = await response.json()
            assert_documented_error(response.status, reply, f"{method} {target} {raw!r}")
