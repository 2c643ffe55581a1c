"""The engine's own CPU per callback, without HTTP: the load benchmark's calls fed straight to the dispatcher.

``benchmarks/load/`` measures ``flowengine serve`` end to end (aiohttp, sockets, the kernel). This measures
only what sits between a parsed callback and the REST requests it causes: the dispatcher, the lanes, the
runtime, the store and the REST client, with the load driver's REST stand-in (:mod:`load.driver`) answering
in-process through a transport that does no I/O. It is the quick loop for work on those parts: one process,
one core, a figure in seconds.

    python benchmarks/dispatch_bench.py [--store memory|sqlite|redis://127.0.0.1:6379/15] [--callbacks 60000]
    python benchmarks/dispatch_bench.py --profile /tmp/dispatch.prof   # cProfile of the measured part

Prints callbacks/s and microseconds of CPU per callback for three rounds (the best is the figure).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
from multidict import CIMultiDict

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks" / "load"))

from driver import USER, Driver  # noqa: E402

from flowengine.catapult.client import CatapultClient  # noqa: E402
from flowengine.catapult.transport import HttpResponse, HttpTransport  # noqa: E402
from flowengine.commands.serve import _GC_YOUNG_THRESHOLD  # noqa: E402
from flowengine.config import ServeConfig  # noqa: E402
from flowengine.flow.pipeline import read_flow  # noqa: E402
from flowengine.server.dispatcher import Dispatcher  # noqa: E402
from flowengine.server.logs import configure_logging  # noqa: E402
from flowengine.server.metrics import Metrics  # noqa: E402
from flowengine.server.runtime_adapter import EngineAdapter  # noqa: E402
from flowengine.store import open_store  # noqa: E402

API = "http://127.0.0.1:8099/v1"


class StandInTransport(HttpTransport):
    """An ``HttpTransport`` whose requests the load driver's REST stand-in answers without any I/O."""

    def __init__(self, driver: Driver) -> None:
        super().__init__()
        self.driver = driver

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Any = None,
        body: bytes | None = None,
        params: Any = None,
        timeout: float | None = None,
    ) -> HttpResponse:
        raw = self.driver.on_rest(method.encode(), urlsplit(url).path.encode(), body or b"")
        head, _, payload = raw.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ")[1])
        response_headers: CIMultiDict[str] = CIMultiDict()
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            response_headers.add(name.decode(), value.strip().decode())
        return HttpResponse(status, response_headers, payload)


async def run(args: argparse.Namespace) -> None:
    # As `flowengine serve` logs by default: JSON at info level (here to /dev/null).
    configure_logging("json", "info", open("/dev/null", "w"), cache=True)  # noqa: SIM115
    driver = Driver(
        SimpleNamespace(target="http://127.0.0.1:1", mode="engine", rate=0, calls=args.concurrency)
    )
    driver.window = (0.0, float("inf"))
    flow = read_flow(ROOT / "flows" / "ivr.yaml")
    config = ServeConfig(flows_dir=ROOT / "flows", user_id=USER, token="t-bench", secret="s-bench")
    runtime = EngineAdapter({flow.name: flow}, config, environ={})
    store = await open_store(args.store)
    metrics = Metrics()
    client = CatapultClient(
        StandInTransport(driver),
        user_id=USER,
        token="t-bench",
        secret="s-bench",
        base_url=API,
    )
    async with aiohttp.ClientSession() as http:
        dispatcher = Dispatcher(
            runtime=runtime,
            store=store,
            client=client,
            http=http,
            metrics=metrics,
            instance_id="bench",
        )
        handled = 0
        outcomes: Counter[str] = Counter()

        async def worker() -> None:
            nonlocal handled
            while True:
                call, payload, _, last = await driver.ready.get()
                outcome = await dispatcher.callback(orjson.loads(payload))
                outcomes[outcome.status] += 1
                handled += 1
                if last:
                    driver.finish(call)

        # As `flowengine serve` does once started: start-up objects frozen, young collections every 50,000.
        gc.collect()
        gc.freeze()
        gc.set_threshold(_GC_YOUNG_THRESHOLD, 20, 100)
        for _ in range(args.concurrency):
            driver.start_call()
        workers = [asyncio.create_task(worker()) for _ in range(args.inflight)]
        profiler = cProfile.Profile() if args.profile else None
        rounds = []
        for round_index in range(args.rounds + 1):  # the first round warms up
            start_count, start_cpu, start_wall = handled, time.process_time(), time.perf_counter()
            if profiler is not None and round_index == args.rounds:
                profiler.enable()
            while handled - start_count < args.callbacks:
                await asyncio.sleep(0.05)
            if profiler is not None and round_index == args.rounds:
                profiler.disable()
            count = handled - start_count
            cpu = time.process_time() - start_cpu
            wall = time.perf_counter() - start_wall
            if round_index:
                rounds.append((count / wall, cpu / count * 1e6))
                print(
                    f"round {round_index}: {count / wall:,.0f} callbacks/s, {cpu / count * 1e6:.1f} µs CPU each"
                )
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        await dispatcher.close()
    await store.close()
    best = max(rounds)
    print(
        f"best: {best[0]:,.0f} callbacks/s, {min(r[1] for r in rounds):.1f} µs CPU per callback "
        f"({args.store}, {args.concurrency} calls, {args.inflight} in flight)"
    )
    print("outcomes:", dict(outcomes))
    print("REST requests by kind:", dict(driver.rest_by_kind))
    if profiler is not None:
        profiler.dump_stats(args.profile)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", default="memory", help="memory, sqlite (a temporary file) or a store URL")
    parser.add_argument("--concurrency", type=int, default=10_000, help="live calls")
    parser.add_argument("--inflight", type=int, default=64, help="callbacks handled at once")
    parser.add_argument("--callbacks", type=int, default=60_000, help="per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", metavar="PATH", help="cProfile the last round into PATH")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        if args.store == "sqlite":
            args.store = f"sqlite:///{tmp}/bench.db"
        asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
