"""Recording a call (as ``serve --record`` does) and replaying it against the same or a changed flow."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest

from flowengine.cli import main
from flowengine.testing.harness import Harness
from flowengine.testing.record import CallRecorder
from flowengine.testing.replay import replay_file
from flowengine.testing.runner import default_flow_loader, default_runtime_factory

FLOWS = Path(__file__).resolve().parent / "flows"


async def record_sales_call(flow: Path, directory: Path, *, mask: bool = False) -> Path:
    flows = default_flow_loader(str(flow))
    recorder = CallRecorder(directory, mask_numbers=mask, keep=["+19195551212"])
    harness = Harness(default_runtime_factory(flows, {}), numbers=["+19195551212"], recorder=recorder)
    await harness.setup()
    call = harness.sim.place_call("+15555550100", "+19195551212")
    await harness.advance(3)
    harness.sim.press(call.id, "1")
    await harness.advance(3)
    await harness.close()
    (path,) = directory.glob("*.jsonl")
    return path


async def test_a_recording_holds_every_callback_with_its_commands(tmp_path: Path) -> None:
    path = await record_sales_call(FLOWS / "ivr.yaml", tmp_path / "rec")
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert lines[0]["event"]["eventType"] == "incomingcall"
    assert lines[0]["flow"] == "ivr"
    shapes = [c["body"] for line in lines for c in line["commands"] if c.get("body")]
    assert {"state": "transferring", "transferTo": "+19195550100"} in [
        {k: v for k, v in body.items() if k in ("state", "transferTo")} for body in shapes
    ]


async def test_masking_hides_the_callers_number_but_keeps_the_flows(tmp_path: Path) -> None:
    path = await record_sales_call(FLOWS / "ivr.yaml", tmp_path / "rec", mask=True)
    text = path.read_text()
    assert "+15555550100" not in text
    assert "+19195551212" in text
    assert CallRecorder(tmp_path, mask_numbers=True).mask("+15555550100") in text


async def test_replaying_against_the_same_flow_finds_the_same_commands(tmp_path: Path) -> None:
    path = await record_sales_call(FLOWS / "ivr.yaml", tmp_path / "rec")
    report = replay_file(str(path), str(FLOWS / "ivr.yaml"))
    assert report.events >= 4
    assert report.same, report.divergences


async def test_replaying_against_a_changed_flow_reports_the_divergent_event(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = await record_sales_call(FLOWS / "ivr.yaml", tmp_path / "rec")
    changed = tmp_path / "ivr-v2.yaml"
    shutil.copy(FLOWS / "ivr.yaml", changed)
    changed.write_text(changed.read_text().replace('transfer: "+19195550100"', 'transfer: "+19195550999"'))
    assert main(["test", "--replay", str(path), "--flow", str(changed)]) == 1
    out = capsys.readouterr().out
    assert "the commands diverge" in out
    assert "(gather digits='1'" in out
    assert (
        '-  POST /calls/{id} {"state":"transferring","transferTo":"+19195550100"}'.replace("-  ", "- ") in out
    )
    assert '+ POST /calls/{id} {"state":"transferring","transferTo":"+19195550999"}' in out


def test_an_unreadable_recording_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    assert main(["test", "--replay", str(bad), "--flow", str(FLOWS / "ivr.yaml")]) == 2
    assert "bad.jsonl:1: not a JSON line" in capsys.readouterr().err
