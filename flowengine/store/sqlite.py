"""The default store: one SQLite file in WAL mode, through aiosqlite, one transaction per operation.

Several processes may open the same file (SQLite's own locking serialises writers), which is how two
instances on one machine share sessions. The file is checked on every operation: if it disappears or is
replaced (a volume unmounted, a directory moved), the connection is dropped, operations raise
``StoreError``, and the next operation after the file is back reconnects by itself.

``synchronous=NORMAL``: in WAL mode a committed transaction survives the process being killed at any point;
only a power loss may roll back the last few commits (never corrupt the file).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import aiosqlite

from flowengine.errors import DuplicateEventError, StaleLockError, StoreError
from flowengine.store._common import check_ttl, dumps, loads_object, wait_for_lock
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
from flowengine.typing import JSONObject, Seconds

T = TypeVar("T")
_Connection = Any  # aiosqlite ships no type information the strict checker can use

SCHEMA_VERSION = 1

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
    PRIMARY KEY (session_id, key)
);
CREATE INDEX IF NOT EXISTS timers_by_due ON timers (due);
CREATE TABLE IF NOT EXISTS dedup (key TEXT PRIMARY KEY, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS locks (
    session_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    token INTEGER NOT NULL,
    expires_at REAL NOT NULL
);
"""

# A session is visible while live, or ended less than the retention ago (parameter: now - retention).
_VISIBLE = "(ended_at IS NULL OR ended_at > ?)"


class SQLiteStore:
    """The ``Store`` interface over one SQLite file. Create it with ``await SQLiteStore.open(path)``."""

    def __init__(
        self,
        path: str,
        *,
        retention: Seconds = DEFAULT_RETENTION,
        dedup_ttl: Seconds = DEFAULT_DEDUP_TTL,
        clock: Callable[[], Seconds] = time.time,
    ) -> None:
        check_ttl("retention", retention)
        check_ttl("dedup_ttl", dedup_ttl)
        self.path = path
        self._retention = retention
        self._dedup_ttl = dedup_ttl
        self._clock = clock
        self._conn: _Connection | None = None
        self._identity: tuple[int, int] | None = None
        self._mutex = asyncio.Lock()
        self._closed = False

    @classmethod
    async def open(
        cls,
        path: str,
        *,
        retention: Seconds = DEFAULT_RETENTION,
        dedup_ttl: Seconds = DEFAULT_DEDUP_TTL,
        clock: Callable[[], Seconds] = time.time,
    ) -> SQLiteStore:
        """Open (creating if needed) the database file at ``path``; its directory must exist."""
        store = cls(path, retention=retention, dedup_ttl=dedup_ttl, clock=clock)
        await store.ping()
        return store

    @property
    def description(self) -> str:
        return f"sqlite://{self.path}"

    # -- connection handling ------------------------------------------------------------------------

    def _file_identity(self) -> tuple[int, int] | None:
        try:
            info = os.stat(self.path)
        except OSError:
            return None
        return (info.st_dev, info.st_ino)

    async def _drop(self) -> None:
        conn, self._conn, self._identity = self._conn, None, None
        if conn is not None:
            # The connection is being discarded because it is broken already.
            with contextlib.suppress(sqlite3.Error, OSError, ValueError):
                await conn.close()

    async def _connection(self) -> _Connection:
        if self._closed:
            raise StoreError(f"{self.description}: used after close()")
        identity = self._file_identity()
        if self._conn is not None and identity == self._identity:
            return self._conn
        await self._drop()
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):
            raise StoreError(f"{self.description}: directory {directory!r} does not exist (create it first)")
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        try:
            await conn.execute("PRAGMA busy_timeout = 5000")
            await conn.execute("PRAGMA journal_mode = WAL")
            await conn.execute("PRAGMA synchronous = NORMAL")
            await conn.executescript(_SCHEMA)
            cursor = await conn.execute("SELECT value FROM meta WHERE name = 'schema'")
            row = await cursor.fetchone()
            if row is None or row[0] != SCHEMA_VERSION:
                found = None if row is None else row[0]
                raise StoreError(
                    f"{self.description}: database schema version {found!r}, this flowengine uses "
                    f"{SCHEMA_VERSION}; use a new file or the flowengine version that wrote it"
                )
        except BaseException:
            await conn.close()
            raise
        self._conn = conn
        self._identity = self._file_identity()
        return conn

    async def _transaction(self, work: Callable[[_Connection], Awaitable[T]], *, write: bool) -> T:
        """Run ``work`` in one transaction (a write one when ``write``), mapping driver errors."""
        async with self._mutex:
            try:
                conn = await self._connection()
                await conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    result = await work(conn)
                except BaseException:
                    try:
                        await conn.execute("ROLLBACK")
                    except (sqlite3.Error, ValueError):
                        await self._drop()
                    raise
                await conn.execute("COMMIT")
                return result
            except (sqlite3.Error, OSError, ValueError) as exc:
                await self._drop()
                raise StoreError(f"{self.description}: {exc}") from exc

    # -- the Store interface ------------------------------------------------------------------------

    async def close(self) -> None:
        async with self._mutex:
            self._closed = True
            await self._drop()

    async def ping(self) -> None:
        async def work(conn: _Connection) -> None:
            await conn.execute("SELECT 1 FROM meta LIMIT 1")

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

        async def work(conn: _Connection) -> Lock | None:
            now = self._clock()
            cursor = await conn.execute("SELECT expires_at FROM locks WHERE session_id = ?", (session_id,))
            row = await cursor.fetchone()
            if row is not None and row[0] > now:
                return None
            cursor = await conn.execute(
                "UPDATE meta SET value = value + 1 WHERE name = 'fence' RETURNING value"
            )
            token = (await cursor.fetchone())[0]
            await conn.execute(
                "INSERT OR REPLACE INTO locks (session_id, owner, token, expires_at) VALUES (?, ?, ?, ?)",
                (session_id, owner, token, now + ttl),
            )
            return Lock(session_id, owner, int(token), ttl)

        async def try_once() -> Lock | None:
            return await self._transaction(work, write=True)

        return await wait_for_lock(try_once, session_id=session_id, wait=wait)

    @staticmethod
    async def _check_fence(conn: _Connection, lock: Lock) -> None:
        cursor = await conn.execute("SELECT token FROM locks WHERE session_id = ?", (lock.session_id,))
        row = await cursor.fetchone()
        if row is None or row[0] != lock.token:
            raise StaleLockError(
                f"session {lock.session_id!r}: lock token {lock.token} of {lock.owner!r} is stale; "
                "another owner took the session after it expired"
            )

    async def renew(self, lock: Lock, *, ttl: Seconds = DEFAULT_LOCK_TTL) -> Lock:
        check_ttl("ttl", ttl)

        async def work(conn: _Connection) -> None:
            await self._check_fence(conn, lock)
            await conn.execute(
                "UPDATE locks SET expires_at = ? WHERE session_id = ?", (self._clock() + ttl, lock.session_id)
            )

        await self._transaction(work, write=True)
        return Lock(lock.session_id, lock.owner, lock.token, ttl)

    async def release(self, lock: Lock) -> None:
        async def work(conn: _Connection) -> None:
            # Keep the row and its token: a stale holder must still be refused after this release.
            await conn.execute(
                "UPDATE locks SET expires_at = 0 WHERE session_id = ? AND token = ?",
                (lock.session_id, lock.token),
            )

        await self._transaction(work, write=True)

    async def _outboxes(self, conn: _Connection, session_ids: Sequence[str]) -> dict[str, list[OutboxEntry]]:
        found: dict[str, list[OutboxEntry]] = {sid: [] for sid in session_ids}
        if not session_ids:
            return found
        marks = ",".join("?" * len(session_ids))
        cursor = await conn.execute(
            f"SELECT session_id, id, command FROM outbox WHERE session_id IN ({marks}) ORDER BY seq",
            tuple(session_ids),
        )
        for sid, entry_id, command in await cursor.fetchall():
            found[sid].append(
                OutboxEntry(entry_id, loads_object(command, f"session {sid!r} outbox {entry_id!r}"))
            )
        return found

    def _record(self, row: Sequence[Any], outbox: list[OutboxEntry]) -> SessionRecord:
        sid, snapshot, version, updated_at, ended_at = row
        return SessionRecord(
            session_id=sid,
            snapshot=loads_object(snapshot, f"session {sid!r} snapshot"),
            version=version,
            outbox=tuple(outbox),
            updated_at=updated_at,
            ended_at=ended_at,
        )

    async def load(self, session_id: str) -> SessionRecord | None:
        async def work(conn: _Connection) -> SessionRecord | None:
            cursor = await conn.execute(
                f"SELECT id, snapshot, version, updated_at, ended_at FROM sessions WHERE id = ? AND {_VISIBLE}",
                (session_id, self._clock() - self._retention),
            )
            row = await cursor.fetchone()
            if row is None:
                return None
            outbox = await self._outboxes(conn, [session_id])
            return self._record(row, outbox[session_id])

        return await self._transaction(work, write=False)

    async def lookup(self, route_key: str) -> str | None:
        async def work(conn: _Connection) -> str | None:
            cursor = await conn.execute(
                f"SELECT r.session_id FROM routes r JOIN sessions s ON s.id = r.session_id "
                f"WHERE r.key = ? AND {_VISIBLE}",
                (route_key, self._clock() - self._retention),
            )
            row = await cursor.fetchone()
            return None if row is None else str(row[0])

        return await self._transaction(work, write=False)

    async def seen(self, dedup_key: str) -> bool:
        async def work(conn: _Connection) -> bool:
            return await self._seen(conn, dedup_key)

        return await self._transaction(work, write=False)

    async def _seen(self, conn: _Connection, dedup_key: str) -> bool:
        cursor = await conn.execute(
            "SELECT 1 FROM dedup WHERE key = ? AND expires_at > ?", (dedup_key, self._clock())
        )
        return await cursor.fetchone() is not None

    async def commit(
        self,
        lock: Lock,
        *,
        snapshot: JSONObject,
        outbox: Sequence[OutboxEntry] = (),
        routes: Iterable[str] = (),
        unroutes: Iterable[str] = (),
        timers_set: Mapping[str, Seconds] | None = None,
        timers_cancel: Iterable[str] = (),
        dedup_key: str | None = None,
        ended: bool = False,
    ) -> int:
        sid = lock.session_id
        snapshot_text = dumps(snapshot)
        entries = [(sid, entry.id, dumps(entry.command)) for entry in outbox]
        route_keys, unroute_keys = list(routes), list(unroutes)
        cancels, sets = list(timers_cancel), dict(timers_set or {})

        async def work(conn: _Connection) -> int:
            now = self._clock()
            await self._check_fence(conn, lock)
            if dedup_key is not None and await self._seen(conn, dedup_key):
                raise DuplicateEventError(f"session {sid!r}: event {dedup_key!r} was already handled")
            cursor = await conn.execute(
                f"SELECT version, ended_at FROM sessions WHERE id = ? AND {_VISIBLE}",
                (sid, now - self._retention),
            )
            previous = await cursor.fetchone()
            if previous is None:
                # New, or ended beyond the retention and not purged yet: start afresh.
                await conn.execute("DELETE FROM outbox WHERE session_id = ?", (sid,))
                version, ended_at = 1, None
            else:
                version, ended_at = previous[0] + 1, previous[1]
            if ended and ended_at is None:
                ended_at = now
            await conn.execute(
                "INSERT OR REPLACE INTO sessions (id, snapshot, version, updated_at, ended_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (sid, snapshot_text, version, now, ended_at),
            )
            if entries:
                await conn.executemany(
                    "DELETE FROM outbox WHERE session_id = ? AND id = ?", [e[:2] for e in entries]
                )
                await conn.executemany(
                    "INSERT INTO outbox (session_id, id, command) VALUES (?, ?, ?)", entries
                )
            if unroute_keys:
                await conn.executemany(
                    "DELETE FROM routes WHERE key = ? AND session_id = ?", [(k, sid) for k in unroute_keys]
                )
            if route_keys:
                await conn.executemany(
                    "INSERT OR REPLACE INTO routes (key, session_id) VALUES (?, ?)",
                    [(k, sid) for k in route_keys],
                )
            if ended_at is not None:
                await conn.execute("DELETE FROM timers WHERE session_id = ?", (sid,))
            else:
                if cancels:
                    await conn.executemany(
                        "DELETE FROM timers WHERE session_id = ? AND key = ?", [(sid, k) for k in cancels]
                    )
                if sets:
                    await conn.executemany(
                        "INSERT OR REPLACE INTO timers (session_id, key, due) VALUES (?, ?, ?)",
                        [(sid, k, due) for k, due in sets.items()],
                    )
            if dedup_key is not None:
                await conn.execute(
                    "INSERT OR REPLACE INTO dedup (key, expires_at) VALUES (?, ?)",
                    (dedup_key, now + self._dedup_ttl),
                )
            return int(version)

        return await self._transaction(work, write=True)

    async def mark_done(self, session_id: str, outbox_ids: Iterable[str]) -> None:
        rows = [(session_id, entry_id) for entry_id in outbox_ids]
        if not rows:
            return

        async def work(conn: _Connection) -> None:
            await conn.executemany("DELETE FROM outbox WHERE session_id = ? AND id = ?", rows)

        await self._transaction(work, write=True)

    async def pending_outboxes(self) -> list[PendingOutbox]:
        async def work(conn: _Connection) -> list[PendingOutbox]:
            cursor = await conn.execute(
                f"SELECT o.session_id, o.id, o.command FROM outbox o JOIN sessions s ON s.id = o.session_id "
                f"WHERE {_VISIBLE} ORDER BY o.session_id, o.seq",
                (self._clock() - self._retention,),
            )
            grouped: dict[str, list[OutboxEntry]] = {}
            for sid, entry_id, command in await cursor.fetchall():
                entry = OutboxEntry(entry_id, loads_object(command, f"session {sid!r} outbox {entry_id!r}"))
                grouped.setdefault(sid, []).append(entry)
            return [PendingOutbox(sid, tuple(entries)) for sid, entries in grouped.items()]

        return await self._transaction(work, write=False)

    async def due_timers(self, now: Seconds, *, limit: int = 100) -> list[Timer]:
        async def work(conn: _Connection) -> list[Timer]:
            cursor = await conn.execute(
                "SELECT session_id, key, due FROM timers WHERE due <= ? ORDER BY due, session_id, key LIMIT ?",
                (now, limit),
            )
            return [Timer(sid, key, due) for sid, key, due in await cursor.fetchall()]

        return await self._transaction(work, write=False)

    async def claim_timer(self, timer: Timer, *, now: Seconds, lease: Seconds = DEFAULT_TIMER_LEASE) -> bool:
        check_ttl("lease", lease)

        async def work(conn: _Connection) -> bool:
            cursor = await conn.execute(
                "UPDATE timers SET due = ? WHERE session_id = ? AND key = ? AND due = ? AND due <= ?",
                (now + lease, timer.session_id, timer.key, timer.due, now),
            )
            return bool(cursor.rowcount == 1)

        return await self._transaction(work, write=True)

    async def list_sessions(self, *, limit: int = 100) -> list[SessionRecord]:
        async def work(conn: _Connection) -> list[SessionRecord]:
            cursor = await conn.execute(
                f"SELECT id, snapshot, version, updated_at, ended_at FROM sessions WHERE {_VISIBLE} "
                "ORDER BY updated_at DESC, id LIMIT ?",
                (self._clock() - self._retention, limit),
            )
            rows = list(await cursor.fetchall())
            outboxes = await self._outboxes(conn, [row[0] for row in rows])
            return [self._record(row, outboxes[row[0]]) for row in rows]

        return await self._transaction(work, write=False)

    async def purge(self) -> int:
        async def work(conn: _Connection) -> int:
            now = self._clock()
            cursor = await conn.execute(
                "SELECT id FROM sessions WHERE ended_at IS NOT NULL AND ended_at <= ?",
                (now - self._retention,),
            )
            gone = [(row[0],) for row in await cursor.fetchall()]
            for table, column in (
                ("outbox", "session_id"),
                ("routes", "session_id"),
                ("timers", "session_id"),
                ("locks", "session_id"),
                ("sessions", "id"),
            ):
                await conn.executemany(f"DELETE FROM {table} WHERE {column} = ?", gone)
            await conn.execute("DELETE FROM dedup WHERE expires_at <= ?", (now,))
            await conn.execute(
                "DELETE FROM locks WHERE expires_at <= ? AND session_id NOT IN (SELECT id FROM sessions)",
                (now,),
            )
            return len(gone)

        return await self._transaction(work, write=True)
