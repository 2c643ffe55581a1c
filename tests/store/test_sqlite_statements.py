"""The SQLite store's callback path runs no ``RETURNING`` statement (SQLite builds a temporary table for
each), binds no value that ``sqlite3`` must adapt first (bytes, None) and makes no cursor per statement, and
its fencing counter is written once per transaction however many locks the transaction takes; the tokens stay
unique and growing, within a batch and across instances sharing the file."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from flowengine.errors import LockTimeoutError
from flowengine.store.sqlite import SQLiteStore


async def _trace(store: SQLiteStore, statements: list[str] | None) -> None:
    """Record every statement the store's connection runs into ``statements`` (None: stop recording)."""

    def install(db: sqlite3.Cursor) -> None:
        db.connection.set_trace_callback(None if statements is None else statements.append)

    await store._transaction(install, write=False)


async def _fence(store: SQLiteStore) -> int:
    def read(db: sqlite3.Cursor) -> int:
        [(value,)] = db.execute("SELECT value FROM meta WHERE name = 'fence'").fetchall()
        return int(value)

    return await store._transaction(read, write=False)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = await SQLiteStore.open(str(tmp_path / "state.db"))
    yield store
    await store.close()


async def test_a_callbacks_store_operations_run_no_returning_statement(store: SQLiteStore) -> None:
    first = await store.create("s-1", owner="a", snapshot={"n": 0}, routes=["call:c-1"], dedup_key="cb:0")
    assert first is not None
    await store.finish(first, [])
    statements: list[str] = []
    await _trace(store, statements)

    found = await store.begin_route("call:c-1", owner="a")
    assert found is not None
    _, lock, record = found
    assert record is not None
    assert record.version == 1
    version = await store.commit(lock, snapshot={"n": 1}, routes=["call:c-1"], dedup_key="cb:1")
    await store.finish(lock, [])
    await _trace(store, None)

    assert version == 2
    assert statements, "the trace recorded nothing"
    assert [sql for sql in statements if "RETURNING" in sql.upper()] == []


async def test_a_commit_still_returns_the_next_version_and_keeps_the_end(store: SQLiteStore) -> None:
    lock = await store.acquire("s-1", owner="a")
    assert await store.commit(lock, snapshot={"n": 1}) == 1
    assert await store.commit(lock, snapshot={"n": 2}, ended=True) == 2
    ended = await store.load("s-1")
    assert ended is not None
    assert ended.ended_at is not None
    assert await store.commit(lock, snapshot={"n": 3}) == 3
    again = await store.load("s-1")
    assert again is not None
    assert again.ended_at == ended.ended_at


async def test_locks_taken_in_one_batch_write_the_fence_once_each_transaction(store: SQLiteStore) -> None:
    statements: list[str] = []
    await _trace(store, statements)
    before = await _fence(store)

    # The first acquisition runs alone; the nine asked for meanwhile are queued and run as one batch.
    locks = await asyncio.gather(*(store.acquire(f"s-{n}", owner="a") for n in range(10)))
    await _trace(store, None)

    tokens = [lock.token for lock in locks]
    assert tokens == list(range(before + 1, before + 11))  # in the order asked, none skipped
    assert await _fence(store) == before + 10
    transactions = sum(1 for sql in statements if sql.upper().startswith("BEGIN IMMEDIATE"))
    fence_writes = sum(1 for sql in statements if sql.upper().startswith("UPDATE META"))
    assert transactions < 10  # they were batched
    assert fence_writes == transactions


async def test_a_busy_lock_does_not_move_the_fence(store: SQLiteStore) -> None:
    held = await store.acquire("s-1", owner="a", ttl=30)
    before = await _fence(store)
    statements: list[str] = []
    await _trace(store, statements)

    with pytest.raises(LockTimeoutError, match="s-1"):
        await store.acquire("s-1", owner="b", wait=0.05)
    await _trace(store, None)

    assert await _fence(store) == before
    assert not [sql for sql in statements if sql.upper().startswith("UPDATE META")]
    await store.release(held)
    assert (await store.acquire("s-1", owner="b")).token == before + 1


async def test_instances_sharing_the_file_hand_out_tokens_that_keep_growing(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")
    one, two = await SQLiteStore.open(path), await SQLiteStore.open(path)
    try:
        tokens: list[int] = []
        for round_ in range(3):
            for store in (one, two):
                locks = await asyncio.gather(
                    *(store.acquire(f"s-{round_}-{id(store)}-{n}", owner="x") for n in range(4))
                )
                tokens.extend(lock.token for lock in locks)
        assert tokens == sorted(tokens)
        assert len(set(tokens)) == len(tokens)
    finally:
        await one.close()
        await two.close()


async def test_a_failed_batch_leaves_the_fence_as_it_was(store: SQLiteStore) -> None:
    before = await _fence(store)

    def take_then_fail(db: sqlite3.Cursor) -> None:
        assert store._try_lock(db, "s-1", "a", 30.0) is not None
        raise RuntimeError("failed after taking the lock")

    with pytest.raises(RuntimeError, match="failed after taking the lock"):
        await store._transaction(take_then_fail, write=True)

    assert await _fence(store) == before
    assert (await store.acquire("s-1", owner="b")).token == before + 1


@pytest.fixture
def adapted() -> Iterator[Counter[str]]:
    """Count the values ``sqlite3`` had to adapt before binding them (bytes and None; it binds str, int,
    float and bytearray at once), by registering counting adapters that return the value unchanged."""
    counts: Counter[str] = Counter()

    def count(value: Any) -> Any:
        counts[type(value).__name__] += 1
        return value

    kinds = (bytes, type(None))
    for kind in kinds:
        sqlite3.register_adapter(kind, count)
    try:
        yield counts
    finally:
        for kind in kinds:
            del sqlite3.adapters[(kind, sqlite3.PrepareProtocol)]


async def test_a_callbacks_store_operations_bind_nothing_sqlite_must_adapt(
    store: SQLiteStore, adapted: Counter[str]
) -> None:
    snapshot = b'{"n":0}'  # the runtime hands its snapshots over as encoded JSON
    first = await store.create("s-1", owner="a", snapshot=snapshot, routes=["call:c-1"], dedup_key="cb:0")
    assert first is not None
    await store.finish(first, [])
    found = await store.begin_route("call:c-1", owner="a")
    assert found is not None
    _, lock, _ = found
    await store.commit(lock, snapshot=b'{"n":1}', dedup_key="cb:1")
    await store.finish(lock, [])

    assert adapted == Counter()


async def test_a_snapshot_given_as_bytes_is_kept_as_a_blob_and_read_back_as_bytes(store: SQLiteStore) -> None:
    lock = await store.acquire("s-1", owner="a")
    await store.commit(lock, snapshot=b'{"n":1}')

    def stored(db: sqlite3.Cursor) -> tuple[str, object]:
        [(kind, value)] = db.execute("SELECT typeof(snapshot), snapshot FROM sessions").fetchall()
        return str(kind), value

    assert await store._transaction(stored, write=False) == ("blob", b'{"n":1}')
    record = await store.load("s-1")
    assert record is not None
    assert record.snapshot == {"n": 1}


async def test_a_callbacks_store_operations_make_no_cursor_per_statement(tmp_path: Path) -> None:
    """``Connection.execute`` makes a cursor per call; the store runs every statement on the connection's one
    cursor. Seen by profiling the worker thread's calls into ``sqlite3``."""
    connection_calls: list[str] = []
    recording = False

    def profile(frame: Any, event: str, arg: Any) -> None:
        if recording and event == "c_call" and isinstance(getattr(arg, "__self__", None), sqlite3.Connection):
            connection_calls.append(arg.__name__)

    threading.setprofile(profile)  # for the threads started from now on: the store's worker among them
    try:
        store = await SQLiteStore.open(str(tmp_path / "state.db"))
    finally:
        threading.setprofile(None)
    try:
        first = await store.create("s-1", owner="a", snapshot={"n": 0}, routes=["call:c-1"], dedup_key="cb:0")
        assert first is not None
        await store.finish(first, [])
        recording = True
        found = await store.begin_route("call:c-1", owner="a")
        assert found is not None
        _, lock, _ = found
        await store.commit(lock, snapshot={"n": 1}, routes=["call:c-1"], dedup_key="cb:1")
        await store.finish(lock, [])
        recording = False
    finally:
        await store.close()

    assert connection_calls == []
