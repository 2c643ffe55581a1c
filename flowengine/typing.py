"""Type aliases shared across flowengine."""

from __future__ import annotations

from typing import TypeAlias

JSONScalar: TypeAlias = str | int | float | bool | None
JSON: TypeAlias = JSONScalar | list["JSON"] | dict[str, "JSON"]
JSONObject: TypeAlias = dict[str, JSON]
"""A decoded JSON object."""

Seconds: TypeAlias = float
"""A duration or a point on a clock, in seconds."""
