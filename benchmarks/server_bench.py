"""How fast ``flowengine serve``'s pipeline handles calls: the server (real runtime, chosen store) and the
simulator in one process on loopback, N concurrent callers going through an IVR menu.

Reports calls per second, callbacks per second and the p50/p99 time the server takes to answer a callback
(from the server's own histogram of lock-to-commit time, plus the HTTP round trip measured here).

    python benchmarks/server_bench.py --calls 200 --store memory
    python benchmarks/server_bench.py --calls 200 --store sqlite:///tmp/bench.db
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import aiohttp
from aiohttp import web

from flowengine.catapult.client import CatapultClient
from flowengine.config import ServeConfig
from flowengine.server.app import create_app
from flowengine.server.keys import METRICS
from flowengine.server.logs import configure_logging
from flowengine.sim import SIM_KEY, RealClock, SimConfig
from flowengine.sim import create_app as create_sim_app
from flowengine.store import open_store

OURS = "+19195551212"

IVR = """\
flow: bench-ivr
version: 1
kind: voice
numbers: ["+19195551212"]
initial: greet
states:
  greet:
    do: [answer, {speak: "Thanks for calling."}]
    on: {speak.done: menu}
  menu:
    menu:
      prompt: "Press 1 for support or 2 to leave."
      choices: {"1": support, "2": goodbye}
  support:
    do: [{speak: "Support is closed."}, hangup]
  goodbye:
    do: [{speak: "Goodbye."}, hangup]
on:
  hangup: end
"""

FAST = SimConfig(
    user_id="u-bench",
    token="t-bench",
    secret="s-bench",
    speech_seconds_per_char=0.0002,
    speech_min_seconds=0.005,
    answer_delay=0.005,
)


async def bench(calls: int, store_url: str) -> None:
    sim_app = create_sim_app(FAST, RealClock())
    sim_runner = web.AppRunner(sim_app, access_log=None)
    await sim_runner.setup()
    sim_site = web.TCPSite(sim_runner, "127.0.0.1", 0)
    await sim_site.start()
    sim = sim_app[SIM_KEY]
    sim_url = f"http://127.0.0.1:{sim_runner.addresses[0][1]}"

    with TemporaryDirectory() as tmp:
        flows = Path(tmp)
        (flows / "ivr.yaml").write_text(IVR)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(1024)
        sock.setblocking(False)
        port = sock.getsockname()[1]
        config = ServeConfig(
            flows_dir=flows,
            port=port,
            public_url=f"http://127.0.0.1:{port}",
            api_url=f"{sim_url}/v1",
            user_id=FAST.user_id,
            token=FAST.token,
            secret=FAST.secret,
            reload_interval=0,
        )
        store = await open_store(store_url)
        app = create_app(config, store=store, timer_interval=0.05)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        async with aiohttp.ClientSession() as http:
            client = CatapultClient(
                http, user_id=FAST.user_id, token=FAST.token, secret=FAST.secret, base_url=config.api_url
            )
            app_id = await client.create_application(
                {
                    "name": "bench",
                    "incomingCallUrl": f"{config.public_url}/callbacks/voice",
                    "autoAnswer": False,
                }
            )
            await client.create_phone_number({"number": OURS, "applicationId": app_id})

            started = time.perf_counter()
            ids = [sim.place_call(f"+1323555{n:04d}", OURS).id for n in range(calls)]
            pressed: set[str] = set()
            done: set[str] = set()
            while len(done) < calls:
                for call_id in ids:
                    if call_id in done:
                        continue
                    transcript = sim.transcript(call_id)
                    if call_id not in pressed and any(
                        e["kind"] == "heard" and e["text"].startswith("Press 1") for e in transcript
                    ):
                        sim.press(call_id, "1")
                        pressed.add(call_id)
                    if any(e["kind"] == "call" and e["text"].startswith("hung up") for e in transcript):
                        done.add(call_id)
                await asyncio.sleep(0.01)
            elapsed = time.perf_counter() - started
        metrics = app[METRICS]
        callbacks = sum(
            sample.value
            for family in metrics.registry.collect()
            if family.name == "flowengine_callbacks"
            for sample in family.samples
            if sample.name.endswith("_total")
        )
        handling = [
            sample
            for family in metrics.registry.collect()
            if family.name == "flowengine_event_handling_seconds"
            for sample in family.samples
        ]
        await runner.cleanup()
    await sim_runner.cleanup()

    count = next(s.value for s in handling if s.name.endswith("_count"))
    total = next(s.value for s in handling if s.name.endswith("_sum"))
    buckets = [(float(s.labels["le"]), s.value) for s in handling if s.name.endswith("_bucket")]

    def quantile(q: float) -> float:
        for bound, cumulative in buckets:
            if cumulative >= q * count:
                return bound
        return float("inf")

    print(f"store: {store_url}; {calls} concurrent calls through an IVR menu")
    print(f"  wall time:            {elapsed:.2f} s ({calls / elapsed:.1f} calls/s)")
    print(f"  callbacks answered:   {callbacks:.0f} ({callbacks / elapsed:.0f}/s)")
    print(
        f"  lock-to-commit:       mean {1000 * total / count:.2f} ms, p50 <= {1000 * quantile(0.5):g} ms, "
        f"p99 <= {1000 * quantile(0.99):g} ms (histogram buckets)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--store", default="memory")
    args = parser.parse_args()
    configure_logging("console", "warning", sys.stderr)
    asyncio.run(bench(args.calls, args.store))


if __name__ == "__main__":
    main()
