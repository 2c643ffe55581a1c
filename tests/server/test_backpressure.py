"""Backpressure: above ``max_pending`` jobs in flight, new calls and executions get ``503 overloaded`` while
the events of calls in progress are still handled."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import pytest

from flowengine.config import ServeConfig, add_arguments, config_from
from flowengine.errors import ConfigError
from flowengine.server.keys import DISPATCHER

from .openapi import check
from .support import EXEC_TOKEN, OUR_NUMBER, Harness, MakeHarness, dtmf, incoming

AUTH = {"Authorization": f"Bearer {EXEC_TOKEN}"}
EXECUTION = {"flow": "echo", "to": "+15557654321", "from": OUR_NUMBER}


async def _hold_commands(h: Harness, gate: asyncio.Event, *calls: str) -> None:
    """Start ``calls`` with the API holding their answers, so that each keeps a job in flight."""
    h.api.hold["/calls/c-"] = gate
    for call in calls:
        response = await h.post(incoming(call))
        assert response.status == 200
        assert (await response.json())["status"] == "started"
    await h.settle(lambda: len(h.api.seen) == len(calls))  # each call's first command waits for the gate


class TestNewCalls:
    async def test_a_new_call_above_the_bound_is_answered_503_overloaded(
        self, make_harness: MakeHarness, gate: asyncio.Event
    ) -> None:
        h = await make_harness(max_pending=2)
        await _hold_commands(h, gate, "c-1", "c-2")
        assert h.app[DISPATCHER].pending == 2

        refused = await h.post(incoming("c-3"))
        assert refused.status == 503
        assert refused.headers["Retry-After"] == "1"
        body = await check(refused, "/callbacks/voice", "POST")
        assert body["error"]["code"] == "overloaded"
        assert "2 jobs" in body["error"]["message"]
        assert ("s-c-3", "start") in h.runtime.handled  # the runtime was asked, but nothing was committed
        assert await h.app[DISPATCHER].describe("s-c-3") is None

    async def test_events_of_calls_in_progress_are_still_handled(
        self, make_harness: MakeHarness, gate: asyncio.Event
    ) -> None:
        h = await make_harness(max_pending=2)
        await _hold_commands(h, gate, "c-1", "c-2")
        answer = asyncio.create_task(h.post(dtmf("c-1", "5")))
        await h.settle(lambda: h.app[DISPATCHER].pending == 3)  # queued behind c-1's commands, not refused
        gate.set()
        response = await answer
        assert response.status == 200
        assert (await response.json())["status"] == "handled"
        assert ("s-c-1", "dtmf:5") in h.runtime.handled

    async def test_once_the_work_drains_new_calls_are_accepted_again(
        self, make_harness: MakeHarness, gate: asyncio.Event
    ) -> None:
        h = await make_harness(max_pending=1)
        await _hold_commands(h, gate, "c-1")
        assert (await h.post(incoming("c-2"))).status == 503
        gate.set()
        await h.settle(lambda: h.app[DISPATCHER].pending == 0)
        again = await h.post(incoming("c-2"))
        assert again.status == 200
        assert (await again.json())["status"] == "started"

    async def test_refusals_are_counted_in_the_metrics(
        self, make_harness: MakeHarness, gate: asyncio.Event
    ) -> None:
        h = await make_harness(max_pending=1)
        await _hold_commands(h, gate, "c-1")
        for call in ("c-2", "c-3"):
            assert (await h.post(incoming(call))).status == 503
        gate.set()
        metrics = await (await h.client.get("/metrics")).text()
        assert 'flowengine_errors_total{kind="overload"} 2.0' in metrics
        assert 'flowengine_callbacks_total{outcome="overloaded"} 2.0' in metrics

    async def test_zero_means_no_bound(self, make_harness: MakeHarness, gate: asyncio.Event) -> None:
        h = await make_harness(max_pending=0)
        await _hold_commands(h, gate, "c-1", "c-2", "c-3")
        assert h.app[DISPATCHER].pending == 3


class TestExecutions:
    async def test_a_new_execution_above_the_bound_is_answered_503_overloaded(
        self, make_harness: MakeHarness, gate: asyncio.Event
    ) -> None:
        h = await make_harness(max_pending=1)
        await _hold_commands(h, gate, "c-1")
        refused = await h.client.post("/v1/executions", json=EXECUTION, headers=AUTH)
        assert refused.status == 503
        body = await check(refused, "/v1/executions", "POST")
        assert body["error"]["code"] == "overloaded"
        gate.set()
        await h.settle(lambda: h.app[DISPATCHER].pending == 0)
        accepted = await h.client.post("/v1/executions", json=EXECUTION, headers=AUTH)
        assert accepted.status == 201
        metrics = await (await h.client.get("/metrics")).text()
        assert 'flowengine_errors_total{kind="overload"} 1.0' in metrics


class TestSetting:
    def test_the_bound_comes_from_the_flag_or_the_variable_and_defaults_to_5000(self) -> None:
        def build(argv: list[str], env: dict[str, str]) -> ServeConfig:
            parser = argparse.ArgumentParser()
            add_arguments(parser)
            return config_from(parser.parse_args(argv), env, flows_dir=Path("flows"))

        assert build([], {}).max_pending == 5000
        assert build([], {"FLOWENGINE_MAX_PENDING": "0"}).max_pending == 0
        assert build(["--max-pending", "7"], {"FLOWENGINE_MAX_PENDING": "9"}).max_pending == 7
        with pytest.raises(ConfigError, match="max pending -1 must not be negative"):
            build(["--max-pending", "-1"], {})
