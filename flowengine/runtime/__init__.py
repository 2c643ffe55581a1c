"""The runtime core: sessions as plain data, driven by compiled flows; events in, commands out. No I/O.

The facade is :class:`flowengine.runtime.engine.Engine`; see ``docs/architecture.md``.
"""

from __future__ import annotations

from flowengine.runtime.engine import Engine, RouteKey
from flowengine.runtime.events import Cancel, CommandFailure, CommandResult, HttpResult, TimerFired
from flowengine.runtime.session import Session

__all__ = [
    "Cancel",
    "CommandFailure",
    "CommandResult",
    "Engine",
    "HttpResult",
    "RouteKey",
    "Session",
    "TimerFired",
]
