"""An in-process store: dictionaries behind the ``Store`` interface, for tests and single-process trials.

Several ``MemoryStore`` objects may share one ``MemoryBackend`` to play several engine instances in one
process. Nothing survives the process.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from flowengine.errors import DuplicateEventError, StaleLockError, StoreError
from flowengine.store._common import (
    BUSY,
    Busy,
    busy_route_message,
    check_changes,
    check_ttl,
    dumps,
    loads_object,
    snapshot_text,
    wait_for,
    wait_for_lock,
)
from flowengine.store.base import (
    DEFAULT_DEDUP_TTL,
    DEFAULT_LOCK_TTL,
    DEFAULT_LOCK_WAIT,
    DEFAULT_RETENTION,
    DEFAULT_TIMER_LEASE,
    Lock,
    OutboxEntry,
    PendingOutbox,
    SessionRecord,
    Timer,
)
from flowengine.typing import Seconds, SnapshotData


@dataclass(slots=True)
class _Session:
    # Stored as JSON text, like the other stores, so callers never share mutable state with the store.
    snapshot: str
    version: int
    updated_at: Seconds
    ended_at: Seconds | None
    outbox: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class _LockState:
    owner: str
    token: int
    expires: Seconds


@dataclass(slots=True)
class MemoryBackend:
    """The data of a memory store; share one between stores to simulate several instances."""

    sessions: dict[str, _Session] = field(default_factory=dict)
    routes: dict[str, str] = field(default_factory=dict)
    timers: dict[str, dict[str, tuple[Seconds, Seconds]]] = field(default_factory=dict)
    """Session id -> key -> (due, fires_at): fires_at is due, or the end of a claim's lease."""
    timer_queue: list[tuple[Seconds, str, str, Seconds]] = field(default_factory=list)
    """A heap of (fires_at, session id, key, due), so that finding due timers does not look at every timer;
    entries that no longer match ``timers`` (cancelled, set again, claimed) are dropped when reached."""
    timer_queue_limit: int = 1024
    """Past this length the queue is rebuilt from ``timers``, shedding the entries that no longer match."""
    dedup: dict[str, Seconds] = field(default_factory=dict)
    """Dedup key -> expiry, in the order the keys were taken (so, with one time-to-live, of expiry)."""
    ended: dict[str, Seconds] = field(default_factory=dict)
    """Ended session id -> when it ended, in the order they ended: ``purge`` reads only the front."""
    locks: dict[str, _LockState] = field(default_factory=dict)
    tokens: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    available: bool = True
    """Set to False to make every operation fail like an unreachable backend (for failure tests)."""


class MemoryStore:
    """The ``Store`` interface over a ``MemoryBackend``; time comes from ``clock`` (wall time by default)."""

    def __init__(
        self,
        backend: MemoryBackend | None = None,
        *,
        retention: Seconds = DEFAULT_RETENTION,
        dedup_ttl: Seconds = DEFAULT_DEDUP_TTL,
        clock: Callable[[], Seconds] = time.time,
    ) -> None:
        check_ttl("retention", retention)
        check_ttl("dedup_ttl", dedup_ttl)
        self.backend = backend if backend is not None else MemoryBackend()
        self._retention = retention
        self._dedup_ttl = dedup_ttl
        self._clock = clock
        self._closed = False

    @property
    def description(self) -> str:
        return "memory"

    def _data(self) -> MemoryBackend:
        if self._closed:
            raise StoreError("memory store: used after close()")
        if not self.backend.available:
            raise StoreError("memory store: backend marked unavailable")
        return self.backend

    def _live(self, data: MemoryBackend, session_id: str, now: Seconds) -> _Session | None:
        session = data.sessions.get(session_id)
        if session is None or (session.ended_at is not None and session.ended_at + self._retention <= now):
            return None
        return session

    async def close(self) -> None:
        self._closed = True

    async def ping(self) -> None:
        self._data()

    async def acquire(
        self,
        session_id: str,
        *,
        owner: str,
        ttl: Seconds = DEFAULT_LOCK_TTL,
        wait: Seconds = DEFAULT_LOCK_WAIT,
    ) -> Lock:
        check_ttl("ttl", ttl)

        async def try_once() -> Lock | None:
            data = self._data()
            now = self._clock()
            held = data.locks.get(session_id)
            if held is not None and held.expires > now:
                return None
            token = next(data.tokens)
            data.locks[session_id] = _LockState(owner, token, now + ttl)
            return Lock(session_id, owner, token, ttl)

        return await wait_for_lock(try_once, session_id=session_id, wait=wait)

    async def begin(
        self,
        session_id: str,
        *,
        owner: str,
        ttl: Seconds = DEFAULT_LOCK_TTL,
        wait: Seconds = DEFAULT_LOCK_WAIT,
    ) -> tuple[Lock, SessionRecord | None]:
        lock = await self.acquire(session_id, owner=owner, ttl=ttl, wait=wait)
        return lock, await self.load(session_id)

    async def begin_route(
        self,
        route_key: str,
        *,
        owner: str,
        ttl: Seconds = DEFAULT_LOCK_TTL,
        wait: Seconds = DEFAULT_LOCK_WAIT,
    ) -> tuple[str, Lock, SessionRecord | None] | None:
        check_ttl("ttl", ttl)
        tried = [""]

        def try_now() -> tuple[str, Lock, SessionRecord | None] | Busy | None:
            data = self._data()
            now = self._clock()
            session_id = data.routes.get(route_key)
            if session_id is None:
                return None
            session = self._live(data, session_id, now)
            if session is None:
                return None
            held = data.locks.get(session_id)
            if held is not None and held.expires > now:
                tried[0] = session_id
                return BUSY
            token = next(data.tokens)
            data.locks[session_id] = _LockState(owner, token, now + ttl)
            return session_id, Lock(session_id, owner, token, ttl), _record(session_id, session)

        first = try_now()  # nearly always free: no waiting machinery unless it is busy
        if not isinstance(first, Busy):
            return first

        async def try_once() -> tuple[str, Lock, SessionRecord | None] | Busy | None:
            return try_now()

        return await wait_for(
            try_once, wait=wait, busy_message=lambda: busy_route_message(route_key, tried[0], wait)
        )

    async def create(
        self,
        session_id: str,
        *,
        owner: str,
        snapshot: SnapshotData,
        ttl: Seconds = DEFAULT_LOCK_TTL,
        outbox: Sequence[OutboxEntry] = (),
        routes: Iterable[str] = (),
        timers_set: Mapping[str, Seconds] | None = None,
        dedup_key: str | None = None,
        ended: bool = False,
    ) -> Lock | None:
        check_ttl("ttl", ttl)
        check_changes(session_id, outbox, timers_set or {})
        data = self._data()
        now = self._clock()
        if self._live(data, session_id, now) is not None:
            return None
        held = data.locks.get(session_id)
        if held is not None and held.expires > now:
            return None
        if dedup_key is not None and data.dedup.get(dedup_key, 0.0) > now:
            raise DuplicateEventError(f"session {session_id!r}: event {dedup_key!r} was already handled")
        token = next(data.tokens)
        data.locks[session_id] = _LockState(owner, token, now + ttl)
        lock = Lock(session_id, owner, token, ttl)
        # Cannot be refused now: the lock is this one and the dedup key is free (nothing runs in between).
        # This class's own commit, not an override's: to a subclass counting round trips, this is one.
        await MemoryStore.commit(
            self,
            lock,
            snapshot=snapshot,
            outbox=outbox,
            routes=routes,
            timers_set=timers_set,
            dedup_key=dedup_key,
            ended=ended,
        )
        return lock

    def _check_fence(self, data: MemoryBackend, lock: Lock) -> _LockState:
        held = data.locks.get(lock.session_id)
        if held is None or held.token != lock.token:
            message = f"session {lock.session_id!r}: lock token {lock.token} of {lock.owner!r} is stale"
            raise StaleLockError(message + "; another owner took the session after it expired")
        return held

    async def renew(self, lock: Lock, *, ttl: Seconds = DEFAULT_LOCK_TTL) -> Lock:
        check_ttl("ttl", ttl)
        data = self._data()
        held = self._check_fence(data, lock)
        held.expires = self._clock() + ttl
        return Lock(lock.session_id, lock.owner, lock.token, ttl)

    async def release(self, lock: Lock) -> None:
        data = self._data()
        held = data.locks.get(lock.session_id)
        if held is not None and held.token == lock.token:
            # Forgotten, not kept: a stale holder is still refused (no lock state is a stale token), and
            # 100,000 idle sessions do not keep 100,000 released locks.
            del data.locks[lock.session_id]

    async def load(self, session_id: str) -> SessionRecord | None:
        session = self._live(self._data(), session_id, self._clock())
        if session is None:
            return None
        return _record(session_id, session)

    async def lookup(self, route_key: str) -> str | None:
        data = self._data()
        session_id = data.routes.get(route_key)
        if session_id is None or self._live(data, session_id, self._clock()) is None:
            return None
        return session_id

    async def seen(self, dedup_key: str) -> bool:
        expires = self._data().dedup.get(dedup_key)
        return expires is not None and expires > self._clock()

    async def commit(
        self,
        lock: Lock,
        *,
        snapshot: SnapshotData,
        outbox: Sequence[OutboxEntry] = (),
        routes: Iterable[str] = (),
        unroutes: Iterable[str] = (),
        timers_set: Mapping[str, Seconds] | None = None,
        timers_cancel: Iterable[str] = (),
        dedup_key: str | None = None,
        ended: bool = False,
        done: Iterable[str] = (),
        release: bool = False,
    ) -> int:
        check_changes(lock.session_id, outbox, timers_set or {})
        done_ids = list(done)
        data = self._data()
        now = self._clock()
        held = self._check_fence(data, lock)
        stored = snapshot_text(snapshot)
        if isinstance(stored, bytes):
            # Kept as str: bytes from orjson hold on to its whole write buffer (about 4 KB each), which made
            # 100,000 idle sessions take 959 MiB instead of about 270.
            stored = stored.decode()
        entries = [(entry.id, dumps(entry.command)) for entry in outbox]
        if dedup_key is not None and data.dedup.get(dedup_key, 0.0) > now:
            raise DuplicateEventError(f"session {lock.session_id!r}: event {dedup_key!r} was already handled")
        sid = lock.session_id
        session = self._live(data, sid, now)
        if session is None:
            session = data.sessions[sid] = _Session(stored, 1, now, now if ended else None)
            data.ended.pop(sid, None)  # a record past its retention, replaced
            newly_ended = ended
        else:
            # Updated in place: records handed out hold copies (the snapshot text, decoded outbox entries).
            newly_ended = ended and session.ended_at is None
            if newly_ended:
                session.ended_at = now
            session.snapshot = stored
            session.version += 1
            session.updated_at = now
        pending = session.outbox
        for entry_id in done_ids:
            pending.pop(entry_id, None)
        for entry_id, command in entries:
            pending.pop(entry_id, None)
            pending[entry_id] = command
        for key in unroutes:
            if data.routes.get(key) == sid:
                del data.routes[key]
        for key in routes:
            data.routes[key] = sid
        if timers_cancel:
            keys = data.timers.get(sid)
            if keys is not None:
                for key in timers_cancel:
                    keys.pop(key, None)
                if not keys:
                    del data.timers[sid]
        for key, due in (timers_set or {}).items():
            _set_timer(data, sid, key, float(due), float(due))
        if session.ended_at is not None and (newly_ended or timers_set):
            # Once ended, a session keeps no timers (after that only a commit setting some can add any).
            data.timers.pop(sid, None)
        if newly_ended:
            data.ended[sid] = now
        if dedup_key is not None:
            data.dedup.pop(dedup_key, None)  # an expired key taken again moves to the end
            data.dedup[dedup_key] = now + self._dedup_ttl
        if release:
            del data.locks[sid]
        else:
            held.expires = now + lock.ttl
        return session.version

    async def mark_done(self, session_id: str, outbox_ids: Iterable[str]) -> None:
        _remove(self._data(), session_id, outbox_ids)

    async def finish(self, lock: Lock, done: Iterable[str]) -> None:
        self._finish(lock, done)

    def finish_soon(self, lock: Lock, done: Iterable[str]) -> None:
        """``finish``, done before this returns (``FinishesInOrder``)."""
        self._finish(lock, done)

    def _finish(self, lock: Lock, done: Iterable[str]) -> None:
        data = self._data()
        _remove(data, lock.session_id, done)
        held = data.locks.get(lock.session_id)
        if held is not None and held.token == lock.token:
            del data.locks[lock.session_id]

    async def pending_outboxes(self) -> list[PendingOutbox]:
        data = self._data()
        now = self._clock()
        pending = [
            (sid, session)
            for sid, session in data.sessions.items()
            if session.outbox and self._live(data, sid, now) is not None
        ]
        return [PendingOutbox(sid, _entries(sid, session)) for sid, session in sorted(pending)]

    async def due_timers(self, now: Seconds, *, limit: int = 100) -> list[Timer]:
        data = self._data()
        queue, timers = data.timer_queue, data.timers
        ready: list[tuple[Seconds, str, str, Seconds]] = []
        taken: set[tuple[str, str]] = set()
        while queue and queue[0][0] <= now and len(ready) < limit:
            entry = heapq.heappop(queue)
            fires_at, sid, key, due = entry
            keys = timers.get(sid)
            if keys is not None and keys.get(key) == (due, fires_at) and (sid, key) not in taken:
                taken.add((sid, key))
                ready.append(entry)
        for entry in ready:  # due, not claimed: they stay
            heapq.heappush(queue, entry)
        return [Timer(sid, key, due) for _, sid, key, due in ready]

    async def claim_timer(self, timer: Timer, *, now: Seconds, lease: Seconds = DEFAULT_TIMER_LEASE) -> bool:
        check_ttl("lease", lease)
        data = self._data()
        keys = data.timers.get(timer.session_id)
        due, fires_at = keys.get(timer.key, (None, now + 1)) if keys is not None else (None, now + 1)
        if due != timer.due or fires_at > now:
            return False
        _set_timer(data, timer.session_id, timer.key, timer.due, now + lease)
        return True

    async def list_sessions(self, *, limit: int = 100) -> list[SessionRecord]:
        data = self._data()
        now = self._clock()
        live = [(s.updated_at, sid, s) for sid, s in data.sessions.items() if self._live(data, sid, now)]
        live.sort(key=lambda item: (-item[0], item[1]))
        return [_record(sid, session) for _, sid, session in live[:limit]]

    async def purge(self) -> int:
        """Forget sessions past their retention and expired dedup keys.

        Both are read from the front of their ordered dicts only, up to the first one still kept, so a
        purge (every 30 s in ``flowengine serve``) does not walk every session and key on the event loop.
        Entries out of order (stores with different settings sharing a backend, a clock set back) are
        then purged late, never early.
        """
        data = self._data()
        now = self._clock()
        gone = []
        for sid, ended_at in data.ended.items():
            if ended_at + self._retention > now:
                break
            gone.append(sid)
        for sid in gone:
            del data.ended[sid]
            data.sessions.pop(sid, None)
            data.locks.pop(sid, None)
            data.timers.pop(sid, None)
        if gone:
            gone_set = set(gone)
            for key in [k for k, sid in data.routes.items() if sid in gone_set]:
                del data.routes[key]
        expired = []
        for key, expires in data.dedup.items():
            if expires > now:
                break
            expired.append(key)
        for key in expired:
            del data.dedup[key]
        for sid in [
            sid for sid, held in data.locks.items() if held.expires <= now and sid not in data.sessions
        ]:
            # A lock of a session that was never committed; nobody can hold a fence on it any more.
            del data.locks[sid]
        return len(gone)


def _set_timer(data: MemoryBackend, session_id: str, key: str, due: Seconds, fires_at: Seconds) -> None:
    data.timers.setdefault(session_id, {})[key] = (due, fires_at)
    queue = data.timer_queue
    heapq.heappush(queue, (fires_at, session_id, key, due))
    if len(queue) > data.timer_queue_limit:
        queue[:] = [
            (live_fires_at, sid, live_key, live_due)
            for sid, keys in data.timers.items()
            for live_key, (live_due, live_fires_at) in keys.items()
        ]
        heapq.heapify(queue)
        data.timer_queue_limit = 2 * len(queue) + 1024


def _remove(data: MemoryBackend, session_id: str, outbox_ids: Iterable[str]) -> None:
    session = data.sessions.get(session_id)
    if session is not None:
        for entry_id in outbox_ids:
            session.outbox.pop(entry_id, None)


def _entries(session_id: str, session: _Session) -> tuple[OutboxEntry, ...]:
    return tuple(
        OutboxEntry(entry_id, loads_object(command, f"session {session_id!r} outbox {entry_id!r}"))
        for entry_id, command in session.outbox.items()
    )


def _record(session_id: str, session: _Session) -> SessionRecord:
    return SessionRecord(
        session_id=session_id,
        snapshot_json=session.snapshot,
        version=session.version,
        outbox=_entries(session_id, session),
        updated_at=session.updated_at,
        ended_at=session.ended_at,
    )
