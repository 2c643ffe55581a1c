"""Every exception flowengine raises on purpose, in one hierarchy.

::

    FlowEngineError
    ├── FlowError                      a flow file is not usable (carries its Diagnostics)
    │   ├── FlowSyntaxError            not readable YAML, or YAML we refuse (duplicate keys, alias bombs...)
    │   ├── FlowValidationError        breaks the JSON Schema or a semantic rule
    │   └── FlowCompileError           valid on paper but cannot be turned into a state machine
    ├── TemplateError                  a template or `when` expression failed to render or was refused
    │   └── TemplateSyntaxError        it does not parse or breaks a sandbox rule (with its 1-based line)
    ├── CatapultError                  talking to the Bandwidth v1 API failed
    │   ├── CallbackParseError         a callback event is malformed (names the field)
    │   ├── CatapultConnectionError    no HTTP answer (refused, reset, timed out)
    │   └── CatapultAPIError           an HTTP error answer, with status, category, code, method and url
    │       └── CatapultRateLimitError 429 or 403 *-rate-limit, with the time to wait when known
    ├── StoreError                     the session store failed or is unreachable
    │   ├── LockTimeoutError           a session lock could not be taken in time
    │   ├── StaleLockError             a commit carried a lock someone else has taken since (fencing)
    │   └── DuplicateEventError        a commit carried the de-duplication key of an event already handled
    ├── ScenarioError                  a scenario file is not usable
    └── ConfigError                    bad settings for serve, sim or the CLI

Build the message, then raise. Messages quote values with ``!r`` and say where and how to fix.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, order=True, slots=True)
class Diagnostic:
    """One problem found in a file, at a 1-based line and column.

    Ordering sorts by file, then position, so a list of them prints like a compiler's output.
    """

    path: str
    line: int
    column: int
    severity: Severity = field(compare=False)
    message: str = field(compare=False)
    code: str = field(default="", compare=False)

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.severity}: {self.message}"

    @property
    def is_error(self) -> bool:
        return self.severity == "error"


class FlowEngineError(Exception):
    """Base class of every error flowengine raises on purpose."""


class FlowError(FlowEngineError):
    """A flow file cannot be used; ``diagnostics`` lists every problem found, sorted."""

    def __init__(self, diagnostics: Iterable[Diagnostic]) -> None:
        self.diagnostics: Sequence[Diagnostic] = sorted(diagnostics)
        lines = [str(d) for d in self.diagnostics] or ["invalid flow"]
        super().__init__("\n".join(lines))

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.is_error]


class FlowSyntaxError(FlowError):
    """The file is not readable YAML, or uses YAML features flowengine refuses."""


class FlowValidationError(FlowError):
    """The flow breaks the JSON Schema or a semantic rule."""


class FlowCompileError(FlowError):
    """The flow could not be compiled into a state machine."""


class TemplateError(FlowEngineError):
    """A template or expression failed to render, or was refused by the sandbox."""


class TemplateSyntaxError(TemplateError):
    """A template or expression does not parse or breaks a sandbox rule; ``line`` is 1-based within it."""

    def __init__(self, reason: str, *, line: int, source: str) -> None:
        self.reason = reason
        self.line = line
        self.source = source
        super().__init__(f"line {line}: {reason}")


class CatapultError(FlowEngineError):
    """A request to the Bandwidth v1 API failed."""


class CallbackParseError(CatapultError):
    """A callback event is malformed: ``field`` names the field at fault (empty for the body itself)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


class CatapultConnectionError(CatapultError):
    """No HTTP answer: connection refused or reset, DNS failure, or a timeout."""

    def __init__(self, method: str, url: str, reason: str) -> None:
        self.method = method
        self.url = url
        self.reason = reason
        super().__init__(f"{method} {url}: {reason}")


class CatapultAPIError(CatapultError):
    """The API answered with an error status and (usually) its documented error body."""

    def __init__(
        self,
        *,
        status: int,
        method: str,
        url: str,
        category: str = "",
        code: str = "",
        message: str = "",
        details: Sequence[dict[str, str]] = (),
    ) -> None:
        self.status = status
        self.method = method
        self.url = url
        self.category = category
        self.code = code
        self.message = message
        self.details = list(details)
        what = f"{code}: {message}" if code else (message or "no error body")
        super().__init__(f"{method} {url} -> {status} {what}")


class CatapultRateLimitError(CatapultAPIError):
    """429 ``too-many-requests``/``rate-limit-reached`` or 403 ``call-rate-limit``/``message-rate-limit``."""

    def __init__(
        self,
        *,
        retry_after: float | None,
        status: int,
        method: str,
        url: str,
        category: str = "",
        code: str = "",
        message: str = "",
        details: Sequence[dict[str, str]] = (),
    ) -> None:
        self.retry_after = retry_after
        super().__init__(
            status=status,
            method=method,
            url=url,
            category=category,
            code=code,
            message=message,
            details=details,
        )


class StoreError(FlowEngineError):
    """The session store failed or cannot be reached."""


class LockTimeoutError(StoreError):
    """A session's lock was held by someone else for longer than we may wait."""


class StaleLockError(StoreError):
    """A write was refused: its lock expired and another owner has taken the session since."""


class DuplicateEventError(StoreError):
    """A write was refused: the event it handled was already handled (same de-duplication key)."""


class ScenarioError(FlowEngineError):
    """A scenario file is not usable; carries its diagnostics like FlowError."""

    def __init__(self, diagnostics: Iterable[Diagnostic]) -> None:
        self.diagnostics: Sequence[Diagnostic] = sorted(diagnostics)
        super().__init__("\n".join(str(d) for d in self.diagnostics) or "invalid scenario")


class ConfigError(FlowEngineError):
    """Bad settings given to a command, the server or the simulator."""
