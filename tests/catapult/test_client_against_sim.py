"""The REST client against the simulator over loopback: its fault mode (500s), its 429 resource limit with
``X-RateLimit-Reset`` and its 403 ``call-rate-limit``. The client's clock and sleep are the simulator's
virtual clock, so waits take no wall time and must match the simulator's own idea of time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from flowengine.catapult.client import CatapultClient, RetryPolicy
from flowengine.errors import CatapultAPIError, CatapultRateLimitError
from flowengine.sim import SIM_KEY, SimConfig, Simulator, VirtualClock, create_app

OURS = "+19195550001"


@dataclass
class Rig:
    sim: Simulator
    client: CatapultClient
    waits: list[float]


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    config = SimConfig(user_id="u-rig", token="t-rig", secret="s-rig", seed=7)
    app = create_app(config, VirtualClock())
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    sim = app[SIM_KEY]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await sim.advance(seconds)

    async with aiohttp.ClientSession() as http:
        client = CatapultClient(
            http,
            user_id="u-rig",
            token="t-rig",
            secret="s-rig",
            base_url=str(server.make_url("/v1")),
            sleep=sleep,
            clock=sim.clock.now,
            retry=RetryPolicy(attempts=6),
        )
        yield Rig(sim, client, waits)
    await server.close()


async def _own_a_number(rig: Rig) -> None:
    app_id = await rig.client.create_application({"name": "rig", "incomingCallUrl": "http://127.0.0.1:9/cb"})
    await rig.client.create_phone_number({"number": OURS, "applicationId": app_id})


class TestFaults:
    async def test_reads_are_retried_through_injected_500s(self, rig: Rig) -> None:
        app_id = await rig.client.create_application({"name": "x", "incomingCallUrl": "http://127.0.0.1:9/"})
        rig.sim.faults.error_rate = 0.5
        rig.sim.faults.reseed(3)
        for _ in range(5):
            assert (await rig.client.get_application(app_id))["name"] == "x"
        injected = [e for e in rig.sim.api_errors if e["status"] == 500]
        assert injected, "the seed must make the simulator inject some failures"
        assert len(rig.waits) == len(injected)

    async def test_a_create_answered_500_is_not_repeated(self, rig: Rig) -> None:
        rig.sim.faults.error_rate = 1.0
        with pytest.raises(CatapultAPIError) as info:
            await rig.client.create_application({"name": "x", "incomingCallUrl": "http://127.0.0.1:9/"})
        assert info.value.status == 500
        assert len(rig.sim.api_errors) == 1
        assert rig.waits == []

    async def test_reads_give_up_after_the_policy_s_attempts(self, rig: Rig) -> None:
        rig.sim.faults.error_rate = 1.0
        with pytest.raises(CatapultAPIError) as info:
            await rig.client.list_applications()
        assert (info.value.status, info.value.code) == (500, "internal-server-error")
        assert len(rig.sim.api_errors) == 6


class TestRateLimits:
    async def test_429_waits_for_the_simulator_s_reset_time_and_succeeds(self, rig: Rig) -> None:
        app_id = await rig.client.create_application({"name": "x", "incomingCallUrl": "http://127.0.0.1:9/"})
        rig.sim.rate_limits = True
        started = rig.sim.clock.now()
        await rig.client.get_application(app_id)
        await rig.client.get_application(app_id)  # second within 1000 ms: 429, wait, retry
        assert [e["code"] for e in rig.sim.api_errors] == ["rate-limit-reached"]
        assert len(rig.waits) == 1
        assert 0.9 <= rig.waits[0] <= 1.001
        assert rig.sim.clock.now() - started == pytest.approx(rig.waits[0])

    async def test_403_call_rate_limit_backs_off_until_calls_may_be_created_again(self, rig: Rig) -> None:
        await _own_a_number(rig)
        rig.sim.rate_limits = True
        ids = [await rig.client.create_call({"from": OURS, "to": f"+1323555{n:04d}"}) for n in range(12)]
        assert len(set(ids)) == 12
        assert {e["code"] for e in rig.sim.api_errors} == {"call-rate-limit"}
        assert rig.waits, "the 11th call within 10 s must have been refused and retried"

    async def test_403_rate_limit_raises_when_backing_off_does_not_help(self, rig: Rig) -> None:
        await _own_a_number(rig)
        rig.sim.rate_limits = True
        rig.client.retry = RetryPolicy(attempts=2, rate_limit_delay=0.001)
        for n in range(10):
            await rig.client.create_call({"from": OURS, "to": f"+1323555{n:04d}"})
        with pytest.raises(CatapultRateLimitError) as info:
            await rig.client.create_call({"from": OURS, "to": "+13235559999"})
        assert (info.value.status, info.value.code) == (403, "call-rate-limit")
