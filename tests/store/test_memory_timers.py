"""The memory store's timers: finding the due ones and ending a session never walk every timer (a flow with
an ``after`` timer in each state keeps one per live call), and the queue that makes that possible stays
bounded and exact."""

from __future__ import annotations

from typing import Any, NoReturn

from flowengine.store.base import Timer
from flowengine.store.memory import MemoryStore


class _NotWalked(dict[str, Any]):
    """A ``timers`` mapping that fails the test if anything walks it."""

    def _walked(self, *args: object) -> NoReturn:
        raise AssertionError("every timer was looked at")

    __iter__ = items = keys = values = _walked


async def _commit(store: MemoryStore, session_id: str, **changes: Any) -> None:
    lock = await store.acquire(session_id, owner="a")
    await store.commit(lock, snapshot={"id": session_id}, **changes)
    await store.release(lock)


async def test_due_timers_and_ending_a_session_do_not_look_at_every_timer() -> None:
    store = MemoryStore(clock=lambda: 0.0)
    store.backend.timer_queue_limit = 1_000_000  # no rebuild of the queue during this test
    store.backend.timers = _NotWalked()
    for n in range(500):
        await _commit(store, f"s-{n}", timers_set={"t": 1000.0 + n})
    await _commit(store, "s-due", timers_set={"t": 5.0})

    assert await store.due_timers(10.0) == [Timer("s-due", "t", 5.0)]
    await _commit(store, "s-3", ended=True)
    await _commit(store, "s-4", timers_cancel=["t"])

    assert "s-3" not in store.backend.timers
    assert "s-4" not in store.backend.timers
    assert await store.due_timers(1003.5) == [  # s-3's timer went with its end, s-4's was cancelled
        Timer("s-due", "t", 5.0),
        Timer("s-0", "t", 1000.0),
        Timer("s-1", "t", 1001.0),
        Timer("s-2", "t", 1002.0),
    ]


async def test_timers_set_again_and_cancelled_are_not_listed_and_the_queue_stays_bounded() -> None:
    store = MemoryStore(clock=lambda: 0.0)
    for n in range(5000):
        await _commit(store, "s-1", timers_set={"t": float(n % 7), "u": 50.0})
        await _commit(store, "s-2", timers_set={"t": 1.0})
        await _commit(store, "s-2", timers_cancel=["t"])

    # s-1's "t" was last armed at 4999 % 7 == 1; s-2's timer was cancelled.
    assert await store.due_timers(100.0) == [Timer("s-1", "t", 1.0), Timer("s-1", "u", 50.0)]
    # 15,000 timers were set; the queue holds at most twice the live ones (never more than 3) plus 1024.
    assert len(store.backend.timer_queue) <= 2 * 3 + 1024


async def test_a_timer_set_twice_to_the_same_time_is_listed_once() -> None:
    store = MemoryStore(clock=lambda: 0.0)
    await _commit(store, "s-1", timers_set={"t": 3.0})
    await _commit(store, "s-1", timers_set={"t": 3.0})

    assert await store.due_timers(3.0) == [Timer("s-1", "t", 3.0)]
    assert await store.due_timers(3.0) == [Timer("s-1", "t", 3.0)]  # listing does not consume


async def test_a_claim_moves_the_timer_to_the_end_of_its_lease_in_the_queue() -> None:
    store = MemoryStore(clock=lambda: 0.0)
    await _commit(store, "s-1", timers_set={"t": 3.0})
    await _commit(store, "s-2", timers_set={"t": 4.0})
    [first, second] = await store.due_timers(4.0)

    assert await store.claim_timer(first, now=4.0, lease=10.0) is True

    assert await store.due_timers(13.0) == [second]
    assert await store.due_timers(14.0) == [second, first]
