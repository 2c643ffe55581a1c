"""The sessions an instance committed most recently, each as it committed it: its version and snapshot.

With a store that ``advances`` (``flowengine.store.base.Advances``), the dispatcher handles the next event of
such a session from what is kept here and commits it in one round trip, which the store refuses if the
session changed elsewhere meanwhile. Kept for a bounded number of sessions and bytes of snapshots; the
session committed longest ago is forgotten first. A session that ended is kept as ended, with no snapshot:
an ended session stays ended.
"""

from __future__ import annotations

from flowengine.typing import SnapshotData

OBJECT_SIZE = 1024
"""What a snapshot handed over as an object (not as JSON text) is counted as, in bytes."""


class KnownSessions:
    """Session id -> (version, snapshot or None once ended, bytes counted), oldest commit first."""

    def __init__(self, *, limit: int, budget: int) -> None:
        self.limit = limit
        self.budget = budget
        self._kept: dict[str, tuple[int, SnapshotData | None, int]] = {}
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._kept)

    @property
    def kept_bytes(self) -> int:
        """The bytes of the snapshots kept, as counted against the budget."""
        return self._bytes

    def get(self, session_id: str) -> tuple[int, SnapshotData | None, int] | None:
        """The session's version, snapshot (None: it ended) and counted size, or None if not kept."""
        return self._kept.get(session_id)

    def remember(self, session_id: str, version: int, snapshot: SnapshotData | None) -> None:
        """Keep the session at ``version`` with ``snapshot`` (None: it ended), forgetting the oldest beyond
        the limits.

        A snapshot in bytes is kept as text: bytes made by orjson hold on to its whole write buffer (4 to 16
        KiB, whatever the length of the JSON), which made 16,384 kept sessions take 117 MiB more instead of
        about 25.
        """
        self.forget(session_id)  # re-inserted last: the dict's order is the commits' order
        if isinstance(snapshot, bytes):
            snapshot = snapshot.decode()
        size = 0 if snapshot is None else len(snapshot) if isinstance(snapshot, str) else OBJECT_SIZE
        kept = self._kept
        kept[session_id] = (version, snapshot, size)
        self._bytes += size
        while len(kept) > self.limit or self._bytes > self.budget:
            self.forget(next(iter(kept)))

    def forget(self, session_id: str) -> None:
        forgotten = self._kept.pop(session_id, None)
        if forgotten is not None:
            self._bytes -= forgotten[2]
