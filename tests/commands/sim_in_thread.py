"""A simulator served over loopback from a thread of its own, for commands that run their own event loop
(``asyncio.run``) such as ``flowengine provision`` and ``flowengine doctor``."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TypeVar

import aiohttp
from aiohttp import web

from flowengine.catapult.client import CatapultClient
from flowengine.sim import SIM_KEY, RealClock, SimConfig, Simulator, create_app

T = TypeVar("T")

USER, TOKEN, SECRET = "u-prov", "t-prov", "s-prov"


class SimThread:
    """The simulator app on 127.0.0.1 (a free port), its loop running in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.app = create_app(SimConfig(user_id=USER, token=TOKEN, secret=SECRET), RealClock())
        self.runner = web.AppRunner(self.app, access_log=None)
        self.port = self._wait(self._start())
        self._engines: list[web.AppRunner] = []

    async def _start(self) -> int:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        return int(server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

    def _wait(self, coroutine: Awaitable[T]) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self.loop)  # type: ignore[arg-type]
        return future.result(timeout=30)

    @property
    def sim(self) -> Simulator:
        return self.app[SIM_KEY]

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def flags(self) -> list[str]:
        return ["--api-url", self.api_url, "--user-id", USER, "--token", TOKEN, "--secret", SECRET]

    def with_client(self, action: Callable[[CatapultClient], Awaitable[T]]) -> T:
        """Run ``action`` with a REST client on the simulator's loop and return its result."""

        async def run() -> T:
            async with aiohttp.ClientSession() as http:
                client = CatapultClient(http, user_id=USER, token=TOKEN, secret=SECRET, base_url=self.api_url)
                return await action(client)

        return self._wait(run())

    def start_engine(self, flows: Path, auth: tuple[str, str] | None = None) -> str:
        """Serve the flows with the callback server (memory store) on this simulator; its public URL."""
        from flowengine.config import ServeConfig
        from flowengine.server.app import create_app as create_engine
        from flowengine.store.memory import MemoryStore

        async def start() -> str:
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sock.listen(16)
            sock.setblocking(False)
            port = sock.getsockname()[1]
            config = ServeConfig(
                flows_dir=flows,
                port=port,
                public_url=f"http://127.0.0.1:{port}",
                api_url=self.api_url,
                user_id=USER,
                token=TOKEN,
                secret=SECRET,
                reload_interval=0,
                callback_user=auth[0] if auth else "",
                callback_password=auth[1] if auth else "",
            )
            runner = web.AppRunner(create_engine(config, store=MemoryStore()), access_log=None)
            await runner.setup()
            await web.SockSite(runner, sock).start()
            self._engines.append(runner)
            return config.public_url

        return self._wait(start())

    def close(self) -> None:
        for engine in self._engines:
            self._wait(engine.cleanup())
        self._wait(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()
