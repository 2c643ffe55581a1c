"""Garbage-collector pause statistics of a server process, written as JSON when the process exits.

``install(path)`` adds a ``gc.callbacks`` hook that times every collection (per generation: count, total and
longest pause, and a histogram) and writes them to ``path`` at exit. Used by :mod:`serve` (around
``flowengine serve``) and :mod:`floor`; it costs two ``perf_counter`` calls per collection.
"""

from __future__ import annotations

import atexit
import gc
import json
import time
from typing import Any

_BOUNDS_MS = (1, 5, 10, 20, 50, 100, 200, 500)


def install(path: str) -> None:
    started = [0.0]
    stats: dict[int, dict[str, Any]] = {
        generation: {
            "collections": 0,
            "total_ms": 0.0,
            "max_ms": 0.0,
            "over_ms": dict.fromkeys(_BOUNDS_MS, 0),
        }
        for generation in (0, 1, 2)
    }

    def hook(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
            return
        pause = (time.perf_counter() - started[0]) * 1000
        entry = stats[info["generation"]]
        entry["collections"] += 1
        entry["total_ms"] += pause
        entry["max_ms"] = max(entry["max_ms"], pause)
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
            }
            for generation, entry in stats.items()
        }
        out["max_ms"] = round(max(entry["max_ms"] for entry in stats.values()), 2)
        out["frozen_objects"] = gc.get_freeze_count()
        with open(path, "w") as handle:
            json.dump(out, handle)

    gc.callbacks.append(hook)
    atexit.register(write)
