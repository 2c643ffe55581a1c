"""The SQLite store's checkpoints run on a thread of their own, not inside the writer's commits."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

from flowengine.store.sqlite import SQLiteStore


def _in_database_file(path: Path, session_id: str) -> bool:
    """Whether the session's row is in the database file itself (the log ignored): checkpointed."""
    conn = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    try:
        row = conn.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone()
        return row is not None
    finally:
        conn.close()


async def _commit(store: SQLiteStore, session_id: str) -> None:
    lock = await store.acquire(session_id, owner="t")
    await store.commit(lock, snapshot={"id": session_id}, release=True)


async def test_writes_reach_the_database_file_by_a_checkpoint_of_the_checkpoint_thread(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.db"
    store = await SQLiteStore.open(str(path), checkpoint_interval=0.01)
    threads: list[str] = []
    checkpoint = store._checkpoint

    def recording() -> None:
        threads.append(threading.current_thread().name)
        checkpoint()

    store._checkpoint = recording  # type: ignore[method-assign]
    try:
        await _commit(store, "s-1")
        for _ in range(200):
            await asyncio.sleep(0.02)
            await _commit(store, "s-tick")
            if _in_database_file(path, "s-1"):
                break
        assert _in_database_file(path, "s-1")
        assert threads
        assert all(name.startswith("flowengine-sqlite-ckpt") for name in threads)
    finally:
        await store.close()


async def test_the_writer_leaves_checkpoints_to_that_thread_until_the_log_is_large(tmp_path: Path) -> None:
    store = await SQLiteStore.open(str(tmp_path / "state.db"))
    try:
        pages = await store._transaction(
            lambda conn: conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0], write=False
        )
        assert pages == 20_000
    finally:
        await store.close()


async def test_a_checkpoint_that_fails_only_drops_its_connection(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = await SQLiteStore.open(str(path), checkpoint_interval=0.0)
    try:
        await _commit(store, "s-1")
        broken = sqlite3.connect(":memory:")
        broken.close()  # any use raises sqlite3.ProgrammingError, a sqlite3.Error
        store._checkpoint_conn = broken
        await asyncio.get_running_loop().run_in_executor(store._checkpointer, store._checkpoint)
        assert store._checkpoint_conn is None
        await asyncio.get_running_loop().run_in_executor(store._checkpointer, store._checkpoint)
        assert store._checkpoint_conn is not None  # the next round opens a new one
        await _commit(store, "s-2")
        assert (await store.load("s-2")) is not None
    finally:
        await store.close()
