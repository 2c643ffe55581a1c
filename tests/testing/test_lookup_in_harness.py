"""The in-process scenario harness answers a flow's ``lookup_caller`` from the simulator's CNAM table, so
scenarios can greet callers by name without HTTP."""

from __future__ import annotations

from pathlib import Path

from flowengine.sim.resources.number_info import set_caller_name
from flowengine.testing.harness import Harness
from flowengine.testing.runner import default_flow_loader, default_runtime_factory

OURS = "+19195551212"
GREETER = """\
flow: greeter
kind: voice
numbers: ["+19195551212"]
initial: a
states:
  a:
    do: [answer, {lookup_caller: who}]
    on:
      lookup.done: b
  b:
    do: [{speak: "Hello {{ who or 'stranger' }}."}, hangup]
on:
  hangup: end
"""


async def heard(tmp_path: Path, caller: str, name: str | None) -> list[str]:
    path = tmp_path / "greeter.yaml"
    path.write_text(GREETER)
    harness = Harness(default_runtime_factory(default_flow_loader(str(path)), {}), numbers=[OURS])
    await harness.setup()
    if name is not None:
        set_caller_name(harness.sim, caller, name)
    call = harness.sim.place_call(caller, OURS)
    await harness.advance(10)
    await harness.close()
    assert harness.problems == []
    return [e["text"] for e in harness.sim.transcript(call.id) if e["kind"] == "heard"]


async def test_a_known_caller_is_greeted_by_name(tmp_path: Path) -> None:
    assert await heard(tmp_path, "+13235550100", "JANE DOE") == ["Hello JANE DOE."]


async def test_an_unknown_caller_is_greeted_as_a_stranger(tmp_path: Path) -> None:
    assert await heard(tmp_path, "+13235550101", None) == ["Hello stranger."]
