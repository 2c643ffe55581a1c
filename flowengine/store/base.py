"""The one interface every session store implements, and the records it hands back.

A store keeps, per session id, the runtime's snapshot (opaque JSON), a version, and the *outbox*: the
commands that handling an event decided on and that have not been executed yet. Around that it keeps the
index from route keys (``call:c-123``, ``conv:+1555...:+1666...``) to sessions, the session timers, the
de-duplication keys of callbacks already handled, and a per-session lock with an expiry and a fencing token.

Handling one event is, with any store::

    lock, record = await store.begin(session_id, owner=instance_id)  # acquire + load; waits, then
    try:                                                             # LockTimeoutError after `wait`
        commands = session.handle(event, now)                        # pure; record is None if new
        await store.commit(lock, snapshot=..., outbox=entries,       # ONE atomic write; StaleLockError
                           routes=..., timers_set=..., timers_cancel=...,   # if the lock was lost,
                           dedup_key=dedup_key, ended=...)           # DuplicateEventError if handled
        for entry in entries[:-1]:
            execute(entry.command)                                   # still holding the lock
            await store.mark_done(session_id, [entry.id])
        execute(entries[-1].command)
    finally:
        await store.finish(lock, done=[entries[-1].id])              # mark_done + release

(``acquire`` + ``load``, and ``mark_done`` + ``release``, are the same operations one round trip at a time.)
A callback names its session by a route key: ``begin_route(route_key, owner=...)`` is ``lookup`` + ``begin``
in one round trip, and ``None`` when the key leads to no session yet (start one).
When executing an entry produces a result the session must hear of, the result is handled like an event and
committed with ``done=[that entry's id]``: the new state, the new entries and the removal of the executed one
are one write.

A crash anywhere in there loses nothing: before ``commit`` nothing happened (the API retries the callback);
after it, the outbox is still pending and ``pending_outboxes()`` lists it at the next start-up (take the
session's lock, ``load`` it, execute ``record.outbox``, ``mark_done``). An entry may then run twice if the
crash came between executing it and the write that marks it done; as long as every executed entry is marked
done before the next one is executed (as above), that is at most one entry per session, and the ids let the
executor make it idempotent.

Timers fire exactly once across instances: ``due_timers(now)`` lists candidates, ``claim_timer`` lets exactly
one caller have each, for a *lease*. The claimer handles the timer event like any other and passes the
timer's key in ``timers_cancel`` with ``dedup_key=timer.dedup_key``; if it dies first, the lease runs out
and the timer is listed again (same key, same due, same dedup key), so another instance fires it, and if
the first one did commit after all, the second commit is refused as a duplicate.

Start a brand-new session under a session id derived from the first event's route key (e.g. from the call
id), so that two instances receiving that first event at once serialise on the same lock.

Every failure of the backend is a :class:`~flowengine.errors.StoreError`, never a driver's exception; a store
recovers by itself once its backend is back (the next call simply works again).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from flowengine.typing import JSONObject, Seconds, SnapshotData

DEFAULT_LOCK_TTL: Seconds = 30.0
"""How long a lock lives unless renewed; an instance that dies holding it blocks its call this long at most."""

EXTEND_BELOW = 0.9
"""A commit extends its lock to the lock's ``ttl`` from now when less than this share of the ``ttl`` is left.

So after a commit at least this share is left, and a commit made soon after the lock was taken or extended
(a callback's, milliseconds later) need not write the lock again: with SQLite, one page less per callback."""

DEFAULT_LOCK_WAIT: Seconds = 10.0
"""How long ``acquire`` waits for a busy lock before raising ``LockTimeoutError``."""

DEFAULT_RETENTION: Seconds = 24 * 3600.0
"""How long an ended session stays loadable (for the executions API and late callbacks)."""

DEFAULT_DEDUP_TTL: Seconds = 24 * 3600.0
"""How long the de-duplication key of a handled callback is remembered."""

DEFAULT_TIMER_LEASE: Seconds = 30.0
"""How long a claimed timer stays hidden from other instances before it is due again."""


@dataclass(slots=True)  # not frozen: one per callback, and a frozen one costs 5x as much to make
class OutboxEntry:
    """One command decided on but not yet executed.

    ``id`` is unique within its session (e.g. ``"<version>.<index>"``); ``command`` is the JSON record the
    executor understands. The store never looks inside ``command``.
    """

    id: str
    command: JSONObject


@dataclass(slots=True)  # not frozen: one per callback, and a frozen one costs 5x as much to make
class SessionRecord:
    """What a store holds for one session.

    ``snapshot_json`` is the snapshot as stored (JSON text, bytes or str), ``snapshot`` the same decoded;
    ``version`` counts the commits (1 after the first); ``outbox`` lists the pending entries in the order
    they were committed; ``ended_at`` is the time the session ended, or ``None`` while it is live.
    """

    session_id: str
    snapshot_json: bytes | str
    version: int
    outbox: tuple[OutboxEntry, ...]
    updated_at: Seconds
    ended_at: Seconds | None = None

    @property
    def snapshot(self) -> JSONObject:
        """The snapshot as a JSON object (decoded at each access; the object is the caller's).

        Raises:
            StoreError: the stored text is not a JSON object (corrupt).
        """
        from flowengine.store._common import loads_object  # _common imports this module

        return loads_object(self.snapshot_json, f"session {self.session_id!r} snapshot")

    @property
    def ended(self) -> bool:
        return self.ended_at is not None


@dataclass(slots=True)  # not frozen: one per callback, and a frozen one costs 5x as much to make
class Lock:
    """Proof of holding a session's lock.

    ``token`` is the fencing token: it grows with every acquisition on the store's backend, and a commit
    carrying a token older than the session's latest is refused with ``StaleLockError``.
    """

    session_id: str
    owner: str
    token: int
    ttl: Seconds


@dataclass(frozen=True, slots=True)
class Timer:
    """A session timer: fires as the event for ``key`` once the clock reaches ``due``."""

    session_id: str
    key: str
    due: Seconds

    @property
    def dedup_key(self) -> str:
        """The de-duplication key for handling this timer: the same each time it is listed again after a
        lapsed claim, different once the timer is set anew (a new ``due``)."""
        return f"timer:{self.session_id}:{self.key}:{self.due!r}"


@dataclass(frozen=True, slots=True)
class PendingOutbox:
    """A session whose committed commands were not all marked done (listed at start-up recovery)."""

    session_id: str
    entries: tuple[OutboxEntry, ...]


@runtime_checkable
class Store(Protocol):
    """Session state shared by every instance of the engine. All methods raise ``StoreError`` on failure."""

    @property
    def description(self) -> str:
        """The store's URL with any password removed, for logs and ``/readyz``."""
        ...

    async def close(self) -> None:
        """Release connections; the store must not be used afterwards."""
        ...

    async def ping(self) -> None:
        """Raise ``StoreError`` unless the backend answers now (for readiness checks)."""
        ...

    async def acquire(
        self,
        session_id: str,
        *,
        owner: str,
        ttl: Seconds = DEFAULT_LOCK_TTL,
        wait: Seconds = DEFAULT_LOCK_WAIT,
    ) -> Lock:
        """Take the session's lock, waiting up to ``wait`` seconds for a holder to release it or expire.

        The session need not exist yet. Raises ``LockTimeoutError`` when the wait runs out.
        """
        ...

    async def begin(
        self,
        session_id: str,
        *,
        owner: str,
        ttl: Seconds = DEFAULT_LOCK_TTL,
        wait: Seconds = DEFAULT_LOCK_WAIT,
    ) -> tuple[Lock, SessionRecord | None]:
        """``acquire`` then ``load``, as one round trip per attempt: the lock and the session as it is under it.

        Waits like ``acquire`` (raises ``LockTimeoutError`` when ``wait`` runs out); the record is ``None``
        when ``load`` would return ``None``.
        """
        ...

    async def begin_route(
        self,
        route_key: str,
        *,
        owner: str,
        ttl: Seconds = DEFAULT_LOCK_TTL,
        wait: Seconds = DEFAULT_LOCK_WAIT,
    ) -> tuple[str, Lock, SessionRecord | None] | None:
        """``lookup`` then ``begin`` on the session found, as one round trip per attempt.

        Returns the session id the route key leads to, its lock and the session as it is under the lock; or
        ``None``, with nothing locked, when ``lookup`` would return ``None``. While the lock is busy the route
        is read again at every attempt, so if the key moves to another session meanwhile, the result names
        the session the key leads to when the lock is taken (and ``None`` if it then leads nowhere). Waits
        like ``acquire``; ``LockTimeoutError`` names the session whose lock stayed busy.
        """
        ...

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
        """Start a new session: ``begin`` finding no record, then its first ``commit``, as one round trip.

        Returns the session's lock, held for ``ttl`` from now, with the commit written (version 1). Returns
        ``None``, having written and locked nothing, when the session exists (as ``load`` would return it,
        ended within the retention included) or its lock is held: the caller then goes the long way,
        ``begin`` (which waits for the lock) and ``commit``. Never waits.

        Raises:
            DuplicateEventError: ``dedup_key`` was already committed (nothing is written or locked).
        """
        ...

    async def renew(self, lock: Lock, *, ttl: Seconds = DEFAULT_LOCK_TTL) -> Lock:
        """Extend a held lock to ``ttl`` from now. Raises ``StaleLockError`` if it was lost."""
        ...

    async def release(self, lock: Lock) -> None:
        """Give the lock up. Releasing a lock that was lost (expired, taken) is silently a no-op."""
        ...

    async def load(self, session_id: str) -> SessionRecord | None:
        """The session, or ``None`` if it never existed or ended longer than the retention ago."""
        ...

    async def lookup(self, route_key: str) -> str | None:
        """The session id a route key was indexed to, or ``None``."""
        ...

    async def seen(self, dedup_key: str) -> bool:
        """Whether a commit carried this de-duplication key within the dedup time-to-live."""
        ...

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
        """Write the result of handling one event, all or nothing; return the session's new version.

        A successful commit also leaves the lock at least ``EXTEND_BELOW`` of its ``ttl`` from expiring:
        it extends the lock to its ``ttl`` from now (as ``renew`` would) when less is left. Or it releases
        the lock, with ``release``.

        Args:
            lock: the session's lock, from ``acquire``; names the session.
            snapshot: the session's new snapshot (replaces the old one): a JSON object, or one already
                encoded as JSON text, stored as it is (``SessionRecord.snapshot_json`` gives it back).
            outbox: entries *appended* to the session's pending outbox (an entry with an id already pending
                replaces it).
            routes: route keys to point at this session (a key pointing elsewhere is moved here).
            unroutes: route keys to remove, if they point at this session.
            timers_set: timer key -> due time; sets or moves the session's timer of that key.
            timers_cancel: timer keys to remove (applied before ``timers_set``, so a key can be re-armed).
            dedup_key: the handled event's de-duplication key, remembered for the dedup time-to-live.
            ended: the session is over: its timers are dropped, and it (with its route keys) is kept for
                the retention only. Once ended, a session stays ended.
            done: ids of executed entries to remove from the pending outbox (as ``mark_done``), before
                ``outbox`` is appended; unknown ids are ignored. A refused commit removes none.
            release: give the lock up once the commit is written, as ``release`` would right after it
                (one round trip less for the last write of an event); a refused commit keeps it.

        Raises:
            StaleLockError: another owner has acquired the lock since ``lock`` was taken.
            DuplicateEventError: ``dedup_key`` was already committed (nothing is written).
        """
        ...

    async def mark_done(self, session_id: str, outbox_ids: Iterable[str]) -> None:
        """Remove executed entries from the session's outbox (unknown ids are ignored)."""
        ...

    async def finish(self, lock: Lock, done: Iterable[str]) -> None:
        """``mark_done(lock.session_id, done)`` then ``release(lock)``, as one round trip.

        As with ``release``, a lock that was lost is left alone without an error; the ``done`` ids are
        removed all the same (their entries were executed).
        """
        ...

    async def pending_outboxes(self) -> list[PendingOutbox]:
        """Every session with outbox entries not marked done, for start-up recovery."""
        ...

    async def due_timers(self, now: Seconds, *, limit: int = 100) -> list[Timer]:
        """Up to ``limit`` timers due at ``now`` and not claimed under a running lease, earliest first.

        A timer whose claim's lease ran out is listed again, unchanged (its ``due`` is the time it was set for).
        """
        ...

    async def claim_timer(self, timer: Timer, *, now: Seconds, lease: Seconds = DEFAULT_TIMER_LEASE) -> bool:
        """Claim a timer from ``due_timers``; exactly one of any number of concurrent claimers gets True.

        A claimed timer is hidden until ``now + lease``; commit with its key in ``timers_cancel`` to finish
        it. Returns False if it was claimed (lease still running), moved or cancelled since it was listed.
        """
        ...

    async def list_sessions(self, *, limit: int = 100) -> list[SessionRecord]:
        """Up to ``limit`` sessions (live, or ended within the retention), most recently updated first."""
        ...

    async def purge(self) -> int:
        """Delete what outlived its retention or time-to-live; return how many sessions went.

        Expired data is already invisible to every other method; this only reclaims space. Call it now
        and then (e.g. every minute).
        """
        ...


@runtime_checkable
class FinishesInOrder(Protocol):
    """What a store offers when it applies operations in the order they are called, awaited or not.

    The memory store (synchronous) and the SQLite store (one FIFO queue to its thread) do; the Redis store
    does not (its batches go out on several connections at once). With it, the dispatcher does not wait for
    the last write of an event: the next event of the same session is already queued behind it.
    """

    def finish_soon(self, lock: Lock, done: Iterable[str]) -> asyncio.Future[None] | None:
        """``finish``, started now and not waited for: every operation called after this returns runs after it.

        Returns None when it is done already, or the future of its outcome (``StoreError`` when it failed).
        Raises ``StoreError`` at once when it cannot even be started (the store is closed).
        """
        ...


@runtime_checkable
class Advances(Protocol):
    """What a store offers when it can move a session on by one event in a single round trip.

    The SQLite store does (each of its round trips is a wait for its thread's next batch), and so does the
    Redis store (one script call over the network fewer). The dispatcher then handles most events from the
    session as it last committed it, and calls this instead of ``begin_route`` and ``commit``; the store
    refuses, writing nothing, if the session changed meanwhile. The memory store gains nothing from it.
    """

    async def advance(
        self,
        route_key: str,
        session_id: str,
        *,
        version: int,
        owner: str,
        snapshot: SnapshotData,
        ttl: Seconds = DEFAULT_LOCK_TTL,
        outbox: Sequence[OutboxEntry] = (),
        routes: Iterable[str] = (),
        timers_set: Mapping[str, Seconds] | None = None,
        timers_cancel: Iterable[str] = (),
        dedup_key: str | None = None,
        ended: bool = False,
    ) -> Lock | None:
        """Take the session's lock and commit its next step, if nothing changed since ``version``.

        Does what ``begin_route(route_key)`` then ``commit`` would, in one round trip, when ``route_key``
        still leads to ``session_id``, the session is live and still at ``version``, and its lock is free.
        Returns the lock, held for ``ttl`` from now, with the commit written (version ``version + 1``).
        Returns ``None``, having written and locked nothing, otherwise: the caller then goes the long way.
        Never waits.

        Raises:
            DuplicateEventError: ``dedup_key`` was already committed (nothing is written or locked).
        """
        ...
