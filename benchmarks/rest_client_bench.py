"""CPU per REST request of the API client over aiohttp and over HttpTransport, in one run.

Each request goes through ``CatapultClient.execute`` as the engine sends it (``POST .../calls/{id}/audio`` with a
small JSON body and Basic auth; a ``201`` with a ``Location`` back) to a fast loopback server in another
process, pinned with ``taskset`` to the other core, so that the client's process CPU time is the client's own
cost. The two clients alternate for ``--rounds`` rounds; the table shows each one's median round.

    python benchmarks/rest_client_bench.py                       # 20,000 requests, 64 at a time, 3 rounds
    python benchmarks/rest_client_bench.py --requests 40000 --concurrency 16 --uvloop
    python benchmarks/rest_client_bench.py --client HttpTransport   # one client only
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import structlog

from flowengine.catapult.client import CatapultClient, RetryPolicy
from flowengine.catapult.transport import HttpTransport

HERE = Path(__file__).resolve().parent
BODY = {"sentence": "Thanks for calling. Press 1 for support.", "voice": "susan", "tag": "greet"}
PATH = "/v1/users/u-bench/calls/c-1234567890/audio"
CLIENTS = ("aiohttp", "HttpTransport")


def serve(port: int) -> None:
    """The stand-in API: answers every request with 201 and a Location, from a synchronous handler."""
    sys.path.insert(0, str(HERE / "load"))
    import fasthttp

    answer = fasthttp.response(
        201, "Created", b"", "Location: https://api.example/v1/users/u-bench/calls/c-1/audio/a-1\r\n"
    )

    async def main() -> None:
        await fasthttp.serve(lambda method, target, body: answer, "127.0.0.1", port)
        await asyncio.Event().wait()

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(port: int, server: subprocess.Popen[bytes]) -> None:
    for _ in range(200):
        if server.poll() is not None:
            raise SystemExit(f"the stand-in API exited with {server.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("the stand-in API did not start")


async def run(kind: str, base_url: str, requests: int, concurrency: int) -> tuple[float, float]:
    """(CPU seconds, wall seconds) for ``requests`` requests, ``concurrency`` at a time."""
    http: Any = aiohttp.ClientSession() if kind == "aiohttp" else HttpTransport()
    client = CatapultClient(
        http, user_id="u-bench", token="t-bench", secret="s-bench", base_url=base_url, retry=RetryPolicy(1)
    )

    async def worker(count: int) -> None:
        for _ in range(count):
            response = await client.execute("POST", PATH, BODY, operation="playAudio")
            assert response.location_id == "a-1"

    share, extra = divmod(requests, concurrency)
    counts = [share + (1 if n < extra else 0) for n in range(concurrency)]
    await asyncio.gather(*(worker(10) for _ in range(concurrency)))  # connections open, code warm
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(count) for count in counts))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await http.close()
    return cpu, wall


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--uvloop", action="store_true", help="run the clients on uvloop")
    parser.add_argument(
        "--client", choices=CLIENTS, action="append", help="measure only this client (repeatable)"
    )
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    # As `flowengine serve` configures it: loggers cached, so a filtered-out debug call costs only the call.
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING), cache_logger_on_first_use=True
    )

    cores = sorted(os.sched_getaffinity(0))
    port = free_port()
    command = [sys.executable, __file__, "--serve", str(port)]
    if len(cores) >= 2 and shutil.which("taskset"):
        command = ["taskset", "-c", str(cores[1]), *command]
        os.sched_setaffinity(0, {cores[0]})
    server = subprocess.Popen(command)
    runner: Callable[[Any], Any] = asyncio.run
    if args.uvloop:
        import uvloop

        runner = uvloop.run
    results: dict[str, list[tuple[float, float]]] = {kind: [] for kind in args.client or CLIENTS}
    try:
        wait_for(port, server)
        for _ in range(args.rounds):
            for kind in results:
                results[kind].append(
                    runner(run(kind, f"http://127.0.0.1:{port}/v1", args.requests, args.concurrency))
                )
    finally:
        server.terminate()
        server.wait()

    loop = "uvloop" if args.uvloop else "asyncio"
    print(
        f"{args.requests} requests x {args.rounds} rounds, {args.concurrency} at a time, client on {loop}, "
        f"core {cores[0]}; server on core {cores[1] if len(cores) > 1 else cores[0]}"
    )
    print(f"{'client':<14} {'us CPU/request':>15} {'requests/s':>11}   rounds (us CPU/request)")
    medians = {}
    for kind, rounds in results.items():
        per_request = [cpu / args.requests * 1e6 for cpu, _ in rounds]
        rates = [args.requests / wall for _, wall in rounds]
        medians[kind] = statistics.median(per_request)
        shown = " ".join(f"{value:.1f}" for value in per_request)
        print(f"{kind:<14} {medians[kind]:>15.1f} {statistics.median(rates):>11.0f}   {shown}")
    if len(medians) == len(CLIENTS):
        ratio = medians["HttpTransport"] / medians["aiohttp"]
        print(f"HttpTransport uses {ratio:.0%} of aiohttp's CPU per request")


if __name__ == "__main__":
    main()
