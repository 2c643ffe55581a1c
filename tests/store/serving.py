"""Helpers for the durability tests: ``flowengine sim`` and ``flowengine serve`` as real processes on loopback,
the simulator's control API as the phones, and a round-robin proxy standing in for a load balancer."""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

USER, TOKEN, SECRET = "u-durable", "t-durable", "s-durable"
CALLER = "+13235550100"
FLOWS = Path(__file__).resolve().parent / "flows"
_BASIC = "Basic " + base64.b64encode(f"{TOKEN}:{SECRET}".encode()).decode()
_CLI = "import sys; from flowengine.cli import main; sys.exit(main())"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Process:
    """A ``flowengine`` subcommand run by the test's interpreter, its output kept in a log file."""

    name: str
    args: list[str]
    workdir: Path
    port: int
    popen: subprocess.Popen[bytes] | None = None
    runs: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.workdir / f"{self.name}-{self.runs}.log"

    def start(self) -> None:
        self.runs += 1
        with self.log.open("wb") as handle:
            self.popen = subprocess.Popen(
                [sys.executable, "-c", _CLI, *self.args],
                stdout=handle,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    def output(self) -> str:
        return "\n".join(
            (self.workdir / f"{self.name}-{run}.log").read_text(errors="replace")
            for run in range(1, self.runs + 1)
        )

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        return self.popen.returncode

    async def wait_for(self, path: str, status: int = 200, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if not self.alive():
                    raise AssertionError(f"{self.name} exited:\n{self.output()}")
                try:
                    async with http.get(self.url + path, timeout=aiohttp.ClientTimeout(total=2)) as response:
                        if response.status == status:
                            return
                except (aiohttp.ClientError, TimeoutError):
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError(
            f"{self.name} did not answer {path} with {status} in {timeout} s:\n{self.output()}"
        )


def sim_process(workdir: Path) -> Process:
    port = free_port()
    args = [
        "sim",
        "--port",
        str(port),
        "--virtual-clock",
        "--user-id",
        USER,
        "--token",
        TOKEN,
        "--secret",
        SECRET,
    ]
    return Process("sim", args, workdir, port)


def serve_process(
    workdir: Path, sim: Process, store: str, *, name: str = "serve", public_url: str | None = None
) -> Process:
    flows = workdir / "flows"
    if not flows.exists():
        shutil.copytree(FLOWS, flows)
    port = free_port()
    args = [
        "serve",
        str(flows),
        "--port",
        str(port),
        "--api-url",
        f"{sim.url}/v1",
        "--user-id",
        USER,
        "--token",
        TOKEN,
        "--secret",
        SECRET,
        "--store",
        store,
        "--instance-id",
        name,
        "--reload-interval",
        "0",
        "--log-format",
        "json",
    ]
    if public_url is not None:
        args += ["--public-url", public_url]
    return Process(name, args, workdir, port)


@dataclass
class Phones:
    """The simulator's REST and control APIs, used as the account owner and as the callers' phones."""

    http: aiohttp.ClientSession
    sim_url: str

    async def _request(self, method: str, path: str, body: Any = None, *, rest: bool = False) -> Any:
        headers = {"Authorization": _BASIC} if rest else {}
        async with self.http.request(method, self.sim_url + path, json=body, headers=headers) as response:
            text = await response.text()
            assert response.status < 300, f"{method} {path} -> {response.status}: {text}"
            if rest and response.status == 201:
                return response.headers["Location"].rstrip("/").rsplit("/", 1)[1]
            return await response.json() if text else None

    async def provision(self, callback_base: str, numbers: list[str]) -> None:
        """An application whose callbacks go to ``callback_base``, owning ``numbers``."""
        app_id = await self._request(
            "POST",
            f"/v1/users/{USER}/applications",
            {"name": "durable", "incomingCallUrl": f"{callback_base}/callbacks/voice", "autoAnswer": False},
            rest=True,
        )
        for number in numbers:
            body = {"number": number, "applicationId": app_id}
            await self._request("POST", f"/v1/users/{USER}/phoneNumbers", body, rest=True)

    async def call(self, to: str, from_: str = CALLER) -> str:
        result = await self._request("POST", "/sim/calls", {"from": from_, "to": to})
        call_id: str = result["callId"]
        return call_id

    async def press(self, call_id: str, digits: str) -> None:
        await self._request("POST", f"/sim/calls/{call_id}/press", {"digits": digits})

    async def hangup(self, call_id: str) -> None:
        await self._request("POST", f"/sim/calls/{call_id}/hangup")

    async def settle(self) -> None:
        """Wait until every callback the simulator has queued was delivered or has failed."""
        await self._request("POST", "/sim/settle")

    async def advance(self, seconds: float) -> None:
        await self._request("POST", "/sim/clock/advance", {"seconds": seconds})

    async def transcript(self, call_id: str) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = await self._request("GET", f"/sim/calls/{call_id}/transcript")
        return entries

    async def heard(self, call_id: str) -> list[str]:
        return [entry["text"] for entry in await self.transcript(call_id) if entry["kind"] == "heard"]

    async def rest_requests(self, call_id: str) -> list[tuple[str, str]]:
        """Every REST request made on the call, as (request line, body as sorted JSON text)."""
        import json

        return [
            (entry["text"], json.dumps(entry.get("body"), sort_keys=True))
            for entry in await self.transcript(call_id)
            if entry["kind"] == "rest"
        ]

    async def callbacks(self, status: str | None = None) -> list[dict[str, Any]]:
        path = "/sim/callbacks" + (f"?status={status}" if status else "")
        deliveries: list[dict[str, Any]] = await self._request("GET", path)
        return deliveries

    async def until(
        self,
        what: str,
        check: Callable[[], Awaitable[bool]],
        *,
        step: float = 0.25,
        timeout: float = 60.0,
        pause: float = 0.0,
    ) -> None:
        """Advance the virtual clock by ``step`` (then wait ``pause`` of real time) until ``check()``."""
        deadline = time.monotonic() + timeout
        while not await check():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting until {what}")
            await self.advance(step)
            if pause:
                await asyncio.sleep(pause)


async def hung_up(phones: Phones, call_id: str) -> bool:
    return any(
        e["kind"] == "call" and e["text"].startswith("hung up") for e in await phones.transcript(call_id)
    )


@dataclass
class RoundRobin:
    """A load balancer for callbacks: forwards each request to the next backend in turn."""

    backends: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    _runner: web.AppRunner | None = None
    _http: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        cycle = itertools.cycle(self.backends)
        self._http = aiohttp.ClientSession()

        async def forward(request: web.Request) -> web.Response:
            backend = next(cycle)
            self.counts[backend] = self.counts.get(backend, 0) + 1
            assert self._http is not None
            headers = {
                k: v for k, v in request.headers.items() if k.lower() in ("content-type", "authorization")
            }
            async with self._http.request(
                request.method, backend + request.path_qs, data=await request.read(), headers=headers
            ) as answer:
                body = await answer.read()
                return web.Response(status=answer.status, body=body, content_type=answer.content_type)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", forward)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._http is not None:
            await self._http.close()
