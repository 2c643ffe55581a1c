"""The contract of the fused operations (``begin``, ``commit(done=...)``, ``finish``) over every store.

Each does in one round trip what two or three of the older operations do; these tests hold them to exactly
the same guarantees (waiting and fencing of locks, atomicity of commits, silence of a lost lock's release).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from flowengine.errors import DuplicateEventError, LockTimeoutError, StaleLockError, StoreError
from flowengine.store import FinishesInOrder, OutboxEntry, Store

SID = "call-c-7"
StoreFactory = Callable[..., Awaitable[Store]]


def _entries(*ids: str) -> list[OutboxEntry]:
    return [OutboxEntry(entry_id, {"op": f"op-{entry_id}"}) for entry_id in ids]


async def _pending_ids(store: Store, session_id: str = SID) -> list[str]:
    record = await store.load(session_id)
    assert record is not None
    return [entry.id for entry in record.outbox]


async def _with_outbox(store: Store, *ids: str) -> None:
    lock = await store.acquire(SID, owner="setup")
    await store.commit(lock, snapshot={"n": 1}, outbox=_entries(*ids), dedup_key="setup")
    await store.release(lock)


class TestBegin:
    async def test_a_new_session_begins_with_no_record_and_commits_under_the_lock(self, store: Store) -> None:
        lock, record = await store.begin(SID, owner="a")

        assert record is None
        assert (lock.session_id, lock.owner) == (SID, "a")
        assert await store.commit(lock, snapshot={"n": 1}) == 1

    async def test_an_existing_session_begins_with_what_load_returns(self, store: Store) -> None:
        await _with_outbox(store, "1.0", "1.1")

        lock, record = await store.begin(SID, owner="a")

        assert record == await store.load(SID)
        assert record is not None
        assert (record.snapshot, record.version) == ({"n": 1}, 1)
        assert record.outbox == tuple(_entries("1.0", "1.1"))
        await store.release(lock)

    async def test_begin_on_a_busy_lock_waits_then_times_out(self, store: Store) -> None:
        await store.acquire(SID, owner="a", ttl=5)

        with pytest.raises(LockTimeoutError, match=SID):
            await store.begin(SID, owner="b", wait=0.05)

    async def test_begin_waits_for_the_holder_and_sees_what_it_committed(self, store: Store) -> None:
        first = await store.acquire(SID, owner="a", ttl=5)
        waiter = asyncio.create_task(store.begin(SID, owner="b", wait=2))
        await asyncio.sleep(0.05)
        assert not waiter.done()
        await store.commit(first, snapshot={"by": "a"})
        await store.release(first)

        lock, record = await waiter

        assert lock.owner == "b"
        assert lock.token > first.token
        assert record is not None
        assert record.snapshot == {"by": "a"}

    async def test_a_lock_from_begin_fences_out_the_previous_holder(self, make_store: StoreFactory) -> None:
        one, two = await make_store(), await make_store()
        slow = await one.acquire(SID, owner="slow", ttl=0.1)
        await asyncio.sleep(0.15)
        fast, _ = await two.begin(SID, owner="fast", wait=1)

        with pytest.raises(StaleLockError):
            await one.commit(slow, snapshot={"by": "slow"})
        assert await two.commit(fast, snapshot={"by": "fast"}) == 1

    async def test_an_ended_session_begins_with_its_ended_record(self, store: Store) -> None:
        lock = await store.acquire(SID, owner="a")
        await store.commit(lock, snapshot={"n": 1}, ended=True)
        await store.release(lock)

        lock, record = await store.begin(SID, owner="b")

        assert record is not None
        assert record.ended

    @pytest.mark.parametrize("ttl", [0, -1.0])
    async def test_a_ttl_must_be_positive(self, store: Store, ttl: float) -> None:
        with pytest.raises(ValueError, match="ttl must be a positive"):
            await store.begin(SID, owner="a", ttl=ttl)


class TestCommitWithDone:
    async def test_done_ids_are_removed_and_new_entries_appended_in_one_commit(self, store: Store) -> None:
        await _with_outbox(store, "1.0", "1.1", "1.2")
        lock = await store.acquire(SID, owner="a")

        version = await store.commit(
            lock, snapshot={"n": 2}, outbox=_entries("2.0"), done=["1.0", "1.2", "no-such-id"]
        )
        await store.release(lock)

        assert version == 2
        assert await _pending_ids(store) == ["1.1", "2.0"]
        [pending] = await store.pending_outboxes()
        assert [entry.id for entry in pending.entries] == ["1.1", "2.0"]

    async def test_marking_the_last_entries_done_leaves_nothing_pending(self, store: Store) -> None:
        await _with_outbox(store, "1.0", "1.1")
        lock = await store.acquire(SID, owner="a")

        await store.commit(lock, snapshot={"n": 2}, done=["1.0", "1.1"])
        await store.release(lock)

        assert await _pending_ids(store) == []
        assert await store.pending_outboxes() == []

    async def test_an_id_both_done_and_committed_anew_stays_pending_with_its_new_command(
        self, store: Store
    ) -> None:
        await _with_outbox(store, "1.0")
        lock = await store.acquire(SID, owner="a")

        await store.commit(lock, snapshot={"n": 2}, outbox=[OutboxEntry("1.0", {"op": "new"})], done=["1.0"])
        await store.release(lock)

        record = await store.load(SID)
        assert record is not None
        assert record.outbox == (OutboxEntry("1.0", {"op": "new"}),)

    async def test_a_commit_refused_as_a_duplicate_removes_no_done_id(self, store: Store) -> None:
        await _with_outbox(store, "1.0", "1.1")
        lock = await store.acquire(SID, owner="a")

        with pytest.raises(DuplicateEventError):
            await store.commit(lock, snapshot={"n": 2}, done=["1.0"], dedup_key="setup")
        await store.release(lock)

        assert await _pending_ids(store) == ["1.0", "1.1"]

    async def test_a_commit_refused_as_stale_removes_no_done_id(self, make_store: StoreFactory) -> None:
        one, two = await make_store(), await make_store()
        await _with_outbox(one, "1.0", "1.1")
        slow = await one.acquire(SID, owner="slow", ttl=0.1)
        await asyncio.sleep(0.15)
        await two.acquire(SID, owner="fast", wait=1)

        with pytest.raises(StaleLockError):
            await one.commit(slow, snapshot={"n": 2}, done=["1.0", "1.1"])

        assert await _pending_ids(two) == ["1.0", "1.1"]
        assert [p.session_id for p in await two.pending_outboxes()] == [SID]

    async def test_a_commit_extends_the_lock_to_its_ttl_from_now(self, store: Store) -> None:
        lock = await store.acquire(SID, owner="a", ttl=1.0)
        await asyncio.sleep(0.6)
        await store.commit(lock, snapshot={"n": 1})
        await asyncio.sleep(0.6)  # past the expiry the lock had before the commit

        with pytest.raises(LockTimeoutError):
            await store.acquire(SID, owner="b", wait=0.05)

    async def test_a_late_commit_holds_the_lock_again_when_nobody_took_it(self, store: Store) -> None:
        lock = await store.acquire(SID, owner="a", ttl=0.05)
        await asyncio.sleep(0.1)  # expired, but nobody took it: the commit is still the holder's

        await store.commit(lock, snapshot={"late": True}, done=["none"])

        with pytest.raises(LockTimeoutError):
            await store.acquire(SID, owner="b", wait=0.01)
        await store.release(lock)
        assert (await store.acquire(SID, owner="b", wait=0.05)).owner == "b"


class TestCommitAndRelease:
    async def test_the_commit_is_written_and_the_lock_free_at_once(self, store: Store) -> None:
        await _with_outbox(store, "1.0", "1.1")
        lock = await store.acquire(SID, owner="a", ttl=5)

        version = await store.commit(lock, snapshot={"n": 2}, done=["1.0", "1.1"], release=True)

        assert version == 2
        record = await store.load(SID)
        assert record is not None
        assert record.snapshot == {"n": 2}
        assert record.outbox == ()
        assert await store.pending_outboxes() == []
        next_lock = await store.acquire(SID, owner="b", wait=0.05)
        assert next_lock.token > lock.token

    async def test_a_refused_commit_keeps_the_lock_and_writes_nothing(self, store: Store) -> None:
        await _with_outbox(store, "1.0")
        lock = await store.acquire(SID, owner="a", ttl=5)

        with pytest.raises(DuplicateEventError):
            await store.commit(lock, snapshot={"n": 2}, done=["1.0"], dedup_key="setup", release=True)

        with pytest.raises(LockTimeoutError):
            await store.acquire(SID, owner="b", wait=0.05)
        assert await _pending_ids(store) == ["1.0"]
        await store.commit(lock, snapshot={"n": 3})  # still the holder's
        await store.release(lock)

    async def test_a_stale_holder_releases_nothing(self, make_store: StoreFactory) -> None:
        one, two = await make_store(), await make_store()
        await _with_outbox(one, "1.0")
        slow = await one.acquire(SID, owner="slow", ttl=0.1)
        await asyncio.sleep(0.15)
        fast = await two.acquire(SID, owner="fast", ttl=5, wait=1)

        with pytest.raises(StaleLockError):
            await one.commit(slow, snapshot={"n": 2}, done=["1.0"], release=True)

        with pytest.raises(LockTimeoutError):
            await one.acquire(SID, owner="third", wait=0.05)
        await two.commit(fast, snapshot={"n": 3}, release=True)
        assert (await one.acquire(SID, owner="third", wait=0.05)).owner == "third"


class TestFinish:
    async def test_finish_marks_done_and_releases_the_lock(self, store: Store) -> None:
        await _with_outbox(store, "1.0", "1.1", "1.2")
        lock = await store.acquire(SID, owner="a", ttl=5)

        await store.finish(lock, ["1.0", "1.2", "no-such-id"])

        assert await _pending_ids(store) == ["1.1"]
        next_lock = await store.acquire(SID, owner="b", wait=0.05)
        assert next_lock.token > lock.token
        await store.finish(next_lock, ["1.1"])
        assert await store.pending_outboxes() == []

    async def test_finish_with_nothing_done_only_releases(self, store: Store) -> None:
        await _with_outbox(store, "1.0")
        lock = await store.acquire(SID, owner="a", ttl=5)

        await store.finish(lock, [])

        assert await _pending_ids(store) == ["1.0"]
        assert (await store.acquire(SID, owner="b", wait=0.05)).owner == "b"

    async def test_finish_of_a_lost_lock_removes_the_done_ids_and_leaves_the_new_holder_alone(
        self, make_store: StoreFactory
    ) -> None:
        one, two = await make_store(), await make_store()
        await _with_outbox(one, "1.0", "1.1")
        slow = await one.acquire(SID, owner="slow", ttl=0.1)
        await asyncio.sleep(0.15)
        fast = await two.acquire(SID, owner="fast", wait=1)

        await one.finish(slow, ["1.0"])  # no error: its entry was executed, its lock is simply gone

        assert await _pending_ids(two) == ["1.1"]
        with pytest.raises(LockTimeoutError):
            await one.acquire(SID, owner="third", wait=0.05)
        assert await two.commit(fast, snapshot={"by": "fast"}, done=["1.1"]) == 2
        assert await two.pending_outboxes() == []


class TestFinishSoon:
    """``finish_soon``: the stores that apply operations in call order start ``finish`` without waiting."""

    async def test_memory_and_sqlite_offer_it_and_redis_does_not(self, store: Store) -> None:
        # Redis sends its batches on several connections at once: a later call may overtake an earlier one.
        in_order = not store.description.startswith("redis")
        assert isinstance(store, FinishesInOrder) is in_order

    async def test_what_is_called_after_it_runs_after_it(self, store: Store) -> None:
        if not isinstance(store, FinishesInOrder):
            assert not hasattr(store, "finish_soon")
            return
        await _with_outbox(store, "1.0", "1.1")
        lock = await store.acquire(SID, owner="a", ttl=5)

        started = store.finish_soon(lock, ["1.0"])
        # Not waited for, yet the lock is free and the entry gone for the very next call (one attempt only).
        next_lock, record = await store.begin(SID, owner="b", wait=0)

        assert record is not None
        assert [entry.id for entry in record.outbox] == ["1.1"]
        assert next_lock.token > lock.token
        if started is not None:
            assert started.done()
            await started

    async def test_it_refuses_at_once_on_a_closed_store(self, store: Store) -> None:
        if not isinstance(store, FinishesInOrder):
            return
        lock = await store.acquire(SID, owner="a", ttl=5)
        await store.close()

        with pytest.raises(StoreError, match="close"):
            store.finish_soon(lock, [])
