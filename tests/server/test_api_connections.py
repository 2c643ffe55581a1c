"""``--api-connections``: how many requests the server has open to the API at once, and what waits."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from flowengine.config import DEFAULT_API_CONNECTIONS

from .support import Harness, MakeHarness, incoming


@pytest.fixture
def gate(make_harness: MakeHarness) -> Iterator[asyncio.Event]:
    """Holds the API's answers until set; set at teardown (before the server closes) if a test failed early."""
    event = asyncio.Event()
    yield event
    event.set()


async def _start_held_calls(h: Harness, gate: asyncio.Event, count: int) -> None:
    """Start ``count`` calls whose first command the API holds until ``gate`` is set."""
    h.api.hold["/calls/c-"] = gate
    answers = await asyncio.gather(*(h.post(incoming(f"c-{n}")) for n in range(count)))
    assert [a.status for a in answers] == [200] * count


async def test_requests_above_the_limit_wait_for_a_connection(
    make_harness: MakeHarness, gate: asyncio.Event
) -> None:
    h = await make_harness(api_connections=3)
    await _start_held_calls(h, gate, 5)
    await h.settle(lambda: len(h.api.seen) == 3)
    await asyncio.sleep(0.05)
    assert len(h.api.seen) == 3  # two commands wait for one of the three connections
    gate.set()
    firsts = {f"POST /calls/c-{n}" for n in range(5)}
    await h.settle(lambda: firsts <= set(h.api.paths()))


async def test_by_default_a_busy_instance_keeps_more_requests_open_than_aiohttps_100(
    make_harness: MakeHarness, gate: asyncio.Event
) -> None:
    assert DEFAULT_API_CONNECTIONS == 500
    h = await make_harness()
    await _start_held_calls(h, gate, 150)
    await h.settle(lambda: len(h.api.seen) == 150)
