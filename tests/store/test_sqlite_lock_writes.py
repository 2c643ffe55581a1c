"""The SQLite store writes a lock's row at a commit only when the lock needs extending (``EXTEND_BELOW``):
a callback's commit, milliseconds after its lock was taken, leaves the row (and its page) alone."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from flowengine.errors import StaleLockError
from flowengine.store.base import EXTEND_BELOW
from flowengine.store.sqlite import SQLiteStore

TTL = 30.0


async def _expiry(store: SQLiteStore, session_id: str) -> float:
    def read(db: sqlite3.Cursor) -> float:
        [(expires_at,)] = db.execute(
            "SELECT expires_at FROM locks WHERE session_id = ?", (session_id,)
        ).fetchall()
        return float(expires_at)

    return await store._transaction(read, write=False)


class Clocked:
    """A SQLite store on a clock the test moves (``now``)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.store: SQLiteStore


@pytest.fixture
async def clocked(tmp_path: Path) -> AsyncIterator[Clocked]:
    clocked = Clocked()
    clocked.store = await SQLiteStore.open(str(tmp_path / "state.db"), clock=lambda: clocked.now)
    yield clocked
    await clocked.store.close()


async def test_a_commit_soon_after_the_lock_was_taken_does_not_write_the_lock(clocked: Clocked) -> None:
    store = clocked.store
    lock = await store.acquire("s-1", owner="a", ttl=TTL)
    clocked.now += TTL * (1 - EXTEND_BELOW) / 2  # more than EXTEND_BELOW of the ttl is left

    await store.commit(lock, snapshot={"n": 1}, dedup_key="cb:1")
    await store.commit(lock, snapshot={"n": 2})

    assert await _expiry(store, "s-1") == 1000.0 + TTL


async def test_a_commit_extends_a_lock_with_less_than_extend_below_left(clocked: Clocked) -> None:
    lock = await clocked.store.acquire("s-1", owner="a", ttl=TTL)
    clocked.now += TTL * (1 - EXTEND_BELOW) * 2

    await clocked.store.commit(lock, snapshot={"n": 1})

    assert await _expiry(clocked.store, "s-1") == clocked.now + TTL


async def test_a_commit_that_leaves_the_lock_alone_still_refuses_a_stale_token(clocked: Clocked) -> None:
    store = clocked.store
    old = await store.acquire("s-1", owner="a", ttl=TTL)
    clocked.now += TTL + 1  # expired: another owner takes the session
    await store.acquire("s-1", owner="b", ttl=TTL)

    with pytest.raises(StaleLockError):
        await store.commit(old, snapshot={"n": 1}, dedup_key="cb:1")
    with pytest.raises(StaleLockError):
        await store.commit(old, snapshot={"n": 1})
    assert not await store.seen("cb:1")
