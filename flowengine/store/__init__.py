"""Where sessions live between events: one ``Store`` interface, opened from a URL.

``await open_store("memory")``, ``await open_store("sqlite:///var/lib/flowengine/state.db")`` (the default
kind; ``sqlite://relative/path.db`` for a relative path) or
``await open_store("redis://127.0.0.1:6379/0?prefix=flowengine:")`` (several instances on one Redis).
See ``flowengine.store.base`` for the interface and the order of calls that makes handling crash-safe.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from flowengine.errors import ConfigError
from flowengine.store.base import (
    DEFAULT_DEDUP_TTL,
    DEFAULT_LOCK_TTL,
    DEFAULT_LOCK_WAIT,
    DEFAULT_RETENTION,
    DEFAULT_TIMER_LEASE,
    Advances,
    FinishesInOrder,
    Lock,
    OutboxEntry,
    PendingOutbox,
    SessionRecord,
    Store,
    Timer,
)
from flowengine.store.memory import MemoryBackend, MemoryStore
from flowengine.typing import Seconds

__all__ = [
    "DEFAULT_DEDUP_TTL",
    "DEFAULT_LOCK_TTL",
    "DEFAULT_LOCK_WAIT",
    "DEFAULT_RETENTION",
    "DEFAULT_TIMER_LEASE",
    "Advances",
    "FinishesInOrder",
    "Lock",
    "MemoryBackend",
    "MemoryStore",
    "OutboxEntry",
    "PendingOutbox",
    "SessionRecord",
    "Store",
    "Timer",
    "open_store",
]

STORE_URL_FORMS = (
    "'memory', 'sqlite:///absolute/path.db', 'sqlite://relative/path.db' or 'redis://host:port/db'"
)


async def open_store(
    url: str,
    *,
    retention: Seconds = DEFAULT_RETENTION,
    dedup_ttl: Seconds = DEFAULT_DEDUP_TTL,
    clock: Callable[[], Seconds] = time.time,
) -> Store:
    """Open the store a URL names and make sure it is usable.

    Args:
        url: ``memory``, ``sqlite://<path>`` (``~`` expands to the home directory) or ``redis://[:password@]host[:port][/db][?prefix=<key prefix>]``
            (also ``rediss://`` for TLS).
        retention: how long ended sessions stay loadable.
        dedup_ttl: how long handled callbacks' de-duplication keys are remembered.
        clock: wall time for lock expiry, retention and dedup in the memory and SQLite stores (Redis uses
            its own clock for those).

    Raises:
        ConfigError: the URL is not one of the supported forms.
        StoreError: the backend cannot be reached or set up. (A store that opened but later loses its
            backend raises ``StoreError`` per call and recovers by itself.)
    """
    scheme, sep, rest = url.partition("://")
    if url == "memory" or (scheme == "memory" and sep and not rest):
        return MemoryStore(retention=retention, dedup_ttl=dedup_ttl, clock=clock)
    if scheme == "sqlite" and sep:
        if not rest or rest == "/" or ":memory:" in rest:
            raise ConfigError(
                f"store URL {url!r}: name a database file, e.g. 'sqlite:///var/lib/fe/state.db'"
            )
        from flowengine.store.sqlite import SQLiteStore

        path = os.path.expanduser(rest)
        return await SQLiteStore.open(path, retention=retention, dedup_ttl=dedup_ttl, clock=clock)
    if scheme in ("redis", "rediss") and sep:
        from flowengine.store.redis import RedisStore

        return await RedisStore.open(url, retention=retention, dedup_ttl=dedup_ttl)
    raise ConfigError(f"store URL {url!r} is not supported; use {STORE_URL_FORMS}")
