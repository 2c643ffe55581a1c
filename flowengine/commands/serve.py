"""``flowengine serve FLOWS_DIR``: run every flow of a directory against the Bandwidth v1 API, or against the
built-in simulator when no API credentials are configured (or with ``--simulator``).

With the simulator it starts the simulator in the same process, creates an application whose callback URLs
point at this server, adds the numbers the flows claim, and prints how to place a test call. Flows reload on
SIGHUP and when a file changes; SIGTERM or Ctrl-C shut down gracefully (events in flight finish).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import signal
import socket
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import structlog
from aiohttp import web

from flowengine.catapult.client import CatapultClient
from flowengine.catapult.transport import HttpTransport
from flowengine.config import ServeConfig, add_arguments, config_from
from flowengine.errors import CatapultError, ConfigError, FlowEngineError
from flowengine.provision import callback_url
from flowengine.server.open_files import raise_open_files_limit

if TYPE_CHECKING:
    from flowengine.flow.model import Flow
    from flowengine.sim import SimConfig

_log = structlog.get_logger("flowengine.serve")

_GC_YOUNG_THRESHOLD = 50_000

CALLER_NUMBER = "+15555550100"
"""The number the printed test call comes from."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("flows_dir", metavar="FLOWS_DIR", help="directory of flow files (*.yaml)")
    add_arguments(parser)


def run(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    flows_dir = Path(args.flows_dir)
    try:
        config = config_from(args, os.environ, flows_dir=flows_dir)
    except ConfigError as exc:
        stderr.write(f"flowengine serve: error: {exc}\n")
        return 2
    if not flows_dir.is_dir():
        stderr.write(f"flowengine serve: error: {str(flows_dir)!r} is not a directory of flow files\n")
        return 2
    from flowengine.server.logs import configure_logging

    configure_logging(config.log_format, config.log_level, stderr, mask=config.mask_numbers, cache=True)
    try:
        # A token the operator chose is a secret of theirs: never print it. A generated one must be shown.
        chosen = bool(args.executions_token or os.environ.get("FLOWENGINE_EXECUTIONS_TOKEN"))
        with asyncio.Runner(loop_factory=loop_factory(config.event_loop)) as runner:
            return runner.run(serve(config, stdout, stderr, show_token=not chosen))
    except (FlowEngineError, OSError) as exc:  # bad settings, an unreachable store, a port in use...
        stderr.write(f"flowengine serve: error: {exc}\n")
        return 1


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop ``--event-loop`` asks for: None for asyncio's own, uvloop's for ``uvloop`` and, when
    it is installed, for ``auto``. In ``benchmarks/load`` uvloop gave the engine 10% more callbacks per
    second with the memory store, 3-4% with SQLite and Redis (the bare aiohttp floor: 6%;
    ``benchmarks/RESULTS.md``).

    Raises:
        ConfigError: ``uvloop`` was asked for and is not installed.
    """
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise ConfigError(
                "--event-loop uvloop: uvloop is not installed (pip install 'flowengine[uvloop]')"
            ) from None
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket, so the real port is known (``--port 0``) before the app is built."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def _check_open_files(config: ServeConfig) -> None:
    """Raise the soft limit on open files (see :mod:`flowengine.server.open_files`); warn if it stays low."""
    limit = raise_open_files_limit()
    if limit.after != limit.before:
        _log.info("open_files.raised", before=limit.before, after=limit.after)
    outbound = config.api_connections + config.http_connections
    if limit.too_low_for(outbound):
        _log.warning(
            "open_files.low",
            limit=limit.after,
            api_connections=config.api_connections,
            http_connections=config.http_connections,
            detail=f"the limit on open files ({limit.after}) leaves little room beside --api-connections "
            f"{config.api_connections} and --http-connections {config.http_connections}; raise `ulimit -n` "
            "(the hard limit) or lower those",
        )


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


async def serve(config: ServeConfig, stdout: TextIO, stderr: TextIO, *, show_token: bool = True) -> int:
    """Run the server until SIGTERM/SIGINT; return the exit code."""
    from flowengine.server.app import create_app, reload_flows

    _check_open_files(config)

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    runners: list[web.AppRunner] = []
    sim_info: tuple[str, SimConfig] | None = None
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    try:
        if config.uses_simulator:
            config, sim_info = await _start_simulator(config, runners)
        sock = _bind(config.host, config.port)
        port = sock.getsockname()[1]
        if not config.public_url:
            config = replace(config, public_url=f"http://{_url_host(config.host)}:{port}")
        app = create_app(config)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()  # runs cleanup_ctx start-up: store, flows, recovery, timers
        runners.append(runner)
        await web.SockSite(runner, sock).start()
        from flowengine.server.keys import LIBRARY

        flows = app[LIBRARY].flows
        numbers = sorted({n for flow in flows.values() for n in flow.numbers})
        if sim_info is not None:
            await _provision(config, numbers)
        _banner(config, flows, numbers, sim_info, stdout, show_token=show_token)
        # What start-up made (modules, compiled flows, templates) lives as long as the process: move it out
        # of the collector's sight, so that full collections walk only what handling calls allocates. And
        # collect young objects every 50,000 net allocations rather than 700: nearly everything an event
        # allocates dies by reference counting, but at 700 the in-flight objects of thousands of calls were
        # promoted and full collections ran about once a second; in benchmarks/load this took collections
        # from 18% of the CPU to almost none and calls started 50% faster (benchmarks/RESULTS.md).
        gc.collect()
        gc.freeze()
        gc.set_threshold(_GC_YOUNG_THRESHOLD, 20, 100)

        reloads: set[asyncio.Task[object]] = set()

        def on_hup() -> None:
            _log.info("flows.reload_requested", signal="SIGHUP")
            task: asyncio.Task[object] = loop.create_task(reload_flows(app))
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        with contextlib.suppress(NotImplementedError, AttributeError):
            loop.add_signal_handler(signal.SIGHUP, on_hup)
        await stop.wait()
        _log.info("shutdown.started")
        return 0
    finally:
        for runner in reversed(runners):
            await runner.cleanup()
        _log.info("shutdown.done")


async def _start_simulator(
    config: ServeConfig, runners: list[web.AppRunner]
) -> tuple[ServeConfig, tuple[str, SimConfig]]:
    from flowengine.sim import RealClock, SimConfig
    from flowengine.sim import create_app as create_sim_app

    sim_config = SimConfig()
    sock = _bind("127.0.0.1", config.sim_port)
    sim_port = sock.getsockname()[1]
    sim_url = f"http://127.0.0.1:{sim_port}"
    sim_config = replace(sim_config, public_url=sim_url)
    sim_app = create_sim_app(sim_config, RealClock())
    runner = web.AppRunner(sim_app, handle_signals=False, access_log=None)
    await runner.setup()
    runners.append(runner)
    await web.SockSite(runner, sock).start()
    _log.info("simulator.started", url=sim_url)
    config = replace(
        config,
        api_url=f"{sim_url}/v1",
        user_id=sim_config.user_id,
        token=sim_config.token,
        secret=sim_config.secret,
    )
    return config, (sim_url, sim_config)


async def _provision(config: ServeConfig, numbers: list[str]) -> None:
    """Create an application pointing at our callbacks and attach the flows' numbers to it (simulator)."""
    voice = callback_url(config.public_url, "voice", config.callback_auth)
    messaging = callback_url(config.public_url, "messaging", config.callback_auth)
    async with HttpTransport() as transport:
        client = CatapultClient(
            transport,
            user_id=config.user_id,
            token=config.token,
            secret=config.secret,
            base_url=config.api_url,
            timeout=config.api_timeout,
        )
        try:
            app_id = await client.create_application(
                {
                    "name": "flowengine",
                    "incomingCallUrl": voice,
                    "incomingMessageUrl": messaging,
                    "autoAnswer": False,
                }
            )
            for number in numbers:
                await client.create_phone_number({"number": number, "applicationId": app_id})
        except CatapultError as exc:
            raise ConfigError(f"could not set up the simulator's application and numbers: {exc}") from exc
    _log.info("simulator.provisioned", application=app_id, numbers=numbers)


def _banner(
    config: ServeConfig,
    flows: Mapping[str, Flow],
    numbers: list[str],
    sim_info: tuple[str, SimConfig] | None,
    out: TextIO,
    *,
    show_token: bool,
) -> None:
    token = config.executions_token if show_token else "<your executions token>"
    lines = [
        f"flowengine serving {len(flows)} flow(s) from {config.flows_dir} at {config.public_url}",
        f"  callbacks:  {config.public_url}/callbacks/voice  {config.public_url}/callbacks/messaging",
        f"  executions: {config.public_url}/v1/executions  (Authorization: Bearer {token})",
        f"  health:     {config.public_url}/healthz  {config.public_url}/readyz  {config.public_url}/metrics",
    ]
    for name, flow in sorted(flows.items()):
        claimed = ", ".join(flow.numbers) or "no numbers (start it with the executions API)"
        lines.append(f"  flow {name!r} ({flow.kind}): {claimed}")
    if sim_info is not None:
        sim_url, sim_config = sim_info
        lines.append(
            f"simulator at {sim_url}/v1 (user {sim_config.user_id}, token {sim_config.token}, "
            f"secret {sim_config.secret}); its control API is under {sim_url}/sim"
        )
        if numbers:
            lines += [
                "place a test call:",
                f"  curl -s -X POST {sim_url}/sim/calls -H 'Content-Type: application/json' "
                f'-d \'{{"from": "{CALLER_NUMBER}", "to": "{numbers[0]}"}}\'',
                "then press keys and read what the caller heard:",
                f"  curl -s -X POST {sim_url}/sim/calls/CALL_ID/press -H 'Content-Type: application/json' "
                '-d \'{"digits": "1"}\'',
                f"  curl -s {sim_url}/sim/calls/CALL_ID/transcript",
            ]
    else:
        lines.append(
            "configure your Bandwidth application: incomingCallUrl "
            f"{config.public_url}/callbacks/voice, incomingMessageUrl {config.public_url}/callbacks/messaging"
        )
    out.write("\n".join(lines) + "\n")
    out.flush()
