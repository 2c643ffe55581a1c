"""The flow model: the frozen, validated form of a flow file that the compiler and the runtime consume.

Everything here is plain data. Strings that may contain templates (``{{ ... }}``) are kept as their source
text; the runtime renders them with the sandboxed environment of ``flowengine.flow.templates``. Positions
are 1-based and point into the file the element came from (an included file keeps its own path).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from flowengine.typing import JSON

FlowKind: TypeAlias = Literal["voice", "messaging"]
Gender: TypeAlias = Literal["female", "male"]
FileFormat: TypeAlias = Literal["wav", "mp3"]
HttpMethod: TypeAlias = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
LogLevel: TypeAlias = Literal["debug", "info", "warning", "error"]

END: str = "end"
"""The built-in final target: ends the session (hanging up the call first when it is still up)."""

CALLER: str = "caller"
"""The role name of a session's first leg (the inbound caller, or the callee of an outbound execution)."""


@dataclass(frozen=True, slots=True)
class Position:
    """Where an element was written: file path, 1-based line and column."""

    path: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}"


_NOWHERE = Position("<flow>", 1, 1)


# --------------------------------------------------------------------------------------------- audio


@dataclass(frozen=True, slots=True)
class Prompt:
    """Something a caller hears: a sentence spoken with text-to-speech, or an audio file, never both.

    ``voice``, ``gender`` and ``locale`` of None mean "the flow's defaults".
    """

    text: str | None = None
    url: str | None = None
    voice: str | None = None
    gender: Gender | None = None
    locale: str | None = None
    loop: bool = False
    volume: int | None = None


# ------------------------------------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True, kw_only=True)
class Action:
    """Base of every action. ``pos`` is where the action was written."""

    pos: Position = _NOWHERE


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer(Action):
    """Answer the inbound call (``POST calls/{id}`` with ``state: active``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Reject(Action):
    """Reject the inbound call before answering it (``state: rejected``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Hangup(Action):
    """Hang up a leg (``state: completed``); ``leg`` defaults to the caller."""

    leg: str = CALLER


@dataclass(frozen=True, slots=True, kw_only=True)
class Speak(Action):
    """Speak a sentence to a leg; ``speak.started``/``speak.done`` follow."""

    prompt: Prompt
    leg: str = CALLER


@dataclass(frozen=True, slots=True, kw_only=True)
class Play(Action):
    """Play an audio file to a leg; ``playback.started``/``playback.done`` follow."""

    prompt: Prompt
    leg: str = CALLER


@dataclass(frozen=True, slots=True, kw_only=True)
class StopAudio(Action):
    """Stop whatever is speaking or playing on a leg."""

    leg: str = CALLER


@dataclass(frozen=True, slots=True, kw_only=True)
class Gather(Action):
    """Collect DTMF digits, optionally with a prompt that stops at the first key.

    ``None`` settings take the flow's gather defaults. ``into`` names a variable that receives the digits.
    Events: ``gather.done`` (digits collected), ``gather.noinput`` (timeout with no digit),
    ``gather.hungup``.
    """

    max_digits: int | None = None
    inter_digit_timeout: float | None = None
    terminating_digits: str | None = None
    prompt: Prompt | None = None
    into: str | None = None
    leg: str = CALLER


@dataclass(frozen=True, slots=True, kw_only=True)
class SendDtmf(Action):
    """Send DTMF tones on a leg (``[A-D0-9#*,wW]``, at most 92)."""

    digits: str
    leg: str = CALLER


@dataclass(frozen=True, slots=True, kw_only=True)
class Record(Action):
    """Start recording a leg; ``recording.complete`` (and ``transcription.completed``) follow its end."""

    max_duration: float | None = None
    file_format: FileFormat = "wav"
    transcribe: bool = False
    leg: str = CALLER


@dataclass(frozen=True, slots=True, kw_only=True)
class StopRecording(Action):
    """Stop the recording of a leg."""

    leg: str = CALLER


@dataclass(frozen=True, slots=True, kw_only=True)
class Transfer(Action):
    """Transfer the caller to another number or SIP URI (``state: transferring``); ``to`` may name an
    endpoint (see :func:`sip_address`)."""

    to: str
    caller_id: str | None = None
    whisper: Prompt | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Dial(Action):
    """Place an outbound call as a new leg named ``role``; its events arrive as ``<role>.<event>``.

    ``from_`` is the number the leg calls from (default: the number the caller dialled).
    """

    to: str
    role: str
    from_: str | None = None
    timeout: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Bridge(Action):
    """Bridge two legs by role once both are answered; ``audio: false`` holds them."""

    legs: tuple[str, str]
    audio: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class Conference(Action):
    """Join a leg to the conference called ``name`` (created on first use) or update its membership."""

    name: str
    leg: str = CALLER
    mute: bool = False
    hold: bool = False
    join_tone: bool = True
    leave_tone: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaveConference(Action):
    """Remove a leg from its conference."""

    leg: str = CALLER


@dataclass(frozen=True, slots=True, kw_only=True)
class SendMessage(Action):
    """Send an SMS (or an MMS when ``media`` is given).

    In a messaging flow ``to`` defaults to the other party and ``from_`` to our number; in a voice flow to the
    caller and the number the caller dialled.
    """

    text: str
    to: str | None = None
    from_: str | None = None
    media: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class LookupCaller(Action):
    """Look up the caller-id (CNAM) name of ``number`` into the variable ``into``; ``lookup.done`` follows
    (``event.name``, "" and ``event.found`` false when the number has none) or ``lookup.error``."""

    into: str
    number: str = "{{ call.from }}"


ENDPOINT_PREFIX: str = "endpoint:"
SIP_DOMAIN_SUFFIX: str = "bwapp.bwsipp.io"


def sip_address(destination: str) -> str:
    """A ``dial``/``transfer`` destination as the API takes it: ``endpoint:NAME@DOMAIN`` (a SIP endpoint of
    the account, by name) becomes its SIP URI ``sip:NAME@DOMAIN.bwapp.bwsipp.io``; anything else is kept."""
    if not destination.startswith(ENDPOINT_PREFIX):
        return destination
    name, _, domain = destination.removeprefix(ENDPOINT_PREFIX).partition("@")
    return f"sip:{name}@{domain}.{SIP_DOMAIN_SUFFIX}"


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpRequest(Action):
    """Make an HTTP request; ``http.ok`` or ``http.error`` follows with ``event.status`` and ``event.json``.

    ``into`` names a variable that receives the parsed JSON response (or the text when not JSON).
    """

    url: str
    method: HttpMethod = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)
    json: JSON = None
    body: str | None = None
    timeout: float | None = None
    into: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SetVars(Action):
    """Set variables; each value is rendered (a string template, or a JSON value kept as is)."""

    values: Mapping[str, JSON]


@dataclass(frozen=True, slots=True, kw_only=True)
class Log(Action):
    """Write a log line (a template) at ``level``."""

    message: str
    level: LogLevel = "info"


@dataclass(frozen=True, slots=True, kw_only=True)
class StartFlow(Action):
    """Run another flow's states as a sub-flow on the same call; ``flow.done`` fires here when it ends.

    ``vars`` are rendered here and become the sub-flow's variables (over its own defaults); when the sub-flow
    reaches a final state, its variables are available as ``event.vars``.
    """

    flow: str
    vars: Mapping[str, JSON] = field(default_factory=dict)


ActionType: TypeAlias = (
    Answer
    | Reject
    | Hangup
    | Speak
    | Play
    | StopAudio
    | Gather
    | SendDtmf
    | Record
    | StopRecording
    | Transfer
    | Dial
    | Bridge
    | Conference
    | LeaveConference
    | SendMessage
    | HttpRequest
    | LookupCaller
    | SetVars
    | Log
    | StartFlow
)


# --------------------------------------------------------------------------------------- transitions


@dataclass(frozen=True, slots=True)
class Transition:
    """One way out of a state for one event.

    Tried in the order written; the first whose ``when`` (a sandboxed expression) holds is taken. It runs
    ``actions``, then enters ``target``. ``target`` None means stay in the state without re-entering it
    (its own actions do not run again); naming the same state re-enters it.
    """

    target: str | None
    when: str | None = None
    actions: tuple[ActionType, ...] = ()
    pos: Position = _NOWHERE


@dataclass(frozen=True, slots=True)
class Timer:
    """``after: {<duration>: ...}``: fires once ``seconds`` after the state was entered, unless it was left."""

    seconds: float
    transitions: tuple[Transition, ...]
    pos: Position = _NOWHERE


@dataclass(frozen=True, slots=True)
class Retry:
    """How a menu handles no input or a wrong key: say ``reprompt``, ask again, and after ``max`` tries
    take ``then``."""

    max: int = 3
    reprompt: Prompt | None = None
    then: Transition = Transition(target=END)


@dataclass(frozen=True, slots=True)
class Menu:
    """A gather with choices and VoiceXML-style counting of ``noinput`` and ``nomatch``.

    The prompt is spoken with a gather. A choice key is a DTMF key sequence ("1", "#", "42"). The counters of
    a menu reset when the menu is entered from another state.
    """

    prompt: Prompt
    choices: Mapping[str, Transition]
    noinput: Retry = Retry()
    nomatch: Retry = Retry()
    max_digits: int | None = None
    inter_digit_timeout: float | None = None
    terminating_digits: str | None = None
    into: str | None = None


@dataclass(frozen=True, slots=True)
class State:
    """A named state: entry actions (``do``) or a ``menu``, event handlers (``on``) and timers (``after``)."""

    name: str
    actions: tuple[ActionType, ...] = ()
    on: Mapping[str, tuple[Transition, ...]] = field(default_factory=dict)
    after: tuple[Timer, ...] = ()
    menu: Menu | None = None
    final: bool = False
    description: str = ""
    pos: Position = _NOWHERE


# ------------------------------------------------------------------------------------------------ flow


@dataclass(frozen=True, slots=True)
class GatherDefaults:
    """Flow-wide gather settings (the API's defaults: 5 s inter-digit timeout, ``#`` terminates)."""

    max_digits: int | None = None
    inter_digit_timeout: float = 5.0
    terminating_digits: str = "#"


@dataclass(frozen=True, slots=True)
class Defaults:
    """Flow-wide settings that actions inherit unless they set their own."""

    voice: str = "susan"
    gender: Gender = "female"
    locale: str = "en_US"
    gather: GatherDefaults = GatherDefaults()
    http_timeout: float = 10.0
    dial_timeout: float = 30.0
    on_error: str = "Sorry, something went wrong. Goodbye."
    """Said before hanging up when a REST operation fails and no ``error`` handler takes the event."""


@dataclass(frozen=True, slots=True)
class Flow:
    """A validated flow. ``source_hash`` identifies the exact content, so live calls keep their version."""

    name: str
    kind: FlowKind
    initial: str
    states: Mapping[str, State]
    version: int = 1
    description: str = ""
    numbers: tuple[str, ...] = ()
    defaults: Defaults = Defaults()
    vars: Mapping[str, JSON] = field(default_factory=dict)
    env: tuple[str, ...] = ()
    on: Mapping[str, tuple[Transition, ...]] = field(default_factory=dict)
    source_hash: str = ""
    pos: Position = _NOWHERE

    def state_for(self, name: str) -> State:
        """Return the state called ``name``; raises KeyError when there is none."""
        return self.states[name]
