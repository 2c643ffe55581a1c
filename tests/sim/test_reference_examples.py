"""Every request example of the reference's ``methods/`` pages is accepted by the simulator.

The examples live in ``tests/fixtures/catapult/methods/examples.json`` with the page each comes from.
Each runs against a fresh account holding one of everything its placeholders can name.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from .support import AGENT, CALLER, OTHER_OWNED, OURS, Harness, HarnessFactory

FIXTURE = Path(__file__).parent.parent / "fixtures" / "catapult" / "methods" / "examples.json"
EXAMPLES: list[dict[str, Any]] = json.loads(FIXTURE.read_text())["examples"]
PLACEHOLDER = re.compile(r"\{\{?[A-Za-z][\w.:@/-]*\}?\}")
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


def fill(text: str, values: dict[str, str], context: dict[str, str]) -> str:
    for placeholder, name in context.items():
        text = text.replace(f"{{{placeholder}}}", values.get(name, values.get(f"{{{name}}}", name)))
    for placeholder in sorted(values, key=len, reverse=True):
        if placeholder.startswith(("{", "%")):
            text = text.replace(placeholder, values[placeholder])
    return text


@pytest.mark.parametrize(
    "example", EXAMPLES, ids=[f"{e['page'].split('/', 1)[1][:-3]}:{e['title'][:40]}" for e in EXAMPLES]
)
async def test_the_reference_example_is_accepted(
    make_harness: HarnessFactory, example: dict[str, Any]
) -> None:
    harness = await make_harness()
    values = await account(harness)
    context = example.get("context", {})
    path = fill(example.get("fixed_path", example["path"]), values, context)
    documented_body = example["body"]
    body = example.get("fixed_body", documented_body)
    raw = fill(body, values, context).encode() if body is not None else None
    if example["method"] == "PUT":
        raw = b"ID3 example upload"
    leftovers = PLACEHOLDER.findall(path + (raw or b"").decode())
    assert not leftovers, f"unfilled placeholders {leftovers} in {example['page']}"
    tail = path.split(f"/v1/users/{harness.config.user_id}", 1)[1]
    status, _, reply = await harness.rest(example["method"], tail, raw=raw)
    assert status in (200, 201, 202), (example["page"], example["title"], status, reply)
    if "documented_answer" in example:
        broken = fill(documented_body, values, context).encode()
        status, _, reply = await harness.rest(example["method"], tail, raw=broken)
        assert [status, reply["code"]] == example["documented_answer"]
