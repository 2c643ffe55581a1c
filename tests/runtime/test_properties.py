"""Property: random valid event sequences never break a session of any example flow.

For every example flow, hypothesis sends documented-shape events that make sense for the session at that
moment (audio done with the right or a stale tag, gathers with any digits, answers, timeouts, hangups with
any cause, recordings, transcriptions, timers, command results and failures, HTTP answers, texts and
receipts, unknown events). After every event: no exception, the session survives a JSON round trip equal
to itself, and once the caller has hung up no command ever acts on the caller's call again.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowengine.catapult.events import parse_callback
from flowengine.flow import model
from flowengine.runtime import commands as cmd
from flowengine.runtime.events import CommandFailure, CommandResult, HttpResult, TimerFired
from flowengine.runtime.session import Session

from .support import Driver
from .test_example_flows import ENV, example_flows

FLOWS = example_flows()
CAUSES = [
    "NORMAL_CLEARING",
    "USER_BUSY",
    "NO_ANSWER",
    "CALL_REJECTED",
    "ORIGINATOR_CANCEL",
    "UNALLOCATED_NUMBER",
]
TEXTS = ["help", " STOP ", "hours", "4", "9", "yes", "n", "", "hello there"]
DIGITS = ["", "1", "2", "3", "4321", "0000", "9", "#", "12"]


def _start(driver: Driver, flow: model.Flow) -> None:
    if flow.kind == "messaging":
        driver.text_in("hi", to=flow.numbers[0])
    elif flow.numbers:
        driver.incoming(to=flow.numbers[0])
    else:
        driver.outbound(flow.name)


def _events(driver: Driver, draw: Any) -> list[object]:
    """The events that are plausible for the session right now."""
    session = driver.session
    call = session.leg_call(model.CALLER) or "c-caller"
    options: list[object] = []
    roles = list((session.legs or {}).keys()) or [model.CALLER]
    for role in roles:
        call_id = session.leg_call(role) or f"c-{role}"
        tag = f"{session.id}|call:{role}"
        for kind in ("speak", "playback"):
            busy = (session.busy or {}).get(role)
            options.append(
                {"eventType": kind, "callId": call_id, "status": "done", "tag": busy or f"{session.id}|a0"}
            )
            options.append({"eventType": kind, "callId": call_id, "status": "started", "tag": busy})
        current = session.gather_tag(role)
        digits = draw(st.sampled_from(DIGITS))
        reason = draw(st.sampled_from(["max-digits", "terminating-digit", "inter-digit-timeout", "hung-up"]))
        options.append(
            {
                "eventType": "gather",
                "callId": call_id,
                "digits": digits,
                "reason": reason,
                "tag": current,
            }
        )
        options.append(
            {"eventType": "dtmf", "callId": call_id, "dtmfDigit": draw(st.sampled_from("0123456789#*"))}
        )
        options.append({"eventType": "answer", "callId": call_id, "tag": tag})
        options.append({"eventType": "timeout", "callId": call_id, "tag": tag})
        options.append(
            {"eventType": "hangup", "callId": call_id, "cause": draw(st.sampled_from(CAUSES)), "tag": tag}
        )
        options.append(
            {
                "eventType": "recording",
                "callId": call_id,
                "recordingId": "r-1",
                "recordingUri": "https://api.test/r-1",
                "status": draw(st.sampled_from(["complete", "error"])),
            }
        )
        options.append(
            {
                "eventType": "conference-member",
                "conferenceId": "cf-1",
                "callId": call_id,
                "memberId": "mem-1",
                "state": draw(st.sampled_from(["active", "completed"])),
                "activeMembers": "1",
                "hold": "false",
                "mute": "false",
            }
        )
    options.append(
        {
            "eventType": "transcription",
            "recordingId": "r-1",
            "status": draw(st.sampled_from(["completed", "error"])),
            "text": "hello",
            "textSize": "5",
        }
    )
    options.append({"eventType": "conference", "conferenceId": "cf-1", "status": "completed"})
    options.append(
        {
            "eventType": "sms",
            "direction": "in",
            "from": session.their,
            "to": session.our,
            "text": draw(st.sampled_from(TEXTS)),
        }
    )
    options.append(
        {
            "eventType": "sms",
            "direction": "out",
            "from": session.our,
            "to": session.their,
            "state": draw(st.sampled_from(["sent", "error"])),
            "deliveryState": draw(st.sampled_from(["delivered", "not-delivered", "waiting"])),
        }
    )
    options.append({"eventType": "something-new", "callId": call})
    for key in list(session.timers or {}):
        options.append(TimerFired(key))
    options.append(TimerFired("after:nowhere:0:1"))
    for command_id, entry in list((session.pending or {}).items()):
        if entry[0] == "http":
            status = draw(st.sampled_from([200, 201, 404, 500, 0]))
            options.append(
                HttpResult(
                    command_id,
                    status,
                    json={"ok": True} if status == 200 else None,
                    error="" if status else "refused",
                )
            )
        else:
            options.append(CommandResult(command_id, f"id-{command_id.rsplit('|', 1)[-1]}"))
            options.append(CommandResult(command_id, None, CommandFailure(403, "call-invalid-state", "no")))
    return options


def _check_round_trip(session: Session) -> None:
    restored = Session.from_json(json.loads(json.dumps(session.to_json())))
    assert restored == session
    assert Session.from_bytes(session.to_bytes()) == session  # the form the stores keep


@pytest.mark.parametrize("name", sorted(FLOWS))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_event_sequences_never_break_a_session(name: str, data: st.DataObject) -> None:
    flow = FLOWS[name]
    driver = Driver(FLOWS, env=ENV)
    _start(driver, flow)
    _check_round_trip(driver.session)
    caller_gone = False
    caller_call = driver.session.leg_call(model.CALLER)
    for _ in range(data.draw(st.integers(min_value=1, max_value=30), label="length")):
        options = _events(driver, data.draw)
        chosen = data.draw(st.sampled_from(options), label="event")
        was_ended = driver.session.ended
        if isinstance(chosen, dict):
            payload = {key: value for key, value in chosen.items() if value is not None}
            if payload["eventType"] == "hangup" and payload.get("callId") == (
                driver.session.leg_call(model.CALLER) or caller_call
            ):
                caller_gone = True
            driver.send(payload)
        else:
            driver.event(chosen)
        commands = driver.last
        caller_call = driver.session.leg_call(model.CALLER) or caller_call
        if was_ended:
            assert commands == []
        if caller_gone and caller_call:
            acting = [
                c for c in commands if isinstance(c, cmd.RestCommand) and cmd.call_id_of(c) == caller_call
            ]
            assert acting == [], f"commands for the caller after its hangup: {acting}"
        _check_round_trip(driver.session)
        if driver.session.ended and not was_ended:
            assert commands
            assert isinstance(commands[-1], cmd.EndSession)


def test_parse_callback_accepts_every_event_the_property_test_sends() -> None:
    """The property test's events are documented shapes: each parses without error."""
    driver = Driver(FLOWS, env=ENV)
    driver.incoming(to=FLOWS["ivr-main-line"].numbers[0])
    for option in _events(driver, _first):
        if isinstance(option, dict):
            parse_callback({key: value for key, value in option.items() if value is not None})


def _first(strategy: st.SearchStrategy[Any]) -> Any:
    sampled = getattr(strategy, "elements", None)
    if sampled:
        return next(iter(sampled))
    raise AssertionError("only sampled_from strategies are drawn here")
