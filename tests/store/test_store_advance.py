"""``advance`` (SQLite and Redis): ``begin_route`` then ``commit`` in one round trip, for a session known
unchanged.

It must give exactly what those two give when the route still leads to the session, the session is live and
still at the version the caller knows, and its lock is free; otherwise it must answer None having written
and locked nothing, so that the caller's long way round starts from where it was.
"""

from __future__ import annotations

from typing import Protocol, cast

import pytest

from flowengine.errors import DuplicateEventError
from flowengine.store import Advances, Lock, MemoryStore, OutboxEntry, Store
from flowengine.store.redis import RedisStore
from flowengine.store.sqlite import SQLiteStore

from .conftest import StoreFactory
from .locks import unlocked

pytestmark = pytest.mark.parametrize("make_store", ["sqlite", "redis"], indirect=True)

SID = "s-a-1"
ROUTE = "call:c-1"


class AdvancingStore(Store, Advances, Protocol):
    """A store with ``advance``."""


@pytest.fixture
async def stores(make_store: StoreFactory) -> tuple[AdvancingStore, AdvancingStore]:
    """Two instances' stores on one backend."""
    one, two = await make_store(), await make_store()
    assert isinstance(one, Advances)
    assert isinstance(two, Advances)
    return cast(AdvancingStore, one), cast(AdvancingStore, two)


@pytest.fixture
async def store(stores: tuple[AdvancingStore, AdvancingStore]) -> AdvancingStore:
    return stores[0]


async def _started(store: AdvancingStore) -> int:
    """A session at version 2, unlocked, with a pending timer; returns its version."""
    lock = await store.create(SID, owner="a", snapshot={"n": 1}, routes=[ROUTE], timers_set={"old": 50.0})
    assert lock is not None
    version = await store.commit(lock, snapshot={"n": 2})
    await store.finish(lock, ())
    return version


async def _advance(store: AdvancingStore, version: int, **changes: object) -> Lock | None:
    options: dict[str, object] = {
        "owner": "a",
        "snapshot": {"n": 3},
        "outbox": [OutboxEntry("3.0", {"op": "speak"})],
        "routes": ["call:c-2"],
        "timers_set": {"menu": 100.0},
        "timers_cancel": ["old"],
        "dedup_key": "dtmf:c-1:1",
        **changes,
    }
    return await store.advance(ROUTE, SID, version=version, **options)  # type: ignore[arg-type]


def test_the_sqlite_and_redis_stores_advance_and_the_memory_store_does_not(make_store: StoreFactory) -> None:
    assert issubclass(SQLiteStore, Advances)
    assert issubclass(RedisStore, Advances)
    assert not isinstance(MemoryStore(), Advances)


class TestASessionUnchangedSinceItsVersion:
    async def test_is_committed_at_the_next_version_with_everything_it_was_given(
        self, store: AdvancingStore
    ) -> None:
        version = await _started(store)

        lock = await _advance(store, version)

        assert lock is not None
        assert (lock.session_id, lock.owner) == (SID, "a")
        record = await store.load(SID)
        assert record is not None
        assert (record.snapshot, record.version, record.ended) == ({"n": 3}, version + 1, False)
        assert [entry.id for entry in record.outbox] == ["3.0"]
        assert await store.lookup("call:c-2") == SID
        assert [timer.key for timer in await store.due_timers(1_000.0)] == ["menu"]
        assert await store.seen("dtmf:c-1:1")

    async def test_holds_its_lock_until_finished_and_commits_under_it(self, store: AdvancingStore) -> None:
        lock = await _advance(store, await _started(store))
        assert lock is not None

        assert not await unlocked(store, SID)
        assert await store.commit(lock, snapshot={"n": 4}, done=["3.0"]) == 4
        await store.finish(lock, ())
        assert await unlocked(store, SID)

    async def test_its_lock_fences_the_tokens_handed_out_before(
        self, stores: tuple[AdvancingStore, AdvancingStore]
    ) -> None:
        one, two = stores
        version = await _started(one)
        before = await two.acquire("s-other", owner="x")

        lock = await _advance(one, version)

        assert lock is not None
        assert lock.token > before.token

    async def test_may_end_it(self, store: AdvancingStore) -> None:
        lock = await _advance(store, await _started(store), ended=True)
        assert lock is not None

        record = await store.load(SID)
        assert record is not None
        assert record.ended
        assert await store.due_timers(1_000.0) == []


class TestTheLongWayRound:
    """``advance`` answers None, or refuses, having written and locked nothing."""

    async def _unchanged(self, store: AdvancingStore, version: int) -> None:
        record = await store.load(SID)
        assert record is not None
        assert (record.snapshot, record.version, record.outbox) == ({"n": 2}, version, ())
        assert await store.lookup("call:c-2") is None
        assert not await store.seen("dtmf:c-1:1")
        assert [timer.key for timer in await store.due_timers(1_000.0)] == ["old"]
        assert await unlocked(store, SID)

    async def test_when_another_instance_moved_the_session_on(
        self, stores: tuple[AdvancingStore, AdvancingStore]
    ) -> None:
        one, two = stores
        version = await _started(one)
        lock, _ = await two.begin(SID, owner="b")
        await two.commit(lock, snapshot={"n": "b"}, release=True)

        assert await _advance(one, version) is None

        record = await one.load(SID)
        assert record is not None
        assert (record.snapshot, record.version) == ({"n": "b"}, version + 1)
        assert not await one.seen("dtmf:c-1:1")
        assert await unlocked(one, SID)

    async def test_when_its_lock_is_held(self, stores: tuple[AdvancingStore, AdvancingStore]) -> None:
        one, two = stores
        version = await _started(one)
        held = await two.acquire(SID, owner="b")

        assert await _advance(one, version) is None

        await two.release(held)
        await self._unchanged(one, version)

    async def test_when_the_route_leads_to_another_session(self, store: AdvancingStore) -> None:
        version = await _started(store)
        other = await store.create("s-other", owner="x", snapshot={}, routes=[ROUTE])
        assert other is not None
        await store.finish(other, ())

        assert await _advance(store, version) is None
        assert await store.lookup(ROUTE) == "s-other"

    async def test_when_the_route_leads_nowhere(self, store: AdvancingStore) -> None:
        version = await _started(store)

        assert await store.advance("call:unknown", SID, version=version, owner="a", snapshot={}) is None
        await self._unchanged(store, version)

    async def test_when_the_session_has_ended(self, store: AdvancingStore) -> None:
        version = await _started(store)
        lock, _ = await store.begin(SID, owner="a")
        version = await store.commit(lock, snapshot={"n": "end"}, ended=True, release=True)

        assert await _advance(store, version) is None

        record = await store.load(SID)
        assert record is not None
        assert (record.snapshot, record.ended) == ({"n": "end"}, True)

    async def test_refused_when_its_event_was_handled_already(self, store: AdvancingStore) -> None:
        version = await _started(store)
        other = await store.acquire("s-other", owner="x")
        await store.commit(other, snapshot={}, dedup_key="dtmf:c-1:1")
        await store.release(other)

        with pytest.raises(DuplicateEventError, match="dtmf:c-1:1"):
            await _advance(store, version)

        record = await store.load(SID)
        assert record is not None
        assert (record.snapshot, record.version) == ({"n": 2}, version)
        assert await unlocked(store, SID)
