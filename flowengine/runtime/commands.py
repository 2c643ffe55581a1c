"""Commands: what the runtime decides, as frozen data. One class per REST operation, plus timers, HTTP and logs.

Each REST command documents the exact request it becomes and builds it with ``request(user_id)``
(method, path under ``/v1``, JSON body; field names exactly as the Catapult v1 reference spells them).
Commands whose outcome the runtime needs carry a ``command_id``; the executor reports the outcome back as a
:class:`~flowengine.runtime.events.CommandResult` (the id from the ``Location`` header, or the error).
Every REST command has a ``command_id``, so that any failure can come back as the flow's ``error`` event.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import Any, ClassVar, Literal, TypeAlias
from urllib.parse import quote

from flowengine.typing import JSON, JSONObject, Seconds


@dataclass(frozen=True, slots=True)
class RestRequest:
    """One REST call: ``path`` starts with ``/v1/users/{userId}``; ``json`` is the body (None: no body)."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
    path: str
    json: JSONObject | None


@lru_cache(maxsize=16)
def _users(user_id: str) -> str:
    return f"/v1/users/{quote(user_id, safe='')}"


# What quote(value, safe="") leaves alone: ids made only of these (nearly all) are used as they are.
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*").fullmatch


def _seg(value: str) -> str:
    return value if _UNRESERVED(value) else quote(value, safe="")


def _compact(body: Mapping[str, JSON]) -> JSONObject:
    """Drop unset (None) fields: the API applies its own defaults to fields we do not send."""
    return {key: value for key, value in body.items() if value is not None}


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    """Base of every command."""

    operation: ClassVar[str] = ""

    def to_json(self) -> JSONObject:
        """The command as plain data: ``{"type": <class name>, <field>: <value>...}`` (for logs and outboxes)."""
        out: JSONObject = {"type": type(self).__name__}
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            out[item.name] = value
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class RestCommand(Command):
    """A command that is one REST request. ``command_id`` ties its outcome back to the session.

    Not an ``abc.ABC``: ``isinstance`` against an ABC runs Python code, and the server asks it of every
    command. ``tests/runtime/test_commands.py`` checks that every subclass has its own ``request``.
    """

    command_id: str

    def request(self, user_id: str) -> RestRequest:
        """The exact REST request this command becomes for the account ``user_id``."""
        raise NotImplementedError(f"{type(self).__name__} does not say which request it is")


# -------------------------------------------------------------------------------------------- calls


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateCall(RestCommand):
    """``POST /v1/users/{userId}/calls`` with ``from``, ``to``, ``callTimeout``, ``callbackUrl``, ``tag``.

    The result's ``resource_id`` is the new call id (from ``Location``).
    """

    operation: ClassVar[str] = "createCall"
    from_: str
    to: str
    call_timeout: int | None = None
    callback_url: str | None = None
    tag: str | None = None

    def request(self, user_id: str) -> RestRequest:
        body = {
            "from": self.from_,
            "to": self.to,
            "callTimeout": self.call_timeout,
            "callbackUrl": self.callback_url,
            "tag": self.tag,
        }
        return RestRequest("POST", f"{_users(user_id)}/calls", _compact(body))


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateCallState(RestCommand):
    """``POST /v1/users/{userId}/calls/{callId}`` with ``{"state": ...}``.

    ``active`` answers an incoming call, ``rejected`` rejects it, ``completed`` hangs up.
    """

    operation: ClassVar[str] = "updateCall"
    call_id: str
    state: Literal["active", "rejected", "completed"]

    def request(self, user_id: str) -> RestRequest:
        return RestRequest("POST", f"{_users(user_id)}/calls/{_seg(self.call_id)}", {"state": self.state})


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferCall(RestCommand):
    """``POST /v1/users/{userId}/calls/{callId}`` with ``state: transferring``, ``transferTo``,
    ``transferCallerId``, ``whisperAudio`` (``sentence``/``fileUrl``, ``gender``, ``locale``, ``voice``) and
    ``callbackUrl`` (where the new call's events go)."""

    operation: ClassVar[str] = "transferCall"
    call_id: str
    transfer_to: str
    transfer_caller_id: str | None = None
    whisper_audio: Mapping[str, JSON] | None = None
    callback_url: str | None = None

    def request(self, user_id: str) -> RestRequest:
        body: dict[str, JSON] = {
            "state": "transferring",
            "transferTo": self.transfer_to,
            "transferCallerId": self.transfer_caller_id,
            "whisperAudio": dict(self.whisper_audio) if self.whisper_audio else None,
            "callbackUrl": self.callback_url,
        }
        return RestRequest("POST", f"{_users(user_id)}/calls/{_seg(self.call_id)}", _compact(body))


@dataclass(frozen=True, slots=True, kw_only=True)
class SetCallRecording(RestCommand):
    """``POST /v1/users/{userId}/calls/{callId}`` with ``recordingEnabled`` (and ``recordingFileFormat``)."""

    operation: ClassVar[str] = "updateCall"
    call_id: str
    enabled: bool
    file_format: str | None = None

    def request(self, user_id: str) -> RestRequest:
        body: dict[str, JSON] = {"recordingEnabled": self.enabled, "recordingFileFormat": self.file_format}
        return RestRequest("POST", f"{_users(user_id)}/calls/{_seg(self.call_id)}", _compact(body))


@dataclass(frozen=True, slots=True, kw_only=True)
class PlayAudio(RestCommand):
    """``POST /v1/users/{userId}/calls/{callId}/audio``: a ``sentence`` (with ``voice``, ``gender``,
    ``locale``) or a ``fileUrl``, plus ``loopEnabled``, ``volume`` and ``tag``.

    ``speak``/``playback`` events with the same ``tag`` follow (``started``, then ``done``).
    """

    operation: ClassVar[str] = "playAudio"
    call_id: str
    tag: str
    sentence: str | None = None
    file_url: str | None = None
    voice: str | None = None
    gender: str | None = None
    locale: str | None = None
    loop_enabled: bool = False
    volume: int | None = None

    @property
    def kind(self) -> Literal["speak", "playback"]:
        return "speak" if self.sentence is not None else "playback"

    def request(self, user_id: str) -> RestRequest:
        body: dict[str, JSON] = {
            "sentence": self.sentence,
            "fileUrl": self.file_url,
            "voice": self.voice if self.sentence is not None else None,
            "gender": self.gender if self.sentence is not None else None,
            "locale": self.locale if self.sentence is not None else None,
            "loopEnabled": self.loop_enabled,
            "volume": self.volume,
            "tag": self.tag,
        }
        return RestRequest("POST", f"{_users(user_id)}/calls/{_seg(self.call_id)}/audio", _compact(body))


@dataclass(frozen=True, slots=True, kw_only=True)
class StopAudio(RestCommand):
    """``POST /v1/users/{userId}/calls/{callId}/audio`` with ``{"sentence": ""}`` (stop speaking) or
    ``{"fileUrl": ""}`` (stop a file)."""

    operation: ClassVar[str] = "playAudio"
    call_id: str
    kind: Literal["speak", "playback"] = "speak"

    def request(self, user_id: str) -> RestRequest:
        body: JSONObject = {"sentence": ""} if self.kind == "speak" else {"fileUrl": ""}
        return RestRequest("POST", f"{_users(user_id)}/calls/{_seg(self.call_id)}/audio", body)


@dataclass(frozen=True, slots=True, kw_only=True)
class SendDtmf(RestCommand):
    """``POST /v1/users/{userId}/calls/{callId}/dtmf`` with ``{"dtmfOut": ...}``."""

    operation: ClassVar[str] = "sendDtmf"
    call_id: str
    dtmf_out: str

    def request(self, user_id: str) -> RestRequest:
        path = f"{_users(user_id)}/calls/{_seg(self.call_id)}/dtmf"
        return RestRequest("POST", path, {"dtmfOut": self.dtmf_out})


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateGather(RestCommand):
    """``POST /v1/users/{userId}/calls/{callId}/gather`` with ``maxDigits``, ``interDigitTimeout``,
    ``terminatingDigits``, ``tag`` and ``prompt`` (``sentence``/``fileUrl``, ``gender``, ``locale``,
    ``loopEnabled``; the API has no ``prompt.voice``). The result's ``resource_id`` is the gather id.
    """

    operation: ClassVar[str] = "createGather"
    call_id: str
    tag: str
    max_digits: int | None = None
    inter_digit_timeout: float | None = None
    terminating_digits: str | None = None
    prompt_sentence: str | None = None
    prompt_file_url: str | None = None
    prompt_gender: str | None = None
    prompt_locale: str | None = None
    prompt_loop_enabled: bool = False

    def request(self, user_id: str) -> RestRequest:
        body: dict[str, JSON] = {
            "maxDigits": self.max_digits,
            "interDigitTimeout": self.inter_digit_timeout,
            "terminatingDigits": self.terminating_digits,
            "tag": self.tag,
        }
        if self.prompt_sentence is not None or self.prompt_file_url is not None:
            prompt: dict[str, JSON] = {
                "sentence": self.prompt_sentence,
                "fileUrl": self.prompt_file_url,
                "gender": self.prompt_gender if self.prompt_sentence is not None else None,
                "locale": self.prompt_locale if self.prompt_sentence is not None else None,
                "loopEnabled": self.prompt_loop_enabled,
            }
            body["prompt"] = _compact(prompt)
        return RestRequest("POST", f"{_users(user_id)}/calls/{_seg(self.call_id)}/gather", _compact(body))


@dataclass(frozen=True, slots=True, kw_only=True)
class StopGather(RestCommand):
    """``POST /v1/users/{userId}/calls/{callId}/gather/{gatherId}`` with ``{"state": "completed"}``."""

    operation: ClassVar[str] = "updateGather"
    call_id: str
    gather_id: str

    def request(self, user_id: str) -> RestRequest:
        path = f"{_users(user_id)}/calls/{_seg(self.call_id)}/gather/{_seg(self.gather_id)}"
        return RestRequest("POST", path, {"state": "completed"})


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateTranscription(RestCommand):
    """``POST /v1/users/{userId}/recordings/{recordingId}/transcriptions`` with ``{}``."""

    operation: ClassVar[str] = "createTranscription"
    recording_id: str

    def request(self, user_id: str) -> RestRequest:
        return RestRequest(
            "POST", f"{_users(user_id)}/recordings/{_seg(self.recording_id)}/transcriptions", {}
        )


# ------------------------------------------------------------------------------ bridges, conferences


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateBridge(RestCommand):
    """``POST /v1/users/{userId}/bridges`` with ``bridgeAudio`` and ``callIds``; result: the bridge id."""

    operation: ClassVar[str] = "createBridge"
    call_ids: tuple[str, ...]
    bridge_audio: bool = True

    def request(self, user_id: str) -> RestRequest:
        body: JSONObject = {"bridgeAudio": self.bridge_audio, "callIds": list(self.call_ids)}
        return RestRequest("POST", f"{_users(user_id)}/bridges", body)


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateBridge(RestCommand):
    """``POST /v1/users/{userId}/bridges/{bridgeId}`` with ``bridgeAudio`` and ``callIds``."""

    operation: ClassVar[str] = "updateBridge"
    bridge_id: str
    call_ids: tuple[str, ...]
    bridge_audio: bool = True

    def request(self, user_id: str) -> RestRequest:
        body: JSONObject = {"bridgeAudio": self.bridge_audio, "callIds": list(self.call_ids)}
        return RestRequest("POST", f"{_users(user_id)}/bridges/{_seg(self.bridge_id)}", body)


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateConference(RestCommand):
    """``POST /v1/users/{userId}/conferences`` with ``from``, ``callbackUrl`` and ``tag``.

    ``name`` is the flow's conference name (not sent to the API). Conferences are shared by name across
    sessions: an executor that knows a live conference created for the same ``name`` reports its id as the
    result instead of creating another one (the store is the place to remember it). Result: the conference id.
    """

    operation: ClassVar[str] = "createConference"
    name: str
    from_: str
    callback_url: str | None = None
    tag: str | None = None

    def request(self, user_id: str) -> RestRequest:
        body = {"from": self.from_, "callbackUrl": self.callback_url, "tag": self.tag}
        return RestRequest("POST", f"{_users(user_id)}/conferences", _compact(body))


@dataclass(frozen=True, slots=True, kw_only=True)
class AddConferenceMember(RestCommand):
    """``POST /v1/users/{userId}/conferences/{conferenceId}/members`` with ``callId``, ``joinTone``,
    ``leavingTone``, ``mute``, ``hold``. Result: the member id."""

    operation: ClassVar[str] = "addMember"
    conference_id: str
    call_id: str
    join_tone: bool = True
    leaving_tone: bool = True
    mute: bool = False
    hold: bool = False

    def request(self, user_id: str) -> RestRequest:
        body: JSONObject = {
            "callId": self.call_id,
            "joinTone": self.join_tone,
            "leavingTone": self.leaving_tone,
            "mute": self.mute,
            "hold": self.hold,
        }
        path = f"{_users(user_id)}/conferences/{_seg(self.conference_id)}/members"
        return RestRequest("POST", path, body)


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateConferenceMember(RestCommand):
    """``POST /v1/users/{userId}/conferences/{conferenceId}/members/{memberId}`` with ``mute``/``hold``,
    or ``{"state": "completed"}`` to remove the member."""

    operation: ClassVar[str] = "updateMember"
    conference_id: str
    member_id: str
    mute: bool | None = None
    hold: bool | None = None
    remove: bool = False

    def request(self, user_id: str) -> RestRequest:
        path = f"{_users(user_id)}/conferences/{_seg(self.conference_id)}/members/{_seg(self.member_id)}"
        if self.remove:
            return RestRequest("POST", path, {"state": "completed"})
        return RestRequest("POST", path, _compact({"mute": self.mute, "hold": self.hold}))


# ----------------------------------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True, kw_only=True)
class SendMessage(RestCommand):
    """``POST /v1/users/{userId}/messages`` with ``from``, ``to``, ``text``, ``media``, ``receiptRequested``,
    ``callbackUrl`` and ``tag``. Result: the message id."""

    operation: ClassVar[str] = "sendMessage"
    from_: str
    to: str
    text: str
    media: tuple[str, ...] = ()
    receipt_requested: Literal["none", "all", "error"] | None = None
    callback_url: str | None = None
    tag: str | None = None

    def request(self, user_id: str) -> RestRequest:
        body: dict[str, JSON] = {
            "from": self.from_,
            "to": self.to,
            "text": self.text,
            "media": list(self.media) if self.media else None,
            # The API refuses receipts together with media.
            "receiptRequested": None if self.media else self.receipt_requested,
            "callbackUrl": self.callback_url,
            "tag": self.tag,
        }
        return RestRequest("POST", f"{_users(user_id)}/messages", _compact(body))


# ------------------------------------------------------------------------------------- not REST


@dataclass(frozen=True, slots=True, kw_only=True)
class StartTimer(Command):
    """Fire :class:`~flowengine.runtime.events.TimerFired` with ``key`` at ``at`` (replaces a timer of that
    key)."""

    key: str
    at: Seconds


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelTimer(Command):
    """Drop the timer ``key`` (nothing happens if it already fired or never existed)."""

    key: str


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpCall(Command):
    """The flow's ``http`` action: make the request and report it as
    :class:`~flowengine.runtime.events.HttpResult` with the same ``command_id``."""

    command_id: str
    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    json: JSON = None
    body: str | None = None
    timeout: Seconds = 10.0


@dataclass(frozen=True, slots=True, kw_only=True)
class LookupCaller(Command):
    """The flow's ``lookup_caller`` action: ``GET /v1/phoneNumbers/numberInfo/{number}`` (the caller-id name),
    reported as :class:`~flowengine.runtime.events.HttpResult` with the same ``command_id``: status 200 and the
    API's answer in ``json``, 404 when the number has no name, or the failure."""

    command_id: str
    number: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Log(Command):
    """A line the flow asked to log (the edge logs it with structlog)."""

    level: Literal["debug", "info", "warning", "error"]
    message: str
    session_id: str = ""
    flow: str = ""
    state: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class EndSession(Command):
    """The session is over: the edge may archive it and forget its routes."""

    session_id: str
    reason: str


AnyCommand: TypeAlias = (
    CreateCall
    | UpdateCallState
    | TransferCall
    | SetCallRecording
    | PlayAudio
    | StopAudio
    | SendDtmf
    | CreateGather
    | StopGather
    | CreateTranscription
    | CreateBridge
    | UpdateBridge
    | CreateConference
    | AddConferenceMember
    | UpdateConferenceMember
    | SendMessage
    | StartTimer
    | CancelTimer
    | HttpCall
    | LookupCaller
    | Log
    | EndSession
)


def call_id_of(command: Command) -> str | None:
    """The call a command acts on, if any (used to drop commands for legs that have hung up)."""
    value: Any = getattr(command, "call_id", None)
    return value if isinstance(value, str) else None
