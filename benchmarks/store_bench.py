"""Measure the store's share of handling one event, one store operation at a time and with fused ones.

Each simulated event takes a session's lock, loads it, commits a realistic snapshot (about 1 KB) with two
outbox entries, a timer and the event's de-duplication key, marks the outbox done and releases the lock:

    separate   acquire, load, commit, mark_done, release       (5 round trips)
    fused      begin, commit, finish                           (3 round trips)
    routed     begin_route, commit, finish                     (3 round trips, the session found by its
               route key as the dispatcher does; the first event of a call: begin, commit, finish)

The script prints events per second and the p50/p99 latency of that cycle for each store and sequence, with
``--concurrency`` events in flight on different sessions (as a server handling that many calls at once would
have).

    python benchmarks/store_bench.py                       # memory, sqlite and redis, 5000 events each
    python benchmarks/store_bench.py --stores sqlite --events 20000 --concurrency 32 --sequences fused
    python benchmarks/store_bench.py --redis-url redis://127.0.0.1:6379/9

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
from collections.abc import Awaitable, Callable, Sequence

from flowengine.errors import FlowEngineError
from flowengine.store import Lock, OutboxEntry, Store, open_store
from flowengine.store.redis import RedisStore
from flowengine.typing import JSONObject


def _snapshot(session_id: str, step: int) -> JSONObject:
    """A snapshot shaped like a runtime session in the middle of a call (about 1 KB of JSON)."""
    return {
        "id": session_id,
        "flow": "support-line",
        "flow_hash": "9f2c" * 16,
        "state": f"state_{step % 7}",
        "vars": {"attempts": step % 3, "company": "Acme", "digits": "12", "caller": "+19195550100"},
        "counters": {"main_menu.noinput": 1, "main_menu.nomatch": 0},
        "legs": {"caller": f"c-{session_id}", "agent": None},
        "conference": None,
        "timers": {"after:10s": 1_700_000_000.0 + step},
        "history": [
            {"at": 1_700_000_000.0 + i, "event": "gather.complete", "from": f"s{i}", "to": f"s{i + 1}"}
            for i in range(min(step, 6))
        ],
        "ended": False,
    }


def _commands(step: int) -> list[OutboxEntry]:
    return [
        OutboxEntry(
            f"{step}.0", {"op": "speak", "call_id": "c-1", "sentence": "Press 1 for sales.", "voice": "susan"}
        ),
        OutboxEntry(
            f"{step}.1", {"op": "gather", "call_id": "c-1", "max_digits": 1, "inter_digit_timeout": 5}
        ),
    ]


async def _commit(store: Store, lock: Lock, session_id: str, step: int, entries: list[OutboxEntry]) -> None:
    await store.commit(
        lock,
        snapshot=_snapshot(session_id, step),
        outbox=entries,
        routes=[f"call:c-{session_id}"] if step == 0 else (),
        timers_set={"after:10s": 1_700_000_000.0 + step},
        timers_cancel=["after:10s"],
        dedup_key=f"{session_id}:{step}",
    )


async def _separate_event(store: Store, session_id: str, step: int, latencies: list[float]) -> None:
    started = time.perf_counter()
    lock = await store.acquire(session_id, owner="bench")
    try:
        await store.load(session_id)
        entries = _commands(step)
        await _commit(store, lock, session_id, step, entries)
        await store.mark_done(session_id, [entry.id for entry in entries])
    finally:
        await store.release(lock)
    latencies.append(time.perf_counter() - started)


async def _fused_event(store: Store, session_id: str, step: int, latencies: list[float]) -> None:
    started = time.perf_counter()
    lock, _ = await store.begin(session_id, owner="bench")
    done: list[str] = []
    try:
        entries = _commands(step)
        await _commit(store, lock, session_id, step, entries)
        done = [entry.id for entry in entries]
    finally:
        await store.finish(lock, done)
    latencies.append(time.perf_counter() - started)


async def _routed_event(store: Store, session_id: str, step: int, latencies: list[float]) -> None:
    started = time.perf_counter()
    if step == 0:
        lock, _ = await store.begin(session_id, owner="bench")
    else:
        found = await store.begin_route(f"call:c-{session_id}", owner="bench")
        if found is None:
            raise RuntimeError(f"route of {session_id!r} leads nowhere")
        _, lock, _ = found
    done: list[str] = []
    try:
        entries = _commands(step)
        await _commit(store, lock, session_id, step, entries)
        done = [entry.id for entry in entries]
    finally:
        await store.finish(lock, done)
    latencies.append(time.perf_counter() - started)


EventRunner = Callable[[Store, str, int, list[float]], Awaitable[None]]
SEQUENCES: dict[str, EventRunner] = {
    "separate": _separate_event,
    "fused": _fused_event,
    "routed": _routed_event,
}


async def _run(
    store: Store, one_event: EventRunner, events: int, concurrency: int
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    per_worker = events // concurrency
    run_id = uuid.uuid4().hex[:8]

    async def worker(number: int) -> None:
        # Each worker plays one call after another, a call being 10 events on one session.
        for step in range(per_worker):
            await one_event(store, f"{run_id}-w{number}-call{step // 10}", step % 10, latencies)

    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    return time.perf_counter() - started, latencies


def _percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def _bench(name: str, url: str, sequences: Sequence[str], events: int, concurrency: int) -> list[str]:
    store = await open_store(url)
    rows = []
    try:
        for sequence in sequences:
            one_event = SEQUENCES[sequence]
            await _run(
                store, one_event, min(200, events), min(concurrency, 4)
            )  # warm up connections, scripts
            elapsed, latencies = await _run(store, one_event, events, concurrency)
            rate = len(latencies) / elapsed
            p50 = _percentile(latencies, 0.50) * 1000
            p99 = _percentile(latencies, 0.99) * 1000
            mean = statistics.fmean(latencies) * 1000
            rows.append(
                f"{name:<8} {sequence:<9} {len(latencies):>8} {concurrency:>6} {rate:>12,.0f} "
                f"{p50:>9.2f} {p99:>9.2f} {mean:>9.2f}"
            )
    finally:
        await close_and_clear(store, url)
    return rows


async def close_and_clear(store: Store, url: str) -> None:
    """Close ``store``; for Redis, delete the keys under the URL's prefix first."""
    if isinstance(store, RedisStore):
        prefix = url.partition("prefix=")[2]
        keys = [key async for key in store._client.scan_iter(match=prefix + "*", count=1000)]
        for start in range(0, len(keys), 1000):
            await store._client.delete(*keys[start : start + 1000])
    await store.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--stores", default="memory,sqlite,redis", help="comma-separated: memory,sqlite,redis"
    )
    parser.add_argument("--events", type=int, default=5000, help="events per store (default 5000)")
    parser.add_argument("--concurrency", type=int, default=16, help="events in flight at once (default 16)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/9", help="Redis server and database")
    parser.add_argument(
        "--sequences",
        default="separate,fused,routed",
        help="comma-separated: separate,fused,routed (see the module doc)",
    )
    args = parser.parse_args(argv)
    if args.events < 1 or args.concurrency < 1 or args.events < args.concurrency:
        parser.error("--events and --concurrency must be positive, with at least one event per worker")
    sequences = args.sequences.split(",")
    unknown = [name for name in sequences if name not in SEQUENCES]
    if unknown:
        parser.error(f"unknown sequence {unknown[0]!r}; choose from {', '.join(SEQUENCES)}")

    print(
        f"python {sys.version.split()[0]}; separate: acquire, load, commit, mark_done, release; "
        "fused: begin, commit, finish; routed: begin_route, commit, finish"
    )
    print(
        f"{'store':<8} {'sequence':<9} {'events':>8} {'conc.':>6} {'events/s':>12} {'p50 ms':>9} "
        f"{'p99 ms':>9} {'mean ms':>9}"
    )
    with tempfile.TemporaryDirectory(prefix="fe-store-bench-") as directory:
        urls = {
            "memory": "memory",
            "sqlite": f"sqlite://{directory}/bench.db",
            "redis": f"{args.redis_url}?prefix=fe-bench:{uuid.uuid4().hex}:",
        }
        for name in args.stores.split(","):
            if name not in urls:
                parser.error(f"unknown store {name!r}; choose from {', '.join(urls)}")
            try:
                rows = asyncio.run(_bench(name, urls[name], sequences, args.events, args.concurrency))
                print("\n".join(rows), flush=True)
            except FlowEngineError as exc:
                print(f"{name:<8} failed: {exc}", file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
