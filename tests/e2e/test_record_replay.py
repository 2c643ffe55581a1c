"""``flowengine serve --record DIR`` saves each call's callbacks and commands; ``flowengine test --replay``
replays them against the same flow (no divergence) and against a changed one (the divergence is named)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from flowengine.cli import main
from flowengine.flow import read_flow

from .conftest import Deployment
from .support import Phones
from .test_calls import CALLER, _transferred

pytestmark = pytest.mark.slow


def _recording_of(record_dir: Path, call_id: str) -> Path:
    for path in sorted(record_dir.glob("*.jsonl")):
        if call_id in path.read_text(encoding="utf-8"):
            return path
    raise AssertionError(f"no recording in {record_dir} mentions {call_id}")


def _flow_file(flows_dir: Path, name: str) -> Path:
    for path in sorted(flows_dir.glob("*.yaml")):
        if read_flow(path).name == name:
            return path
    raise AssertionError(f"no flow called {name!r} in {flows_dir}")


def _replay(recording: Path, flow: Path) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["test", "--replay", str(recording), "--flow", str(flow)], out, err)
    return code, out.getvalue() + err.getvalue()


async def test_a_recorded_call_replays_against_its_flow_and_shows_a_changed_prompt(
    deployment: Deployment, phones: Phones, tmp_path: Path
) -> None:
    call = await phones.call(CALLER, "+19195559001")
    await phones.until("the menu", lambda: _heard_menu(phones, call))
    await phones.press(call, "1")
    await phones.until("the transfer", lambda: _transferred(phones, call))
    recording = _recording_of(deployment.record_dir, call)
    lines = [json.loads(line) for line in recording.read_text(encoding="utf-8").splitlines()]
    assert lines[0]["event"]["eventType"] == "incomingcall"
    assert any(command.get("method") == "POST" for line in lines for command in line["commands"])
    flow = _flow_file(deployment.flows_dir, lines[0]["flow"])

    code, report = _replay(recording, flow)
    assert code == 0, report
    assert "the commands are the same" in report

    changed = tmp_path / flow.name
    changed.write_text(
        flow.read_text(encoding="utf-8").replace("Transferring you now.", "Please hold."), encoding="utf-8"
    )
    code, report = _replay(recording, changed)
    assert code == 1, report
    assert "diverge" in report
    assert "Please hold." in report


async def _heard_menu(phones: Phones, call_id: str) -> bool:
    return "Press 1 to be transferred, or 2 to hang up." in await phones.heard(call_id)
