"""WAL frames per callback for the SQLite store: what each callback writes, counted instead of timed.

In WAL mode every page a transaction changes is appended to the ``-wal`` file as one frame (a 24-byte
header and the page, two ``pwrite`` calls), and copied back into the database by a later checkpoint. So
frames per callback measure the store's write cost on any machine, fast or slow.

The script drives the store directly, as ``flowengine serve`` does for a callback of a live call:
``begin_route``, then ``commit`` (a ~1 KB snapshot, one outbox entry, the call's route, the previous
entries marked done and the callback's dedup key), then ``finish``. ``--live`` sessions take turns,
``--in-flight`` callbacks at a time (their jobs form the store's batches, as on a busy server), over a
dedup table filled beforehand with ``--keys`` keys (a server keeps a day of them). Checkpoints are held
off while it counts, so the WAL's growth is what the callbacks wrote.

    python benchmarks/sqlite_frames.py                                  # 1,000 live calls, 16 in flight
    python benchmarks/sqlite_frames.py --live 10000 --in-flight 64 --callbacks 4000
    python benchmarks/sqlite_frames.py --dedup random                   # keys that are pure hashes

``--dedup ordered`` (the default) makes keys as the server does, starting with the callback's time;
``random`` makes them pure hashes, as they were before.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import itertools
import os
import sys
import tempfile
import time

from flowengine.store import OutboxEntry
from flowengine.store.sqlite import SQLiteStore
from flowengine.typing import JSONObject

_SNAPSHOT: JSONObject = {
    "state": "main_menu",
    "vars": {"pad": "x" * 700},
    "counters": {"main_menu.noinput": 1},
}
_FRAME = 24  # a frame's header; the page follows it


def _key(number: int, ordered: bool) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(str(number).encode()).digest()[:12]).decode()
    return f"cb:{time.time_ns() // 1_000_000}:{digest}" if ordered else f"cb:{digest}"


async def _count(args: argparse.Namespace, path: str) -> float:
    store = await SQLiteStore.open(path, checkpoint_interval=3600.0)
    try:
        numbers = itertools.count()
        ordered = args.dedup == "ordered"
        for n in range(args.live):
            lock = await store.acquire(f"s-{n}", owner="bench")
            await store.commit(lock, snapshot=_SNAPSHOT, routes=[f"call:c-{n}"], release=True)
        keys = [(_key(next(numbers), ordered), 1e12) for _ in range(args.keys)]
        await store._transaction(
            lambda db: db.executemany("INSERT INTO dedup (key, expires_at) VALUES (?, ?)", keys),
            write=True,
        )
        page_size: int = await store._transaction(
            lambda db: int(db.execute("PRAGMA page_size").fetchone()[0]), write=False
        )
        conn = store._conn  # the worker is idle: no checkpoints while counting, and an empty WAL to start
        assert conn is not None
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        wal = path + "-wal"
        before = os.path.getsize(wal)
        turns = itertools.count()

        async def calls() -> None:
            while (turn := next(turns)) < args.callbacks:
                n = turn % args.live
                found = await store.begin_route(f"call:c-{n}", owner="bench")
                assert found is not None
                _, lock, record = found
                assert record is not None
                entry = OutboxEntry(f"{turn}.0", {"kind": "rest", "path": f"/calls/c-{n}/audio"})
                await store.commit(
                    lock,
                    snapshot=_SNAPSHOT,
                    outbox=[entry],
                    routes=[f"call:c-{n}"],
                    dedup_key=_key(next(numbers), ordered),
                    done=[pending.id for pending in record.outbox],
                )
                await store.finish(lock, [entry.id])

        await asyncio.gather(*(calls() for _ in range(args.in_flight)))
        frames: float = (os.path.getsize(wal) - before) / (_FRAME + page_size) / args.callbacks
        return frames
    finally:
        await store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--live", type=int, default=1000, help="live calls taking turns")
    parser.add_argument("--in-flight", type=int, default=16, help="callbacks handled at a time")
    parser.add_argument("--callbacks", type=int, default=2000, help="callbacks counted")
    parser.add_argument("--keys", type=int, default=100_000, help="dedup keys in the table beforehand")
    parser.add_argument("--dedup", choices=("ordered", "random"), default="ordered")
    args = parser.parse_args(argv)
    if min(args.live, args.in_flight, args.callbacks) < 1 or args.keys < 0:
        parser.error("--live, --in-flight and --callbacks must be positive, --keys not negative")
    with tempfile.TemporaryDirectory(prefix="fe-frames-") as tmp:
        frames = asyncio.run(_count(args, os.path.join(tmp, "state.db")))
    print(
        f"{frames:.2f} WAL frames per callback ({args.live} live calls, {args.in_flight} in flight, "
        f"{args.keys} dedup keys before, {args.dedup} keys)",
        file=sys.stdout,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
