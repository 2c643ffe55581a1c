"""WAL frames per new session for the SQLite store, by b-tree: what a call's first callback writes.

A call's first callback is one ``create`` (the session, its lock, its route, its two first outbox entries and
the callback's dedup key), in batches of ``--in-flight`` as on a busy server, over ``--live`` sessions made
beforehand. Checkpoints are held off while it counts, and the WAL's frames are then read back and each page
named by the table or index it belongs to (SQLite's ``dbstat``).

``--ids time`` makes session ids as ``flowengine serve`` does, starting with the time of the call's first
callback, so that new sessions sort after the others; ``--ids digest`` makes them a digest alone, as they
were before, so that each new session lands at a random place in every index by session id.

    python benchmarks/sqlite_create_frames.py --ids time
    python benchmarks/sqlite_create_frames.py --ids digest --live 10000 --in-flight 64
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import sqlite3
import struct
import tempfile
import time
from collections import Counter

from flowengine.server.runtime_adapter import session_id
from flowengine.store import OutboxEntry
from flowengine.store.sqlite import SQLiteStore
from flowengine.typing import JSONObject

_SNAPSHOT: JSONObject = {"state": "greeting", "vars": {"pad": "x" * 700}}
_WAL_HEADER = 32
_FRAME_HEADER = 24


def _session(number: int, ids: str) -> str:
    digest = hashlib.sha256(str(number).encode()).hexdigest()
    if ids == "digest":
        return f"s-{digest[:32]}"
    started = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{number % 1000:03d}Z"
    return session_id(started, digest)


async def _create(store: SQLiteStore, numbers: range, ids: str) -> None:
    locks = await asyncio.gather(
        *(
            store.create(
                _session(n, ids),
                owner="bench",
                snapshot=_SNAPSHOT,
                routes=[f"call:c-{hashlib.md5(str(n).encode()).hexdigest()}"],
                outbox=[OutboxEntry("1.0", {"op": "answer"}), OutboxEntry("1.1", {"op": "speak"})],
                dedup_key=f"cb:{time.time_ns() // 1_000_000}:{n}",
            )
            for n in numbers
        )
    )
    await asyncio.gather(*(store.finish(lock, ["1.0", "1.1"]) for lock in locks if lock is not None))


async def _count(args: argparse.Namespace, path: str) -> tuple[int, Counter[str]]:
    store = await SQLiteStore.open(path, checkpoint_interval=3600.0)
    try:
        for start in range(0, args.live, 500):
            await _create(store, range(start, min(start + 500, args.live)), args.ids)
        conn = store._conn  # the worker is idle: no checkpoints while counting, and an empty WAL to start
        assert conn is not None
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        first = args.live
        for start in range(first, first + args.sessions, args.in_flight):
            await _create(store, range(start, min(start + args.in_flight, first + args.sessions)), args.ids)
        with open(path + "-wal", "rb") as wal:
            data = wal.read()
    finally:
        await store.close()
    page_size = struct.unpack(">I", data[8:12])[0]
    pages: Counter[int] = Counter()
    for offset in range(_WAL_HEADER, len(data) - _FRAME_HEADER - page_size + 1, _FRAME_HEADER + page_size):
        pages[struct.unpack(">I", data[offset : offset + 4])[0]] += 1
    with sqlite3.connect(path) as db:
        names = dict(db.execute("SELECT pageno, name FROM dbstat"))
    by_tree: Counter[str] = Counter()
    for page, frames in pages.items():
        by_tree[names.get(page, "(freed)")] += frames
    return sum(pages.values()), by_tree


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ids", choices=("time", "digest"), default="time")
    parser.add_argument("--live", type=int, default=10_000, help="sessions made before counting")
    parser.add_argument("--sessions", type=int, default=640, help="new sessions counted")
    parser.add_argument("--in-flight", type=int, default=64, help="creates batched together")
    args = parser.parse_args(argv)
    if min(args.live, args.sessions, args.in_flight) < 1:
        parser.error("--live, --sessions and --in-flight must be positive")
    with tempfile.TemporaryDirectory(prefix="fe-create-frames-") as tmp:
        total, by_tree = asyncio.run(_count(args, os.path.join(tmp, "state.db")))
    print(
        f"{total / args.sessions:.2f} WAL frames per new session ({args.ids} ids, {args.live} sessions before)"
    )
    for tree, frames in by_tree.most_common():
        print(f"  {tree:30} {frames / args.sessions:5.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
