"""Every event the simulator sends carries the fields the reference's ``apiCallbacks/`` tables list,
with the documented value types.

The tables are copied in ``tests/fixtures/catapult/callbacks/fields.json``. A few fields are present
only in some situations; ``CONDITIONAL`` names them and says when, and the test checks them then.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .support import AGENT, CALLER, OURS, Harness

FIXTURE = Path(__file__).parent.parent / "fixtures" / "catapult" / "callbacks" / "fields.json"
PAGES: dict[str, dict[str, Any]] = json.loads(FIXTURE.read_text())["pages"]

#: Fields the tables list that only some events of a type carry, with the test for when they must.
CONDITIONAL = {
    "diversion": lambda e: e.get("callId") == "diverted",
    "applicationId": lambda e: e.get("direction") == "in",
    "deliveryState": lambda e: e.get("receipt") is True,
    "deliveryCode": lambda e: e.get("receipt") is True,
    "deliveryDescription": lambda e: e.get("receipt") is True,
    "completedTime": lambda e: e.get("status") == "completed",
    "media": lambda e: e["eventType"] == "mms",
    "text": lambda e: e["eventType"] != "mms" or e.get("text") is not None,
}
INTEGERS = {"activeMembers", "textSize", "segmentCount"}
BOOLEANS = {"hold", "mute"}


async def every_event(harness: Harness) -> list[dict[str, Any]]:
    """Drive a session that makes the simulator send every documented event type."""
    await harness.own()
    await harness.control("PUT", f"/sim/phones/{AGENT}", {"transcription": "call me"})
    caller = await harness.inbound()
    diverted_status, diverted = await harness.control(
        "POST", "/sim/calls", {"from": CALLER, "to": OURS, "diversion": {"origTo": "+19195550999"}}
    )
    assert diverted_status == 201
    await harness.ok("POST", f"/calls/{caller}/audio", {"sentence": "Hello", "tag": "a"})
    await harness.ok("POST", f"/calls/{caller}/audio", {"fileUrl": "http://x/a.mp3", "tag": "b"})
    await harness.ok("POST", f"/calls/{caller}/gather", {"maxDigits": 1, "tag": "g"})
    await harness.control("POST", f"/sim/calls/{caller}/press", {"digits": "1"})
    agent = await harness.outbound(tag="out", recordingEnabled=True, transcriptionEnabled=True)
    await harness.advance(1)
    conference = await harness.ok(
        "POST", "/conferences", {"from": OURS, "callbackUrl": harness.receiver.url("/conf")}
    )
    await harness.ok("POST", f"/conferences/{conference}/members", {"callId": agent})
    await harness.ok("POST", f"/conferences/{conference}/audio", {"sentence": "Hi all"})
    await harness.ok("POST", f"/conferences/{conference}/audio", {"fileUrl": "http://x/b.mp3"})
    await harness.advance(5)
    await harness.control("POST", f"/sim/calls/{agent}/hangup")
    await harness.control("PUT", f"/sim/phones/{CALLER}", {"mode": "no-answer"})
    await harness.outbound(to=CALLER, callTimeout=5)
    await harness.ok("POST", f"/calls/{caller}", {"state": "completed"})
    await harness.ok(
        "POST",
        "/messages",
        {
            "from": OURS,
            "to": CALLER,
            "text": "x",
            "receiptRequested": "all",
            "callbackUrl": harness.receiver.url("/sms"),
        },
    )
    await harness.ok(
        "POST",
        "/messages",
        {
            "from": OURS,
            "to": CALLER,
            "media": ["http://x/c.jpg"],
            "text": "pic",
            "callbackUrl": harness.receiver.url("/sms"),
        },
    )
    await harness.control("POST", "/sim/messages", {"from": CALLER, "to": OURS, "text": "in"})
    await harness.control(
        "POST", "/sim/messages", {"from": CALLER, "to": OURS, "text": "pic", "media": ["http://x/d.jpg"]}
    )
    await harness.advance(10)
    events = []
    for event in harness.receiver.events():
        if event.get("callId") == diverted["callId"]:
            event = {**event, "callId": "diverted"}
        if event["eventType"] in ("sms", "mms") and event["direction"] == "out":
            event["receipt"] = "deliveryState" in event and event.get("deliveryState") != "waiting"
        events.append(event)
    return events


def page_for(event: dict[str, Any]) -> str:
    if event["eventType"] == "hangup":
        return "reject.md" if event["cause"] == "CALL_REJECTED" else "hangup.md"
    return next(
        page
        for page, table in PAGES.items()
        if table["eventType"] == event["eventType"] and page != "reject.md"
    )


async def test_every_event_type_is_sent_with_every_listed_field(harness: Harness) -> None:
    events = await every_event(harness)
    seen = {page_for(e) for e in events}
    assert seen >= set(PAGES) - {"reject.md"}
    for event in events:
        table = PAGES[page_for(event)]
        for name in table["fields"]:
            if name == "tag":
                continue
            condition = CONDITIONAL.get(name)
            if condition is not None and not condition(event):
                continue
            assert name in event, f"{event['eventType']} lacks {name!r}: {event}"


async def test_field_values_have_the_documented_types(harness: Harness) -> None:
    events = await every_event(harness)
    for event in events:
        for name, value in event.items():
            if name in INTEGERS:
                assert type(value) is int, (name, event)
            elif name in BOOLEANS:
                assert type(value) is bool, (name, event)
            elif name == "media":
                assert isinstance(value, list), event
            elif name == "diversion":
                assert value["origTo"] == "+19195550999"
                assert (type(value["counter"]), type(value["limit"])) == (int, int)
            elif name != "receipt":
                assert isinstance(value, str), (name, event)


async def test_tags_are_echoed_where_they_were_given(harness: Harness) -> None:
    events = await every_event(harness)
    tags = {(e["eventType"], e.get("status") or e.get("reason")): e.get("tag") for e in events}
    assert tags[("speak", "started")] == "a"
    assert tags[("playback", "done")] == "b"
    assert tags[("gather", "max-digits")] == "g"
    assert "out" in {e.get("tag") for e in events if e["eventType"] == "answer"}
    assert "tag" not in next(e for e in events if e["eventType"] == "incomingcall")


async def test_a_rejected_call_matches_the_reject_page(harness: Harness) -> None:
    await harness.own(auto_answer=False)
    call_id = await harness.inbound()
    await harness.ok("POST", f"/calls/{call_id}", {"state": "rejected"})
    await harness.sim.settle()
    reject = harness.receiver.events()[-1]
    assert set(PAGES["reject.md"]["fields"]) <= set(reject)
    assert reject["cause"] == "CALL_REJECTED"
