"""The simulator's documentation names every control operation, and the simulator runs on real time."""

from __future__ import annotations

import asyncio
from pathlib import Path

from flowengine.sim import RealClock, SimConfig, Simulator
from flowengine.sim.control import CONTROL_ROUTES
from flowengine.sim.resources import ROUTES

from .support import Harness, HarnessFactory

DOC = (Path(__file__).parent.parent.parent / "docs" / "simulator.md").read_text()


def test_every_control_operation_is_documented() -> None:
    for method, path, _ in CONTROL_ROUTES:
        documented = path.replace("{callId}", "{id}")
        assert f"`{method} {documented}" in DOC, (method, path)


def test_every_rest_resource_is_documented() -> None:
    for route in ROUTES:
        family = "/" + route.path.strip("/").split("/")[0]
        assert f"{route.method} {family}" in DOC or f"POST/GET {family}" in DOC, route.path


def test_the_docs_have_no_yaml_blocks() -> None:
    assert "```yaml" not in DOC


async def test_on_a_real_clock_a_call_plays_out_in_real_time(make_harness: HarnessFactory) -> None:
    harness = await make_harness(clock=RealClock(), speech_min_seconds=0.05, speech_seconds_per_char=0.001)
    await harness.own()
    call_id = await harness.inbound()
    await harness.ok("POST", f"/calls/{call_id}/audio", {"sentence": "Hi"})
    for _ in range(100):
        await asyncio.sleep(0.01)
        await harness.sim.settle()
        if "speak:done" in harness.receiver.types(call_id):
            break
    assert harness.receiver.types(call_id) == ["incomingcall", "answer", "speak:started", "speak:done"]


async def test_a_simulator_object_runs_a_call_without_its_http_app(harness: Harness) -> None:
    sim = Simulator(SimConfig())
    try:
        sim.provision("+19195550001", call_url=harness.receiver.url("/in-process"), auto_answer=False)
        call = sim.place_call("+13235550100", "+19195550001")
        await sim.settle()
        sim.voice.answer(call)
        sim.press(call.id, "7")
        await sim.advance(10)
        sim.hangup(call.id)
        await sim.settle()
    finally:
        await sim.close()
    assert harness.receiver.types(call.id) == ["incomingcall", "answer", "dtmf", "hangup:NORMAL_CLEARING"]
    assert [t["kind"] for t in sim.transcript(call.id)].count("pressed") == 1
