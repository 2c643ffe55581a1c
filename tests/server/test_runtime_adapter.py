"""The runtime adapter: the quick path for a gather's id gives the same step as the engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowengine.config import ServeConfig
from flowengine.errors import CatapultConnectionError
from flowengine.flow.pipeline import read_flow
from flowengine.runtime.events import CommandFailure, CommandResult
from flowengine.runtime.session import Session
from flowengine.server.runtime_adapter import EngineAdapter
from flowengine.typing import JSONObject

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def adapter() -> EngineAdapter:
    flow = read_flow(ROOT / "flows" / "ivr.yaml")
    config = ServeConfig(flows_dir=ROOT / "flows", user_id="u-1", token="t", secret="s")
    return EngineAdapter({flow.name: flow}, config, environ={})


def _waiting_in_menu(adapter: EngineAdapter) -> tuple[JSONObject, str]:
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
        busy = Session.from_json(snapshot).busy or {}
        done = {"eventType": "speak", "callId": "c-1", "status": "done", "tag": next(iter(busy.values()))}
        step = adapter.handle(snapshot, adapter.parse(done).event, 2.0)
        snapshot = step.snapshot
    raise AssertionError("the IVR never asked for a gather")


def _through_engine(adapter: EngineAdapter, snapshot: JSONObject, event: object, now: float) -> JSONObject:
    session = Session.from_json(snapshot)
    adapter._engine.handle(session, event, now)
    return session.to_json()


def test_a_gather_id_gives_the_same_snapshot_as_the_engine(
    adapter: EngineAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshot, command_id = _waiting_in_menu(adapter)
    result = CommandResult(command_id, "g-42")
    restored: list[JSONObject] = []
    original = Session.from_json
    monkeypatch.setattr(Session, "from_json", lambda data: restored.append(data) or original(data))

    step = adapter.handle(snapshot, result, 5.0)

    assert restored == [], "the quick path restores no session"
    monkeypatch.undo()

    assert step.snapshot == _through_engine(adapter, snapshot, result, 5.0)
    assert step.snapshot["pending"][command_id][2] == "g-42"  # type: ignore[index]
    assert not step.entries
    assert not step.ended
    assert snapshot["pending"][command_id][2] == ""  # type: ignore[index]  # the input is left alone


def test_a_failed_gather_goes_through_the_engine(adapter: EngineAdapter) -> None:
    snapshot, command_id = _waiting_in_menu(adapter)
    failure = CommandFailure.from_exception(
        CatapultConnectionError("POST", "http://127.0.0.1/v1", "connection refused")
    )
    result = CommandResult(command_id, None, failure)

    step = adapter.handle(snapshot, result, 5.0)

    assert step.snapshot == _through_engine(adapter, snapshot, result, 5.0)
    assert command_id not in (step.snapshot.get("pending") or {})
