"""The contract of ``create`` over every store: a new session's ``begin`` and first ``commit`` in one round trip.

It must give exactly what ``begin`` (finding no record) then ``commit`` give, and when it cannot (the session
exists, its lock is held, the event was handled already) it must leave nothing written and nothing locked,
so that the caller's long way round starts from where it was.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from flowengine.errors import DuplicateEventError
from flowengine.store import Lock, OutboxEntry, Store

from .locks import unlocked

SID = "s-c-1"
StoreFactory = Callable[..., Awaitable[Store]]


async def _create(store: Store, owner: str = "a", **changes: object) -> Lock | None:
    options: dict[str, object] = {
        "snapshot": {"state": "greet"},
        "outbox": [OutboxEntry("1.0", {"op": "answer"}), OutboxEntry("1.1", {"op": "speak"})],
        "routes": ["call:c-1"],
        "timers_set": {"menu": 1_000.0},
        "dedup_key": "incomingcall:c-1",
        **changes,
    }
    return await store.create(SID, owner=owner, **options)  # type: ignore[arg-type]


class TestANewSession:
    async def test_is_committed_at_version_1_with_everything_it_was_given(self, store: Store) -> None:
        lock = await _create(store)

        assert lock is not None
        assert (lock.session_id, lock.owner) == (SID, "a")
        record = await store.load(SID)
        assert record is not None
        assert (record.snapshot, record.version, record.ended) == ({"state": "greet"}, 1, False)
        assert [entry.id for entry in record.outbox] == ["1.0", "1.1"]
        assert await store.lookup("call:c-1") == SID
        assert [timer.key for timer in await store.due_timers(1_000.0)] == ["menu"]
        assert await store.seen("incomingcall:c-1")

    async def test_holds_its_lock_until_released_and_commits_under_it(self, store: Store) -> None:
        lock = await _create(store)
        assert lock is not None

        assert not await unlocked(store, SID)
        assert await store.commit(lock, snapshot={"state": "menu"}, done=["1.0", "1.1"]) == 2
        await store.finish(lock, ())
        assert await unlocked(store, SID)

    async def test_its_lock_fences_the_tokens_handed_out_before(self, make_store: StoreFactory) -> None:
        one, two = await make_store(), await make_store()
        before = await one.acquire("s-other", owner="x")

        lock = await _create(two)

        assert lock is not None
        assert lock.token > before.token

    async def test_may_end_at_once(self, store: Store) -> None:
        assert await _create(store, ended=True, timers_set={}) is not None

        record = await store.load(SID)
        assert record is not None
        assert record.ended

    async def test_takes_no_dedup_key_when_given_none(self, store: Store) -> None:
        assert await _create(store, dedup_key=None) is not None
        assert not await store.seen("incomingcall:c-1")


class TestTheLongWayRound:
    """``create`` answers None, or refuses, having written and locked nothing."""

    async def test_when_the_session_exists(self, store: Store) -> None:
        first = await _create(store)
        assert first is not None
        await store.finish(first, ())

        assert await _create(store, owner="b", snapshot={"state": "other"}, dedup_key="another") is None

        record = await store.load(SID)
        assert record is not None
        assert (record.snapshot, record.version) == ({"state": "greet"}, 1)
        assert not await store.seen("another")
        assert await unlocked(store, SID)

    async def test_when_the_session_ended_within_its_retention(self, store: Store) -> None:
        lock = await _create(store, ended=True, timers_set={})
        assert lock is not None
        await store.finish(lock, ())

        assert await _create(store, dedup_key="another") is None
        record = await store.load(SID)
        assert record is not None
        assert record.ended

    async def test_when_its_lock_is_held(self, store: Store) -> None:
        held = await store.acquire(SID, owner="b")

        assert await _create(store) is None

        assert await store.load(SID) is None
        assert await store.lookup("call:c-1") is None
        assert not await store.seen("incomingcall:c-1")
        await store.commit(held, snapshot={"by": "b"})  # still b's lock
        await store.release(held)

    async def test_refused_when_its_event_was_handled_already(self, store: Store) -> None:
        other = await store.acquire("s-other", owner="x")
        await store.commit(other, snapshot={}, dedup_key="incomingcall:c-1")

        with pytest.raises(DuplicateEventError, match="incomingcall:c-1"):
            await _create(store)

        assert await store.load(SID) is None
        assert await store.lookup("call:c-1") is None
        assert await unlocked(store, SID)

    async def test_when_the_session_is_begun_again_after_its_retention_it_starts_afresh(
        self, make_store: StoreFactory
    ) -> None:
        store = await make_store(retention=0.2)
        lock = await _create(store, ended=True, timers_set={})
        assert lock is not None
        await store.finish(lock, ())
        await asyncio.sleep(0.3)

        again = await _create(store, dedup_key="incomingcall:c-1 again", outbox=[])

        assert again is not None
        record = await store.load(SID)
        assert record is not None
        assert (record.version, record.ended, record.outbox) == (1, False, ())


async def test_of_two_racing_creates_exactly_one_wins(make_store: StoreFactory) -> None:
    one, two = await make_store(), await make_store()

    results = await asyncio.gather(
        _create(one, owner="one", dedup_key="a"), _create(two, owner="two", dedup_key="b")
    )

    [winner] = [lock for lock in results if lock is not None]
    assert results.count(None) == 1
    assert not await unlocked(one, SID)
    assert await one.seen("a") is (winner.owner == "one")
    assert await one.seen("b") is (winner.owner == "two")


async def test_a_create_that_goes_the_long_way_leaves_the_jobs_batched_with_it_alone(
    tmp_path: object,
) -> None:
    """SQLite runs jobs queued together in one transaction: a create answering None or refusing must not
    roll back, or write into, the commits beside it."""
    from pathlib import Path

    from flowengine.store.sqlite import SQLiteStore

    assert isinstance(tmp_path, Path)
    store = await SQLiteStore.open(str(tmp_path / "batch.db"))
    try:
        held = await store.acquire(SID, owner="b")
        other = await store.acquire("s-other", owner="x")
        await store.commit(other, snapshot={"n": 0}, dedup_key="taken")
        results = await asyncio.gather(
            store.commit(other, snapshot={"n": 1}),
            _create(store),  # lock held: None
            _create(store, dedup_key="taken"),  # lock held too: None before the dedup key is looked at
            store.commit(other, snapshot={"n": 2}),
            return_exceptions=True,
        )
        assert results == [2, None, None, 3]
        record = await store.load("s-other")
        assert record is not None
        assert record.snapshot == {"n": 2}
        assert await store.load(SID) is None
        await store.release(held)
        results = await asyncio.gather(
            store.commit(other, snapshot={"n": 3}),
            _create(store, dedup_key="taken"),  # refused
            _create(store, dedup_key="fresh"),  # created
            return_exceptions=True,
        )
        assert results[0] == 4
        assert isinstance(results[1], DuplicateEventError)
        assert isinstance(results[2], Lock)
        assert await store.seen("fresh")
    finally:
        await store.close()
