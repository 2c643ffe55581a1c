"""Per-key FIFO lanes: jobs with the same key run one at a time in submission order; different keys run in
parallel. This is how the events of one call are handled in arrival order while calls never wait for each
other.

A job runs in two phases: ``job()`` returns ``(result, then)``; the submitter gets ``result`` as soon as it is
known (the callback is answered), while ``then`` (executing the committed commands) still runs in the lane
before the next job of the same key starts.

``pending`` counts the jobs queued or running (a job counts until its ``then`` has finished): the work in
flight that the dispatcher bounds with ``max_pending``.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import structlog

T = TypeVar("T")

Then = Callable[[], Awaitable[None]]
Job = Callable[[], Awaitable[tuple[T, Then | None]]]

_log = structlog.get_logger("flowengine.server")

current_lane: contextvars.ContextVar[str | None] = contextvars.ContextVar("current_lane", default=None)
"""The key of the lane whose job is running (None outside lanes)."""


@dataclass
class _Lane(Generic[T]):
    jobs: deque[tuple[Job[T], asyncio.Future[T]]] = field(default_factory=deque)
    worker: asyncio.Task[None] | None = None


class Lanes(Generic[T]):
    """A set of FIFO lanes keyed by strings. Idle lanes cost nothing: a lane exists while it has work."""

    def __init__(self) -> None:
        self._lanes: dict[str, _Lane[T]] = {}
        self._closed = False
        self._pending = 0
        # The running loop, kept while any lane is busy: on Python 3.11 every get_running_loop() (and so
        # every asyncio.create_task()) makes a getpid() system call, and this runs once per callback.
        self._loop: asyncio.AbstractEventLoop | None = None

    def __len__(self) -> int:
        return len(self._lanes)

    @property
    def pending(self) -> int:
        """How many jobs are queued or running, in all lanes (a job runs until its ``then`` is done)."""
        return self._pending

    def submit(self, key: str, job: Job[T]) -> asyncio.Future[T]:
        """Queue ``job`` behind the jobs already queued for ``key``; the future gets its result (or error)."""
        if self._closed:
            raise RuntimeError("lanes are closed")
        loop = self._loop
        if loop is None or not self._lanes:  # no lane busy: nothing ties the lanes to the loop seen last
            loop = self._loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane()
        lane.jobs.append((job, future))
        self._pending += 1
        if lane.worker is None:
            # Unnamed: naming a task costs a formatted string and a call, once per callback; failures are
            # logged with the lane's key instead.
            lane.worker = loop.create_task(self._run(key, lane))
        return future

    async def _run(self, key: str, lane: _Lane[T]) -> None:
        current_lane.set(key)  # the worker task runs in its own context copy
        try:
            while lane.jobs:
                job, future = lane.jobs.popleft()
                # One job: its result to ``future``, then its ``then`` (whose failure is logged). Written
                # out here rather than as a coroutine of its own: this runs once per callback.
                try:
                    try:
                        result, then = await job()
                    except asyncio.CancelledError:
                        if not future.done():
                            future.cancel()
                        raise
                    except Exception as exc:
                        if not future.done():
                            future.set_exception(exc)
                        continue
                    if not future.done():
                        future.set_result(result)
                    if then is not None:
                        try:
                            await then()
                        except asyncio.CancelledError:
                            raise
                        except Exception:
                            _log.exception("lane.job_failed", lane=key)
                finally:
                    self._pending -= 1
        finally:
            lane.worker = None
            if self._lanes.get(key) is lane:
                del self._lanes[key]
            self._pending -= len(lane.jobs)
            for _, future in lane.jobs:
                if not future.done():
                    future.cancel()
            lane.jobs.clear()

    async def drain(self, timeout: float) -> bool:
        """Stop taking jobs and wait up to ``timeout`` seconds for queued ones; True if all finished."""
        self._closed = True
        workers = [lane.worker for lane in self._lanes.values() if lane.worker is not None]
        if not workers:
            return True
        _, pending = await asyncio.wait(workers, timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        return not pending
