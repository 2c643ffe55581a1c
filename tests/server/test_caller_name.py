"""A flow that greets callers by their caller-id (CNAM) name, end to end: the callback server with the real
runtime, and the simulator answering the lookup from its CNAM table, both on loopback."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from flowengine.catapult.client import CatapultClient
from flowengine.config import ServeConfig
from flowengine.server.app import create_app
from flowengine.server.runtime_adapter import callback_urls
from flowengine.sim import SIM_KEY, RealClock, SimConfig, Simulator
from flowengine.sim import create_app as create_sim_app
from flowengine.sim.resources.number_info import set_caller_name
from flowengine.store import MemoryStore

OURS = "+19195551212"
KNOWN = "+13235550100"
UNKNOWN = "+13235550101"

GREETER = """\
flow: greeter
version: 1
kind: voice
numbers: ["+19195551212"]
initial: lookup
states:
  lookup:
    do:
      - answer
      - lookup_caller: caller_name
    on:
      lookup.done:
        - when: "event.found"
          goto: known
        - goto: stranger
      lookup.error: stranger
  known:
    do:
      - speak: "Hello {{ caller_name|title }}, welcome back."
      - hangup
  stranger:
    do:
      - speak: "Hello, thanks for calling."
      - hangup
on:
  hangup: end
"""

FAST = {
    "speech_seconds_per_char": 0.0005,
    "speech_min_seconds": 0.01,
    "answer_delay": 0.02,
}


@dataclass
class Stack:
    sim: Simulator

    async def heard(self, caller: str) -> list[str]:
        call = self.sim.place_call(caller, OURS)
        for _ in range(500):
            await asyncio.sleep(0.01)
            transcript = self.sim.transcript(call.id)
            if any(e["kind"] == "call" and e["text"].startswith("hung up") for e in transcript):
                return [e["text"] for e in transcript if e["kind"] == "heard"]
        raise AssertionError(f"the call {call.id} did not end: {self.sim.transcript(call.id)}")


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    sim_app = create_sim_app(
        SimConfig(user_id="u-cnam", token="t-cnam", secret="s-cnam", **FAST), RealClock()
    )  # type: ignore[arg-type]
    sim_server = TestServer(sim_app, host="127.0.0.1")
    await sim_server.start_server()
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "greeter.yaml").write_text(GREETER)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    port = sock.getsockname()[1]
    config = ServeConfig(
        flows_dir=flows,
        port=port,
        public_url=f"http://127.0.0.1:{port}",
        api_url=str(sim_server.make_url("/v1")),
        user_id="u-cnam",
        token="t-cnam",
        secret="s-cnam",
        reload_interval=0,
    )
    runner = web.AppRunner(create_app(config, store=MemoryStore(), timer_interval=0.01))
    await runner.setup()
    await web.SockSite(runner, sock).start()
    urls = callback_urls(config.public_url, None)
    async with aiohttp.ClientSession() as http:
        client = CatapultClient(
            http, user_id="u-cnam", token="t-cnam", secret="s-cnam", base_url=config.api_url
        )
        app_id = await client.create_application(
            {"name": "cnam", "incomingCallUrl": urls["voice"], "autoAnswer": False}
        )
        await client.create_phone_number({"number": OURS, "applicationId": app_id})
    sim = sim_app[SIM_KEY]
    set_caller_name(sim, KNOWN, "JANE DOE")
    yield Stack(sim)
    await runner.cleanup()
    await sim_server.close()


async def test_a_caller_with_a_cnam_name_is_greeted_by_it(stack: Stack) -> None:
    assert await stack.heard(KNOWN) == ["Hello Jane Doe, welcome back."]
    assert [number for _, number in stack.sim.world.cnam_lookups] == [KNOWN]


async def test_a_caller_without_one_gets_the_general_greeting(stack: Stack) -> None:
    assert await stack.heard(UNKNOWN) == ["Hello, thanks for calling."]
    assert stack.sim.world.cnam_lookups == []  # not found: nothing answered, nothing billed
