"""A small scripted runtime behind the server's adapter protocol, so the harness and the runner are tested
without the real engine: a menu that transfers on 1, dials and bridges on 2, posts to a CRM on 3, texts on 4,
and says goodbye after two silent tries. Its snapshots are plain JSON like the real runtime's."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import orjson

from flowengine.errors import CatapultError
from flowengine.flow.model import Flow, Menu, Prompt, State, Transition
from flowengine.server.dispatcher import HttpResult, Routed, Step
from flowengine.typing import JSONObject, Seconds, SnapshotData

USER = "u-scenario"
NUMBER = "+19195551212"
AGENT = "+19195550100"
SALES = "+19195550199"


def menu_flow() -> Flow:
    """The model of the scripted flow, for coverage tests."""
    to = Transition
    return Flow(
        name="fake-menu",
        kind="voice",
        initial="menu",
        numbers=(NUMBER,),
        states={
            "menu": State(
                "menu",
                menu=Menu(
                    prompt=Prompt(text="Press 1 for sales."),
                    choices={"1": to("sales"), "2": to("agent"), "3": to("crm"), "4": to("text")},
                ),
            ),
            "sales": State("sales", final=True),
            "agent": State("agent", on={"agent.answer": (to("talking"),)}),
            "talking": State("talking", final=True),
            "crm": State("crm", on={"http.ok": (to("goodbye"),)}),
            "text": State("text", final=True),
            "goodbye": State("goodbye", final=True),
            "never": State("never", final=True),
        },
    )


def _rest(method: str, path: str, body: object, command_id: str | None = None) -> JSONObject:
    return {
        "kind": "rest",
        "method": method,
        "path": f"/v1/users/{USER}{path}",
        "body": body,  # type: ignore[dict-item]
        "operation": "",
        "command_id": command_id,
    }


def _speak(call: str, text: str) -> JSONObject:
    return _rest("POST", f"/calls/{call}/audio", {"sentence": text})


def _gather(call: str) -> JSONObject:
    body = {"maxDigits": 1, "interDigitTimeout": 3, "prompt": {"sentence": "Press 1 for sales."}}
    return _rest("POST", f"/calls/{call}/gather", body)


@dataclass
class FakeRuntime:
    """The runtime adapter of the scripted flow (see the module docstring)."""

    flows: Mapping[str, Flow]
    env: Mapping[str, str]
    crm_url: str = "https://crm.example.com/calls"

    def parse(self, data: Mapping[str, object]) -> Routed:
        event_type = str(data.get("eventType", ""))
        tag = data.get("tag")
        key = f"tag:{tag}" if isinstance(tag, str) and tag else f"call:{data.get('callId')}"
        return Routed(dict(data), event_type, key, str(data.get("callId", "")))

    def start(self, routed: Routed, now: Seconds) -> Step | None:
        data = routed.event
        assert isinstance(data, dict)
        if routed.event_type != "incomingcall":
            return None
        call = str(data["callId"])
        snapshot: JSONObject = {"id": f"s-{call}", "state": "menu", "call": call, "tries": 0}
        entries = [_rest("POST", f"/calls/{call}", {"state": "active"}), _gather(call)]
        return self._step(snapshot, entries)

    def start_outbound(self, flow: str, to: str, from_: str, variables: JSONObject, now: Seconds) -> Step:
        snapshot: JSONObject = {"id": "s-out", "state": "calling", "call": "", "tries": 0}
        body = {"from": from_, "to": to, "callbackUrl": "http://x.test/cb", "tag": "s-out"}
        return self._step(snapshot, [_rest("POST", "/calls", body, "create-caller")])

    def handle(self, snapshot: SnapshotData, event: object, now: Seconds) -> Step:
        snap = as_object(snapshot)
        call = str(snap["call"])
        state = snap["state"]
        if isinstance(event, tuple) and event[0] == "result":
            entry, resource = event[1], event[2]
            if entry.get("command_id") == "create-caller" and resource:
                snap["call"] = resource
            return self._step(snap, [])
        if isinstance(event, tuple) and event[0] == "timer":
            return self._step(
                {**snap, "state": "goodbye"}, [_speak(call, "Timer fired."), _hangup(call)], ended=True
            )
        if isinstance(event, HttpResult):
            snap["state"] = "goodbye"
            return self._step(
                snap, [_speak(call, f"CRM answered {event.status}."), _hangup(call)], ended=True
            )
        assert isinstance(event, dict)
        kind = event.get("eventType")
        if kind == "answer" and state == "calling":
            snap["state"] = "menu"
            return self._step(snap, [_gather(call)])
        if kind == "answer" and state == "agent":
            snap["state"] = "talking"
            return self._step(
                snap, [_rest("POST", "/bridges", {"callIds": [call, event["callId"]], "bridgeAudio": True})]
            )
        if kind == "hangup" and event.get("callId") == call:
            return self._step({**snap, "state": "end"}, [], ended=True)
        if kind != "gather" or state != "menu":
            return self._step(snap, [])
        digits = event.get("digits")
        if digits == "1":
            snap["state"] = "sales"
            return self._step(
                snap, [_rest("POST", f"/calls/{call}", {"state": "transferring", "transferTo": SALES})]
            )
        if digits == "2":
            snap["state"] = "agent"
            body = {"from": NUMBER, "to": AGENT, "callbackUrl": "http://x.test/cb", "tag": snap["id"]}
            return self._step(snap, [_speak(call, "Connecting you."), _rest("POST", "/calls", body)])
        if digits == "3":
            snap["state"] = "crm"
            http = {
                "kind": "http",
                "method": "POST",
                "url": self.crm_url,
                "json": {"from": "caller"},
                "command_id": "h",
            }
            return self._step(snap, [http])
        if digits == "4":
            snap["state"] = "text"
            message = _rest(
                "POST", "/messages", {"from": NUMBER, "to": "+15555550100", "text": "Here is the link."}
            )
            return self._step(snap, [message, _speak(call, "We texted you."), _hangup(call)])
        if digits == "9":
            snap["state"] = "waiting"
            return self._step(snap, [_speak(call, "Please hold.")], timers={"hold": now + 30})
        tries = int(str(snap["tries"])) + 1
        snap["tries"] = tries
        if tries >= 2:
            snap["state"] = "goodbye"
            return self._step(snap, [_speak(call, "Goodbye."), _hangup(call)], ended=True)
        return self._step(snap, [_speak(call, "Sorry, I didn't hear anything."), _gather(call)])

    def timer_event(self, key: str) -> object:
        return ("timer", key)

    def result_event(
        self, entry: JSONObject, resource_id: str | None, error: CatapultError | None
    ) -> object | None:
        if entry.get("command_id") is None:
            return None
        return ("result", entry, resource_id, error)

    def http_event(self, entry: JSONObject, result: HttpResult) -> object:
        return result

    def cancel(self, snapshot: SnapshotData, now: Seconds) -> Step:
        return self._step(as_object(snapshot), [], ended=True)

    def describe(self, snapshot: SnapshotData) -> JSONObject:
        return as_object(snapshot)

    def _step(
        self,
        snapshot: JSONObject,
        entries: list[JSONObject],
        *,
        ended: bool = False,
        timers: dict[str, float] | None = None,
    ) -> Step:
        return Step(
            session_id=str(snapshot["id"]),
            snapshot=snapshot,
            entries=entries,
            timers_set=timers or {},
            routes=(f"tag:{snapshot['id']}",),
            ended=ended,
            flow="fake-menu",
            state=str(snapshot["state"]),
        )


def _hangup(call: str) -> JSONObject:
    return _rest("POST", f"/calls/{call}", {"state": "completed"})


def fake_factory(flows: Mapping[str, Flow], env: Mapping[str, str]) -> FakeRuntime:
    return FakeRuntime(flows, env)


def fake_loader(path: str) -> Mapping[str, Flow]:
    if not Path(path).is_file():
        raise OSError(f"no such file: {path}")
    return {"fake-menu": menu_flow()}


def as_object(snapshot: SnapshotData) -> JSONObject:
    """A snapshot as the harness or a store gave it back (JSON text or an object), as a new object."""
    value = orjson.loads(snapshot if isinstance(snapshot, bytes | str) else orjson.dumps(snapshot))
    assert isinstance(value, dict)
    return value
