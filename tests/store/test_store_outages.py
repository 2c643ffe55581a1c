"""A store whose backend goes away raises StoreError (never a driver's exception) and recovers by itself."""

from __future__ import annotations

import asyncio
import re
import signal
import sqlite3
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

import pytest

from flowengine.errors import StoreError
from flowengine.store import MemoryBackend, MemoryStore, OutboxEntry, Store
from flowengine.store.redis import RedisStore
from flowengine.store.sqlite import SQLiteStore


class RedisServer(Protocol):
    """The ``redis_process`` fixture: a throwaway redis-server this test may stop and start."""

    port: int
    process: subprocess.Popen[bytes] | None

    def start(self) -> None: ...

    def stop(self) -> None: ...


async def _commit(store: Store, session_id: str, snapshot: dict[str, object]) -> None:
    lock = await store.acquire(session_id, owner="test", wait=1)
    await store.commit(lock, snapshot=snapshot, outbox=[OutboxEntry("1", {"op": "x"})])  # type: ignore[arg-type]
    await store.release(lock)


async def _every_operation_fails(store: Store) -> None:
    operations: list[Callable[[], Awaitable[object]]] = [
        store.ping,
        lambda: store.load("s-1"),
        lambda: store.lookup("call:x"),
        lambda: store.seen("ev"),
        lambda: store.acquire("s-2", owner="test", wait=0.05),
        lambda: store.pending_outboxes(),
        lambda: store.due_timers(0.0),
        lambda: store.list_sessions(),
    ]
    for operation in operations:
        with pytest.raises(StoreError):
            await operation()


async def _recovers(store: Store, *, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            await store.ping()
            return
        except StoreError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


class TestSQLite:
    async def test_a_moved_away_directory_makes_every_call_fail_until_it_is_back(
        self, tmp_path: Path
    ) -> None:
        data = tmp_path / "data"
        data.mkdir()
        store = await SQLiteStore.open(str(data / "state.db"))
        try:
            await _commit(store, "s-1", {"n": 1})
            data.rename(tmp_path / "elsewhere")

            await _every_operation_fails(store)
            with pytest.raises(StoreError, match="does not exist"):
                await _commit(store, "s-1", {"n": 2})

            (tmp_path / "elsewhere").rename(data)
            await _recovers(store)
            record = await store.load("s-1")
            assert record is not None
            assert record.snapshot == {"n": 1}
            await _commit(store, "s-1", {"n": 2})
        finally:
            await store.close()

    async def test_opening_in_a_missing_directory_names_it(self, tmp_path: Path) -> None:
        with pytest.raises(StoreError, match=r"missing.*does not exist"):
            await SQLiteStore.open(str(tmp_path / "missing" / "state.db"))

    async def test_a_file_that_is_not_a_database_is_a_store_error(self, tmp_path: Path) -> None:
        path = tmp_path / "state.db"
        path.write_bytes(b"this is not sqlite, just text long enough to be read as a header" * 10)
        with pytest.raises(StoreError, match=r"state\.db"):
            await SQLiteStore.open(str(path))

    async def test_a_database_of_another_schema_version_is_refused(self, tmp_path: Path) -> None:
        path = str(tmp_path / "state.db")
        store = await SQLiteStore.open(path)
        await store.close()
        with sqlite3.connect(path) as conn:
            conn.execute("UPDATE meta SET value = 99 WHERE name = 'schema'")
        conn.close()
        with pytest.raises(StoreError, match="schema version 99"):
            await SQLiteStore.open(path)


class TestRedis:
    async def test_a_stopped_server_makes_every_call_fail_until_it_is_back(
        self, redis_process: RedisServer
    ) -> None:
        server = redis_process
        port = server.port
        store = await RedisStore.open(f"redis://127.0.0.1:{port}/0?prefix=outage:")
        try:
            await _commit(store, "s-1", {"n": 1})
            server.stop()

            await _every_operation_fails(store)
            with pytest.raises(StoreError, match=re.escape(f"127.0.0.1:{port}")):
                await _commit(store, "s-1", {"n": 2})

            server.start()
            await _recovers(store)
            # The throwaway server keeps nothing across restarts; what matters is that writes work again.
            await _commit(store, "s-1", {"n": 3})
            record = await store.load("s-1")
            assert record is not None
            assert record.snapshot == {"n": 3}
        finally:
            await store.close()

    async def test_a_server_that_stops_answering_times_out_then_recovers(
        self, redis_process: RedisServer
    ) -> None:
        store = await RedisStore.open(
            f"redis://127.0.0.1:{redis_process.port}/0?prefix=t:", command_timeout=0.3
        )
        assert redis_process.process is not None
        try:
            await _commit(store, "s-1", {"n": 1})
            redis_process.process.send_signal(signal.SIGSTOP)  # connected, but never answers
            try:
                for call in (lambda: store.begin("s-1", owner="t", wait=1), lambda: store.load("s-1")):
                    with pytest.raises(StoreError, match=r"no answer within 0\.3 s"):
                        await asyncio.wait_for(call(), 10)  # fails the test rather than hanging it
            finally:
                redis_process.process.send_signal(signal.SIGCONT)

            await _recovers(store)
            await _commit(store, "s-1", {"n": 2})
            record = await store.load("s-1")
            assert record is not None
            assert record.snapshot == {"n": 2}
        finally:
            await store.close()

    async def test_a_caller_cancelled_while_waiting_for_redis_is_cancelled_not_timed_out(
        self, redis_process: RedisServer
    ) -> None:
        store = await RedisStore.open(
            f"redis://127.0.0.1:{redis_process.port}/0?prefix=t:", command_timeout=0.2
        )
        assert redis_process.process is not None
        try:
            redis_process.process.send_signal(signal.SIGSTOP)
            try:
                waiting = asyncio.create_task(store.load("s-1"))
                await asyncio.sleep(0.05)
                waiting.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await waiting
                # A caller's own deadline shorter than the store's is the caller's TimeoutError.
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(store.load("s-1"), 0.05)
            finally:
                redis_process.process.send_signal(signal.SIGCONT)
            await _recovers(store)
        finally:
            await store.close()

    async def test_scripts_the_server_forgot_are_sent_again(self, redis_url: str) -> None:
        store = await RedisStore.open(redis_url)
        try:
            await _commit(store, "s-1", {"n": 1})
            await store._client.script_flush()  # as after a restart of Redis without persistence
            lock, record = await store.begin("s-1", owner="test", wait=1)
            assert record is not None
            assert record.snapshot == {"n": 1}
            await store.finish(lock, ["1"])
            assert await store.pending_outboxes() == []
        finally:
            await store.close()

    async def test_an_unreachable_server_fails_to_open_without_showing_the_password(
        self, unused_port: int
    ) -> None:
        with pytest.raises(StoreError, match=re.escape(f"redis://127.0.0.1:{unused_port}/0")) as caught:
            await RedisStore.open(f"redis://:s3cret@127.0.0.1:{unused_port}/0")
        assert "s3cret" not in str(caught.value)


class TestMemory:
    async def test_a_backend_marked_unavailable_fails_every_call_until_it_is_back(self) -> None:
        backend = MemoryBackend()
        store = MemoryStore(backend)
        await _commit(store, "s-1", {"n": 1})
        backend.available = False
        await _every_operation_fails(store)
        backend.available = True
        await _recovers(store)
        record = await store.load("s-1")
        assert record is not None
        assert record.snapshot == {"n": 1}
