"""The runtime adapter: the quick path for a gather's id gives the same step as the engine."""

from __future__ import annotations

import datetime
from pathlib import Path

import orjson
import pytest

from flowengine.config import ServeConfig
from flowengine.errors import CatapultConnectionError
from flowengine.flow.pipeline import read_flow
from flowengine.runtime.events import CommandFailure, CommandResult
from flowengine.runtime.session import Session
from flowengine.server.runtime_adapter import EngineAdapter
from flowengine.typing import JSONObject, SnapshotData

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def adapter() -> EngineAdapter:
    flow = read_flow(ROOT / "flows" / "ivr.yaml")
    config = ServeConfig(flows_dir=ROOT / "flows", user_id="u-1", token="t", secret="s")
    return EngineAdapter({flow.name: flow}, config, environ={})


def _waiting_in_menu(adapter: EngineAdapter) -> tuple[SnapshotData, str]:
    """A session of the IVR whose menu gather was just requested; returns (snapshot, gather command id)."""
    flow = read_flow(ROOT / "flows" / "ivr.yaml")
    routed = adapter.parse(
        {"eventType": "incomingcall", "callId": "c-1", "from": "+15550001111", "to": flow.numbers[0]}
    )
    step = adapter.start(routed, 1.0)
    assert step is not None
    snapshot = step.snapshot
    for _ in range(5):
        gathers = [e for e in step.entries if e.get("operation") == "createGather"]
        if gathers:
            command_id = gathers[0]["command_id"]
            assert isinstance(command_id, str)
            return snapshot, command_id
        busy = Session.from_bytes(_text(snapshot)).busy or {}
        done = {"eventType": "speak", "callId": "c-1", "status": "done", "tag": next(iter(busy.values()))}
        step = adapter.handle(snapshot, adapter.parse(done).event, 2.0)
        snapshot = step.snapshot
    raise AssertionError("the IVR never asked for a gather")


def _text(snapshot: SnapshotData) -> bytes | str:
    assert isinstance(snapshot, bytes | str), "the adapter hands snapshots over as JSON text"
    return snapshot


def _decoded(snapshot: SnapshotData) -> JSONObject:
    value = orjson.loads(_text(snapshot))
    assert isinstance(value, dict)
    return value


def _through_engine(adapter: EngineAdapter, snapshot: SnapshotData, event: object, now: float) -> JSONObject:
    session = Session.from_bytes(_text(snapshot))
    adapter._engine.handle(session, event, now)
    return session.to_json()


def test_a_gather_id_gives_the_same_snapshot_as_the_engine(
    adapter: EngineAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshot, command_id = _waiting_in_menu(adapter)
    result = CommandResult(command_id, "g-42")
    restored: list[object] = []
    original = Session.from_bytes
    monkeypatch.setattr(Session, "from_bytes", lambda text: restored.append(text) or original(text))

    step = adapter.handle(snapshot, result, 5.0)

    assert restored == [], "the quick path restores no session"
    monkeypatch.undo()

    assert _decoded(step.snapshot) == _through_engine(adapter, snapshot, result, 5.0)
    assert _decoded(step.snapshot)["pending"][command_id][2] == "g-42"  # type: ignore[index]
    assert not step.entries
    assert not step.ended
    assert _decoded(snapshot)["pending"][command_id][2] == ""  # type: ignore[index]  # the input is left alone


def test_a_failed_gather_goes_through_the_engine(adapter: EngineAdapter) -> None:
    snapshot, command_id = _waiting_in_menu(adapter)
    failure = CommandFailure.from_exception(
        CatapultConnectionError("POST", "http://127.0.0.1/v1", "connection refused")
    )
    result = CommandResult(command_id, None, failure)

    step = adapter.handle(snapshot, result, 5.0)

    assert _decoded(step.snapshot) == _through_engine(adapter, snapshot, result, 5.0)
    assert command_id not in (_decoded(step.snapshot).get("pending") or {})


def test_a_step_names_only_the_route_keys_its_event_added(adapter: EngineAdapter) -> None:
    flow = read_flow(ROOT / "flows" / "ivr.yaml")
    routed = adapter.parse(
        {"eventType": "incomingcall", "callId": "c-1", "from": "+15550001111", "to": flow.numbers[0]}
    )
    started = adapter.start(routed, 1.0)
    assert started is not None
    assert "call:c-1" in started.routes
    assert f"session:{started.session_id}" in started.routes

    snapshot, command_id = _waiting_in_menu(adapter)
    gathered = adapter.handle(snapshot, CommandResult(command_id, "g-1"), 3.0)
    tag = _decoded(gathered.snapshot)["pending"]
    assert isinstance(tag, dict)
    pressed = adapter.parse(
        {
            "eventType": "gather",
            "callId": "c-1",
            "gatherId": "g-1",
            "state": "completed",
            "reason": "max-digits",
            "digits": "1",
            "tag": next(iter(tag)),
        }
    )
    dialling = adapter.handle(gathered.snapshot, pressed.event, 4.0)
    assert dialling.routes == []  # nothing new: the caller's keys were committed with the start
    for _ in range(3):  # prompts before the dial
        if any(e.get("operation") == "createCall" for e in dialling.entries):
            break
        busy = Session.from_bytes(_text(dialling.snapshot)).busy or {}
        done = {"eventType": "speak", "callId": "c-1", "status": "done", "tag": next(iter(busy.values()))}
        dialling = adapter.handle(dialling.snapshot, adapter.parse(done).event, 4.5)
        assert dialling.routes == []
    create = next(e for e in dialling.entries if e.get("operation") == "createCall")
    agent = adapter.result_event(create, "c-agent", None)
    assert agent is not None
    connected = adapter.handle(dialling.snapshot, agent, 5.0)
    assert connected.routes == ["call:c-agent"]


def _incoming(adapter: EngineAdapter, call_id: str, time: str | None) -> str:
    """The session id the adapter gives the call's first callback."""
    flow = read_flow(ROOT / "flows" / "ivr.yaml")
    fields: JSONObject = {"eventType": "incomingcall", "callId": call_id, "from": "+15550001111"}
    fields["to"] = flow.numbers[0]
    if time is not None:
        fields["time"] = time
    step = adapter.start(adapter.parse(fields), 1.0)
    assert step is not None
    return step.session_id


class TestSessionIds:
    def test_a_first_callback_gives_an_id_that_starts_with_its_time(self, adapter: EngineAdapter) -> None:
        session_id = _incoming(adapter, "c-1", "2012-11-14T16:21:59.616Z")

        assert session_id.startswith("s-20121114162159616-")
        assert len(session_id) == len("s-20121114162159616-") + 24

    def test_the_same_first_callback_gives_the_same_id_at_every_instance(
        self, adapter: EngineAdapter
    ) -> None:
        flow = read_flow(ROOT / "flows" / "ivr.yaml")
        config = ServeConfig(flows_dir=ROOT / "flows", user_id="u-1", token="t", secret="s")
        other = EngineAdapter({flow.name: flow}, config, environ={})

        assert _incoming(adapter, "c-1", "2012-11-14T16:21:59.616Z") == _incoming(
            other, "c-1", "2012-11-14T16:21:59.616Z"
        )
        assert _incoming(adapter, "c-1", "2012-11-14T16:21:59.616Z") != _incoming(
            adapter, "c-2", "2012-11-14T16:21:59.616Z"
        )

    def test_ids_of_later_calls_sort_after_earlier_ones(self, adapter: EngineAdapter) -> None:
        times = ["2012-11-14T16:21:59.616Z", "2012-11-14T16:21:59.617Z", "2012-11-14T16:22:00.001Z"]
        ids = [_incoming(adapter, f"c-{n}", time) for n, time in enumerate(reversed(times))]

        assert sorted(ids) == list(reversed(ids))

    @pytest.mark.parametrize("time", [None, "", "soon", "2012-11-14"])
    def test_without_a_usable_time_the_id_is_the_digest_alone(
        self, adapter: EngineAdapter, time: str | None
    ) -> None:
        session_id = _incoming(adapter, "c-1", time)

        assert session_id.startswith("s-")
        assert len(session_id) == 34
        assert "-" not in session_id[2:]

    def test_execution_ids_start_with_the_time_they_began_and_differ(self, adapter: EngineAdapter) -> None:
        flow = read_flow(ROOT / "flows" / "ivr.yaml")
        one = adapter.start_outbound(flow.name, "+15550002222", flow.numbers[0], {}, 1.0).session_id
        two = adapter.start_outbound(flow.name, "+15550002222", flow.numbers[0], {}, 1.0).session_id

        assert one != two
        prefix, digits, digest = one.split("-")
        assert (prefix, len(digits), len(digest)) == ("s", 17, 24)
        assert digits.startswith(str(datetime.datetime.now(datetime.UTC).year))
        assert two > one or two[:19] == one[:19]
