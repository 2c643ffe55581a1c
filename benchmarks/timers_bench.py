"""Timers at scale: what polling for due timers and ending a session cost with one armed timer per session.

A flow with an ``after`` timer in its states keeps one timer per live call, and ``flowengine serve`` asks its
store for due timers every 0.1 s. This arms a timer an hour away on each of ``--sessions`` sessions, then
times a poll that finds none due (the common case), a poll that finds ``--due`` of them, and commits that end
a session (which drop its timers):

    python benchmarks/timers_bench.py                          # memory and sqlite, 100,000 sessions
    python benchmarks/timers_bench.py --stores memory,sqlite,redis --sessions 20000

Redis runs under a fresh key prefix that is deleted afterwards; SQLite uses a file in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable

from store_bench import close_and_clear

from flowengine.errors import FlowEngineError
from flowengine.store import Store, open_store


async def _arm(store: Store, sessions: int, now: float, due: int) -> None:
    for n in range(sessions):
        lock = await store.acquire(f"s-{n}", owner="bench")
        fires = now - 1.0 if n < due else now + 3600.0 + n
        await store.commit(lock, snapshot={"id": f"s-{n}", "n": n}, timers_set={"after:0": fires})
        await store.release(lock)


async def _timed(rounds: int, work: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    """Median and maximum milliseconds of ``work()`` over ``rounds`` calls."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        await work()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), max(times)


async def _bench(store: Store, args: argparse.Namespace) -> dict[str, tuple[float, float]]:
    now = time.time()
    await _arm(store, args.sessions, now, args.due)
    figures = {
        "poll, none due": await _timed(args.rounds, lambda: store.due_timers(now - 2.0)),
        f"poll, {args.due} due": await _timed(args.rounds, lambda: store.due_timers(now, limit=args.due)),
    }
    ending = iter(range(args.due, args.sessions))

    async def end_one() -> None:
        n = next(ending)
        lock = await store.acquire(f"s-{n}", owner="bench")
        await store.commit(lock, snapshot={"id": f"s-{n}"}, ended=True, release=True)

    figures["commit that ends a session"] = await _timed(min(args.rounds, args.sessions - args.due), end_one)
    return figures


async def _run(kind: str, args: argparse.Namespace) -> dict[str, tuple[float, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        if kind == "sqlite":
            url = f"sqlite://{tmp}/timers.db"
        elif kind == "redis":
            url = f"{args.redis_url}?prefix=fe-timers-{uuid.uuid4().hex[:8]}:"
        else:
            url = "memory"
        store = await open_store(url)
        try:
            return await _bench(store, args)
        finally:
            await close_and_clear(store, url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stores", default="memory,sqlite", help="comma-separated: memory,sqlite,redis")
    parser.add_argument("--sessions", type=int, default=100_000, help="sessions, each with one timer")
    parser.add_argument("--due", type=int, default=50, help="timers already due")
    parser.add_argument("--rounds", type=int, default=200, help="timed calls of each kind")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/9")
    args = parser.parse_args(argv)
    if not 0 < args.due < args.sessions:
        parser.error("--due must be above 0 and below --sessions")
    print(f"{args.sessions:,} sessions with one timer each; median / max of {args.rounds} calls, in ms")
    for kind in args.stores.split(","):
        try:
            figures = asyncio.run(_run(kind, args))
        except FlowEngineError as exc:
            print(f"{kind}: {exc}", file=sys.stderr)
            return 1
        for what, (median, longest) in figures.items():
            print(f"  {kind:7} {what:28} {median:9.3f} / {longest:9.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
