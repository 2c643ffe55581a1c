"""The SQLite store's group commit: operations queued while its worker is busy run in one transaction, and
each caller still gets its own result, or its own exception with none of its changes written."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from flowengine.errors import DuplicateEventError, LockTimeoutError, StaleLockError, StoreError
from flowengine.store import OutboxEntry
from flowengine.store.sqlite import SQLiteStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = await SQLiteStore.open(str(tmp_path / "state.db"))
    yield store
    await store.close()


def _record_batches(store: SQLiteStore) -> list[int]:
    """Sizes of the batches the store's worker runs from now on."""
    sizes: list[int] = []
    run_batch = store._run_batch

    def recording(jobs: Sequence[Any]) -> Any:
        sizes.append(len(jobs))
        return run_batch(jobs)

    store._run_batch = recording  # type: ignore[method-assign]
    return sizes


async def test_commits_queued_together_each_get_their_own_result_or_refusal(store: SQLiteStore) -> None:
    stale = await store.acquire("s-7", owner="a", ttl=0.05)
    await asyncio.sleep(0.1)
    locks = [await store.acquire(f"s-{n}", owner="a") for n in range(12)]  # s-7's taken over from `stale`
    await store.commit(locks[3], snapshot={"n": 0}, dedup_key="taken")
    sizes = _record_batches(store)

    async def commit(n: int) -> int:
        lock = stale if n == 7 else locks[n]
        return await store.commit(
            lock,
            snapshot={"n": n},
            outbox=[OutboxEntry(f"{n}.0", {"op": n})],
            routes=[f"call:c-{n}"],
            dedup_key="taken" if n == 3 else f"ev-{n}",
        )

    results = await asyncio.gather(*(commit(n) for n in range(12)), return_exceptions=True)

    assert max(sizes) > 1  # some commits did run together
    assert isinstance(results[3], DuplicateEventError)
    assert isinstance(results[7], StaleLockError)
    assert [r for n, r in enumerate(results) if n not in (3, 7)] == [1] * 10
    for n in range(12):
        record = await store.load(f"s-{n}")
        if n == 7:  # the refused commits wrote nothing: no record, no route, no outbox, no dedup key
            assert record is None
            assert await store.lookup("call:c-7") is None
            assert not await store.seen("ev-7")
        elif n == 3:
            assert record is not None
            assert (record.snapshot, record.version, record.outbox) == ({"n": 0}, 1, ())
            assert await store.lookup("call:c-3") is None
        else:
            assert record is not None
            assert (record.snapshot, record.version) == ({"n": n}, 1)
            assert record.outbox == (OutboxEntry(f"{n}.0", {"op": n}),)
            assert await store.lookup(f"call:c-{n}") == f"s-{n}"


async def test_reads_and_lock_waits_queued_with_writes_see_the_writes_before_them(store: SQLiteStore) -> None:
    lock = await store.acquire("s-1", owner="a")
    sizes = _record_batches(store)

    blocker = asyncio.ensure_future(store.ping())  # keeps the worker busy so that the rest queue up
    committed = asyncio.ensure_future(store.commit(lock, snapshot={"n": 1}, done=["x"]))
    loaded = asyncio.ensure_future(store.load("s-1"))
    finished = asyncio.ensure_future(store.finish(lock, []))
    begun = asyncio.ensure_future(store.begin("s-1", owner="b", wait=1))
    await asyncio.gather(blocker, committed, loaded, finished, begun)

    assert max(sizes) > 1
    record = loaded.result()
    assert record is not None
    assert record.snapshot == {"n": 1}
    next_lock, seen = begun.result()
    assert next_lock.owner == "b"
    assert seen == record


async def test_a_closed_store_fails_what_was_still_queued(store: SQLiteStore) -> None:
    lock = await store.acquire("s-1", owner="a")
    pending = [asyncio.ensure_future(store.commit(lock, snapshot={"n": n})) for n in range(5)]
    await asyncio.sleep(0)
    await store.close()

    first, *queued = await asyncio.gather(*pending, return_exceptions=True)

    assert first == 1  # it was running already
    assert all(isinstance(r, StoreError) and "after close()" in str(r) for r in queued)


def test_a_store_idle_between_two_event_loops_works_in_the_second(tmp_path: Path) -> None:
    # The store keeps the running loop while a batch runs; once idle it must not hand results to the
    # loop it saw last (here closed).
    async def opened() -> SQLiteStore:
        store = await SQLiteStore.open(str(tmp_path / "state.db"))
        await store.ping()
        return store

    store = asyncio.run(opened())

    async def used_and_closed() -> bool:
        found = await store.lookup("call:nobody")
        await store.close()
        return found is None

    assert asyncio.run(used_and_closed())


async def test_a_failing_job_without_a_savepoint_has_written_nothing(
    store: SQLiteStore, tmp_path: Path
) -> None:
    # Only commits run in savepoints; a begin that finds a corrupt record must fail before taking the lock.
    for sid in ("s-bad", "s-good"):
        lock = await store.acquire(sid, owner="setup")
        await store.commit(
            lock, snapshot={"n": 1}, outbox=[OutboxEntry("1.0", {"op": 1})], routes=[f"call:{sid}"]
        )
        await store.release(lock)
    with sqlite3.connect(tmp_path / "state.db") as raw:
        raw.execute("UPDATE outbox SET command = 'not json' WHERE session_id = 's-bad'")
    sizes = _record_batches(store)

    blocker = asyncio.ensure_future(store.ping())  # keeps the worker busy so that the rest queue up
    jobs = [
        store.begin("s-bad", owner="a", wait=0),
        store.begin_route("call:s-bad", owner="a", wait=0),
        store.begin_route("call:s-good", owner="a", wait=0),
    ]
    bad, bad_routed, good = await asyncio.gather(*jobs, return_exceptions=True)
    await blocker

    assert max(sizes) == 3
    assert isinstance(bad, StoreError)
    assert "s-bad" in str(bad)
    assert isinstance(bad_routed, StoreError)
    assert "s-bad" in str(bad_routed)
    assert not isinstance(good, BaseException)
    assert good is not None
    assert good[0] == "s-good"
    # Neither failed begin left the lock taken; the one that succeeded holds its own.
    assert (await store.acquire("s-bad", owner="b", wait=0)).owner == "b"
    with pytest.raises(LockTimeoutError):
        await store.acquire("s-good", owner="b", wait=0)


async def test_a_job_failing_unexpectedly_after_writing_fails_alone(store: SQLiteStore) -> None:
    lock = await store.acquire("s-1", owner="a")
    sizes = _record_batches(store)

    def broken(db: sqlite3.Cursor) -> None:  # a bug: writes, then raises something unforeseen
        db.execute("INSERT INTO dedup (key, expires_at) VALUES ('half-done', 1e12)")
        raise RuntimeError("a bug")

    blocker = asyncio.ensure_future(store.ping())  # keeps the worker busy so that the rest queue up
    results = await asyncio.gather(
        store.commit(lock, snapshot={"n": 1}, dedup_key="ev-1"),
        store._transaction(broken, write=True),
        store.begin("s-2", owner="a", wait=0),
        return_exceptions=True,
    )
    await blocker

    assert 3 in sizes
    committed, failed, begun = results
    assert committed == 1
    assert isinstance(failed, RuntimeError)
    assert not isinstance(begun, BaseException)
    assert begun[0].session_id == "s-2"
    assert await store.seen("ev-1")
    assert not await store.seen("half-done")  # the broken job's write was rolled back
