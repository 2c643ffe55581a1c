"""The clocks: virtual time runs due actions in order; real time schedules on the loop."""

from __future__ import annotations

import asyncio
import time

import pytest

from flowengine.sim.clock import RealClock, VirtualClock, iso8601


def test_iso8601_is_utc_with_milliseconds() -> None:
    assert iso8601(0.0) == "1970-01-01T00:00:00.000Z"
    assert iso8601(1767225600.25) == "2026-01-01T00:00:00.250Z"


async def test_advance_runs_due_actions_in_time_then_schedule_order() -> None:
    clock = VirtualClock(100.0)
    seen: list[tuple[str, float]] = []
    clock.call_later(2, lambda: seen.append(("b", clock.now())))
    clock.call_later(1, lambda: seen.append(("a", clock.now())))
    clock.call_later(2, lambda: seen.append(("c", clock.now())))
    clock.call_later(5, lambda: seen.append(("late", clock.now())))
    ran = await clock.advance(3)
    assert ran == 3
    assert seen == [("a", 101.0), ("b", 102.0), ("c", 102.0)]
    assert clock.now() == 103.0
    assert clock.pending() == 1


async def test_actions_scheduled_by_actions_run_within_the_same_advance() -> None:
    clock = VirtualClock(0.0)
    seen: list[float] = []

    def first() -> None:
        seen.append(clock.now())
        clock.call_later(1, lambda: seen.append(clock.now()))

    clock.call_later(1, first)
    await clock.advance(5)
    assert seen == [1.0, 2.0]


async def test_a_cancelled_action_never_runs_and_settle_runs_between_actions() -> None:
    clock = VirtualClock(0.0)
    seen: list[str] = []
    timer = clock.call_later(1, lambda: seen.append("cancelled"))
    clock.call_later(2, lambda: seen.append("kept"))
    timer.cancel()
    settles = 0

    async def settle() -> None:
        nonlocal settles
        settles += 1

    await clock.advance(2, settle)
    assert seen == ["kept"]
    assert settles == 2
    assert clock.next_due() is None


async def test_advancing_backwards_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        await VirtualClock().advance(-1)


async def test_the_real_clock_runs_actions_on_the_loop() -> None:
    clock = RealClock()
    done = asyncio.Event()
    clock.call_later(0.001, done.set)
    await asyncio.wait_for(done.wait(), 1)
    assert abs(clock.now() - time.time()) < 1
