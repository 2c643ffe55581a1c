"""The server with the real runtime against the simulator, both in this process on loopback (the fast
sibling of the end-to-end tests in tests/e2e, which run them as separate processes).

The simulator runs on real time with speech and platform delays shortened, so a call takes milliseconds.
"""

from __future__ import annotations

import asyncio
import base64
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
from flowengine.store import MemoryStore

OURS = "+19195551212"
FORWARDING = "+19195551213"
CALLER = "+13235550100"
EXEC_TOKEN = "integration-token"

IVR = """\
flow: ivr
version: 1
kind: voice
numbers: ["+19195551212"]
initial: greet
states:
  greet:
    do:
      - answer
      - speak: "Thanks for calling."
    on:
      speak.done: main_menu
  main_menu:
    menu:
      prompt: "Press 1 for support or 2 to leave."
      choices: {"1": support, "2": goodbye}
      noinput: {reprompt: "Sorry, I didn't hear anything.", max: 2, then: goodbye}
      nomatch: {reprompt: "That isn't an option.", max: 2, then: goodbye}
  support:
    do: [{speak: "Support is closed."}, hangup]
  goodbye:
    do: [{speak: "Goodbye."}, hangup]
on:
  hangup: end
"""

FORWARD = """\
flow: forward
version: 1
kind: voice
numbers: ["+19195551213"]
initial: greet
states:
  greet:
    do:
      - answer
      - dial: {to: "+13235550199", as: agent, timeout: 10s}
    on:
      agent.answer: {do: [{bridge: [caller, agent]}], goto: talking}
      agent.timeout: end
  talking:
    on:
      agent.hangup: end
on:
  hangup: end
"""

FAST = {
    "speech_seconds_per_char": 0.0005,
    "speech_min_seconds": 0.01,
    "file_seconds": 0.02,
    "answer_delay": 0.02,
    "recording_save_seconds": 0.02,
    "transcription_seconds": 0.02,
    "message_send_seconds": 0.01,
    "receipt_seconds": 0.01,
}


def _listening_socket() -> socket.socket:
    """A bound socket, so the server's URL is known before its app is built (as ``serve`` does)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    sock.setblocking(False)
    return sock


@dataclass
class Stack:
    sim: Simulator
    server_url: str
    http: aiohttp.ClientSession
    app: web.Application
    flows: Path

    async def heard(self, call_id: str) -> list[str]:
        return [e["text"] for e in self.sim.transcript(call_id) if e["kind"] == "heard"]

    async def until(self, what: str, check: Callable[[], Awaitable[Any]], timeout: float = 5.0) -> Any:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            result = await check()
            if result:
                return result
            await asyncio.sleep(0.01)
        raise AssertionError(f"timed out waiting for {what}")

    def ended(self, call_id: str) -> bool:
        return any(
            e["kind"] == "call" and e["text"].startswith("hung up") for e in self.sim.transcript(call_id)
        )


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    sim_config = SimConfig(user_id="u-int", token="t-int", secret="s-int", **FAST)  # type: ignore[arg-type]
    sim_app = create_sim_app(sim_config, RealClock())
    sim_server = TestServer(sim_app, host="127.0.0.1")
    await sim_server.start_server()
    sim = sim_app[SIM_KEY]
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "ivr.yaml").write_text(IVR)
    (flows / "forward.yaml").write_text(FORWARD)
    sock = _listening_socket()
    port = sock.getsockname()[1]
    config = ServeConfig(
        flows_dir=flows,
        port=port,
        public_url=f"http://127.0.0.1:{port}",
        api_url=str(sim_server.make_url("/v1")),
        user_id="u-int",
        token="t-int",
        secret="s-int",
        executions_token=EXEC_TOKEN,
        reload_interval=0,
        callback_user="bandwidth",
        callback_password="p@ss:w/rd",  # characters that must be quoted in a URL
    )
    urls = callback_urls(config.public_url, config.callback_auth)
    app = create_app(config, store=MemoryStore(), timer_interval=0.01)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    async with aiohttp.ClientSession() as http:
        client = CatapultClient(http, user_id="u-int", token="t-int", secret="s-int", base_url=config.api_url)
        app_id = await client.create_application(
            {
                "name": "int",
                "incomingCallUrl": urls["voice"],
                "incomingMessageUrl": urls["messaging"],
                "autoAnswer": False,
            }
        )
        await client.create_phone_number({"number": OURS, "applicationId": app_id})
        await client.create_phone_number({"number": FORWARDING, "applicationId": app_id})
        yield Stack(sim, config.public_url, http, app, flows)
        await sim.settle()  # every callback the simulator queued is delivered before anything closes
    await runner.cleanup()
    await sim_server.close()


async def test_a_caller_goes_through_the_menu_and_hears_every_prompt_in_order(stack: Stack) -> None:
    call = stack.sim.place_call(CALLER, OURS).id
    await stack.until("the menu prompt", lambda: _has(stack, call, "Press 1 for support or 2 to leave."))
    stack.sim.press(call, "1")
    await stack.until("the hangup", lambda: _async(stack.ended(call)))
    assert await stack.heard(call) == [
        "Thanks for calling.",
        "Press 1 for support or 2 to leave.",
        "Support is closed.",
    ]


async def test_unknown_events_and_bad_bodies_do_not_disturb_a_live_call(stack: Stack) -> None:
    call = stack.sim.place_call(CALLER, OURS).id
    await stack.until("the menu prompt", lambda: _has(stack, call, "Press 1 for support or 2 to leave."))
    url = f"{stack.server_url}/callbacks/voice"
    auth = {"Authorization": "Basic " + base64.b64encode(b"bandwidth:p@ss:w/rd").decode()}
    async with stack.http.post(url, data=b"{oops", headers=auth) as response:
        assert response.status == 400
    async with stack.http.post(url, json={"eventType": "mystery", "callId": call}, headers=auth) as response:
        assert (await response.json())["status"] == "ignored"
    stack.sim.press(call, "2")
    await stack.until("the hangup", lambda: _async(stack.ended(call)))
    assert (await stack.heard(call))[-1] == "Goodbye."


async def _has(stack: Stack, call: str, text: str) -> bool:
    return text in await stack.heard(call)


async def _async(value: bool) -> bool:
    return value


async def test_with_callback_auth_the_calls_the_engine_creates_report_back_with_credentials(
    stack: Stack,
) -> None:
    call = stack.sim.place_call(CALLER, FORWARDING).id

    async def bridged() -> bool:
        return any(e["text"].startswith("bridged with") for e in stack.sim.transcript(call))

    await stack.until("the bridge with the dialled agent", bridged)
    assert list(stack.sim.deliveries(failed_only=True)) == []
    async with stack.http.post(f"{stack.server_url}/callbacks/voice", json={"eventType": "x"}) as response:
        assert response.status == 401  # the same server refuses a callback without the credentials
    stack.sim.hangup(call)  # leave nothing running in the simulator behind the test
    await stack.until("the caller's hangup", lambda: _async(stack.ended(call)))


async def test_a_reload_gives_new_calls_the_new_version_and_live_calls_keep_theirs(stack: Stack) -> None:
    from flowengine.server.app import reload_flows

    live = stack.sim.place_call(CALLER, OURS).id
    await stack.until("the menu prompt", lambda: _has(stack, live, "Press 1 for support or 2 to leave."))
    ivr = stack.flows / "ivr.yaml"
    ivr.write_text(
        IVR.replace("Thanks for calling.", "Hello, version two.").replace(
            "Support is closed.", "Support is open now."
        )
    )
    report = await reload_flows(stack.app)
    assert report.replaced == ("ivr",)
    stack.sim.press(live, "1")
    await stack.until("the live call to end", lambda: _async(stack.ended(live)))
    assert (await stack.heard(live))[-1] == "Support is closed."  # the version it started with

    new = stack.sim.place_call("+13235550101", OURS).id
    await stack.until("the new greeting", lambda: _has(stack, new, "Hello, version two."))
