"""WAL checkpoints for the SQLite store, on a thread of their own instead of inside the store's commits.

In WAL mode SQLite appends every committed page to the ``-wal`` file and copies them back into the database
file later (a checkpoint). By default the commit that takes the WAL past 1,000 pages does that copy itself,
syncing the file to disk, and with group commit every job of that batch waits for it: with 2 KiB pages and
a few pages per callback that is a checkpoint every 150 or so callbacks, and the slowest batches are those.

The store's writer therefore leaves checkpoints to a ``Checkpointer``: a daemon thread with its own
connection that runs a ``PASSIVE`` checkpoint (which copies what it can without waiting for, or blocking,
the writer) every ``interval`` seconds in which something was committed. The writer keeps SQLite's own
checkpoint at a far larger WAL (``WRITER_AUTOCHECKPOINT`` pages) as a backstop, should this thread fall
behind.

The thread never creates the database file (it opens it read-write only), follows the file if it is
replaced, and a failing checkpoint is logged, not raised: the next committed write makes it try again.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import urllib.parse

import structlog

from flowengine.typing import Seconds

WRITER_AUTOCHECKPOINT = 10_000
"""The WAL size in pages at which the writer still checkpoints itself (SQLite's default: 1,000)."""

DEFAULT_INTERVAL: Seconds = 0.2
"""At most one checkpoint per this many seconds, and only after a write."""

_log = structlog.get_logger("flowengine.store")


class Checkpointer:
    """Runs ``PRAGMA wal_checkpoint(PASSIVE)`` on ``path`` after writes; ``start()`` it, then ``stop()``.

    The store sets ``written`` after each committed write (from its worker thread; a plain attribute,
    so noting a write costs no lock).
    """

    def __init__(self, path: str, *, interval: Seconds = DEFAULT_INTERVAL) -> None:
        if interval <= 0:
            raise ValueError(f"checkpoint interval must be positive, got {interval!r}")
        self.path = path
        self.interval = interval
        self.written = False
        self.checkpoints = 0
        """Checkpoints run so far (whether or not they could copy every page)."""
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="flowengine-sqlite-checkpoint", daemon=True)
        self._conn: sqlite3.Connection | None = None
        self._identity: tuple[int, int] | None = None
        self._failing = False

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        """Start the thread; once only (later calls do nothing)."""
        if self._thread.ident is None:
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread, waiting for a checkpoint in progress to end (blocking: not on the event loop)."""
        self._stopping.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def _loop(self) -> None:
        try:
            while not self._stopping.wait(self.interval):
                if self.written:
                    self.written = False
                    self.checkpoint()
        finally:
            self._close()

    def checkpoint(self) -> bool:
        """One passive checkpoint now (the thread's work; callable directly); False when it failed."""
        try:
            conn = self._connection()
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except (sqlite3.Error, OSError) as exc:
            self._close()
            if not self._failing:
                self._failing = True
                _log.warning("sqlite-checkpoint-failed", path=self.path, error=str(exc))
            return False
        self.checkpoints += 1
        if self._failing:
            self._failing = False
            _log.info("sqlite-checkpoint-resumed", path=self.path)
        return True

    def _connection(self) -> sqlite3.Connection:
        identity = file_identity(self.path)
        if self._conn is not None and identity == self._identity:
            return self._conn
        self._close()
        if identity is None:
            raise OSError(f"{self.path}: no such database file")
        address = "file:" + urllib.parse.quote(os.path.abspath(self.path)) + "?mode=rw"
        self._conn = sqlite3.connect(address, uri=True, isolation_level=None, check_same_thread=False)
        self._identity = identity
        return self._conn

    def _close(self) -> None:
        conn, self._conn, self._identity = self._conn, None, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()


def file_identity(path: str) -> tuple[int, int] | None:
    """The (device, inode) of the file at ``path``; None when there is none."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_dev, info.st_ino)
