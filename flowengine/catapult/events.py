"""Parse the API's callback events into typed, frozen dataclasses (pure: no I/O, no aiohttp).

Every ``eventType`` of the v1 reference has a class here. Field names are the reference's, in snake_case
(``callId`` -> ``call_id``, ``from`` -> ``from_``). The API sends numbers and booleans as strings in many
examples, so ``"1"`` and ``1``, ``"true"`` and ``true`` are both accepted. Malformed input raises
:class:`~flowengine.errors.CallbackParseError` naming the field; an ``eventType`` we do not know becomes an
:class:`UnknownEvent` (reported by the caller, never raised).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, TypeAlias

from flowengine.errors import CallbackParseError


@dataclass(frozen=True, slots=True, kw_only=True)
class CallbackEvent:
    """Base of every callback event: its ``eventType``, ``time`` and the ``tag`` we set (when echoed)."""

    event_type: str
    time: str | None = None
    tag: str | None = None

    def to_context(self) -> dict[str, Any]:
        """The event as template data: every field by its snake_case name (``from`` for ``from_``)."""
        names = _CONTEXT_NAMES.get(type(self))
        if names is None:
            names = _CONTEXT_NAMES[type(self)] = tuple((f.name, f.name.rstrip("_")) for f in fields(self))
        out: dict[str, Any] = {}
        for attribute, key in names:
            value = getattr(self, attribute)
            if type(value) is tuple:
                value = list(value)
            elif type(value) is dict:
                value = dict(value)
            out[key] = value
        return out


_CONTEXT_NAMES: dict[type, tuple[tuple[str, str], ...]] = {}


@dataclass(frozen=True, slots=True, kw_only=True)
class CallEvent(CallbackEvent):
    """An event of one call: ``call_id`` is always present."""

    call_id: str
    call_uri: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class IncomingCallEvent(CallEvent):
    """``incomingcall``: a call arrived on one of our numbers."""

    from_: str
    to: str
    call_state: str | None = None
    application_id: str | None = None
    diversion: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AnswerEvent(CallEvent):
    """``answer``: the call was answered (``call_state`` ``active``)."""

    from_: str | None = None
    to: str | None = None
    call_state: str | None = None
    diversion: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TimeoutEvent(CallEvent):
    """``timeout``: an outbound call was not answered within its ``callTimeout``."""

    from_: str | None = None
    to: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HangupEvent(CallEvent):
    """``hangup`` (and the reject event, cause ``CALL_REJECTED``): the call ended."""

    from_: str | None = None
    to: str | None = None
    cause: str = ""
    call_state: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaybackEvent(CallEvent):
    """``playback``: an audio file ``started`` or is ``done``."""

    status: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SpeakEvent(CallEvent):
    """``speak``: a sentence ``started`` or is ``done`` (``state`` ``PLAYBACK_START``/``PLAYBACK_STOP``)."""

    status: str
    state: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DtmfEvent(CallEvent):
    """``dtmf``: one key was pressed."""

    dtmf_digit: str


@dataclass(frozen=True, slots=True, kw_only=True)
class GatherEvent(CallEvent):
    """``gather``: a gather ended (``reason``: max-digits, terminating-digit, inter-digit-timeout, hung-up)."""

    state: str | None = None
    digits: str = ""
    reason: str = ""
    gather_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingEvent(CallEvent):
    """``recording``: a recording was saved (``complete``) or failed (``error``).

    The reference lists both ``state`` and ``status``; ``status`` holds whichever was sent.
    """

    recording_id: str
    recording_uri: str | None = None
    status: str
    start_time: str | None = None
    end_time: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TranscriptionEvent(CallbackEvent):
    """``transcription``: a transcription ``completed`` or failed (``error``). It carries no call id."""

    transcription_id: str | None = None
    recording_id: str
    status: str
    text_size: int | None = None
    text: str = ""
    text_url: str | None = None
    transcription_uri: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ConferenceEvent(CallbackEvent):
    """``conference``: a conference was ``created`` or ``completed``."""

    conference_id: str
    conference_uri: str | None = None
    status: str
    created_time: str | None = None
    completed_time: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ConferenceMemberEvent(CallEvent):
    """``conference-member``: a member joined, left, or was muted or held."""

    conference_id: str
    member_id: str
    member_uri: str | None = None
    state: str
    active_members: int | None = None
    hold: bool = False
    mute: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ConferencePlaybackEvent(CallbackEvent):
    """``conference-playback``: audio played to a whole conference ``started`` or is ``done``."""

    conference_id: str
    conference_uri: str | None = None
    status: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ConferenceSpeakEvent(CallbackEvent):
    """``conference-speak``: a sentence spoken to a whole conference ``started`` or is ``done``."""

    conference_id: str
    conference_uri: str | None = None
    status: str


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageEvent(CallbackEvent):
    """``sms`` or ``mms``: an inbound message (``direction`` ``in``) or the progress of one we sent."""

    direction: str
    from_: str
    to: str
    message_id: str | None = None
    message_uri: str | None = None
    text: str = ""
    application_id: str | None = None
    state: str | None = None
    delivery_state: str | None = None
    delivery_code: str | None = None
    delivery_description: str | None = None
    segment_count: int | None = None
    media: tuple[str, ...] = ()

    @property
    def inbound(self) -> bool:
        return self.direction == "in"


@dataclass(frozen=True, slots=True, kw_only=True)
class UnknownEvent(CallbackEvent):
    """An ``eventType`` this version does not know; ``data`` keeps the fields as they came."""

    data: Mapping[str, Any] = field(default_factory=dict)


AnyCallbackEvent: TypeAlias = (
    IncomingCallEvent
    | AnswerEvent
    | TimeoutEvent
    | HangupEvent
    | PlaybackEvent
    | SpeakEvent
    | DtmfEvent
    | GatherEvent
    | RecordingEvent
    | TranscriptionEvent
    | ConferenceEvent
    | ConferenceMemberEvent
    | ConferencePlaybackEvent
    | ConferenceSpeakEvent
    | MessageEvent
    | UnknownEvent
)


# ------------------------------------------------------------------------------------------- parsing


_MAX_STRING = 16_384


class _Fields:
    """Typed access to a callback's fields, naming the field in every error."""

    __slots__ = ("data", "event_type")

    def __init__(self, data: Mapping[str, object], event_type: str) -> None:
        self.data = data
        self.event_type = event_type

    def _fail(self, name: str, problem: str) -> CallbackParseError:
        return CallbackParseError(name, f"{self.event_type!r} event: field {name!r} {problem}")

    def str_(self, name: str) -> str:
        value = self.opt_str(name)
        if value is None or value == "":
            raise self._fail(name, "is required")
        return value

    def opt_str(self, name: str) -> str | None:
        value = self.data.get(name)
        if value is None:
            return None
        if type(value) is str and len(value) <= _MAX_STRING:  # nearly always
            return value
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self._fail(name, f"must be a string, not {type(value).__name__}")
        text = str(value)
        if len(text) > _MAX_STRING:
            raise self._fail(name, f"is longer than {_MAX_STRING} characters")
        return text

    def opt_int(self, name: str) -> int | None:
        value = self.data.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, bool):
            raise self._fail(name, "must be an integer, not a boolean")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and value.strip().lstrip("+-").isdigit() and len(value) < 20:
            return int(value)
        raise self._fail(name, f"must be an integer, not {value!r}")

    def bool_(self, name: str) -> bool:
        value = self.data.get(name)
        if value is None or value == "":
            return False
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise self._fail(name, f"must be true or false, not {value!r}")

    def media(self, name: str) -> tuple[str, ...]:
        value = self.data.get(name)
        if value is None or value == "":
            return ()
        if isinstance(value, str):
            return (value,)
        if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
            return tuple(value)
        raise self._fail(name, "must be a URL or a list of URLs")

    def mapping(self, name: str) -> Mapping[str, Any] | None:
        value = self.data.get(name)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise self._fail(name, f"must be an object, not {type(value).__name__}")
        return dict(value)

    def base(self) -> dict[str, Any]:
        return {"event_type": self.event_type, "time": self.opt_str("time"), "tag": self.opt_str("tag")}

    def call(self) -> dict[str, Any]:
        return {**self.base(), "call_id": self.str_("callId"), "call_uri": self.opt_str("callUri")}


def _incoming(f: _Fields) -> CallbackEvent:
    return IncomingCallEvent(
        **f.call(),
        from_=f.str_("from"),
        to=f.str_("to"),
        call_state=f.opt_str("callState"),
        application_id=f.opt_str("applicationId"),
        diversion=f.mapping("diversion"),
    )


def _answer(f: _Fields) -> CallbackEvent:
    return AnswerEvent(
        **f.call(),
        from_=f.opt_str("from"),
        to=f.opt_str("to"),
        call_state=f.opt_str("callState"),
        diversion=f.mapping("diversion"),
    )


def _timeout(f: _Fields) -> CallbackEvent:
    return TimeoutEvent(**f.call(), from_=f.opt_str("from"), to=f.opt_str("to"))


def _hangup(f: _Fields) -> CallbackEvent:
    return HangupEvent(
        **f.call(),
        from_=f.opt_str("from"),
        to=f.opt_str("to"),
        cause=f.opt_str("cause") or "",
        call_state=f.opt_str("callState"),
    )


def _status(f: _Fields, *, required: bool = True) -> str:
    # Recording and transcription list both `state` and `status`; the examples send `status`.
    value = f.opt_str("status") or f.opt_str("state")
    if not value and required:
        raise f._fail("status", "is required")
    return value or ""


def _playback(f: _Fields) -> CallbackEvent:
    return PlaybackEvent(**f.call(), status=f.str_("status"))


def _speak(f: _Fields) -> CallbackEvent:
    return SpeakEvent(**f.call(), status=f.str_("status"), state=f.opt_str("state"))


def _dtmf(f: _Fields) -> CallbackEvent:
    return DtmfEvent(**f.call(), dtmf_digit=f.str_("dtmfDigit"))


def _gather(f: _Fields) -> CallbackEvent:
    return GatherEvent(
        **f.call(),
        state=f.opt_str("state"),
        digits=f.opt_str("digits") or "",
        reason=f.opt_str("reason") or "",
        gather_id=f.opt_str("gatherId"),
    )


def _recording(f: _Fields) -> CallbackEvent:
    return RecordingEvent(
        **f.call(),
        recording_id=f.str_("recordingId"),
        recording_uri=f.opt_str("recordingUri"),
        status=_status(f),
        start_time=f.opt_str("startTime"),
        end_time=f.opt_str("endTime"),
    )


def _transcription(f: _Fields) -> CallbackEvent:
    return TranscriptionEvent(
        **f.base(),
        transcription_id=f.opt_str("transcriptionId"),
        recording_id=f.str_("recordingId"),
        status=_status(f),
        text_size=f.opt_int("textSize"),
        text=f.opt_str("text") or "",
        text_url=f.opt_str("textUrl"),
        transcription_uri=f.opt_str("transcriptionUri"),
    )


def _conference(f: _Fields) -> CallbackEvent:
    return ConferenceEvent(
        **f.base(),
        conference_id=f.str_("conferenceId"),
        conference_uri=f.opt_str("conferenceUri"),
        status=f.str_("status"),
        created_time=f.opt_str("createdTime"),
        completed_time=f.opt_str("completedTime"),
    )


def _member(f: _Fields) -> CallbackEvent:
    return ConferenceMemberEvent(
        **f.call(),
        conference_id=f.str_("conferenceId"),
        member_id=f.str_("memberId"),
        member_uri=f.opt_str("memberUri"),
        state=f.str_("state"),
        active_members=f.opt_int("activeMembers"),
        hold=f.bool_("hold"),
        mute=f.bool_("mute"),
    )


def _conference_playback(f: _Fields) -> CallbackEvent:
    return ConferencePlaybackEvent(
        **f.base(),
        conference_id=f.str_("conferenceId"),
        conference_uri=f.opt_str("conferenceUri"),
        status=f.str_("status"),
    )


def _conference_speak(f: _Fields) -> CallbackEvent:
    return ConferenceSpeakEvent(
        **f.base(),
        conference_id=f.str_("conferenceId"),
        conference_uri=f.opt_str("conferenceUri"),
        status=f.str_("status"),
    )


def _message(f: _Fields) -> CallbackEvent:
    direction = f.str_("direction")
    if direction not in ("in", "out"):
        raise f._fail("direction", f"must be 'in' or 'out', not {direction!r}")
    return MessageEvent(
        **f.base(),
        direction=direction,
        from_=f.str_("from"),
        to=f.str_("to"),
        message_id=f.opt_str("messageId"),
        message_uri=f.opt_str("messageUri"),
        text=f.opt_str("text") or "",
        application_id=f.opt_str("applicationId"),
        state=f.opt_str("state"),
        delivery_state=f.opt_str("deliveryState"),
        delivery_code=f.opt_str("deliveryCode"),
        delivery_description=f.opt_str("deliveryDescription"),
        segment_count=f.opt_int("segmentCount"),
        media=f.media("media"),
    )


_PARSERS: dict[str, Callable[[_Fields], CallbackEvent]] = {
    "incomingcall": _incoming,
    "answer": _answer,
    "timeout": _timeout,
    "hangup": _hangup,
    "playback": _playback,
    "speak": _speak,
    "dtmf": _dtmf,
    "gather": _gather,
    "recording": _recording,
    "transcription": _transcription,
    "conference": _conference,
    "conference-member": _member,
    "conference-playback": _conference_playback,
    "conference-speak": _conference_speak,
    "sms": _message,
    "mms": _message,
}

EVENT_TYPES: frozenset[str] = frozenset(_PARSERS)
"""Every ``eventType`` the parser knows."""


def parse_callback(data: Mapping[str, object]) -> CallbackEvent:
    """Parse one callback's fields (a decoded JSON body, or the query parameters of a GET callback).

    Returns:
        A typed event; :class:`UnknownEvent` for an ``eventType`` this version does not know.

    Raises:
        CallbackParseError: the body is not an object, or a field is missing or has the wrong type; the
            exception's ``field`` names it.
    """
    if type(data) is not dict and not isinstance(data, Mapping):  # dict first: Mapping is an ABC
        raise CallbackParseError("", f"a callback must be a JSON object, not {type(data).__name__}")
    event_type = data.get("eventType")
    if not isinstance(event_type, str) or not event_type:
        raise CallbackParseError("eventType", "field 'eventType' is required and must be a string")
    # The member eventType is written `conference-member.` in one place of the reference.
    key = event_type.strip().rstrip(".").lower()
    parser = _PARSERS.get(key)
    fields_ = _Fields(data, key)
    if parser is None:
        return UnknownEvent(**fields_.base(), data=dict(data))
    return parser(fields_)
