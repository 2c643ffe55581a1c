"""Fixtures: ``flowengine sim`` (virtual clock) and ``flowengine serve`` as separate processes on loopback,
a webhook recorder, and the phones driver. One sim and one server serve the whole e2e session; every test
uses its own calls, so they do not interfere."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from flowengine.catapult.client import CatapultClient
from flowengine.flow import read_flow

from .support import (
    EXEC_TOKEN,
    SIM_SECRET,
    SIM_TOKEN,
    SIM_USER,
    Phones,
    Process,
    free_port,
    start,
    wait_for_http,
    wait_for_output,
)

REPO = Path(__file__).resolve().parents[2]
E2E_FLOWS = Path(__file__).resolve().parent / "flows"


@dataclass
class Webhook:
    """A local HTTP endpoint (a thread) that records every JSON body posted to it."""

    url: str
    received: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture(scope="session")
def webhook() -> Iterator[Webhook]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            try:
                received.append({"path": self.path, "json": json.loads(raw or b"null")})
            except ValueError:
                received.append({"path": self.path, "text": raw.decode(errors="replace")})
            body = b'{"ok": true}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Webhook(f"http://127.0.0.1:{server.server_address[1]}", received)
    server.shutdown()
    server.server_close()


@dataclass
class Deployment:
    sim: Process
    serve: Process
    flows_dir: Path
    numbers: dict[str, list[str]]
    record_dir: Path

    @property
    def sim_url(self) -> str:
        return self.sim.url


@pytest.fixture(scope="session")
def flows_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's example flows plus the e2e-only flows, in one directory."""
    target = tmp_path_factory.mktemp("flows")
    examples = REPO / "flows"
    if examples.is_dir():
        for item in examples.iterdir():
            if item.is_dir():
                shutil.copytree(item, target / item.name)
            elif item.suffix in (".yaml", ".yml"):
                shutil.copy(item, target / item.name)
    for item in E2E_FLOWS.glob("*.yaml"):
        shutil.copy(item, target / item.name)
    return target


@pytest.fixture(scope="session")
def deployment(
    tmp_path_factory: pytest.TempPathFactory, flows_dir: Path, webhook: Webhook
) -> Iterator[Deployment]:
    logs = tmp_path_factory.mktemp("logs")
    sim_port, serve_port = free_port(), free_port()
    sim = start(
        "sim",
        [
            "sim",
            "--port",
            str(sim_port),
            "--virtual-clock",
            "--user-id",
            SIM_USER,
            "--token",
            SIM_TOKEN,
            "--secret",
            SIM_SECRET,
        ],
        logs / "sim.log",
        f"http://127.0.0.1:{sim_port}",
    )
    try:
        wait_for_http(sim, "/sim")
        db = logs / "state.db"
        serve = start(
            "serve",
            [
                "serve",
                str(flows_dir),
                "--port",
                str(serve_port),
                "--api-url",
                f"{sim.url}/v1",
                "--user-id",
                SIM_USER,
                "--token",
                SIM_TOKEN,
                "--secret",
                SIM_SECRET,
                "--store",
                f"sqlite://{db}",
                "--executions-token",
                EXEC_TOKEN,
                "--log-format",
                "json",
                "--reload-interval",
                "0",
                "--record",
                str(logs / "recordings"),
            ],
            logs / "serve.log",
            f"http://127.0.0.1:{serve_port}",
            env={"VOICEMAIL_WEBHOOK": f"{webhook.url}/voicemail", "FLOWENGINE_TEST_WEBHOOK": webhook.url},
        )
        try:
            wait_for_http(serve, "/readyz")
            wait_for_output(serve, "configure your Bandwidth application")
            numbers = _provision(sim.url, serve.url, flows_dir)
            yield Deployment(sim, serve, flows_dir, numbers, logs / "recordings")
        finally:
            code = serve.stop()
            assert code == 0, f"serve did not shut down cleanly ({code}):\n{serve.output()}"
    finally:
        sim.stop()


def _provision(sim_url: str, serve_url: str, flows_dir: Path) -> dict[str, list[str]]:
    """Create the application (pointing at the server) and attach every number the flows claim."""
    import asyncio

    numbers: dict[str, list[str]] = {}
    for path in sorted(flows_dir.glob("*.yaml")):
        flow = read_flow(path)
        numbers[flow.name] = list(flow.numbers)

    async def run() -> None:
        async with aiohttp.ClientSession() as http:
            client = CatapultClient(
                http, user_id=SIM_USER, token=SIM_TOKEN, secret=SIM_SECRET, base_url=f"{sim_url}/v1"
            )
            app_id = await client.create_application(
                {
                    "name": "e2e",
                    "incomingCallUrl": f"{serve_url}/callbacks/voice",
                    "incomingMessageUrl": f"{serve_url}/callbacks/messaging",
                    "autoAnswer": False,
                }
            )
            for claimed in numbers.values():
                for number in claimed:
                    await client.create_phone_number({"number": number, "applicationId": app_id})
            # numbers that flows call from or text from must be ours too
            for extra in ("+19195550000",):
                if all(extra not in c for c in numbers.values()):
                    await client.create_phone_number({"number": extra, "applicationId": app_id})

    asyncio.run(run())
    return numbers


@pytest.fixture
async def phones(deployment: Deployment) -> AsyncIterator[Phones]:
    async with aiohttp.ClientSession() as http:
        yield Phones(http, deployment.sim_url, virtual=True)
