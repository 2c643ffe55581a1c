"""Store-test helper about locks."""

from __future__ import annotations

from flowengine.errors import LockTimeoutError
from flowengine.store import Store


async def unlocked(store: Store, session_id: str) -> bool:
    """Whether the session's lock is free right now (taken and given back at once to find out)."""
    try:
        lock = await store.acquire(session_id, owner="probe", wait=0.01)
    except LockTimeoutError:
        return False
    await store.release(lock)
    return True
