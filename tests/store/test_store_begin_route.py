"""The contract of ``begin_route`` (``lookup`` + ``begin`` in one round trip) over every store.

It must find the session exactly as ``lookup`` does, lock and load it exactly as ``begin`` does, lock nothing
when the route key leads nowhere, and name the session the key leads to when the lock is finally taken.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from flowengine.errors import LockTimeoutError, StaleLockError
from flowengine.store import OutboxEntry, Store

from .locks import unlocked

ROUTE = "call:c-7"
SID = "call-c-7"
OTHER = "call-c-8"
StoreFactory = Callable[..., Awaitable[Store]]


async def _session(
    store: Store, session_id: str, *, routes: tuple[str, ...] = (), ended: bool = False
) -> None:
    lock = await store.acquire(session_id, owner="setup")
    outbox = [OutboxEntry("1.0", {"op": "speak"})]
    await store.commit(lock, snapshot={"sid": session_id}, outbox=outbox, routes=routes, ended=ended)
    await store.release(lock)


class TestBeginRoute:
    async def test_a_route_key_leading_nowhere_gives_none(self, store: Store) -> None:
        assert await store.begin_route(ROUTE, owner="a") is None

    async def test_a_route_key_gives_its_session_locked_and_loaded(self, store: Store) -> None:
        await _session(store, SID, routes=(ROUTE,))
        await _session(store, OTHER, routes=("call:c-8",))

        found = await store.begin_route(ROUTE, owner="a")

        assert found is not None
        session_id, lock, record = found
        assert session_id == SID
        assert (lock.session_id, lock.owner) == (SID, "a")
        assert record is not None
        assert record == await store.load(SID)
        assert record.snapshot == {"sid": SID}
        assert record.outbox == (OutboxEntry("1.0", {"op": "speak"}),)
        assert not await unlocked(store, SID)
        assert await unlocked(store, OTHER)
        assert await store.commit(lock, snapshot={"n": 2}, done=["1.0"]) == 2
        await store.finish(lock, [])
        assert await unlocked(store, SID)

    async def test_the_record_holds_every_pending_entry_in_order(self, store: Store) -> None:
        lock = await store.acquire(SID, owner="setup")
        first = [OutboxEntry(f"1.{n}", {"op": "speak", "n": n}) for n in range(3)]
        await store.commit(lock, snapshot={"n": 1}, outbox=first, routes=(ROUTE,))
        # An entry queued again with a pending id is replaced and moves to the end.
        await store.commit(lock, snapshot={"n": 2}, outbox=[OutboxEntry("1.0", {"op": "play"})])
        await store.release(lock)

        found = await store.begin_route(ROUTE, owner="a")

        assert found is not None
        _, lock, record = found
        assert record is not None
        assert [entry.id for entry in record.outbox] == ["1.1", "1.2", "1.0"]
        assert record.outbox[2].command == {"op": "play"}
        assert record.snapshot == {"n": 2}
        await store.release(lock)
        assert record == await store.load(SID)

    async def test_its_lock_fences_out_the_previous_holder(self, make_store: StoreFactory) -> None:
        one, two = await make_store(), await make_store()
        await _session(one, SID, routes=(ROUTE,))
        slow = await one.acquire(SID, owner="slow", ttl=0.1)
        await asyncio.sleep(0.15)

        found = await two.begin_route(ROUTE, owner="fast", wait=1)

        assert found is not None
        _, fast, _ = found
        assert fast.token > slow.token
        with pytest.raises(StaleLockError):
            await one.commit(slow, snapshot={"by": "slow"})
        assert await two.commit(fast, snapshot={"by": "fast"}) == 2

    async def test_a_busy_lock_is_waited_for_then_times_out_naming_route_and_session(
        self, store: Store
    ) -> None:
        await _session(store, SID, routes=(ROUTE,))
        await store.acquire(SID, owner="a", ttl=5)

        with pytest.raises(LockTimeoutError, match=f"{ROUTE}.*{SID}"):
            await store.begin_route(ROUTE, owner="b", wait=0.05)

    async def test_the_waiter_gets_the_lock_and_what_the_holder_committed(self, store: Store) -> None:
        await _session(store, SID, routes=(ROUTE,))
        first = await store.acquire(SID, owner="a", ttl=5)
        waiter = asyncio.create_task(store.begin_route(ROUTE, owner="b", wait=2))
        await asyncio.sleep(0.05)
        assert not waiter.done()
        await store.commit(first, snapshot={"by": "a"})
        await store.release(first)

        found = await waiter

        assert found is not None
        session_id, lock, record = found
        assert (session_id, lock.owner) == (SID, "b")
        assert lock.token > first.token
        assert record is not None
        assert (record.snapshot, record.version) == ({"by": "a"}, 2)

    async def test_a_route_moved_while_waiting_gives_the_session_it_leads_to_then(self, store: Store) -> None:
        await _session(store, SID, routes=(ROUTE,))
        await _session(store, OTHER)
        first = await store.acquire(SID, owner="a", ttl=5)
        waiter = asyncio.create_task(store.begin_route(ROUTE, owner="b", wait=2))
        await asyncio.sleep(0.05)
        mover = await store.acquire(OTHER, owner="mover")
        await store.commit(mover, snapshot={"sid": OTHER, "moved": True}, routes=[ROUTE])
        await store.release(mover)
        await store.release(first)

        found = await waiter

        assert found is not None
        session_id, lock, record = found
        assert session_id == OTHER
        assert lock.session_id == OTHER
        assert record is not None
        assert record.snapshot == {"sid": OTHER, "moved": True}
        assert await unlocked(store, SID)
        assert not await unlocked(store, OTHER)

    async def test_a_route_moved_to_a_busy_session_waits_for_that_one(self, store: Store) -> None:
        await _session(store, SID, routes=(ROUTE,))
        await _session(store, OTHER)
        first = await store.acquire(SID, owner="a", ttl=5)
        waiter = asyncio.create_task(store.begin_route(ROUTE, owner="b", wait=0.3))
        await asyncio.sleep(0.05)
        mover = await store.acquire(OTHER, owner="mover", ttl=5)
        await store.commit(mover, snapshot={"sid": OTHER}, routes=[ROUTE])
        await store.release(first)

        with pytest.raises(LockTimeoutError, match=OTHER):
            await waiter
        assert await unlocked(store, SID)

    async def test_a_route_removed_while_waiting_gives_none_and_locks_nothing(self, store: Store) -> None:
        await _session(store, SID, routes=(ROUTE,))
        first = await store.acquire(SID, owner="a", ttl=5)
        waiter = asyncio.create_task(store.begin_route(ROUTE, owner="b", wait=2))
        await asyncio.sleep(0.05)
        await store.commit(first, snapshot={"sid": SID}, unroutes=[ROUTE])
        await store.release(first)

        assert await waiter is None
        assert await unlocked(store, SID)

    async def test_an_ended_session_within_the_retention_is_begun_with_its_ended_record(
        self, store: Store
    ) -> None:
        await _session(store, SID, routes=(ROUTE,), ended=True)

        found = await store.begin_route(ROUTE, owner="a")

        assert found is not None
        _, lock, record = found
        assert record is not None
        assert record.ended
        await store.release(lock)

    async def test_a_session_past_its_retention_is_not_found_like_lookup(
        self, make_store: StoreFactory
    ) -> None:
        store = await make_store(retention=0.1)
        await _session(store, SID, routes=(ROUTE,), ended=True)
        await asyncio.sleep(0.2)

        assert await store.lookup(ROUTE) is None
        assert await store.begin_route(ROUTE, owner="a") is None
        assert await unlocked(store, SID)

    async def test_two_instances_racing_on_one_route_take_turns(self, make_store: StoreFactory) -> None:
        one, two = await make_store(), await make_store()
        await _session(one, SID, routes=(ROUTE,))

        async def handle(store: Store, owner: str) -> int:
            found = await store.begin_route(ROUTE, owner=owner, wait=2)
            assert found is not None
            _, lock, record = found
            assert record is not None
            version = await store.commit(lock, snapshot={"n": record.version + 1})
            await store.finish(lock, [])
            return version

        versions = await asyncio.gather(*(handle(s, f"o{n}") for n in range(4) for s in (one, two)))

        assert sorted(versions) == list(range(2, 10))

    @pytest.mark.parametrize("ttl", [0, -1.0])
    async def test_a_ttl_must_be_positive(self, store: Store, ttl: float) -> None:
        with pytest.raises(ValueError, match="ttl must be a positive"):
            await store.begin_route(ROUTE, owner="a", ttl=ttl)
