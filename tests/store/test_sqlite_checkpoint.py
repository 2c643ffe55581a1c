"""WAL checkpoints of the SQLite store run on their own thread (``flowengine.store.sqlite_checkpoint``): the
store's commits leave them alone, the thread copies committed pages into the database file after writes,
never creates a missing file, survives a failing checkpoint, and stops with the store."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import structlog

from flowengine.store.sqlite import SQLiteStore
from flowengine.store.sqlite_checkpoint import WRITER_AUTOCHECKPOINT, Checkpointer


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    opened = await SQLiteStore.open(str(tmp_path / "state.db"), checkpoint_interval=0.05)
    yield opened
    await opened.close()


async def _write_sessions(store: SQLiteStore, count: int) -> None:
    for n in range(count):
        lock = await store.acquire(f"s-{n}", owner="a")
        await store.commit(lock, snapshot={"n": n, "pad": "x" * 1500}, routes=[f"call:c-{n}"])


async def _eventually(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.02)


async def test_the_store_connection_checkpoints_only_as_a_backstop(store: SQLiteStore) -> None:
    def autocheckpoint(db: sqlite3.Cursor) -> int:
        [(pages,)] = db.execute("PRAGMA wal_autocheckpoint").fetchall()
        return int(pages)

    assert await store._transaction(autocheckpoint, write=False) == WRITER_AUTOCHECKPOINT


async def test_committed_pages_reach_the_database_file_while_the_store_is_open(
    store: SQLiteStore, tmp_path: Path
) -> None:
    path = tmp_path / "state.db"
    before = path.stat().st_size
    # About 300 pages: far below the writer's backstop, so only the checkpoint thread copies them.
    await _write_sessions(store, 200)

    await _eventually(lambda: path.stat().st_size > before + 200 * 1500, "the database file grows")

    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as reader:
        [(count,)] = reader.execute("SELECT count(*) FROM sessions").fetchall()
    assert count == 200


async def test_no_checkpoint_without_a_write(tmp_path: Path) -> None:
    store = await SQLiteStore.open(str(tmp_path / "state.db"), checkpoint_interval=0.02)
    try:
        await _write_sessions(store, 1)
        await _eventually(lambda: store._checkpointer.checkpoints >= 1, "the first checkpoint")
        after_write = store._checkpointer.checkpoints
        for _ in range(5):
            await store.load("s-0")
        await asyncio.sleep(0.2)  # ten intervals, reads only
        assert store._checkpointer.checkpoints == after_write
    finally:
        await store.close()


async def test_closing_the_store_stops_the_thread(tmp_path: Path) -> None:
    store = await SQLiteStore.open(str(tmp_path / "state.db"))
    await _write_sessions(store, 1)
    assert store._checkpointer.running

    await store.close()

    assert not store._checkpointer.running


def test_a_missing_file_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "gone.db"
    checkpointer = Checkpointer(str(path))
    with structlog.testing.capture_logs() as logs:
        assert checkpointer.checkpoint() is False
        assert checkpointer.checkpoint() is False

    assert not path.exists()
    assert [entry["event"] for entry in logs] == ["sqlite-checkpoint-failed"]  # once, not at every try
    assert str(path) in logs[0]["path"]


def test_a_failing_checkpoint_is_logged_and_the_next_one_works(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE t (x)")
    checkpointer = Checkpointer(str(path))
    os.rename(path, tmp_path / "aside.db")
    with structlog.testing.capture_logs() as logs:
        assert checkpointer.checkpoint() is False
        os.rename(tmp_path / "aside.db", path)
        assert checkpointer.checkpoint() is True

    assert [entry["event"] for entry in logs] == ["sqlite-checkpoint-failed", "sqlite-checkpoint-resumed"]
    assert checkpointer.checkpoints == 1


def test_a_replaced_file_is_followed(tmp_path: Path) -> None:
    path, other = tmp_path / "state.db", tmp_path / "other.db"
    for made in (path, other):
        with sqlite3.connect(made) as conn:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("CREATE TABLE t (x)")
    checkpointer = Checkpointer(str(path))
    assert checkpointer.checkpoint() is True
    first = checkpointer._identity

    os.replace(other, path)  # the old file stays open, so its inode cannot be reused meanwhile

    assert checkpointer.checkpoint() is True
    assert checkpointer._identity == (path.stat().st_dev, path.stat().st_ino) != first


def test_the_interval_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="interval must be positive"):
        Checkpointer(str(tmp_path / "state.db"), interval=0)
