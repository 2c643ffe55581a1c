"""Fixtures for the simulator's tests: the simulator app over loopback HTTP on a virtual clock, and a
receiver that plays the customer's server."""

from __future__ import annotations

from typing import Any

import pytest

from flowengine.sim import Clock, SimConfig, create_app

from .support import Harness, HarnessFactory, Receiver


@pytest.fixture
async def make_harness(aiohttp_client: Any, aiohttp_server: Any) -> HarnessFactory:
    async def make(clock: Clock | None = None, **config: Any) -> Harness:
        receiver = Receiver()
        receiver.server = await aiohttp_server(receiver.app())
        settings = SimConfig(**config)
        client = await aiohttp_client(create_app(settings, clock))
        return Harness(client, receiver, settings)

    return make


@pytest.fixture
async def harness(make_harness: HarnessFactory) -> Harness:
    return await make_harness()
