"""Everything the simulator knows: the account's resources as plain mutable records.

Records render themselves as the API's JSON with ``to_json(urls)``; the logic that changes them lives in
``voice.py`` and ``messaging.py``.
"""

from __future__ import annotations

import itertools
import math
import secrets
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from flowengine.sim.callbacks import Target
from flowengine.sim.clock import Timer, iso8601
from flowengine.typing import JSON, JSONObject, Seconds


class Urls:
    """Builds the full URLs the API puts in bodies and events."""

    def __init__(self, origin: str, user_id: str) -> None:
        self.origin = origin.rstrip("/")
        self.user_id = user_id

    @property
    def user(self) -> str:
        return f"{self.origin}/v1/users/{self.user_id}"

    def of(self, *parts: str) -> str:
        return "/".join([self.user, *parts])


def _t(moment: Seconds | None) -> str | None:
    return None if moment is None else iso8601(moment)


def _drop_none(data: dict[str, JSON]) -> JSONObject:
    return {key: value for key, value in data.items() if value is not None}


class Ids:
    """Ids shaped like the reference's samples (``c-…``, ``m-…``), unique per simulator."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)
        self._salt = secrets.token_hex(3)

    def new(self, prefix: str) -> str:
        return f"{prefix}-{self._salt}{next(self._counter):06d}"


AudioKind = Literal["sentence", "file"]


@dataclass(slots=True)
class AudioItem:
    """A sentence or file queued on a call or a conference."""

    kind: AudioKind
    content: str
    duration: Seconds
    tag: str | None = None
    loop: bool = False
    voice: str | None = None
    gender: str | None = None
    locale: str | None = None
    timer: Timer | None = None
    started_at: Seconds | None = None


@dataclass(slots=True)
class CallEvent:
    id: str
    time: Seconds
    name: str
    data: str | None = None

    def to_json(self) -> JSONObject:
        return _drop_none({"id": self.id, "time": iso8601(self.time), "name": self.name, "data": self.data})


@dataclass(slots=True)
class TranscriptEntry:
    """One line of a call's transcript: what the caller heard, pressed or did, and every REST call."""

    time: Seconds
    kind: str
    text: str
    data: JSONObject = field(default_factory=dict)

    def to_json(self) -> JSONObject:
        return {"time": iso8601(self.time), "kind": self.kind, "text": self.text, **self.data}


@dataclass(slots=True)
class Call:
    id: str
    direction: Literal["in", "out"]
    from_: str
    to: str
    state: str
    start_time: Seconds
    target: Target
    call_timeout: int = 60
    tag: str | None = None
    application_id: str | None = None
    bridge_id: str | None = None
    conference_id: str | None = None
    member_id: str | None = None
    recording_enabled: bool = False
    recording_max_duration: int = 3600
    recording_file_format: str = "wav"
    transcription_enabled: bool = False
    sip_headers: dict[str, str] = field(default_factory=dict)
    active_time: Seconds | None = None
    end_time: Seconds | None = None
    cause: str | None = None
    events: list[CallEvent] = field(default_factory=list)
    transcript: list[TranscriptEntry] = field(default_factory=list)
    audio: deque[AudioItem] = field(default_factory=deque)
    playing: AudioItem | None = None
    gather_id: str | None = None
    gathers: list[str] = field(default_factory=list)
    recording_id: str | None = None
    recordings: list[str] = field(default_factory=list)
    timers: list[Timer] = field(default_factory=list)
    peer_id: str | None = None
    transfer_of: str | None = None
    diversion: JSONObject | None = None

    @property
    def ended(self) -> bool:
        return self.state in ("completed", "rejected")

    def to_json(self, urls: Urls) -> JSONObject:
        charge: int | None = None
        if self.active_time is not None and self.end_time is not None:
            charge = 60 * max(1, math.ceil((self.end_time - self.active_time) / 60))
        return _drop_none(
            {
                "id": self.id,
                "direction": self.direction,
                "from": self.from_,
                "to": self.to,
                "state": self.state,
                "startTime": _t(self.start_time),
                "activeTime": _t(self.active_time),
                "endTime": _t(self.end_time),
                "chargeableDuration": charge,
                "callTimeout": self.call_timeout,
                "callbackUrl": self.target.url,
                "callbackHttpMethod": self.target.method,
                "callbackTimeout": self.target.timeout_ms,
                "fallbackUrl": self.target.fallback_url,
                "bridgeId": self.bridge_id,
                "conferenceId": self.conference_id,
                "events": urls.of("calls", self.id, "events"),
                "recordings": urls.of("calls", self.id, "recordings"),
                "transcriptions": urls.of("calls", self.id, "transcriptions"),
                "recordingEnabled": self.recording_enabled,
                "recordingMaxDuration": self.recording_max_duration,
                "recordingFileFormat": self.recording_file_format,
                "transcriptionEnabled": self.transcription_enabled,
                "sipHeaders": dict(self.sip_headers) or None,
                "tag": self.tag,
            }
        )


@dataclass(slots=True)
class Gather:
    id: str
    call_id: str
    created_time: Seconds
    max_digits: int | None
    inter_digit_timeout: Seconds
    terminating_digits: str
    tag: str | None
    prompt: AudioItem | None
    state: str = "started"
    digits: str = ""
    reason: str | None = None
    completed_time: Seconds | None = None
    timer: Timer | None = None

    def to_json(self, urls: Urls) -> JSONObject:
        return _drop_none(
            {
                "id": self.id,
                "gatherId": self.id,
                "state": self.state,
                "digits": self.digits,
                "reason": self.reason,
                "tag": self.tag,
                "createdTime": _t(self.created_time),
                "completedTime": _t(self.completed_time),
                "call": urls.of("calls", self.call_id),
            }
        )


@dataclass(slots=True)
class Bridge:
    id: str
    created_time: Seconds
    bridge_audio: bool = True
    call_ids: list[str] = field(default_factory=list)
    state: str = "created"
    activated_time: Seconds | None = None
    completed_time: Seconds | None = None
    used: bool = False

    def to_json(self, urls: Urls) -> JSONObject:
        return _drop_none(
            {
                "id": self.id,
                "state": self.state,
                "bridgeAudio": self.bridge_audio,
                "callIds": list(self.call_ids),
                "calls": urls.of("bridges", self.id, "calls"),
                "createdTime": _t(self.created_time),
                "activatedTime": _t(self.activated_time),
                "completedTime": _t(self.completed_time),
            }
        )


@dataclass(slots=True)
class Conference:
    id: str
    from_: str
    created_time: Seconds
    target: Target
    profile: str = "interpret_digits"
    tag: str | None = None
    state: str = "created"
    hold: bool = False
    mute: bool = False
    completed_time: Seconds | None = None
    member_ids: list[str] = field(default_factory=list)
    audio: deque[AudioItem] = field(default_factory=deque)
    playing: AudioItem | None = None

    def to_json(self, urls: Urls, active_members: int) -> JSONObject:
        return _drop_none(
            {
                "id": self.id,
                "from": self.from_,
                "state": self.state,
                "profile": self.profile,
                "activeMembers": active_members,
                "hold": self.hold,
                "mute": self.mute,
                "callbackUrl": self.target.url,
                "callbackHttpMethod": self.target.method,
                "callbackTimeout": self.target.timeout_ms,
                "fallbackUrl": self.target.fallback_url,
                "tag": self.tag,
                "createdTime": _t(self.created_time),
                "completedTime": _t(self.completed_time),
                "members": urls.of("conferences", self.id, "members"),
            }
        )


@dataclass(slots=True)
class Member:
    id: str
    conference_id: str
    call_id: str
    added_time: Seconds
    join_tone: bool = False
    leaving_tone: bool = False
    mute: bool = False
    hold: bool = False
    state: str = "active"
    removed_time: Seconds | None = None

    def to_json(self, urls: Urls) -> JSONObject:
        return _drop_none(
            {
                "id": self.id,
                "state": self.state,
                "mute": self.mute,
                "hold": self.hold,
                "joinTone": self.join_tone,
                "leavingTone": self.leaving_tone,
                "addedTime": _t(self.added_time),
                "removedTime": _t(self.removed_time),
                "call": urls.of("calls", self.call_id),
            }
        )


@dataclass(slots=True)
class Recording:
    id: str
    call_id: str
    start_time: Seconds
    media_name: str
    file_format: str
    max_duration: int
    transcribe: bool
    state: str = "recording"
    end_time: Seconds | None = None
    transcription_ids: list[str] = field(default_factory=list)
    timer: Timer | None = None

    def to_json(self, urls: Urls) -> JSONObject:
        return _drop_none(
            {
                "id": self.id,
                "state": self.state,
                "startTime": _t(self.start_time),
                "endTime": _t(self.end_time),
                "call": urls.of("calls", self.call_id),
                "media": urls.of("media", self.media_name),
                "transcriptions": urls.of("recordings", self.id, "transcriptions"),
            }
        )


@dataclass(slots=True)
class Transcription:
    id: str
    recording_id: str
    time: Seconds
    state: str = "transcribing"
    text: str = ""
    chargeable_duration: int = 60

    def to_json(self, urls: Urls) -> JSONObject:
        done = self.state == "completed"
        return _drop_none(
            {
                "id": self.id,
                "state": self.state,
                "text": self.text[:1000] if done else None,
                "textSize": len(self.text) if done else None,
                "textUrl": urls.of("recordings", self.recording_id, "transcriptions", self.id, "text")
                if done
                else None,
                "time": iso8601(self.time),
                "chargeableDuration": self.chargeable_duration if done else None,
            }
        )


@dataclass(slots=True)
class Media:
    name: str
    content: bytes
    content_type: str

    def to_json(self, urls: Urls) -> JSONObject:
        return {
            "mediaName": self.name,
            "contentLength": len(self.content),
            "content": urls.of("media", self.name),
        }


@dataclass(slots=True)
class Message:
    id: str
    sort_key: int
    direction: Literal["in", "out"]
    from_: str
    to: str
    text: str
    time: Seconds
    target: Target
    media: list[str] = field(default_factory=list)
    state: str = "queued"
    receipt_requested: str = "none"
    delivery_state: str | None = None
    delivery_code: int | None = None
    delivery_description: str | None = None
    application_id: str | None = None
    tag: str | None = None

    @property
    def event_type(self) -> str:
        return "mms" if self.media else "sms"

    @property
    def segment_count(self) -> int:
        if self.media or len(self.text) <= 160:
            return 1
        return math.ceil(len(self.text) / 153)

    def to_json(self, urls: Urls) -> JSONObject:
        return _drop_none(
            {
                "id": self.id,
                "messageId": self.id,
                "from": self.from_,
                "to": self.to,
                "text": self.text,
                "media": list(self.media) or None,
                "direction": self.direction,
                "state": self.state,
                "time": iso8601(self.time),
                "receiptRequested": self.receipt_requested,
                "deliveryState": self.delivery_state,
                "deliveryCode": None if self.delivery_code is None else str(self.delivery_code),
                "deliveryDescription": self.delivery_description,
                "segmentCount": self.segment_count,
                "callbackUrl": self.target.url,
                "callbackHttpMethod": self.target.method if self.target.url else None,
                "callbackTimeout": self.target.timeout_ms if self.target.url else None,
                "fallbackUrl": self.target.fallback_url,
            }
        )


@dataclass(slots=True)
class Application:
    id: str
    name: str
    incoming_call_url: str | None = None
    incoming_message_url: str | None = None
    incoming_call_timeout: int = 10000
    incoming_message_timeout: int = 10000
    incoming_call_fallback_url: str | None = None
    incoming_message_fallback_url: str | None = None
    callback_http_method: str = "POST"
    auto_answer: bool = True

    def call_target(self) -> Target:
        return Target(
            self.incoming_call_url,
            self.callback_http_method,
            self.incoming_call_timeout,
            self.incoming_call_fallback_url,
        )

    def message_target(self) -> Target:
        return Target(
            self.incoming_message_url,
            self.callback_http_method,
            self.incoming_message_timeout,
            self.incoming_message_fallback_url,
        )

    def to_json(self, urls: Urls) -> JSONObject:
        return _drop_none(
            {
                "id": self.id,
                "name": self.name,
                "incomingCallUrl": self.incoming_call_url,
                "incomingCallUrlCallbackTimeout": self.incoming_call_timeout,
                "incomingCallFallbackUrl": self.incoming_call_fallback_url,
                "incomingMessageUrl": self.incoming_message_url,
                "incomingMessageUrlCallbackTimeout": self.incoming_message_timeout,
                "incomingMessageFallbackUrl": self.incoming_message_fallback_url,
                "callbackHttpMethod": self.callback_http_method,
                "autoAnswer": self.auto_answer,
            }
        )


@dataclass(slots=True)
class PhoneNumber:
    id: str
    number: str
    created_time: Seconds
    name: str | None = None
    application_id: str | None = None
    fallback_number: str | None = None
    city: str | None = None
    state: str | None = None
    price: str = "0.35"
    number_state: str = "enabled"

    @property
    def national_number(self) -> str:
        digits = self.number.removeprefix("+1")
        if self.number.startswith("+1") and len(digits) == 10:
            return f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"
        return self.number

    def to_json(self, urls: Urls) -> JSONObject:
        return _drop_none(
            {
                "id": self.id,
                "number": self.number,
                "nationalNumber": self.national_number,
                "name": self.name,
                "applicationId": self.application_id,
                "application": urls.of("applications", self.application_id) if self.application_id else None,
                "fallbackNumber": self.fallback_number,
                "city": self.city,
                "state": self.state,
                "price": self.price,
                "numberState": self.number_state,
                "createdTime": iso8601(self.created_time),
            }
        )


@dataclass(slots=True)
class Domain:
    """A SIP domain: a named group of endpoints (issue 10)."""

    id: str
    name: str
    description: str

    def to_json(self, urls: Urls) -> JSONObject:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "endpoints": urls.of("domains", self.id, "endpoints"),
        }


SIP_REALM_SUFFIX = "bwapp.bwsipp.io"


@dataclass(slots=True)
class Endpoint:
    """A SIP endpoint of a domain. Only a salted hash of its password is kept, never the password."""

    id: str
    domain_id: str
    domain_name: str
    name: str
    password_hash: str
    salt: str
    description: str | None = None
    application_id: str | None = None
    enabled: bool = True

    @property
    def realm(self) -> str:
        return f"{self.domain_name}.{SIP_REALM_SUFFIX}"

    @property
    def sip_uri(self) -> str:
        return f"{self.name}@{self.realm}"

    def to_json(self, urls: Urls) -> JSONObject:
        # The reference's examples print ``enabled`` as a string ("true"); so do we.
        return _drop_none(
            {
                "id": self.id,
                "name": self.name,
                "description": self.description,
                "domainId": self.domain_id,
                "applicationId": self.application_id,
                "enabled": "true" if self.enabled else "false",
                "sipUri": self.sip_uri,
                "credentials": {"realm": self.realm, "username": self.name},
            }
        )


@dataclass(slots=True)
class CallerName:
    """A CNAM entry the control API set: the caller-id name of a number."""

    number: str
    name: str
    updated: Seconds
    created: Seconds | None = None

    def to_json(self) -> JSONObject:
        return {
            "created": iso8601(self.created if self.created is not None else self.updated),
            "name": self.name,
            "number": self.number,
            "updated": iso8601(self.updated),
        }


@dataclass(slots=True)
class Transaction:
    """One line of the account's ledger (a charge, or the opening credit)."""

    id: str
    time: Seconds
    amount: float
    type: str
    units: int
    product_type: str | None = None
    number: str | None = None
    resource_id: str | None = None

    def to_json(self) -> JSONObject:
        return _drop_none(
            {
                "id": self.id,
                "time": iso8601(self.time),
                "amount": f"{self.amount:.5f}",
                "type": self.type,
                "units": self.units,
                "productType": self.product_type,
                "number": self.number,
                "resourceId": self.resource_id,
            }
        )


@dataclass(slots=True)
class World:
    """All resources of the one simulated account."""

    ids: Ids = field(default_factory=Ids)
    calls: dict[str, Call] = field(default_factory=dict)
    gathers: dict[str, Gather] = field(default_factory=dict)
    bridges: dict[str, Bridge] = field(default_factory=dict)
    conferences: dict[str, Conference] = field(default_factory=dict)
    members: dict[str, Member] = field(default_factory=dict)
    recordings: dict[str, Recording] = field(default_factory=dict)
    transcriptions: dict[str, Transcription] = field(default_factory=dict)
    media: dict[str, Media] = field(default_factory=dict)
    messages: dict[str, Message] = field(default_factory=dict)
    applications: dict[str, Application] = field(default_factory=dict)
    numbers: dict[str, PhoneNumber] = field(default_factory=dict)
    message_keys: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    domains: dict[str, Domain] = field(default_factory=dict)
    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    caller_names: dict[str, CallerName] = field(default_factory=dict)
    cnam_lookups: list[tuple[Seconds, str]] = field(default_factory=list)
    ledger: dict[str, Transaction] = field(default_factory=dict)

    def number(self, e164: str) -> PhoneNumber | None:
        """The owned number record for an E.164 number, if the account owns it."""
        for record in self.numbers.values():
            if record.number == e164 and record.number_state == "enabled":
                return record
        return None
