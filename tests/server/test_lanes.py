"""Lanes count the jobs in flight: queued, running, and until their ``then`` has finished."""

from __future__ import annotations

import asyncio

import pytest

from flowengine.server.lanes import Lanes, Then


async def test_a_job_is_pending_from_submission_until_its_then_has_finished() -> None:
    lanes: Lanes[str] = Lanes()
    gate = asyncio.Event()

    async def then() -> None:
        await gate.wait()

    async def job() -> tuple[str, Then | None]:
        return "answered", then

    first = lanes.submit("a", job)
    second = lanes.submit("a", job)
    assert lanes.pending == 2
    assert await first == "answered"
    assert lanes.pending == 2  # the first job's then still runs; the second waits behind it
    gate.set()
    assert await second == "answered"
    assert await lanes.drain(1.0)
    assert lanes.pending == 0


async def test_a_failing_job_or_then_stops_counting() -> None:
    lanes: Lanes[str] = Lanes()

    async def broken_then() -> None:
        raise RuntimeError("then failed")

    async def fails() -> tuple[str, Then | None]:
        raise ValueError("job failed")

    async def ok() -> tuple[str, Then | None]:
        return "ok", broken_then

    failing = lanes.submit("a", fails)
    fine = lanes.submit("b", ok)
    with pytest.raises(ValueError, match="job failed"):
        await failing
    assert await fine == "ok"
    assert await lanes.drain(1.0)
    assert lanes.pending == 0


async def test_jobs_cancelled_at_shutdown_stop_counting() -> None:
    lanes: Lanes[str] = Lanes()

    async def forever() -> tuple[str, Then | None]:
        await asyncio.Event().wait()
        return "never", None

    running = lanes.submit("a", forever)
    queued = lanes.submit("a", forever)
    await asyncio.sleep(0)
    assert lanes.pending == 2
    assert not await lanes.drain(0.01)
    assert running.cancelled()
    assert queued.cancelled()
    assert lanes.pending == 0


def test_lanes_idle_between_two_event_loops_work_in_the_second() -> None:
    # The lanes keep the running loop while a lane is busy; once all are idle they must not hand a job to
    # the loop they saw last (here closed).
    lanes: Lanes[str] = Lanes()

    async def job() -> tuple[str, Then | None]:
        return "answered", None

    async def one_job() -> str:
        answer = await lanes.submit("a", job)
        while len(lanes):
            await asyncio.sleep(0)
        return answer

    assert asyncio.run(one_job()) == "answered"
    assert asyncio.run(one_job()) == "answered"
