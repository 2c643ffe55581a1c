"""How long a scripted call takes on the simulator's virtual clock, in wall time.

The call: an inbound call to a number whose application answers it, a gather with a 5-second
inter-digit timeout, two digits pressed a second apart, then silence until the timeout ends the
gather, then the caller hangs up. Everything goes over loopback HTTP: REST requests to the
simulator and callbacks to a receiver app. Run it with::

    python benchmarks/sim_bench.py [--runs 50]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import statistics
import time

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from flowengine.sim import SIM_KEY, SimConfig, create_app

AUTH = {"Authorization": "Basic " + base64.b64encode(b"t-sim:s-sim").decode()}
OURS, CALLER = "+19195550001", "+13235550100"


async def receiver() -> tuple[TestServer, list[dict[str, object]]]:
    events: list[dict[str, object]] = []

    async def handle(request: web.Request) -> web.Response:
        events.append(await request.json())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/events", handle)
    server = TestServer(app)
    await server.start_server()
    return server, events


async def post(client: TestClient[web.Request, web.Application], path: str, body: dict[str, object]) -> None:
    async with client.post(path, json=body, headers=AUTH) as response:
        assert response.status < 300, await response.text()


async def one_call(
    client: TestClient[web.Request, web.Application], events: list[dict[str, object]]
) -> float:
    sim = client.app[SIM_KEY]
    events.clear()
    started = time.perf_counter()
    async with client.post("/sim/calls", json={"from": CALLER, "to": OURS}) as response:
        call_id = (await response.json())["callId"]
    async with client.post(
        f"/v1/users/u-sim/calls/{call_id}/gather",
        json={"maxDigits": 4, "interDigitTimeout": 5, "prompt": {"sentence": "Enter your code."}},
        headers=AUTH,
    ) as response:
        assert response.status == 201
    await sim.advance(1)
    await post(client, f"/sim/calls/{call_id}/press", {"digits": "4"})
    await sim.advance(1)
    await post(client, f"/sim/calls/{call_id}/press", {"digits": "2"})
    await post(client, "/sim/clock/advance", {"seconds": 5})
    await post(client, f"/sim/calls/{call_id}/hangup", {})
    await sim.settle()
    elapsed = time.perf_counter() - started
    gather = [e for e in events if e["eventType"] == "gather"]
    if [(e["reason"], e["digits"]) for e in gather] != [("inter-digit-timeout", "42")]:
        raise RuntimeError(f"the scripted call did not go as planned: {events}")
    return elapsed


async def main(runs: int) -> None:
    server, events = await receiver()
    client = TestClient(TestServer(create_app(SimConfig())))
    await client.start_server()
    try:
        async with client.post(
            "/v1/users/u-sim/applications",
            json={"name": "bench", "incomingCallUrl": str(server.make_url("/events"))},
            headers=AUTH,
        ) as response:
            app_id = response.headers["Location"].rsplit("/", 1)[-1]
        await post(client, "/v1/users/u-sim/phoneNumbers", {"number": OURS, "applicationId": app_id})
        await one_call(client, events)  # warm up connections
        times = [await one_call(client, events) for _ in range(runs)]
    finally:
        await client.close()
        await server.close()
    ms = sorted(t * 1000 for t in times)
    print(f"scripted call through a gather with a 5 s inter-digit timeout ({runs} runs, virtual clock):")
    print(
        f"  median {statistics.median(ms):.1f} ms   p90 {ms[int(len(ms) * 0.9) - 1]:.1f} ms   max {ms[-1]:.1f} ms"
    )
    print(f"  simulated time per call: about 9 s; callbacks per call: {len(events)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    asyncio.run(main(parser.parse_args().runs))
