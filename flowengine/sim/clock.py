"""The simulator's clocks: real time for interactive use, a virtual clock that tests advance by hand.

Both schedule plain callables at a point on their clock. The virtual clock runs nothing by itself:
``advance(seconds)`` runs every due event in time order (ties in the order they were scheduled), so a
five-minute call replays the same way every time, in milliseconds.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from flowengine.typing import Seconds

Action = Callable[[], None]
Settle = Callable[[], Awaitable[None]]

#: Where a virtual clock starts unless told otherwise: 2026-01-01T00:00:00Z.
DEFAULT_VIRTUAL_EPOCH: Seconds = 1767225600.0


class Timer(Protocol):
    """A scheduled action that can still be cancelled."""

    def cancel(self) -> None: ...


class Clock(Protocol):
    """Time as the simulator sees it: seconds since the UNIX epoch, and a way to act later."""

    def now(self) -> Seconds: ...

    def call_at(self, when: Seconds, action: Action) -> Timer: ...

    def call_later(self, delay: Seconds, action: Action) -> Timer: ...


def iso8601(moment: Seconds) -> str:
    """Format a clock reading the way the API does: ISO 8601 in UTC with milliseconds and ``Z``."""
    stamp = datetime.fromtimestamp(moment, tz=UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


class RealClock:
    """Wall-clock time; actions run on the running asyncio loop."""

    def now(self) -> Seconds:
        return time.time()

    def call_later(self, delay: Seconds, action: Action) -> Timer:
        return asyncio.get_running_loop().call_later(max(0.0, delay), action)

    def call_at(self, when: Seconds, action: Action) -> Timer:
        return self.call_later(when - self.now(), action)


@dataclass(order=True)
class _Entry:
    when: Seconds
    seq: int
    action: Action = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class VirtualClock:
    """A clock that only moves when told to.

    Args:
        start: the reading at creation, in seconds since the epoch.
    """

    def __init__(self, start: Seconds = DEFAULT_VIRTUAL_EPOCH) -> None:
        self._now = start
        self._queue: list[_Entry] = []
        self._seq = itertools.count()
        self._lock = asyncio.Lock()

    def now(self) -> Seconds:
        return self._now

    def call_at(self, when: Seconds, action: Action) -> Timer:
        entry = _Entry(max(when, self._now), next(self._seq), action)
        heapq.heappush(self._queue, entry)
        return entry

    def call_later(self, delay: Seconds, action: Action) -> Timer:
        return self.call_at(self._now + max(0.0, delay), action)

    def next_due(self) -> Seconds | None:
        """The time of the next pending action, or None when nothing is scheduled."""
        self._drop_cancelled()
        return self._queue[0].when if self._queue else None

    def pending(self) -> int:
        """How many actions are still scheduled."""
        return sum(1 for entry in self._queue if not entry.cancelled)

    async def advance(self, seconds: Seconds, settle: Settle | None = None) -> int:
        """Move time forward by ``seconds``, running every action that falls due, in order.

        After each action (and once before the first), ``settle`` is awaited so that the work an
        action starts (callbacks in flight, the requests they cause) finishes before time moves on.
        Actions scheduled by actions run too when they fall inside the window.

        Returns:
            the number of actions run.
        """
        if seconds < 0:
            raise ValueError(f"cannot advance a clock by a negative amount ({seconds!r} s)")
        async with self._lock:
            target = self._now + seconds
            ran = 0
            if settle is not None:
                await settle()
            while True:
                self._drop_cancelled()
                if not self._queue or self._queue[0].when > target:
                    break
                entry = heapq.heappop(self._queue)
                self._now = max(self._now, entry.when)
                entry.action()
                ran += 1
                if settle is not None:
                    await settle()
            self._now = target
            return ran

    def _drop_cancelled(self) -> None:
        while self._queue and self._queue[0].cancelled:
            heapq.heappop(self._queue)
