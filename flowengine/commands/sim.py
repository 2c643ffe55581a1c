"""``flowengine sim``: run the API simulator standalone and print where it listens and how to log in."""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import TextIO

from aiohttp import web

from flowengine.errors import ConfigError
from flowengine.sim import SIM_KEY, RealClock, SimConfig, VirtualClock, create_app
from flowengine.sim.clock import Clock


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=8765, help="port to listen on; 0 picks a free one (default: 8765)"
    )
    parser.add_argument("--user-id", default="u-sim", help="the account's user id (default: u-sim)")
    parser.add_argument("--token", default="t-sim", help="API token for Basic auth (default: t-sim)")
    parser.add_argument("--secret", default="s-sim", help="API secret for Basic auth (default: s-sim)")
    parser.add_argument(
        "--public-url", default="", help="origin to put in URLs and events (default: the listening address)"
    )
    parser.add_argument("--rate-limits", action="store_true", help="enforce the reference's rate limits")
    parser.add_argument(
        "--fault-rate", type=float, default=0.0, help="share of REST requests answered 500 (0..1)"
    )
    parser.add_argument(
        "--delay-rate", type=float, default=0.0, help="share of REST requests held back (0..1)"
    )
    parser.add_argument(
        "--delay-seconds", type=float, default=1.0, help="how long a held request waits (default: 1)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault injector (default: 0)")
    parser.add_argument(
        "--virtual-clock",
        action="store_true",
        help="start a virtual clock that only moves through POST /sim/clock/advance",
    )


def run(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    try:
        config = SimConfig(
            user_id=args.user_id,
            token=args.token,
            secret=args.secret,
            public_url=args.public_url,
            rate_limits=args.rate_limits,
            fault_rate=args.fault_rate,
            delay_rate=args.delay_rate,
            delay_seconds=args.delay_seconds,
            seed=args.seed,
        )
    except ConfigError as exc:
        stderr.write(f"flowengine sim: error: {exc}\n")
        return 2
    if not 0 <= args.port <= 65535:
        stderr.write(f"flowengine sim: error: --port must be between 0 and 65535, not {args.port}\n")
        return 2
    clock: Clock = VirtualClock() if args.virtual_clock else RealClock()
    try:
        asyncio.run(_serve(config, clock, args.host, args.port, stdout))
    except OSError as exc:
        stderr.write(
            f"flowengine sim: error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}\n"
        )
        return 1
    return 0


async def _serve(config: SimConfig, clock: Clock, host: str, port: int, stdout: TextIO) -> None:
    app = create_app(config, clock)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        addresses = runner.addresses
        bound = int(addresses[0][1]) if addresses else port
        origin = f"http://{host}:{bound}"
        sim = app[SIM_KEY]
        if not config.public_url:
            sim.urls.origin = origin
            sim.learn_origin = False
        stdout.write(f"flowengine sim listening on {origin}\n")
        stdout.write(f"  base URL:    {sim.urls.origin}/v1\n")
        stdout.write(f"  user id:     {config.user_id}\n")
        stdout.write(f"  token:       {config.token}\n")
        stdout.write(f"  secret:      {config.secret}\n")
        stdout.write(f"  control API: {origin}/sim\n")
        stdout.write(f"  clock:       {'virtual' if isinstance(clock, VirtualClock) else 'real'}\n")
        stdout.flush()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        stdout.write("flowengine sim stopped\n")
    finally:
        await runner.cleanup()
