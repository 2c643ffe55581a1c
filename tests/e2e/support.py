"""End-to-end support: ``flowengine sim`` and ``flowengine serve`` as separate processes on loopback, and a
small driver that plays the phones through the simulator's control API and reads transcripts.

Processes are started with the interpreter running the tests (``python -c 'from flowengine.cli import
main'...``), so the tests need no installed console script. Ports are picked free by the OS.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

SIM_USER = "u-e2e"
SIM_TOKEN = "t-e2e"
SIM_SECRET = "s-e2e"
EXEC_TOKEN = "e2e-executions-token"
SIM_AUTH = "Basic " + base64.b64encode(f"{SIM_TOKEN}:{SIM_SECRET}".encode()).decode()
_CLI = "import sys; from flowengine.cli import main; sys.exit(main())"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Process:
    """A running ``flowengine`` subcommand with its output collected in a file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    url: str

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        return self.popen.returncode


def start(
    name: str,
    args: Sequence[str],
    log: Path,
    url: str,
    env: dict[str, str] | None = None,
    preexec: Callable[[], None] | None = None,
) -> Process:
    """Start ``flowengine ARGS``; ``preexec`` runs in the child before it (e.g. to set its resource limits)."""
    handle = log.open("wb")
    popen = subprocess.Popen(
        [sys.executable, "-c", _CLI, *args],
        stdout=handle,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
        preexec_fn=preexec,
    )
    handle.close()
    return Process(name, popen, log, url)


def wait_for_http(process: Process, path: str, timeout: float = 20.0) -> None:
    """Wait until ``GET url+path`` answers 200, failing with the process's output if it exits or times out."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise AssertionError(
                f"{process.name} exited with {process.popen.returncode}:\n{process.output()}"
            )
        try:
            with urllib.request.urlopen(process.url + path, timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"{process.name} did not answer {path} within {timeout} s:\n{process.output()}")


def wait_for_output(process: Process, text: str, timeout: float = 10.0) -> None:
    """Wait until the process has written ``text`` (e.g. its start-up banner)."""
    deadline = time.monotonic() + timeout
    while text not in process.output():
        if process.popen.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{process.name} never wrote {text!r}:\n{process.output()}")
        time.sleep(0.02)


@contextlib.contextmanager
def running(process: Process) -> Iterator[Process]:
    try:
        yield process
    finally:
        process.stop()


@dataclass
class Phones:
    """The simulator's control API, as the test's phones."""

    http: aiohttp.ClientSession
    sim_url: str
    virtual: bool = False
    step: float = 0.25
    calls: list[str] = field(default_factory=list)

    async def advance(self, seconds: float) -> None:
        """Move the simulator's virtual clock (its due events run; callbacks are delivered)."""
        await self._json("POST", "/sim/clock/advance", {"seconds": seconds})

    async def _json(self, method: str, path: str, body: Any = None) -> Any:
        async with self.http.request(method, self.sim_url + path, json=body) as response:
            payload = await response.json()
            assert response.status < 300, f"{method} {path} -> {response.status}: {payload}"
            return payload

    async def call(self, from_: str, to: str) -> str:
        result = await self._json("POST", "/sim/calls", {"from": from_, "to": to})
        call_id: str = result["callId"]
        self.calls.append(call_id)
        return call_id

    async def press(self, call_id: str, digits: str) -> None:
        await self._json("POST", f"/sim/calls/{call_id}/press", {"digits": digits})

    async def hangup(self, call_id: str) -> None:
        await self._json("POST", f"/sim/calls/{call_id}/hangup")

    async def behave(self, number: str, **behaviour: Any) -> None:
        await self._json("PUT", f"/sim/phones/{number}", behaviour)

    async def transcription(self, text: str) -> None:
        await self._json("PUT", "/sim/transcriptions", {"text": text})

    async def text(self, from_: str, to: str, text: str) -> str:
        result = await self._json("POST", "/sim/messages", {"from": from_, "to": to, "text": text})
        message_id: str = result["messageId"]
        return message_id

    async def transcript(self, call_id: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._json("GET", f"/sim/calls/{call_id}/transcript")
        return result

    async def heard(self, call_id: str) -> list[str]:
        return [e["text"] for e in await self.transcript(call_id) if e["kind"] == "heard"]

    async def messages(self) -> list[dict[str, Any]]:
        async with self.http.get(
            f"{self.sim_url}/v1/users/{SIM_USER}/messages", headers={"Authorization": SIM_AUTH}
        ) as response:
            result: list[dict[str, Any]] = await response.json()
            return result

    async def until(
        self, what: str, check: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05
    ) -> Any:
        """Poll the async ``check()`` until it returns something truthy."""
        deadline = asyncio.get_running_loop().time() + timeout
        last: Any = None
        while asyncio.get_running_loop().time() < deadline:
            last = await check()
            if last:
                return last
            await asyncio.sleep(interval)
            if self.virtual:
                await self.advance(self.step)
        transcripts = {c: await self.transcript(c) for c in self.calls}
        raise AssertionError(f"timed out waiting for {what}; last={last!r}; transcripts={transcripts!r}")
