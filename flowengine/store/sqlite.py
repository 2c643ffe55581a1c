"""The default store: one SQLite file in WAL mode, one transaction per operation, off the event loop.

Each operation runs as ONE job on the store's own worker thread (stdlib ``sqlite3``), so a commit costs one
hop between the event loop and the thread, not one per SQL statement as with aiosqlite (measured with
``benchmarks/store_bench.py``: about six times the events per second). Operations asked for while the worker
is busy are queued and then run as one batch in one transaction (group commit): one hop and one commit for
all of them, and each caller still gets its own result or exception (see ``SQLiteStore._run_batch``).

Several processes may open the same file (SQLite's own locking serialises writers), which is how two
instances on one machine share sessions. The file is checked on every operation: if it disappears or is
replaced (a volume unmounted, a directory moved), the connection is dropped, operations raise
``StoreError``, and the next operation after the file is back reconnects by itself.

Checkpoints (copying the WAL back into the database file) run on a thread of their own
(``sqlite_checkpoint``), not inside the commits, so no batch waits for one.

``synchronous=NORMAL``: in WAL mode a committed transaction survives the process being killed at any point;
only a power loss may roll back the last few commits (never corrupt the file).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar, cast

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
    EXTEND_BELOW,
    Lock,
    OutboxEntry,
    PendingOutbox,
    SessionRecord,
    Timer,
)
from flowengine.store.sqlite_checkpoint import (
    DEFAULT_INTERVAL,
    WRITER_AUTOCHECKPOINT,
    Checkpointer,
    file_identity,
)
from flowengine.typing import Seconds, SnapshotData

T = TypeVar("T")

_Job = tuple[Callable[[sqlite3.Cursor], Any], bool]
"""Work for the worker thread, and whether it writes."""
_Queued = tuple[Callable[[sqlite3.Cursor], Any], bool, "asyncio.Future[Any]"]
_Outcome = tuple[bool, Any]
"""(True, the job's result) or (False, the exception it raised)."""

SCHEMA_VERSION = 1

_LOCK_SLICE = 2000
"""Lock rows looked at by one purge for locks of sessions that were never committed."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (name, value) VALUES ('schema', 1), ('fence', 0);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    snapshot TEXT NOT NULL,
    version INTEGER NOT NULL,
    updated_at REAL NOT NULL,
    ended_at REAL
);
CREATE INDEX IF NOT EXISTS sessions_by_update ON sessions (updated_at);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL,
    id TEXT NOT NULL,
    command TEXT NOT NULL,
    UNIQUE (session_id, id)
);
CREATE TABLE IF NOT EXISTS routes (key TEXT PRIMARY KEY, session_id TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS routes_by_session ON routes (session_id);
CREATE TABLE IF NOT EXISTS timers (
    session_id TEXT NOT NULL,
    key TEXT NOT NULL,
    due REAL NOT NULL,
    fires_at REAL NOT NULL,
    PRIMARY KEY (session_id, key)
);
CREATE INDEX IF NOT EXISTS timers_by_firing ON timers (fires_at);
CREATE TABLE IF NOT EXISTS dedup (key TEXT PRIMARY KEY, expires_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS dedup_by_expiry ON dedup (expires_at);
CREATE INDEX IF NOT EXISTS sessions_by_end ON sessions (ended_at) WHERE ended_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS locks (
    session_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    token INTEGER NOT NULL,
    expires_at REAL NOT NULL
);
"""

# A session is visible while live, or ended less than the retention ago (parameter: now - retention).
_VISIBLE = "(ended_at IS NULL OR ended_at > ?)"


def _bindable(text: str | bytes) -> str | bytearray:
    """JSON text as ``sqlite3`` binds it without adapting it first.

    It binds ``str``, ``int``, ``float`` and ``bytearray`` at once; ``bytes`` and ``None`` go through its
    adaptation protocol, a dictionary lookup and two failed attribute lookups, which cost ten times a copy
    of a 1 KiB snapshot into a ``bytearray``. Either way the value is stored as the same BLOB.
    """
    return bytearray(text) if isinstance(text, bytes) else text


def _entry(session_id: str, entry_id: str, command: str) -> OutboxEntry:
    """An outbox row as an entry; ``StoreError`` naming it when its stored command is corrupt."""
    return OutboxEntry(entry_id, loads_object(command, f"session {session_id!r} outbox {entry_id!r}"))


@dataclass(slots=True)
class _Changes:
    """A commit's changes as the rows its statements bind, prepared on the event loop (see ``_changes``)."""

    snapshot: str | bytes
    entries: list[tuple[str, str, str]]
    route_rows: list[tuple[str, str]]
    unroute_rows: list[tuple[str, str]]
    cancel_rows: list[tuple[str, str]]
    set_rows: list[tuple[str, str, float, float]]
    done_rows: list[tuple[str, str]]
    ended: bool


def _changes(
    sid: str,
    snapshot: SnapshotData,
    *,
    outbox: Sequence[OutboxEntry] = (),
    routes: Iterable[str] = (),
    unroutes: Iterable[str] = (),
    timers_set: Mapping[str, Seconds] | None = None,
    timers_cancel: Iterable[str] = (),
    done: Iterable[str] = (),
    ended: bool = False,
) -> _Changes:
    """Check a commit's changes (``ValueError`` naming the bad one) and turn them into rows."""
    check_changes(sid, outbox, timers_set or {})
    return _Changes(
        snapshot_text(snapshot),
        [(sid, entry.id, dumps(entry.command)) for entry in outbox],
        [(key, sid) for key in routes],
        [(key, sid) for key in unroutes],
        # A key cancelled and set again in one commit is simply overwritten by the set.
        [(sid, key) for key in timers_cancel if timers_set is None or key not in timers_set],
        [(sid, key, float(due), float(due)) for key, due in (timers_set or {}).items()],
        [(sid, entry_id) for entry_id in done],
        ended,
    )


class SQLiteStore:
    """The ``Store`` interface over one SQLite file. Create it with ``await SQLiteStore.open(path)``."""

    def __init__(
        self,
        path: str,
        *,
        retention: Seconds = DEFAULT_RETENTION,
        dedup_ttl: Seconds = DEFAULT_DEDUP_TTL,
        clock: Callable[[], Seconds] = time.time,
        checkpoint_interval: Seconds = DEFAULT_INTERVAL,
    ) -> None:
        check_ttl("retention", retention)
        check_ttl("dedup_ttl", dedup_ttl)
        self.path = path
        self._retention = retention
        self._dedup_ttl = dedup_ttl
        self._clock = clock
        # Touched only from the worker thread: the connection and the identity of the file it has open.
        self._conn: sqlite3.Connection | None = None
        self._db: sqlite3.Cursor | None = None  # the one cursor of ``_conn`` (see ``_cursor``)
        self._identity: tuple[int, int] | None = None
        # WAL checkpoints run on a thread of their own (see ``sqlite_checkpoint``), started with the first
        # connection.
        self._checkpointer = Checkpointer(path, interval=checkpoint_interval)
        self._lock_cursor = 0  # the rowid where the next purge resumes its walk of the locks (worker thread)
        # The fencing counter within the current write transaction (worker thread): read from ``meta`` by
        # the transaction's first lock taken, advanced in memory by each, written back once before COMMIT.
        self._fence_read: int | None = None
        self._fence = 0
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="flowengine-sqlite")
        self._closed = False
        # Event loop thread only: jobs waiting for the worker, and whether a batch of them is running.
        self._queued: list[_Queued] = []
        self._running = False
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    async def open(
        cls,
        path: str,
        *,
        retention: Seconds = DEFAULT_RETENTION,
        dedup_ttl: Seconds = DEFAULT_DEDUP_TTL,
        clock: Callable[[], Seconds] = time.time,
        checkpoint_interval: Seconds = DEFAULT_INTERVAL,
    ) -> SQLiteStore:
        """Open (creating if needed) the database file at ``path``; its directory must exist."""
        store = cls(
            path,
            retention=retention,
            dedup_ttl=dedup_ttl,
            clock=clock,
            checkpoint_interval=checkpoint_interval,
        )
        try:
            await store.ping()
        except StoreError:
            await store.close()
            raise
        return store

    @property
    def description(self) -> str:
        return f"sqlite://{self.path}"

    # -- connection handling (worker thread) ----------------------------------------------------------

    def _file_identity(self) -> tuple[int, int] | None:
        return file_identity(self.path)

    def _drop(self) -> None:
        conn, self._conn, self._db, self._identity = self._conn, None, None, None
        if conn is not None:
            # The connection is being discarded because it is broken already.
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def _cursor(self) -> sqlite3.Cursor:
        """The cursor every statement runs on, (re)connecting first if need be.

        One cursor for the connection's life: ``Connection.execute`` makes a new one per statement, which
        costs about as much as SQLite's own work for the simplest of them. Every job reads a statement's
        rows before it runs the next (the next ``execute`` resets the cursor's statement).
        """
        identity = self._file_identity()
        if self._db is not None and identity == self._identity:
            return self._db
        self._drop()
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):
            raise StoreError(f"{self.description}: directory {directory!r} does not exist (create it first)")
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA busy_timeout = 5000")
            # 2 KiB pages for a new file (an existing one keeps its own): a session row is about 1 KiB, and
            # every page a transaction touches is written whole to the WAL (and checksummed) at each commit.
            conn.execute("PRAGMA page_size = 2048")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            # 64 MiB of page cache (SQLite's default is 2 MiB): the pages of live sessions, their locks and
            # the dedup index stay cached instead of being read again from the file at every callback.
            conn.execute("PRAGMA cache_size = -65536")
            # Checkpoints are the checkpointer's; this connection only checkpoints if it falls far behind.
            conn.execute(f"PRAGMA wal_autocheckpoint = {WRITER_AUTOCHECKPOINT}")
            conn.executescript(_SCHEMA)
            row = conn.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()
            if row is None or row[0] != SCHEMA_VERSION:
                found = None if row is None else row[0]
                raise StoreError(
                    f"{self.description}: database schema version {found!r}, this flowengine uses "
                    f"{SCHEMA_VERSION}; use a new file or the flowengine version that wrote it"
                )
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self._db = conn.cursor()
        self._identity = self._file_identity()
        self._checkpointer.start()
        return self._db

    def _atomically(self, write: bool, body: Callable[[sqlite3.Cursor], T]) -> T:
        """``body`` in one transaction: committed, or rolled back (a fresh connection if even that fails)
        when it raises. SQLite's own errors propagate for the caller to turn into ``StoreError``."""
        db = self._cursor()
        db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        self._fence_read = None
        try:
            result = body(db)
            self._write_fence(db)
        except BaseException:
            try:
                db.execute("ROLLBACK")
            except sqlite3.Error:
                self._drop()
            raise
        db.execute("COMMIT")
        if write:
            self._checkpointer.written = True
        return result

    def _write_fence(self, db: sqlite3.Cursor) -> None:
        """Store the fencing counter if locks were taken in this transaction (see ``_try_lock``)."""
        if self._fence_read is not None and self._fence != self._fence_read:
            db.execute("UPDATE meta SET value = ? WHERE name = 'fence'", (self._fence,))

    def _run(self, work: Callable[[sqlite3.Cursor], T], write: bool) -> T:
        try:
            return self._atomically(write, work)
        except (sqlite3.Error, OSError) as exc:
            self._drop()
            raise StoreError(f"{self.description}: {exc}") from exc

    def _run_batch(self, jobs: Sequence[_Job]) -> list[_Outcome]:
        """Run several jobs in one transaction; one outcome per job.

        A job refusing (a stale lock, an event already handled, a corrupt record: a ``StoreError``) gets
        its exception and the others are committed together. Every job refuses, if at all, before its first
        write, so no job needs a savepoint of its own (two statements each). Should a job fail otherwise,
        perhaps after writing, nothing of the batch is committed and each job runs again in a transaction
        of its own, so that only that one fails. A failure of SQLite itself fails them all.
        """
        if len(jobs) == 1:
            return [self._run_alone(*jobs[0])]

        def each_in_turn(db: sqlite3.Cursor) -> list[_Outcome]:
            outcomes: list[_Outcome] = []
            for work, _ in jobs:
                try:
                    outcomes.append((True, work(db)))
                except StoreError as exc:
                    outcomes.append((False, exc))
            return outcomes

        try:
            return self._atomically(any(write for _, write in jobs), each_in_turn)
        except (sqlite3.Error, OSError) as exc:
            self._drop()
            failures: list[_Outcome] = []
            for _ in jobs:
                error = StoreError(f"{self.description}: {exc}")
                error.__cause__ = exc
                failures.append((False, error))
            return failures
        except Exception:
            return [self._run_alone(work, write) for work, write in jobs]

    def _run_alone(self, work: Callable[[sqlite3.Cursor], Any], write: bool) -> _Outcome:
        try:
            return (True, self._run(work, write))
        except Exception as exc:
            return (False, exc)

    async def _transaction(self, work: Callable[[sqlite3.Cursor], T], *, write: bool) -> T:
        """Run ``work`` in one transaction (a write one when ``write``) on the worker thread.

        Jobs asked for while the worker is busy are queued and then run together, in one transaction (see
        ``_run_batch``): one hop to the thread and one commit for all of them (group commit). ``work`` may
        raise a ``StoreError`` only before its first write (see ``_run_batch``).
        """
        return cast(T, await self._submit(work, write))

    def _submit(self, work: Callable[[sqlite3.Cursor], Any], write: bool) -> asyncio.Future[Any]:
        """Queue ``work`` now (jobs run in the order they are submitted); the future gets its outcome."""
        if self._closed:
            raise StoreError(f"{self.description}: used after close()")
        loop = self._loop
        if loop is None or not self._running:
            # Kept while a batch runs (it belongs to that loop): on Python 3.11 each get_running_loop() is
            # a getpid() system call, and this runs two or three times per callback.
            loop = self._loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queued.append((work, write, future))
        if not self._running:
            self._next_batch(loop)
        return future

    def _next_batch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Hand every queued job to the worker thread as one batch (event loop thread only)."""
        batch, self._queued = self._queued, []
        if self._closed:
            for *_, future in batch:
                if not future.done():
                    future.set_exception(StoreError(f"{self.description}: used after close()"))
            return
        self._running = True
        jobs = [(work, write) for work, write, _ in batch]
        running = loop.run_in_executor(self._worker, self._run_batch, jobs)
        running.add_done_callback(lambda done: self._batch_done(loop, batch, done))

    def _batch_done(
        self, loop: asyncio.AbstractEventLoop, batch: list[_Queued], done: asyncio.Future[list[_Outcome]]
    ) -> None:
        self._running = False
        if self._queued:
            self._next_batch(loop)
        failure = None if done.cancelled() else done.exception()
        if done.cancelled() or failure is not None:
            outcomes: list[_Outcome] = [(False, StoreError(f"{self.description}: {failure}")) for _ in batch]
        else:
            outcomes = done.result()
        for (*_, future), (ok, value) in zip(batch, outcomes, strict=True):
            if future.done():  # the caller was cancelled meanwhile
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    # -- the Store interface ------------------------------------------------------------------------

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._worker, self._close_connections)
        self._worker.shutdown(wait=False)

    def _close_connections(self) -> None:
        self._drop()
        self._checkpointer.stop()

    async def ping(self) -> None:
        def work(db: sqlite3.Cursor) -> None:
            db.execute("SELECT 1 FROM meta LIMIT 1")

        await self._transaction(work, write=False)

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
            return await self._transaction(lambda db: self._try_lock(db, session_id, owner, ttl), write=True)

        return await wait_for_lock(try_once, session_id=session_id, wait=wait)

    async def begin(
        self,
        session_id: str,
        *,
        owner: str,
        ttl: Seconds = DEFAULT_LOCK_TTL,
        wait: Seconds = DEFAULT_LOCK_WAIT,
    ) -> tuple[Lock, SessionRecord | None]:
        check_ttl("ttl", ttl)
        record: list[SessionRecord | None] = [None]

        def work(db: sqlite3.Cursor) -> Lock | None:
            # Read before locking (nothing else writes meanwhile): a corrupt record then raises before this
            # job has written anything (see _run_batch).
            found = self._load(db, session_id)
            lock = self._try_lock(db, session_id, owner, ttl)
            if lock is not None:
                record[0] = found
            return lock

        async def try_once() -> Lock | None:
            return await self._transaction(work, write=True)

        lock = await wait_for_lock(try_once, session_id=session_id, wait=wait)
        return lock, record[0]

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

        def work(db: sqlite3.Cursor) -> tuple[str, Lock, SessionRecord | None] | Busy | None:
            # The route and its session in one statement, read before locking as in ``begin``. (Its outbox,
            # LEFT JOINed in, saved no instructions: one statement less, but wider rows.)
            row = db.execute(
                "SELECT s.id, s.snapshot, s.version, s.updated_at, s.ended_at FROM routes r "
                f"JOIN sessions s ON s.id = r.session_id WHERE r.key = ? AND {_VISIBLE}",
                (route_key, self._clock() - self._retention),
            ).fetchone()
            if row is None:
                return None
            session_id = str(row[0])
            record = self._record(row, self._outbox(db, session_id))
            lock = self._try_lock(db, session_id, owner, ttl)
            if lock is None:
                tried[0] = session_id
                return BUSY
            return session_id, lock, record

        async def try_once() -> tuple[str, Lock, SessionRecord | None] | Busy | None:
            return await self._transaction(work, write=True)

        return await wait_for(
            try_once, wait=wait, busy_message=lambda: busy_route_message(route_key, tried[0], wait)
        )

    def _try_lock(self, db: sqlite3.Cursor, session_id: str, owner: str, ttl: Seconds) -> Lock | None:
        """Take the lock if it is free, released or expired, with the next fencing token; None when busy.

        One statement (an upsert that writes nothing when busy), plus the fence's read for the first lock
        of a transaction. No ``RETURNING``: SQLite builds a temporary table for each statement that has
        one. The fence itself is written once per transaction (``_atomically``).
        """
        now = self._clock()
        if self._fence_read is None:
            [(fence,)] = db.execute("SELECT value FROM meta WHERE name = 'fence'").fetchall()
            self._fence_read = self._fence = int(fence)
        token = self._fence + 1
        taken = db.execute(
            "INSERT INTO locks (session_id, owner, token, expires_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (session_id) DO UPDATE "
            "SET owner = excluded.owner, token = excluded.token, expires_at = excluded.expires_at "
            "WHERE locks.expires_at <= ?",
            (session_id, owner, token, now + ttl, now),
        )
        if taken.rowcount != 1:
            return None
        self._fence = token
        return Lock(session_id, owner, token, ttl)

    @staticmethod
    def _stale(lock: Lock) -> StaleLockError:
        return StaleLockError(
            f"session {lock.session_id!r}: lock token {lock.token} of {lock.owner!r} is stale; "
            "another owner took the session after it expired"
        )

    async def renew(self, lock: Lock, *, ttl: Seconds = DEFAULT_LOCK_TTL) -> Lock:
        check_ttl("ttl", ttl)

        def work(db: sqlite3.Cursor) -> None:
            renewed = db.execute(
                "UPDATE locks SET expires_at = ? WHERE session_id = ? AND token = ?",
                (self._clock() + ttl, lock.session_id, lock.token),
            )
            if renewed.rowcount != 1:
                raise self._stale(lock)

        await self._transaction(work, write=True)
        return Lock(lock.session_id, lock.owner, lock.token, ttl)

    async def release(self, lock: Lock) -> None:
        await self._transaction(lambda db: self._release(db, lock), write=True)

    @staticmethod
    def _release(db: sqlite3.Cursor, lock: Lock) -> None:
        # Keep the row and its token: a stale holder must still be refused after this release.
        db.execute(
            "UPDATE locks SET expires_at = 0 WHERE session_id = ? AND token = ?",
            (lock.session_id, lock.token),
        )

    @staticmethod
    def _outboxes(db: sqlite3.Cursor, session_ids: Sequence[str]) -> dict[str, list[OutboxEntry]]:
        found: dict[str, list[OutboxEntry]] = {sid: [] for sid in session_ids}
        if not session_ids:
            return found
        marks = ",".join("?" * len(session_ids))
        rows = db.execute(
            f"SELECT session_id, id, command FROM outbox WHERE session_id IN ({marks}) ORDER BY seq",
            tuple(session_ids),
        )
        for sid, entry_id, command in rows:
            found[sid].append(_entry(sid, entry_id, command))
        return found

    @staticmethod
    def _record(row: Sequence[Any], outbox: list[OutboxEntry]) -> SessionRecord:
        sid, snapshot, version, updated_at, ended_at = row
        return SessionRecord(
            session_id=sid,
            snapshot_json=snapshot,
            version=version,
            outbox=tuple(outbox),
            updated_at=updated_at,
            ended_at=ended_at,
        )

    async def load(self, session_id: str) -> SessionRecord | None:
        return await self._transaction(lambda db: self._load(db, session_id), write=False)

    def _load(self, db: sqlite3.Cursor, session_id: str) -> SessionRecord | None:
        row = db.execute(
            f"SELECT id, snapshot, version, updated_at, ended_at FROM sessions WHERE id = ? AND {_VISIBLE}",
            (session_id, self._clock() - self._retention),
        ).fetchone()
        if row is None:
            return None
        return self._record(row, self._outbox(db, session_id))

    @staticmethod
    def _outbox(db: sqlite3.Cursor, session_id: str) -> list[OutboxEntry]:
        rows = db.execute("SELECT id, command FROM outbox WHERE session_id = ? ORDER BY seq", (session_id,))
        return [_entry(session_id, entry_id, command) for entry_id, command in rows]

    async def lookup(self, route_key: str) -> str | None:
        return await self._transaction(lambda db: self._lookup(db, route_key), write=False)

    def _lookup(self, db: sqlite3.Cursor, route_key: str) -> str | None:
        row = db.execute(
            f"SELECT r.session_id FROM routes r JOIN sessions s ON s.id = r.session_id "
            f"WHERE r.key = ? AND {_VISIBLE}",
            (route_key, self._clock() - self._retention),
        ).fetchone()
        return None if row is None else str(row[0])

    async def seen(self, dedup_key: str) -> bool:
        return await self._transaction(lambda db: self._seen(db, dedup_key), write=False)

    def _seen(self, db: sqlite3.Cursor, dedup_key: str) -> bool:
        query = "SELECT 1 FROM dedup WHERE key = ? AND expires_at > ?"
        return db.execute(query, (dedup_key, self._clock())).fetchone() is not None

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
        sid = lock.session_id
        changes = _changes(
            sid,
            snapshot,
            outbox=outbox,
            routes=routes,
            unroutes=unroutes,
            timers_set=timers_set,
            timers_cancel=timers_cancel,
            done=done,
            ended=ended,
        )

        def work(db: sqlite3.Cursor) -> int:
            # The refusals come first, before anything is written (see _run_batch): a lost lock, then an
            # event handled already (the dedup key's upsert is that check).
            now = self._clock()
            # The lock and the session's version in one read, so that the session's update below needs no
            # ``RETURNING`` (SQLite builds a temporary table for each statement that has one).
            held = db.execute(
                "SELECT l.expires_at, s.version, s.ended_at FROM locks l LEFT JOIN sessions s "
                f"ON s.id = l.session_id AND {_VISIBLE} "
                "WHERE l.session_id = ? AND l.token = ?",
                (now - self._retention, sid, lock.token),
            ).fetchone()
            if held is None:
                raise self._stale(lock)
            if dedup_key is not None:
                self._take_dedup_key(db, sid, dedup_key, now)
            if release:  # given up with this write
                db.execute("DELETE FROM locks WHERE session_id = ? AND token = ?", (sid, lock.token))
            elif held[0] < now + lock.ttl * EXTEND_BELOW:
                # A lock taken or extended moments ago is left alone: its page is not written again.
                db.execute(
                    "UPDATE locks SET expires_at = ? WHERE session_id = ? AND token = ?",
                    (now + lock.ttl, sid, lock.token),
                )
            current = None if held[1] is None else (int(held[1]), held[2])
            return self._write_session(db, sid, now, changes, current=current)

        return await self._transaction(work, write=True)

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
        sid = session_id
        changes = _changes(sid, snapshot, outbox=outbox, routes=routes, timers_set=timers_set, ended=ended)

        def work(db: sqlite3.Cursor) -> Lock | None:
            # Everything that makes it go the long way or refuse is read before the first write (see
            # _run_batch): the session, then its lock; the dedup key's upsert is the duplicate check.
            now = self._clock()
            # In one statement: whether a row of the session exists and is visible (None: no row at all),
            # and whether its lock is held.
            visible, locked = db.execute(
                f"SELECT (SELECT {_VISIBLE} FROM sessions WHERE id = ?), "
                "EXISTS (SELECT 1 FROM locks WHERE session_id = ? AND expires_at > ?)",
                (now - self._retention, sid, sid, now),
            ).fetchone()
            if visible or locked:
                return None
            return self._lock_and_write(
                db, sid, owner, ttl, now, dedup_key, changes, current=None, absent=visible is None
            )

        return await self._transaction(work, write=True)

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
        check_ttl("ttl", ttl)
        sid = session_id
        changes = _changes(
            sid,
            snapshot,
            outbox=outbox,
            routes=routes,
            timers_set=timers_set,
            timers_cancel=timers_cancel,
            ended=ended,
        )

        def work(db: sqlite3.Cursor) -> Lock | None:
            # Everything that makes it refuse is read first, in one statement, before the first write (see
            # _run_batch): the route still leads to the session, which is live and still at ``version``,
            # and its lock is free. The dedup key's upsert is the duplicate check.
            now = self._clock()
            row = db.execute(
                "SELECT s.version, s.ended_at, l.expires_at FROM routes r JOIN sessions s ON s.id = r.session_id "
                "LEFT JOIN locks l ON l.session_id = r.session_id WHERE r.key = ? AND r.session_id = ?",
                (route_key, sid),
            ).fetchone()
            if (
                row is None
                or row[0] != version
                or row[1] is not None
                or (row[2] is not None and row[2] > now)
            ):
                return None
            return self._lock_and_write(db, sid, owner, ttl, now, dedup_key, changes, current=(version, None))

        return await self._transaction(work, write=True)

    def _take_dedup_key(self, db: sqlite3.Cursor, sid: str, dedup_key: str, now: Seconds) -> None:
        """Take the key (its upsert is the duplicate check); ``DuplicateEventError``, writing nothing, if taken."""
        taken = db.execute(
            "INSERT INTO dedup (key, expires_at) VALUES (?, ?) ON CONFLICT (key) DO UPDATE "
            "SET expires_at = excluded.expires_at WHERE expires_at <= ?",
            (dedup_key, now + self._dedup_ttl, now),
        )
        if taken.rowcount != 1:
            raise DuplicateEventError(f"session {sid!r}: event {dedup_key!r} was already handled")

    def _lock_and_write(
        self,
        db: sqlite3.Cursor,
        sid: str,
        owner: str,
        ttl: Seconds,
        now: Seconds,
        dedup_key: str | None,
        changes: _Changes,
        *,
        current: tuple[int, Seconds | None] | None,
        absent: bool = False,
    ) -> Lock:
        """``create`` and ``advance`` once they found the session's lock free: the dedup key (the last
        refusal), the lock, then the writes (see ``_write_session``)."""
        if dedup_key is not None:
            self._take_dedup_key(db, sid, dedup_key, now)
        lock = self._try_lock(db, sid, owner, ttl)
        assert lock is not None  # free: read by the caller, in this same write transaction
        self._write_session(db, sid, now, changes, current=current, absent=absent)
        return lock

    def _write_session(
        self,
        db: sqlite3.Cursor,
        sid: str,
        now: Seconds,
        changes: _Changes,
        *,
        current: tuple[int, Seconds | None] | None,
        absent: bool = False,
    ) -> int:
        """A commit's writes once its lock and dedup key are settled; the session's new version.

        ``current``: the (version, ended_at) of the session if it is visible, read in this transaction;
        None writes it afresh (new, or ended beyond the retention and not purged yet). ``absent``: the
        session is known to have no row at all, so it has no outbox left to clear either.
        """
        snapshot, ended = _bindable(changes.snapshot), changes.ended
        done_rows, entries, route_rows = changes.done_rows, changes.entries, changes.route_rows
        unroute_rows, cancel_rows, set_rows = changes.unroute_rows, changes.cancel_rows, changes.set_rows
        if current is not None:
            version, ended_at = current[0] + 1, current[1]
            if ended_at is None and ended:
                ended_at = now
            if ended_at is None:  # a live session: NULL written out rather than bound (see _bindable)
                db.execute(
                    "UPDATE sessions SET snapshot = ?, version = ?, updated_at = ? WHERE id = ?",
                    (snapshot, version, now, sid),
                )
            else:
                db.execute(
                    "UPDATE sessions SET snapshot = ?, version = ?, updated_at = ?, ended_at = ? WHERE id = ?",
                    (snapshot, version, now, ended_at, sid),
                )
            if done_rows:
                db.executemany("DELETE FROM outbox WHERE session_id = ? AND id = ?", done_rows)
        else:
            version, ended_at = 1, now if ended else None
            if not absent:
                db.execute("DELETE FROM outbox WHERE session_id = ?", (sid,))
            db.execute(
                "INSERT OR REPLACE INTO sessions (id, snapshot, version, updated_at, ended_at) "
                f"VALUES (?, ?, ?, ?, {'NULL' if ended_at is None else '?'})",
                (sid, snapshot, version, now, *(() if ended_at is None else (ended_at,))),
            )
        if entries:
            # REPLACE: an entry with an id already pending is replaced, and moves to the end (new seq).
            db.executemany(
                "INSERT OR REPLACE INTO outbox (session_id, id, command) VALUES (?, ?, ?)", entries
            )
        if unroute_rows:
            db.executemany("DELETE FROM routes WHERE key = ? AND session_id = ?", unroute_rows)
        if route_rows:
            # Most commits repeat the session's route keys: leave the rows (and pages) that are unchanged.
            db.executemany(
                "INSERT INTO routes (key, session_id) VALUES (?, ?) ON CONFLICT (key) DO UPDATE "
                "SET session_id = excluded.session_id WHERE session_id IS NOT excluded.session_id",
                route_rows,
            )
        if ended_at is not None:
            db.execute("DELETE FROM timers WHERE session_id = ?", (sid,))
        else:
            if cancel_rows:
                db.executemany("DELETE FROM timers WHERE session_id = ? AND key = ?", cancel_rows)
            if set_rows:
                db.executemany(
                    "INSERT INTO timers (session_id, key, due, fires_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (session_id, key) DO UPDATE SET due = excluded.due, fires_at = excluded.fires_at",
                    set_rows,
                )
        return int(version)

    async def mark_done(self, session_id: str, outbox_ids: Iterable[str]) -> None:
        rows = [(session_id, entry_id) for entry_id in outbox_ids]

        def work(db: sqlite3.Cursor) -> None:
            # Return nothing: a cursor must never outlive its transaction (sqlite3 reuses its statement).
            db.executemany("DELETE FROM outbox WHERE session_id = ? AND id = ?", rows)

        if rows:
            await self._transaction(work, write=True)

    async def finish(self, lock: Lock, done: Iterable[str]) -> None:
        await self._queue_finish(lock, done)

    def finish_soon(self, lock: Lock, done: Iterable[str]) -> asyncio.Future[None]:
        """``finish``, queued now (``FinishesInOrder``): every operation asked for later runs after it."""
        return self._queue_finish(lock, done)

    def _queue_finish(self, lock: Lock, done: Iterable[str]) -> asyncio.Future[None]:
        rows = [(lock.session_id, entry_id) for entry_id in done]

        def work(db: sqlite3.Cursor) -> None:
            if rows:
                db.executemany("DELETE FROM outbox WHERE session_id = ? AND id = ?", rows)
            self._release(db, lock)

        return self._submit(work, write=True)

    async def pending_outboxes(self) -> list[PendingOutbox]:
        def work(db: sqlite3.Cursor) -> list[PendingOutbox]:
            rows = db.execute(
                f"SELECT o.session_id, o.id, o.command FROM outbox o JOIN sessions s ON s.id = o.session_id "
                f"WHERE {_VISIBLE} ORDER BY o.session_id, o.seq",
                (self._clock() - self._retention,),
            )
            grouped: dict[str, list[OutboxEntry]] = {}
            for sid, entry_id, command in rows:
                grouped.setdefault(sid, []).append(_entry(sid, entry_id, command))
            return [PendingOutbox(sid, tuple(entries)) for sid, entries in grouped.items()]

        return await self._transaction(work, write=False)

    async def due_timers(self, now: Seconds, *, limit: int = 100) -> list[Timer]:
        def work(db: sqlite3.Cursor) -> list[Timer]:
            rows = db.execute(
                "SELECT session_id, key, due FROM timers WHERE fires_at <= ? "
                "ORDER BY fires_at, session_id, key LIMIT ?",
                (now, limit),
            )
            return [Timer(sid, key, due) for sid, key, due in rows]

        return await self._transaction(work, write=False)

    async def claim_timer(self, timer: Timer, *, now: Seconds, lease: Seconds = DEFAULT_TIMER_LEASE) -> bool:
        check_ttl("lease", lease)

        def work(db: sqlite3.Cursor) -> bool:
            cursor = db.execute(
                "UPDATE timers SET fires_at = ? WHERE session_id = ? AND key = ? AND due = ? AND fires_at <= ?",
                (now + lease, timer.session_id, timer.key, timer.due, now),
            )
            return cursor.rowcount == 1

        return await self._transaction(work, write=True)

    async def list_sessions(self, *, limit: int = 100) -> list[SessionRecord]:
        def work(db: sqlite3.Cursor) -> list[SessionRecord]:
            rows = db.execute(
                f"SELECT id, snapshot, version, updated_at, ended_at FROM sessions WHERE {_VISIBLE} "
                "ORDER BY updated_at DESC, id LIMIT ?",
                (self._clock() - self._retention, limit),
            ).fetchall()
            outboxes = self._outboxes(db, [row[0] for row in rows])
            return [self._record(row, outboxes[row[0]]) for row in rows]

        return await self._transaction(work, write=False)

    async def purge(self) -> int:
        def work(db: sqlite3.Cursor) -> int:
            now = self._clock()
            gone = db.execute(
                "SELECT id FROM sessions WHERE ended_at IS NOT NULL AND ended_at <= ?",
                (now - self._retention,),
            ).fetchall()
            for table, column in (
                ("outbox", "session_id"),
                ("routes", "session_id"),
                ("timers", "session_id"),
                ("locks", "session_id"),
                ("sessions", "id"),
            ):
                db.executemany(f"DELETE FROM {table} WHERE {column} = ?", gone)
            db.execute("DELETE FROM dedup WHERE expires_at <= ?", (now,))
            # Locks of sessions never committed, a slice of the table per purge: every session keeps its lock
            # row, and probing them all at every purge would hold up the other operations for a while.
            start = self._lock_cursor
            slice_end = db.execute(
                "SELECT rowid FROM locks WHERE rowid > ? ORDER BY rowid LIMIT 1 OFFSET ?",
                (start, _LOCK_SLICE - 1),
            ).fetchone()
            end = slice_end[0] if slice_end is not None else None
            self._lock_cursor = end if end is not None else 0
            db.execute(
                "DELETE FROM locks WHERE rowid > ? AND rowid <= ? AND expires_at <= ? "
                "AND session_id NOT IN (SELECT id FROM sessions)",
                (start, end if end is not None else 2**63 - 1, now),
            )
            return len(gone)

        return await self._transaction(work, write=True)
