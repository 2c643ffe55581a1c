"""Engine events: what the edges feed back into a session besides API callbacks.

A timer falling due, the outcome of a REST command, the answer to a flow's ``http`` action, and an
operator's cancel. Together with :mod:`flowengine.catapult.events` these are everything
``Engine.handle`` accepts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeAlias

from flowengine.catapult.events import CallbackEvent
from flowengine.errors import CatapultAPIError, CatapultError, CatapultRateLimitError
from flowengine.typing import JSON


@dataclass(frozen=True, slots=True)
class TimerFired:
    """The session timer ``key`` fell due."""

    key: str


@dataclass(frozen=True, slots=True)
class CommandFailure:
    """Why a REST command failed for good: HTTP ``status`` (0: no answer), the API's error ``code``, text."""

    status: int
    code: str
    message: str

    @classmethod
    def from_exception(cls, exc: CatapultError) -> CommandFailure:
        """Build the failure from the REST client's error."""
        if isinstance(exc, CatapultRateLimitError | CatapultAPIError):
            return cls(exc.status, exc.code, exc.message or str(exc))
        return cls(0, "connection-error", str(exc))


@dataclass(frozen=True, slots=True)
class CommandResult:
    """The outcome of a REST command: ``resource_id`` from ``Location`` on success, or ``error``."""

    command_id: str
    resource_id: str | None = None
    error: CommandFailure | None = None


@dataclass(frozen=True, slots=True)
class HttpResult:
    """The answer to an ``HttpCall``: ``status`` 0 with ``error`` set when there was no answer."""

    command_id: str
    status: int
    text: str = ""
    json: JSON = None
    headers: Mapping[str, str] = field(default_factory=dict)
    error: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300 and not self.error


@dataclass(frozen=True, slots=True)
class Cancel:
    """An operator ended the session (the executions API): hang up its legs and stop."""

    reason: str = "cancelled"


EngineEvent: TypeAlias = TimerFired | CommandResult | HttpResult | Cancel
Event: TypeAlias = CallbackEvent | EngineEvent
