"""A driver for runtime tests: sends documented-shape callbacks to an Engine and shows commands as text.

Every event goes through ``parse_callback`` (the API's JSON shape), and the session makes a JSON round trip
before each event, so every test also checks that sessions serialise.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping
from typing import Any

from flowengine.catapult.events import parse_callback
from flowengine.flow import model
from flowengine.runtime import commands as cmd
from flowengine.runtime.engine import Engine
from flowengine.runtime.events import CommandFailure, CommandResult, HttpResult, TimerFired
from flowengine.runtime.session import Session

USER = "u-test"
OURS = "+15550001000"
THEIRS = "+15559998888"
CALLBACK = "https://engine.test/callbacks"
PREFIX = f"/v1/users/{USER}"


def show(command: cmd.Command) -> str:
    """One command as one line: the exact REST request, or what the non-REST command does."""
    if isinstance(command, cmd.RestCommand):
        request = command.request(USER)
        path = request.path.removeprefix(PREFIX)
        body = json.dumps(request.json, sort_keys=True, separators=(",", ":"))
        return f"{request.method} {path} {body}"
    if isinstance(command, cmd.StartTimer):
        return f"timer {command.key} at {command.at:g}"
    if isinstance(command, cmd.CancelTimer):
        return f"cancel {command.key}"
    if isinstance(command, cmd.HttpCall):
        body = json.dumps(command.json, sort_keys=True, separators=(",", ":"))
        return f"http {command.method} {command.url} {body}"
    if isinstance(command, cmd.LookupCaller):
        return f"lookup {command.number}"
    if isinstance(command, cmd.Log):
        return f"log {command.level} {command.message}"
    if isinstance(command, cmd.EndSession):
        return f"end {command.reason}"
    raise AssertionError(f"unknown command {command!r}")


def shown(commands: list[cmd.Command]) -> list[str]:
    return [show(command) for command in commands]


def tagless(lines: list[str]) -> list[str]:
    """Replace our tags (session id and a counter) by TAG, to keep expectations short."""
    return [re.sub(r'"tag":"s1\|[a-z]\d+"', '"tag":"TAG"', line) for line in lines]


def say(text: str, *, voice: str = "susan", call: str = "c-caller") -> str:
    """The request that speaks ``text`` on ``call`` with the default gender and locale."""
    body = json.dumps(
        {
            "gender": "female",
            "locale": "en_US",
            "loopEnabled": False,
            "sentence": text,
            "tag": "TAG",
            "voice": voice,
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return f"POST /calls/{call}/audio {body}"


def gather(prompt: str, *, max_digits: int = 1, timeout: float = 5.0, call: str = "c-caller") -> str:
    """The request of a gather with a spoken prompt and the default settings."""
    body = json.dumps(
        {
            "interDigitTimeout": timeout,
            "maxDigits": max_digits,
            "prompt": {"gender": "female", "locale": "en_US", "loopEnabled": False, "sentence": prompt},
            "tag": "TAG",
            "terminatingDigits": "#",
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return f"POST /calls/{call}/gather {body}"


def message(text: str, *, ours: str, theirs: str) -> str:
    body = json.dumps(
        {
            "callbackUrl": CALLBACK,
            "from": ours,
            "receiptRequested": "all",
            "tag": "TAG",
            "text": text,
            "to": theirs,
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return f"POST /messages {body}"


class Driver:
    """One session driven through an engine, with a clock that advances one second per event."""

    def __init__(self, flows: Mapping[str, model.Flow], *, env: Mapping[str, str] | None = None) -> None:
        numbers = itertools.count(1)
        self.engine = Engine(flows, callback_url=CALLBACK, env=env, new_id=lambda: f"s{next(numbers)}")
        self.now = 0.0
        self._session: Session | None = None
        self.calls: dict[str, str] = {}
        self.last: list[cmd.Command] = []

    @property
    def session(self) -> Session:
        assert self._session is not None, "no session yet"
        return self._session

    # -------------------------------------------------------------------------------- starting

    def incoming(self, *, to: str = OURS, from_: str = THEIRS, call_id: str = "c-caller") -> list[str]:
        data = {
            "eventType": "incomingcall",
            "from": from_,
            "to": to,
            "callId": call_id,
            "callUri": f"https://api.test/v1/users/{USER}/calls/{call_id}",
            "callState": "active",
            "applicationId": "a-1",
            "time": "2012-11-14T16:21:59.616Z",
        }
        started = self.engine.start(parse_callback(data), self.now)
        assert started is not None, "the call did not start a session"
        self._session, commands = started
        self.calls["caller"] = call_id
        self.last = commands
        return shown(commands)

    def text_in(
        self, text: str, *, to: str = OURS, from_: str = THEIRS, media: list[str] | None = None
    ) -> list[str]:
        data: dict[str, Any] = {
            "eventType": "mms" if media else "sms",
            "direction": "in",
            "from": from_,
            "to": to,
            "messageId": f"m-in-{self.now:g}",
            "text": text,
            "applicationId": "a-1",
            "time": "2012-11-14T16:13:06.076Z",
            "state": "received",
            "segmentCount": "1",
        }
        if media:
            data["media"] = media
        if self._session is None:
            started = self.engine.start(parse_callback(data), self.now)
            assert started is not None, "the message did not start a session"
            self._session, commands = started
            self.last = commands
            return shown(commands)
        return self.send(data)

    def outbound(self, flow: str, to: str = THEIRS, from_: str = OURS, **variables: Any) -> list[str]:
        self._session, commands = self.engine.start_outbound(flow, to, from_, variables, self.now)
        self.last = commands
        return shown(commands)

    # --------------------------------------------------------------------------------- sending

    def event(self, event: object) -> list[str]:
        """Send any event after a JSON round trip of the session."""
        self.now += 1.0
        snapshot = json.loads(json.dumps(self.session.to_json()))
        restored = Session.from_json(snapshot)
        assert restored == self.session
        self._session = restored
        commands = self.engine.handle(restored, event, self.now)
        self.last = commands
        return shown(commands)

    def send(self, data: dict[str, Any]) -> list[str]:
        return self.event(parse_callback(data))

    def call_id(self, role: str) -> str:
        return self.calls.get(role) or self.session.leg_call(role) or f"c-{role}"

    def answer(self, role: str = "caller") -> list[str]:
        data = {
            "eventType": "answer",
            "callId": self.call_id(role),
            "callState": "active",
            "from": THEIRS,
            "to": OURS,
        }
        if role != "caller":
            data["tag"] = f"{self.session.id}|call:{role}"
        return self.send(data)

    def audio_done(self, role: str = "caller", kind: str = "speak", *, tag: str | None = None) -> list[str]:
        busy = self.session.busy or {}
        data: dict[str, Any] = {"eventType": kind, "callId": self.call_id(role), "status": "done"}
        tag = tag or busy.get(role)
        if tag is not None:
            data["tag"] = tag
        return self.send(data)

    def speak_done(self, role: str = "caller") -> list[str]:
        return self.audio_done(role, "speak")

    def playback_done(self, role: str = "caller") -> list[str]:
        return self.audio_done(role, "playback")

    def gather(self, digits: str = "", reason: str | None = None, role: str = "caller") -> list[str]:
        tag = self.session.gather_tag(role)
        assert tag is not None, f"no gather in progress on {role}"
        if reason is None:
            reason = "max-digits" if digits else "inter-digit-timeout"
        data = {
            "eventType": "gather",
            "state": "completed",
            "digits": digits,
            "reason": reason,
            "callId": self.call_id(role),
            "gatherId": f"g-{self.now:g}",
            "tag": tag,
            "time": "2014-07-31T01:01:27Z",
        }
        return self.send(data)

    def dtmf(self, digit: str, role: str = "caller") -> list[str]:
        return self.send({"eventType": "dtmf", "callId": self.call_id(role), "dtmfDigit": digit})

    def hangup(self, role: str = "caller", cause: str = "NORMAL_CLEARING") -> list[str]:
        data = {
            "eventType": "hangup",
            "callId": self.call_id(role),
            "cause": cause,
            "from": THEIRS,
            "to": OURS,
        }
        if role != "caller":
            data["tag"] = f"{self.session.id}|call:{role}"
        return self.send(data)

    def timeout(self, role: str) -> list[str]:
        data = {"eventType": "timeout", "callId": self.call_id(role), "tag": f"{self.session.id}|call:{role}"}
        return self.send(data)

    def recording(
        self, status: str = "complete", recording_id: str = "r-1", role: str = "caller"
    ) -> list[str]:
        return self.send(
            {
                "eventType": "recording",
                "callId": self.call_id(role),
                "recordingId": recording_id,
                "recordingUri": f"https://api.test/v1/users/{USER}/recordings/{recording_id}",
                "status": status,
            }
        )

    def transcription(self, text: str, recording_id: str = "r-1", status: str = "completed") -> list[str]:
        return self.send(
            {
                "eventType": "transcription",
                "recordingId": recording_id,
                "transcriptionId": "t-1",
                "status": status,
                "state": status,
                "text": text,
                "textSize": str(len(text)),
            }
        )

    def fire(self, key: str) -> list[str]:
        return self.event(TimerFired(key))

    def pending_of(self, type_: type[cmd.Command]) -> cmd.Command:
        for command in self.last:
            if isinstance(command, type_):
                return command
        raise AssertionError(f"no {type_.__name__} in the last commands")

    def result(self, command: cmd.Command, resource_id: str | None) -> list[str]:
        command_id = command.command_id
        if isinstance(command, cmd.CreateCall) and resource_id and command.tag:
            role = command.tag.rsplit("call:", 1)[1]
            self.calls[role] = resource_id
        return self.event(CommandResult(command_id, resource_id))

    def failure(self, command: cmd.Command, code: str = "call-invalid-state", status: int = 403) -> list[str]:
        command_id = command.command_id
        return self.event(CommandResult(command_id, None, CommandFailure(status, code, "refused")))

    def http(self, command: cmd.Command, status: int = 200, body: Any = None, error: str = "") -> list[str]:
        command_id = command.command_id
        return self.event(
            HttpResult(
                command_id, status, text=json.dumps(body) if body is not None else "", json=body, error=error
            )
        )
