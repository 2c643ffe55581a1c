"""The SQLite store's purge (every 30 s in ``flowengine serve``, inside a write transaction that holds up
every other operation) reads only what is due: ended sessions and dedup keys through indexes, and the lock
rows a slice at a time; so its work does not grow with the number of live sessions and recent keys."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from flowengine.store import sqlite as sqlite_store
from flowengine.store.sqlite import SQLiteStore


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> _Clock:
    return _Clock()


@pytest.fixture
async def store(tmp_path: Path, clock: _Clock) -> AsyncIterator[SQLiteStore]:
    opened = await SQLiteStore.open(str(tmp_path / "state.db"), retention=60.0, dedup_ttl=60.0, clock=clock)
    yield opened
    await opened.close()


async def _session(store: SQLiteStore, session_id: str, *, ended: bool = False) -> None:
    lock = await store.acquire(session_id, owner="a")
    await store.commit(lock, snapshot={"id": session_id}, dedup_key=f"event-{session_id}", ended=ended)
    await store.finish(lock, [])  # the lock row stays (released), as after a callback


async def _vm_steps_of_purge(store: SQLiteStore) -> tuple[int, int]:
    """(sessions purged, SQLite virtual machine steps the purge took, in hundreds)."""
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0

    def install(db: sqlite3.Cursor) -> None:
        db.connection.set_progress_handler(count, 100)

    def remove(db: sqlite3.Cursor) -> None:
        db.connection.set_progress_handler(None, 100)

    await store._transaction(install, write=False)
    try:
        purged = await store.purge()
    finally:
        await store._transaction(remove, write=False)
    return purged, steps[0]


async def test_the_purge_does_not_read_every_live_session_and_recent_key(
    store: SQLiteStore, clock: _Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_store, "_LOCK_SLICE", 10)  # the lock rows' slice has its own test
    await _session(store, "old", ended=True)
    clock.now += 61.0
    for n in range(3000):
        await _session(store, f"live-{n}")

    purged, hundreds = await _vm_steps_of_purge(store)

    assert purged == 1
    # Reading every session and dedup key would take several steps per row (6,000 rows).
    assert hundreds * 100 < 3000, f"{hundreds * 100} steps"
    assert await store.load("old") is None
    assert await store.load("live-5") is not None
    assert await store.seen("event-live-5")
    assert not await store.seen("event-old")


async def test_locks_of_sessions_never_committed_are_purged_a_slice_at_a_time(
    store: SQLiteStore, clock: _Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_store, "_LOCK_SLICE", 10)
    for n in range(25):
        await _session(store, f"live-{n}")
    orphans = []
    for n in range(5):
        orphans.append(await store.acquire(f"never-{n}", owner="a", ttl=5.0))
        await _session(store, f"later-{n}")
    await store.release(orphans[0])  # released at once; the others expire
    held = await store.acquire("never-held", owner="a", ttl=600.0)

    def lock_rows(db: sqlite3.Cursor) -> set[str]:
        return {row[0] for row in db.execute("SELECT session_id FROM locks")}

    clock.now += 10.0
    await store.purge()
    after_one = await store._transaction(lock_rows, write=False)
    assert {f"never-{n}" for n in range(5)} & after_one, "one purge looks at one slice only"
    for _ in range(4):  # 36 rows, 10 a purge: every row has been looked at
        await store.purge()
    left = await store._transaction(lock_rows, write=False)

    assert not {f"never-{n}" for n in range(5)} & left
    assert {f"live-{n}" for n in range(25)} | {f"later-{n}" for n in range(5)} | {"never-held"} <= left
    await store.release(held)
