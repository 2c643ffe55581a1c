"""The scenario model: a scripted call or conversation against one flow, as frozen data.

A scenario file (YAML, checked by ``schemas/scenario.schema.json``) becomes a :class:`Scenario` through
``flowengine.testing.loader.read_scenario``. Steps are either caller actions (press keys, stay silent, wait,
text, hang up, decide how a dialled phone behaves) or expectations (what the caller hears, what the flow did);
the runner in ``flowengine.testing.runner`` plays them in order on the simulator.
"""

from __future__ import annotations

import fnmatch
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from flowengine.flow.model import Position
from flowengine.typing import JSON, Seconds

MatchKind: TypeAlias = Literal["exact", "contains", "glob", "regex"]
PhoneMode: TypeAlias = Literal["answer", "busy", "no-answer", "reject"]
HttpMethod: TypeAlias = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]

DEFAULT_CALLER = "+15555550100"
"""The caller's number when a scenario names none."""

DEFAULT_NUMBER = "+15555550000"
"""The flow's number when neither the scenario nor the flow names one."""

DEFAULT_TIMEOUT: Seconds = 60.0
"""How long (virtual time) an expectation waits when the scenario sets no ``timeout``."""

_SPACES = re.compile(r"\s+")


def _collapse(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


def glob_matches(pattern: str, text: str) -> bool:
    """Whether ``text`` matches the glob ``pattern`` as a whole (``*`` any run, ``?`` one character).

    Brackets are literal: phone numbers and URLs use them as text, not as character classes.
    """
    escaped = pattern.replace("[", "[[]")
    return fnmatch.fnmatchcase(text, escaped)


@dataclass(frozen=True, slots=True)
class Matcher:
    """A comparison of a text: ``exact`` (spaces collapsed), ``contains``, ``glob`` or ``regex`` (searched)."""

    kind: MatchKind
    pattern: str

    def matches(self, text: str) -> bool:
        if self.kind == "exact":
            return _collapse(text) == _collapse(self.pattern)
        if self.kind == "contains":
            return _collapse(self.pattern) in _collapse(text)
        if self.kind == "glob":
            return glob_matches(_collapse(self.pattern), _collapse(text))
        return re.search(self.pattern, text) is not None

    def __str__(self) -> str:
        if self.kind == "exact":
            return repr(self.pattern)
        return f"{self.kind} {self.pattern!r}"


# ----------------------------------------------------------------------------------------------- steps


@dataclass(frozen=True, slots=True, kw_only=True)
class Step(ABC):
    """Base of every step; ``pos`` is where the step was written in the scenario file."""

    pos: Position

    @property
    @abstractmethod
    def label(self) -> str:
        """How the step reads in a report, close to how it was written."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Press(Step):
    """The caller presses ``digits``."""

    digits: str

    @property
    def label(self) -> str:
        return f"press {self.digits!r}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Silence(Step):
    """The caller does nothing for ``seconds`` of virtual time."""

    seconds: Seconds

    @property
    def label(self) -> str:
        return f"silence {self.seconds:g}s"


@dataclass(frozen=True, slots=True, kw_only=True)
class Wait(Step):
    """``seconds`` of virtual time pass."""

    seconds: Seconds

    @property
    def label(self) -> str:
        return f"wait {self.seconds:g}s"


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply(Step):
    """The caller texts the flow's number."""

    text: str
    media: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"reply {self.text!r}" + (f" with {len(self.media)} media" if self.media else "")


@dataclass(frozen=True, slots=True, kw_only=True)
class HangUp(Step):
    """The caller hangs up."""

    @property
    def label(self) -> str:
        return "hangup"


@dataclass(frozen=True, slots=True)
class Phone:
    """How a dialled phone behaves: ``mode``, ringing for ``after`` seconds, hanging up ``hangup_after``."""

    mode: PhoneMode = "answer"
    after: Seconds = 0.0
    hangup_after: Seconds | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SetPhone(Step):
    """From now on the phone at ``number`` behaves as ``phone`` when dialled."""

    number: str
    phone: Phone

    @property
    def label(self) -> str:
        return f"phone {self.number} {self.phone.mode}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Expectation(Step):
    """A step that waits for something to happen (or checks it has)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Hear(Expectation):
    """The next thing the caller hears: speech matching ``text``, or a file whose URL matches ``audio``."""

    text: Matcher | None = None
    audio: str | None = None

    @property
    def label(self) -> str:
        return f"hear audio {self.audio!r}" if self.audio is not None else f"hear {self.text}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ExpectTransfer(Expectation):
    """The caller is transferred to a number matching ``to`` (a glob)."""

    to: str

    @property
    def label(self) -> str:
        return f"transfer to {self.to!r}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ExpectDial(Expectation):
    """The flow dials a number matching ``to`` (a glob)."""

    to: str

    @property
    def label(self) -> str:
        return f"dial {self.to!r}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ExpectBridge(Expectation):
    """The caller is bridged with a call to a number matching ``to`` (a glob)."""

    to: str

    @property
    def label(self) -> str:
        return f"bridge with {self.to!r}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ExpectConference(Expectation):
    """The caller joins a conference."""

    @property
    def label(self) -> str:
        return "join a conference"


@dataclass(frozen=True, slots=True, kw_only=True)
class ExpectRecording(Expectation):
    """A recording of the caller starts."""

    @property
    def label(self) -> str:
        return "recording starts"


@dataclass(frozen=True, slots=True, kw_only=True)
class ExpectSms(Expectation):
    """The flow sends a message to ``to`` (None: the caller) whose text matches and with these media."""

    to: str | None = None
    text: Matcher | None = None
    media: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        parts = ["sms"]
        if self.to is not None:
            parts.append(f"to {self.to}")
        if self.text is not None:
            parts.append(str(self.text))
        if self.media:
            parts.append(f"media {list(self.media)!r}")
        return " ".join(parts)


@dataclass(frozen=True, slots=True, kw_only=True)
class ExpectHttp(Expectation):
    """The flow makes an HTTP request: ``method`` (any when None), URL glob, and JSON it must contain."""

    method: HttpMethod | None = None
    url: str = "*"
    json: JSON = None
    has_json: bool = False

    @property
    def label(self) -> str:
        text = f"http {self.method or 'any'} {self.url!r}"
        return text + (f" json {self.json!r}" if self.has_json else "")


@dataclass(frozen=True, slots=True, kw_only=True)
class ExpectState(Expectation):
    """The session is in state ``name`` (checked once everything due now has run)."""

    name: str

    @property
    def label(self) -> str:
        return f"state {self.name!r}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ExpectEnd(Expectation):
    """The call (or conversation) ends."""

    @property
    def label(self) -> str:
        return "end"


StepType: TypeAlias = (
    Press
    | Silence
    | Wait
    | Reply
    | HangUp
    | SetPhone
    | Hear
    | ExpectTransfer
    | ExpectDial
    | ExpectBridge
    | ExpectConference
    | ExpectRecording
    | ExpectSms
    | ExpectHttp
    | ExpectState
    | ExpectEnd
)


# -------------------------------------------------------------------------------------------- scenario


@dataclass(frozen=True, slots=True)
class CannedResponse:
    """An answer to the flow's HTTP requests whose method and URL match; ``fail`` means no answer."""

    url: str
    pos: Position
    method: HttpMethod | None = None
    status: int = 200
    json: JSON = None
    has_json: bool = False
    body: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: Seconds = 0.0
    fail: str | None = None

    def matches(self, method: str, url: str) -> bool:
        return (self.method is None or self.method == method.upper()) and glob_matches(self.url, url)


@dataclass(frozen=True, slots=True)
class Scenario:
    """A loaded scenario. ``flow_path`` is resolved against the scenario file's directory."""

    name: str
    path: str
    flow_path: str
    steps: tuple[StepType, ...]
    pos: Position
    description: str = ""
    caller: str = DEFAULT_CALLER
    number: str | None = None
    outbound: bool = False
    outbound_vars: Mapping[str, JSON] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    timeout: Seconds = DEFAULT_TIMEOUT
    phones: Mapping[str, Phone] = field(default_factory=dict)
    http: tuple[CannedResponse, ...] = ()
    transcription: str = ""
    transcription_seconds: Seconds | None = None
    """How long transcribing takes once a recording is saved (None: the simulator's default)."""
