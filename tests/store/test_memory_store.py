"""The memory store's own footprint: released locks are forgotten (100,000 idle sessions keep none)."""

from __future__ import annotations

from flowengine.store.memory import MemoryStore


async def test_released_and_finished_locks_are_forgotten() -> None:
    store = MemoryStore()
    for index in range(3):
        lock = await store.acquire(f"s-{index}", owner="a")
        await store.commit(lock, snapshot={"n": index})
        if index % 2:
            await store.release(lock)
        else:
            await store.finish(lock, [])

    assert store.backend.locks == {}


async def test_a_lock_released_by_a_stale_holder_stays_with_its_new_holder() -> None:
    store = MemoryStore()
    stale = await store.acquire("s-1", owner="a", ttl=0.01)
    store.backend.locks["s-1"].expires = 0.0  # as if its time ran out
    fresh = await store.acquire("s-1", owner="b")

    await store.release(stale)

    assert store.backend.locks["s-1"].token == fresh.token
