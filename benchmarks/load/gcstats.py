"""Garbage-collector pause statistics of a server process, written as JSON when the process exits.

``install(path)`` adds a ``gc.callbacks`` hook that times every collection (per generation: count, total and
longest pause, and a histogram) and writes them to ``path`` at exit. Used by :mod:`serve` (around
``flowengine serve``) and :mod:`floor`; it costs two ``perf_counter`` calls per collection. At exit it also
counts the objects the collector tracks, by type (what a full collection walks).

With ``startup_until_freeze``, collections before the process's ``gc.freeze()`` are kept apart, under
``startup``: ``flowengine serve`` runs one full collection of everything start-up made just before it freezes
it (22-49 ms on a slow machine), and that one pause is not what serving calls costs.
"""

from __future__ import annotations

import atexit
import gc
import json
import time
from collections import Counter
from typing import Any

_BOUNDS_MS = (1, 5, 10, 20, 50, 100, 200, 500)


def install(path: str, *, startup_until_freeze: bool = False) -> None:
    started = [0.0]
    startup = {"collections": 0, "max_ms": 0.0}
    stats: dict[int, dict[str, Any]] = {
        generation: {
            "collections": 0,
            "total_ms": 0.0,
            "max_ms": 0.0,
            "over_ms": dict.fromkeys(_BOUNDS_MS, 0),
            "max_collected": 0,
        }
        for generation in (0, 1, 2)
    }

    def hook(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
            return
        pause = (time.perf_counter() - started[0]) * 1000
        if startup_until_freeze and not gc.get_freeze_count():
            startup["collections"] += 1
            startup["max_ms"] = max(startup["max_ms"], pause)
            return
        entry = stats[info["generation"]]
        entry["collections"] += 1
        entry["total_ms"] += pause
        entry["max_ms"] = max(entry["max_ms"], pause)
        entry["max_collected"] = max(entry["max_collected"], info.get("collected", 0))
        for bound in _BOUNDS_MS:
            if pause > bound:
                entry["over_ms"][bound] += 1

    def write() -> None:
        out = {
            f"gen{generation}": {
                "collections": entry["collections"],
                "total_ms": round(entry["total_ms"], 2),
                "max_ms": round(entry["max_ms"], 2),
                "over_ms": {str(k): v for k, v in entry["over_ms"].items() if v},
                "max_collected": entry["max_collected"],
            }
            for generation, entry in stats.items()
        }
        out["max_ms"] = round(max(entry["max_ms"] for entry in stats.values()), 2)
        if startup_until_freeze:
            out["startup"] = {"collections": startup["collections"], "max_ms": round(startup["max_ms"], 2)}
        out["frozen_objects"] = gc.get_freeze_count()
        # What a full collection has to walk at the end: the tracked objects by type, most numerous first.
        tracked = Counter(type(item).__name__ for item in gc.get_objects())
        out["tracked_objects"] = sum(tracked.values())
        out["tracked_by_type"] = dict(tracked.most_common(12))
        with open(path, "w") as handle:
            json.dump(out, handle)

    gc.callbacks.append(hook)
    atexit.register(write)
