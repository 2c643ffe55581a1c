"""``--api-connections`` and ``--http-connections``: how many requests the server has open at once, and what
waits."""

from __future__ import annotations

import asyncio

from flowengine.config import DEFAULT_API_CONNECTIONS, DEFAULT_HTTP_CONNECTIONS

from .support import Harness, MakeHarness, dtmf, incoming


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


async def _start_calls_waiting_on_http(h: Harness, gate: asyncio.Event, count: int) -> None:
    """Start ``count`` calls, then have each run a flow ``http`` action that the server holds until ``gate``."""
    for n in range(count):
        assert (await h.post(incoming(f"c-{n}"))).status == 200
    await h.settle(lambda: len(h.api.seen) >= 2 * count)  # each call's two first commands are answered
    h.api.hold["/v1/hook"] = gate
    h.runtime.http_url = h.config.api_url + "/hook"
    answers = await asyncio.gather(*(h.post(dtmf(f"c-{n}", "2")) for n in range(count)))
    assert [a.status for a in answers] == [200] * count


def _hooks(h: Harness) -> int:
    return sum(1 for s in h.api.seen if s.path == "/v1/hook")


async def test_flow_http_requests_above_their_limit_wait_for_a_connection(
    make_harness: MakeHarness, gate: asyncio.Event
) -> None:
    h = await make_harness(http_connections=2)
    await _start_calls_waiting_on_http(h, gate, 4)
    await h.settle(lambda: _hooks(h) == 2)
    await asyncio.sleep(0.05)
    assert _hooks(h) == 2
    gate.set()
    await h.settle(lambda: _hooks(h) == 4)


async def test_by_default_flow_http_requests_are_not_held_to_aiohttps_100(
    make_harness: MakeHarness, gate: asyncio.Event
) -> None:
    assert DEFAULT_HTTP_CONNECTIONS == 500
    h = await make_harness()
    await _start_calls_waiting_on_http(h, gate, 120)
    # Sooner than the actions' 2 s timeout, which would free connections for the rest.
    await h.settle(lambda: _hooks(h) == 120, timeout=1.0)
