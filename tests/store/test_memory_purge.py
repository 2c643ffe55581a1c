"""The memory store's purge reads ended sessions and dedup keys in expiry order from the front, instead of
walking every session and key on the event loop every 30 s; entries out of order are purged late, never
early."""

from __future__ import annotations

from typing import Any, NoReturn

from flowengine.store.memory import MemoryBackend, MemoryStore


class _NotWalked(dict[str, Any]):
    """A mapping that fails the test if anything walks it."""

    def _walked(self, *args: object) -> NoReturn:
        raise AssertionError("every entry was looked at")

    __iter__ = items = keys = values = _walked


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _commit(store: MemoryStore, session_id: str, **changes: Any) -> None:
    lock = await store.acquire(session_id, owner="a")
    await store.commit(lock, snapshot={"id": session_id}, **changes)
    await store.release(lock)


async def test_purge_does_not_walk_the_sessions() -> None:
    clock = _Clock()
    store = MemoryStore(retention=60.0, clock=clock)
    store.backend.sessions = _NotWalked()
    for n in range(100):
        await _commit(store, f"live-{n}", routes=[f"call:l-{n}"])
    await _commit(store, "done", routes=["call:d"], ended=True)
    clock.now += 30.0
    await _commit(store, "done-later", ended=True)

    assert await store.purge() == 0
    clock.now += 31.0
    assert await store.purge() == 1  # "done" only: "done-later" still has 29 s

    assert "done" not in store.backend.sessions
    assert "done-later" in store.backend.sessions
    assert store.backend.routes == {f"call:l-{n}": f"live-{n}" for n in range(100)}
    assert await store.load("live-7") is not None


async def test_an_expired_dedup_key_taken_again_is_kept_by_the_next_purge() -> None:
    clock = _Clock()
    store = MemoryStore(dedup_ttl=10.0, clock=clock)
    await _commit(store, "s-1", dedup_key="k-1")
    await _commit(store, "s-1", dedup_key="k-2")
    clock.now += 11.0
    await _commit(store, "s-1", dedup_key="k-1")  # expired: handled again, and due again in 10 s

    assert await store.purge() == 0

    assert list(store.backend.dedup) == ["k-1"]
    assert await store.seen("k-1")


async def test_out_of_order_entries_are_purged_late_never_early() -> None:
    clock = _Clock()
    backend = MemoryBackend()
    slow = MemoryStore(backend, dedup_ttl=100.0, clock=clock)
    quick = MemoryStore(backend, dedup_ttl=10.0, clock=clock)
    await _commit(slow, "s-1", dedup_key="slow")
    await _commit(quick, "s-1", dedup_key="quick")
    clock.now += 50.0

    await quick.purge()

    assert set(backend.dedup) == {"slow", "quick"}  # "quick" is behind "slow": kept for now
    assert not await quick.seen("quick")  # though already expired for what it means
    assert await slow.seen("slow")
    clock.now += 51.0
    await quick.purge()
    assert backend.dedup == {}
