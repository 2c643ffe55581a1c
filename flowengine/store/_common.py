"""Helpers shared by the store implementations: waiting for a lock, JSON, and error messages."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

import orjson

from flowengine.errors import LockTimeoutError, StoreError
from flowengine.store.base import Lock, OutboxEntry
from flowengine.typing import JSONObject, Seconds, SnapshotData

T = TypeVar("T")

_FIRST_POLL: Seconds = 0.001
_MAX_POLL: Seconds = 0.025


class Busy:
    """What a try of ``wait_for`` returns while the lock it wants is held by someone else."""

    __slots__ = ()


BUSY = Busy()


async def wait_for(
    try_once: Callable[[], Awaitable[T | Busy]], *, wait: Seconds, busy_message: Callable[[], str]
) -> T:
    """Call ``try_once`` while it returns ``BUSY``, backing off from 1 ms to 25 ms, for at most ``wait``;
    then raise ``LockTimeoutError`` with ``busy_message()``."""
    deadline = time.monotonic() + wait
    delay = _FIRST_POLL
    while True:
        outcome = await try_once()
        if not isinstance(outcome, Busy):
            return outcome
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise LockTimeoutError(busy_message())
        await asyncio.sleep(min(delay, remaining))
        delay = min(delay * 2, _MAX_POLL)


def busy_lock_message(session_id: str, wait: Seconds) -> str:
    return f"session {session_id!r}: lock still held by another owner after waiting {wait:g} s"


def busy_route_message(route_key: str, session_id: str, wait: Seconds) -> str:
    return f"route {route_key!r}: {busy_lock_message(session_id, wait)}"


async def wait_for_lock(
    try_once: Callable[[], Awaitable[Lock | None]], *, session_id: str, wait: Seconds
) -> Lock:
    """Call ``try_once`` until it returns a lock, backing off from 1 ms to 25 ms, for at most ``wait``."""

    deadline = time.monotonic() + wait
    delay = _FIRST_POLL
    while True:
        lock = await try_once()
        if lock is not None:
            return lock
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise LockTimeoutError(busy_lock_message(session_id, wait))
        await asyncio.sleep(min(delay, remaining))
        delay = min(delay * 2, _MAX_POLL)


def dumps(value: JSONObject) -> str:
    """Serialise a snapshot or command compactly; refuse values JSON cannot carry."""
    try:
        return orjson.dumps(value).decode()
    except TypeError as exc:
        raise StoreError(f"cannot store a value that is not JSON: {exc}") from exc


def snapshot_text(snapshot: SnapshotData) -> bytes | str:
    """A snapshot as the stores keep it: JSON text. Encoded text is kept as it is (after a check of its
    first character: the runtime encodes its snapshots once, and decoding them here to check would cost
    what that saves); an object is serialised."""
    if isinstance(snapshot, dict):
        return dumps(snapshot)
    if isinstance(snapshot, bytes | str) and snapshot[:1] in (b"{", "{"):
        return snapshot
    raise ValueError(f"a snapshot must be a JSON object or its JSON text, got {str(snapshot)[:40]!r}")


def loads_object(text: str | bytes, what: str) -> JSONObject:
    """Decode a stored JSON object, naming ``what`` if the stored text is corrupt."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise StoreError(f"{what}: stored JSON is corrupt: {exc}") from exc
    if not isinstance(value, dict):
        raise StoreError(f"{what}: stored JSON is a {type(value).__name__}, expected an object")
    return value


def check_changes(session_id: str, outbox: Sequence[OutboxEntry], timers_set: Mapping[str, Seconds]) -> None:
    """Refuse a commit's outbox ids repeated within it and timer times that are not finite numbers."""
    if len(outbox) > 1:  # nearly every commit has one entry or none
        ids = [entry.id for entry in outbox]
        if len(set(ids)) != len(ids):
            repeated = sorted({entry_id for entry_id in ids if ids.count(entry_id) > 1})
            raise ValueError(f"session {session_id!r}: outbox ids repeated within one commit: {repeated!r}")
    for key, due in timers_set.items():
        if isinstance(due, bool) or not isinstance(due, int | float) or not math.isfinite(due):
            raise ValueError(
                f"session {session_id!r}: timer {key!r} due time must be a finite number, got {due!r}"
            )


def check_ttl(name: str, value: Seconds) -> None:
    """Refuse a non-positive duration with a message naming the parameter."""
    if not value > 0:
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
