"""A process killed with SIGKILL in the middle of committing leaves every commit whole or absent."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from flowengine.store import Store, Timer, open_store

# Commits as fast as it can to one session; commit n writes snapshot {"n": n}, outbox entry "n", timer due n
# and dedup key "ev-n", so after a kill the store must show some n with all four matching and no n + 1.
_WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from flowengine.store import OutboxEntry, open_store

    async def main(url):
        store = await open_store(url)
        lock = await store.acquire("s-1", owner="writer", ttl=300)
        n = 0
        while True:
            n += 1
            await store.commit(
                lock,
                snapshot={"n": n, "pad": "x" * 2000},
                outbox=[OutboxEntry(str(n), {"n": n})],
                routes=[f"call:{n}"],
                timers_set={"t": float(n)},
                dedup_key=f"ev-{n}",
            )
            if n % 20 == 0:
                print(n, flush=True)

    asyncio.run(main(sys.argv[1]))
    """
)


async def _kill_while_committing(url: str) -> None:
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert writer.stdout is not None
        for _ in range(5):  # at least 100 commits done, and it is in the middle of more
            line = await asyncio.to_thread(writer.stdout.readline)
            assert line, writer.stderr.read() if writer.stderr else "writer exited"
        os.kill(writer.pid, signal.SIGKILL)
    finally:
        writer.kill()
        writer.wait(timeout=10)
        if writer.stdout:
            writer.stdout.close()
        if writer.stderr:
            writer.stderr.close()


async def _check_whole(store: Store) -> None:
    record = await store.load("s-1")
    assert record is not None
    n = record.snapshot["n"]
    assert isinstance(n, int)
    assert n >= 100
    assert record.version == n
    assert [entry.id for entry in record.outbox] == [str(i) for i in range(1, n + 1)]
    assert await store.lookup(f"call:{n}") == "s-1"
    assert await store.lookup(f"call:{n + 1}") is None
    assert await store.due_timers(1e9) == [Timer("s-1", "t", float(n))]
    assert await store.seen(f"ev-{n}")
    assert not await store.seen(f"ev-{n + 1}")


async def test_a_sqlite_file_holds_only_whole_commits_after_a_kill(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/state.db"
    await _kill_while_committing(url)
    store = await open_store(url)
    try:
        await _check_whole(store)
    finally:
        await store.close()


async def test_redis_holds_only_whole_commits_after_a_kill(redis_url: str) -> None:
    await _kill_while_committing(redis_url)
    store = await open_store(redis_url)
    try:
        await _check_whole(store)
    finally:
        await store.close()
