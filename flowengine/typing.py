"""Type aliases shared across flowengine."""

from __future__ import annotations

from typing import TypeAlias

JSONScalar: TypeAlias = str | int | float | bool | None
JSON: TypeAlias = JSONScalar | list["JSON"] | dict[str, "JSON"]
JSONObject: TypeAlias = dict[str, JSON]
"""A decoded JSON object."""

SnapshotData: TypeAlias = JSONObject | bytes | str
"""A session snapshot: a JSON object, or the same object already encoded as JSON text (bytes in UTF-8, or str).
The runtime hands snapshots to the stores encoded, and the stores hand them back as stored, so that a
snapshot is encoded once and decoded once per event."""

Seconds: TypeAlias = float
"""A duration or a point on a clock, in seconds."""
