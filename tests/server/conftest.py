"""Fixtures: a fake API on loopback and a factory of server apps wired to it (see ``support``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from flowengine.config import ServeConfig
from flowengine.flow.model import Flow
from flowengine.server.app import create_app
from flowengine.store import MemoryBackend, MemoryStore

from .support import EXEC_TOKEN, USER, EchoRuntime, FakeAPI, Harness, MakeHarness, fake_loader


@pytest.fixture
async def fake_api() -> AsyncIterator[tuple[FakeAPI, TestServer]]:
    api = FakeAPI()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", api.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield api, server
    await server.close()


@pytest.fixture
async def make_harness(
    tmp_path: Path, fake_api: tuple[FakeAPI, TestServer], aiohttp_client: Any
) -> MakeHarness:
    async def make(**settings: Any) -> Harness:
        api, api_server = fake_api
        flows_dir = tmp_path / "flows"
        flows_dir.mkdir(exist_ok=True)
        (flows_dir / "echo.yaml").write_text("echo v1\n")
        options: dict[str, Any] = {
            "flows_dir": flows_dir,
            "api_url": str(api_server.make_url("/v1")),
            "user_id": USER,
            "token": "t",
            "secret": "s",
            "executions_token": EXEC_TOKEN,
            "reload_interval": 0,
            "max_body": 4096,
        }
        options.update(settings)
        config = ServeConfig(**options)
        backend = MemoryBackend()
        holder: list[EchoRuntime] = []

        def factory(flows: Mapping[str, Flow], _config: ServeConfig) -> EchoRuntime:
            holder.append(EchoRuntime(flows))
            return holder[0]

        app = create_app(
            config,
            store=MemoryStore(backend),
            runtime_factory=factory,
            loader=fake_loader,
            timer_interval=0.01,
        )
        client = await aiohttp_client(app)
        return Harness(client, api, holder[0], backend, flows_dir, config, app)

    return make


@pytest.fixture
def gate(make_harness: MakeHarness) -> Iterator[asyncio.Event]:
    """Holds the API's answers until set; set at teardown (before the server closes) if a test failed early."""
    event = asyncio.Event()
    yield event
    event.set()
