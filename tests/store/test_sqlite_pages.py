"""The SQLite store's file: a new file gets 2 KiB pages, a file made with other pages is used as it is, and
the connection caches 64 MiB of pages."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from flowengine.store.sqlite import SQLiteStore


def _page_size(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        [(size,)] = conn.execute("PRAGMA page_size").fetchall()
    return int(size)


async def test_a_new_file_gets_2_kib_pages(tmp_path: Path) -> None:
    store = await SQLiteStore.open(str(tmp_path / "state.db"))
    lock = await store.acquire("s-1", owner="a")
    await store.commit(lock, snapshot={"n": 1, "pad": "x" * 1500}, routes=["call:c-1"])
    await store.close()

    assert _page_size(tmp_path / "state.db") == 2048


async def test_a_file_made_with_other_pages_keeps_them_and_works(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA page_size = 4096")
        conn.execute("PRAGMA journal_mode = WAL")
    store = await SQLiteStore.open(str(path))
    lock = await store.acquire("s-1", owner="a")
    await store.commit(lock, snapshot={"n": 1, "pad": "x" * 3000}, routes=["call:c-1"])
    record = await store.load("s-1")
    await store.close()

    assert record is not None
    assert record.snapshot["n"] == 1
    assert _page_size(path) == 4096


async def test_the_connection_caches_64_mib_of_pages(tmp_path: Path) -> None:
    store = await SQLiteStore.open(str(tmp_path / "state.db"))

    def cache_size(db: sqlite3.Cursor) -> int:
        [(size,)] = db.execute("PRAGMA cache_size").fetchall()
        return int(size)

    try:
        assert await store._transaction(cache_size, write=False) == -65536  # negative: KiB, not pages
    finally:
        await store.close()
