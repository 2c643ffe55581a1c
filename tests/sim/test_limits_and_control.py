"""Rate limits, fault injection and the control API (status, clock, phones, errors)."""

from __future__ import annotations

import pytest

from flowengine.errors import ConfigError
from flowengine.sim import RealClock, SimConfig, Simulator

from .support import AGENT, CALLER, OURS, Harness, HarnessFactory


class TestRateLimits:
    async def test_limits_are_off_by_default(self, harness: Harness) -> None:
        for _ in range(5):
            status, _, _ = await harness.rest("GET", "/calls")
            assert status == 200

    async def test_a_second_request_within_a_second_is_429_with_the_reset_time(
        self, make_harness: HarnessFactory
    ) -> None:
        harness = await make_harness(rate_limits=True)
        assert (await harness.rest("GET", "/bridges"))[0] == 200
        status, headers, body = await harness.rest("GET", "/bridges")
        assert status == 429
        assert (body["category"], body["code"]) == ("too-many-requests", "rate-limit-reached")
        reset = int(headers["X-RateLimit-Reset"])
        assert reset == int((harness.sim.clock.now() + 1) * 1000)
        assert {"name": "rateLimitResetTime", "value": str(reset)} in body["details"]
        await harness.advance(1)
        assert (await harness.rest("GET", "/bridges"))[0] == 200

    async def test_creating_calls_too_fast_is_403_call_rate_limit(self, make_harness: HarnessFactory) -> None:
        harness = await make_harness(rate_limits=True)
        await harness.own()
        await harness.advance(1)
        codes = []
        for i in range(11):
            status, _, body = await harness.rest("POST", "/calls", {"from": OURS, "to": f"+1323555{i:04d}"})
            codes.append(status if status != 403 else body["code"])
        assert codes == [201] * 10 + ["call-rate-limit"]

    async def test_sending_messages_too_fast_is_403_message_rate_limit(
        self, make_harness: HarnessFactory
    ) -> None:
        harness = await make_harness(rate_limits=True)
        await harness.own()
        body = {"from": OURS, "to": CALLER, "text": "x"}
        assert (await harness.rest("POST", "/messages", body))[0] == 201
        status, _, error = await harness.rest("POST", "/messages", body)
        assert (status, error["code"], error["category"]) == (403, "message-rate-limit", "limit")

    async def test_the_control_api_turns_limits_on(self, harness: Harness) -> None:
        status, body = await harness.control("PUT", "/sim/limits", {"enabled": True})
        assert (status, body) == (200, {"enabled": True})
        await harness.rest("GET", "/media")
        assert (await harness.rest("GET", "/media"))[0] == 429


class TestFaults:
    async def test_a_fault_rate_of_one_answers_every_request_500(self, make_harness: HarnessFactory) -> None:
        harness = await make_harness(fault_rate=1.0)
        status, _, body = await harness.rest("GET", "/calls")
        assert (status, body["code"]) == (500, "internal-server-error")
        status, errors = await harness.control("GET", "/sim/errors")
        assert [e["status"] for e in errors] == [500]

    async def test_faults_are_a_seeded_share_of_requests(self, harness: Harness) -> None:
        status, body = await harness.control("PUT", "/sim/faults", {"errorRate": 0.5, "seed": 7})
        assert (status, body["errorRate"], body["seed"]) == (200, 0.5, 7)
        first = [(await harness.rest("GET", "/calls"))[0] for _ in range(20)]
        await harness.control("PUT", "/sim/faults", {"seed": 7})
        second = [(await harness.rest("GET", "/calls"))[0] for _ in range(20)]
        assert first == second
        assert set(first) == {200, 500}

    async def test_a_delayed_request_still_succeeds(self, harness: Harness) -> None:
        await harness.control("PUT", "/sim/faults", {"delayRate": 1, "delaySeconds": 0.01})
        assert (await harness.rest("GET", "/calls"))[0] == 200

    def test_a_rate_outside_zero_to_one_is_a_config_error(self) -> None:
        with pytest.raises(ConfigError, match="fault_rate"):
            SimConfig(fault_rate=2)


class TestControlApi:
    async def test_the_status_names_the_base_url_credentials_and_clock(self, harness: Harness) -> None:
        status, body = await harness.control("GET", "/sim")
        assert status == 200
        assert body["baseUrl"] == f"{harness.sim.urls.origin}/v1"
        assert (body["userId"], body["token"], body["secret"]) == ("u-sim", "t-sim", "s-sim")
        assert (body["clock"], body["now"]) == ("virtual", "2026-01-01T00:00:00.000Z")

    async def test_the_clock_is_read_and_advanced(self, harness: Harness) -> None:
        await harness.own()
        await harness.outbound()
        status, body = await harness.control("GET", "/sim/clock")
        assert (status, body["pending"]) == (200, 1)
        status, body = await harness.control("POST", "/sim/clock/advance", {"seconds": 2.5})
        assert (status, body["now"], body["ran"]) == (200, "2026-01-01T00:00:02.500Z", 1)
        status, body = await harness.control("POST", "/sim/clock/advance", {"seconds": -1})
        assert (status, body["code"]) == (400, "validation-error")

    async def test_staying_silent_advances_the_clock_and_shows_in_the_transcript(
        self, harness: Harness
    ) -> None:
        await harness.own()
        call_id = await harness.inbound()
        await harness.ok("POST", f"/calls/{call_id}/gather", {"maxDigits": 1, "interDigitTimeout": 3})
        status, body = await harness.control("POST", f"/sim/calls/{call_id}/silence", {"seconds": 3})
        assert (status, body["now"]) == (200, "2026-01-01T00:00:03.000Z")
        assert harness.receiver.types(call_id)[-1] == "gather:inter-digit-timeout"
        _, transcript = await harness.control("GET", f"/sim/calls/{call_id}/transcript")
        assert ("silent", "3 s") in [(t["kind"], t["text"]) for t in transcript]

    async def test_phone_behaviours_are_set_and_listed(self, harness: Harness) -> None:
        status, body = await harness.control("PUT", f"/sim/phones/{AGENT}", {"mode": "busy", "after": 2})
        assert (status, body["mode"], body["after"]) == (200, "busy", 2)
        _, phones = await harness.control("GET", "/sim/phones")
        assert phones[AGENT]["mode"] == "busy"
        status, body = await harness.control("PUT", f"/sim/phones/{AGENT}", {"mode": "sleepy"})
        assert (status, body["code"]) == (400, "validation-error")
        status, body = await harness.control("PUT", "/sim/phones/not-a-number", {"mode": "busy"})
        assert status == 400

    async def test_control_calls_on_unknown_calls_are_404(self, harness: Harness) -> None:
        status, body = await harness.control("POST", "/sim/calls/c-nope/press", {"digits": "1"})
        assert (status, body["code"]) == (404, "call-not-found")
        status, body = await harness.control("GET", "/sim/calls/c-nope/transcript")
        assert status == 404

    async def test_a_control_body_that_is_not_json_is_a_clear_400(self, harness: Harness) -> None:
        async with harness.client.post("/sim/calls", data=b"{oops") as response:
            body = await response.json()
        assert (response.status, body["code"]) == (400, "invalid-json")

    async def test_a_text_to_a_number_not_owned_is_refused(self, harness: Harness) -> None:
        status, body = await harness.control(
            "POST", "/sim/messages", {"from": CALLER, "to": OURS, "text": "x"}
        )
        assert (status, body["code"]) == (404, "number-not-found")

    async def test_a_real_clock_simulator_cannot_be_advanced(self) -> None:
        sim = Simulator(clock=RealClock())
        with pytest.raises(ConfigError, match="virtual clock"):
            await sim.advance(1)
        await sim.close()


async def test_call_updates_do_not_count_against_the_call_creation_limit(
    make_harness: HarnessFactory,
) -> None:
    harness = await make_harness(rate_limits=True)
    await harness.own()
    call_id = await harness.inbound()
    await harness.advance(1)
    assert (await harness.rest("POST", f"/calls/{call_id}/audio", {"sentence": "Hi"}))[0] == 200
    status, _, body = await harness.rest("POST", f"/calls/{call_id}/audio", {"sentence": "Hi"})
    assert (status, body["code"]) == (429, "rate-limit-reached")
    await harness.advance(1)
    assert (await harness.rest("POST", "/calls", {"from": OURS, "to": AGENT}))[0] == 201
