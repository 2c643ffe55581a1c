"""The Redis store's auto-pipelining: calls made together share one pipeline, yet each has its own outcome.

Store operations asked for in one iteration of the event loop are sent as one pipeline. These tests hold
that to the contract of separate calls: each caller gets its own reply or refusal, a script the server
forgot is sent again for each call that needs it, and a connection lost (or a server that stops answering)
fails every call of the batch with ``StoreError``.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
from typing import Any, Protocol

import pytest

from flowengine.errors import DuplicateEventError, StaleLockError, StoreError
from flowengine.store import Lock, OutboxEntry
from flowengine.store.redis import RedisStore


class RedisServer(Protocol):
    """The ``redis_process`` fixture: a throwaway redis-server this test may stop and start."""

    port: int
    process: subprocess.Popen[bytes] | None

    def start(self) -> None: ...

    def stop(self) -> None: ...


def _count_pipelines(store: RedisStore) -> list[int]:
    """Record the number of commands of every write (pipeline) the store sends."""
    sizes: list[int] = []
    exchange = store._exchange

    async def counted(packed: bytes, count: int) -> list[Any]:
        sizes.append(count)
        return await exchange(packed, count)

    store._exchange = counted  # type: ignore[method-assign]
    return sizes


async def _sessions(store: RedisStore, count: int) -> list[Lock]:
    locks = []
    for n in range(count):
        lock = await store.acquire(f"s-{n}", owner="setup")
        await store.commit(
            lock, snapshot={"n": n}, outbox=[OutboxEntry("1", {"op": "x"})], dedup_key=f"d-{n}"
        )
        locks.append(lock)
    return locks


class TestAutoPipelining:
    async def test_calls_made_together_go_out_as_one_pipeline_each_with_its_own_outcome(
        self, redis_url: str
    ) -> None:
        store = await RedisStore.open(redis_url)
        try:
            locks = await _sessions(store, 4)
            stale = Lock("s-3", "setup", locks[3].token - 1, locks[3].ttl)
            sizes = _count_pipelines(store)

            outcomes = await asyncio.gather(
                store.commit(locks[0], snapshot={"n": "zero"}, done=["1"]),
                store.commit(locks[1], snapshot={"n": "one"}, dedup_key="d-0"),  # already handled
                store.commit(locks[2], snapshot={"n": "two"}),
                store.commit(stale, snapshot={"n": "three"}),
                store.lookup("call:none"),
                return_exceptions=True,
            )

            assert sizes == [5]
            assert outcomes[0] == 2
            assert isinstance(outcomes[1], DuplicateEventError)
            assert outcomes[2] == 2
            assert isinstance(outcomes[3], StaleLockError)
            assert outcomes[4] is None
            records = [await store.load(f"s-{n}") for n in range(4)]
            assert [r.snapshot if r else None for r in records] == [
                {"n": "zero"},
                {"n": 1},
                {"n": "two"},
                {"n": 3},
            ]
            assert records[0] is not None
            assert records[0].outbox == ()
        finally:
            await store.close()

    async def test_text_beyond_ascii_bytes_and_numbers_reach_the_server_intact(self, redis_url: str) -> None:
        store = await RedisStore.open(redis_url)
        try:
            lock = await store.acquire("s-é", owner="ünïcode")
            snapshot = '{"greeting":"Grüß Gott, 東京 ☎","n":12345678901234}'.encode()
            entries = [OutboxEntry("1.0", {"op": "speak", "sentence": "Ça va? 👋"})]
            await asyncio.gather(  # one pipeline of several commands
                store.commit(lock, snapshot=snapshot, outbox=entries, routes=["call:c-ñ"], dedup_key="cb:ü"),
                store.lookup("call:none"),
            )

            record = await store.load("s-é")
            assert record is not None
            assert record.snapshot == {"greeting": "Grüß Gott, 東京 ☎", "n": 12345678901234}
            assert record.outbox == tuple(entries)
            assert await store.lookup("call:c-ñ") == "s-é"
            assert await store.seen("cb:ü")
        finally:
            await store.close()

    async def test_calls_made_one_after_another_are_not_held_back(self, redis_url: str) -> None:
        store = await RedisStore.open(redis_url)
        try:
            sizes = _count_pipelines(store)
            [lock] = await _sessions(store, 1)
            await store.finish(lock, ["1"])

            assert sizes == [1, 1, 1]  # acquire, commit, finish: each went out at once, alone
        finally:
            await store.close()

    async def test_scripts_the_server_forgot_are_sent_again_for_every_call_of_a_batch(
        self, redis_url: str
    ) -> None:
        store = await RedisStore.open(redis_url)
        try:
            locks = await _sessions(store, 3)
            for lock in locks:
                await store.release(lock)
            await store._client.script_flush()  # as after a restart of Redis without persistence

            begun = await asyncio.gather(*(store.begin(f"s-{n}", owner="again", wait=1) for n in range(3)))

            assert [record.snapshot if record else None for _, record in begun] == [
                {"n": n} for n in range(3)
            ]
            assert [lock.owner for lock, _ in begun] == ["again"] * 3
        finally:
            await store.close()

    async def test_a_connection_lost_fails_every_call_of_the_batch_then_the_store_recovers(
        self, redis_process: RedisServer
    ) -> None:
        store = await RedisStore.open(f"redis://127.0.0.1:{redis_process.port}/0?prefix=p:")
        try:
            await _sessions(store, 1)
            assert redis_process.process is not None
            redis_process.process.send_signal(signal.SIGSTOP)
            calls = asyncio.gather(
                *(store.lookup(f"call:{n}") for n in range(4)), store.load("s-0"), return_exceptions=True
            )
            await asyncio.sleep(0.1)  # sent, and waiting for replies that will not come
            redis_process.process.kill()  # connection reset under the waiting pipeline
            redis_process.process.wait()
            redis_process.process = None

            outcomes = await asyncio.wait_for(calls, 4)  # well before the 5 s command timeout

            assert all(isinstance(outcome, StoreError) for outcome in outcomes), outcomes
            assert not any("no answer" in str(outcome) for outcome in outcomes)
            redis_process.start()
            await store.ping()
            assert await store.lookup("call:0") is None
        finally:
            await store.close()

    async def test_pooled_connections_of_a_restarted_server_are_replaced_without_an_error(
        self, redis_process: RedisServer
    ) -> None:
        store = await RedisStore.open(f"redis://127.0.0.1:{redis_process.port}/0?prefix=p:")
        try:
            await asyncio.gather(*(store.lookup(f"call:{n}") for n in range(3)))  # connections now pooled
            redis_process.stop()
            redis_process.start()

            assert await asyncio.gather(*(store.lookup(f"call:{n}") for n in range(3))) == [None] * 3
            assert await store.begin_route("call:0", owner="a") is None
        finally:
            await store.close()

    async def test_a_batch_without_answer_times_out_for_every_caller(
        self, redis_process: RedisServer
    ) -> None:
        url = f"redis://127.0.0.1:{redis_process.port}/0?prefix=p:"
        store = await RedisStore.open(url, command_timeout=0.3)
        assert redis_process.process is not None
        try:
            redis_process.process.send_signal(signal.SIGSTOP)
            try:
                calls = asyncio.gather(*(store.lookup(f"call:{n}") for n in range(4)), return_exceptions=True)
                outcomes = await asyncio.wait_for(calls, 10)  # fails the test rather than hanging it
            finally:
                redis_process.process.send_signal(signal.SIGCONT)

            assert len(outcomes) == 4
            for outcome in outcomes:
                assert isinstance(outcome, StoreError)
                assert "no answer within 0.3 s" in str(outcome)
            assert await store.lookup("call:0") is None
        finally:
            await store.close()

    async def test_a_caller_cancelled_before_the_flush_sends_nothing(self, redis_url: str) -> None:
        store = await RedisStore.open(redis_url)
        try:
            [lock] = await _sessions(store, 1)
            await store.release(lock)
            sizes = _count_pipelines(store)
            gone = asyncio.ensure_future(store.begin("s-0", owner="gone"))
            kept = asyncio.ensure_future(store.lookup("call:none"))
            await asyncio.sleep(0)  # both queued
            gone.cancel()

            assert await kept is None
            with pytest.raises(asyncio.CancelledError):
                await gone
            assert sizes == [1]  # the lookup went out alone
            lock, _ = await store.begin("s-0", owner="next", wait=0.05)  # never taken by the cancelled one
            assert lock.owner == "next"
        finally:
            await store.close()

    async def test_calls_in_flight_when_the_store_is_closed_fail_with_store_error(
        self, redis_process: RedisServer
    ) -> None:
        store = await RedisStore.open(f"redis://127.0.0.1:{redis_process.port}/0?prefix=p:")
        assert redis_process.process is not None
        redis_process.process.send_signal(signal.SIGSTOP)  # the batch waits for replies that do not come
        try:
            waiting = asyncio.gather(*(store.lookup(f"call:{n}") for n in range(3)), return_exceptions=True)
            await asyncio.sleep(0.05)
            await store.close()

            outcomes = await asyncio.wait_for(waiting, 4)  # well before the 5 s command timeout
        finally:
            redis_process.process.send_signal(signal.SIGCONT)

        assert [str(outcome) for outcome in outcomes] == [
            f"{store.description}: lookup: the store was closed"
        ] * 3
