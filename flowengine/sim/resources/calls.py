"""Calls: create, read, list, update (answer, reject, hang up, transfer, record), audio, DTMF,
gathers, and a call's events, recordings and transcriptions."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from flowengine.sim.params import E164, SIP_URI, Field, read_body
from flowengine.sim.problems import ApiProblem, invalid_call_state, not_found, validation
from flowengine.sim.rest import (
    CALLBACK_FIELDS,
    ApiRequest,
    Reply,
    Route,
    created,
    descending,
    page,
    read_target,
)
from flowengine.sim.rooms import MAX_BRIDGE_CALLS
from flowengine.sim.state import AudioItem, Call, Gather
from flowengine.typing import JSON, JSONObject

if TYPE_CHECKING:
    from flowengine.sim.simulator import Simulator

PHONE_OR_SIP = re.compile(f"{E164.pattern}|{SIP_URI.pattern}")
DTMF_OUT = re.compile(r"^[A-D0-9#*,wW]+$")
LOCALES = ("en_US", "en_UK", "es", "es_MX", "fr", "fr_FR", "de", "de_DE", "it", "it_IT", "t")

CREATE = (
    Field("from", required=True, pattern=E164, pattern_hint="an E.164 number like +19195551212"),
    Field("to", required=True, pattern=PHONE_OR_SIP, pattern_hint="an E.164 number or a sip: URI"),
    Field("callTimeout", "int", minimum=1, maximum=300),
    *CALLBACK_FIELDS,
    Field("bridgeId"),
    Field("conferenceId"),
    Field("recordingEnabled", "bool"),
    Field("recordingMaxDuration", "int", minimum=1, maximum=3600),
    Field("recordingFileFormat", choices=("wav", "mp3")),
    Field("transcriptionEnabled", "bool"),
    Field("tag", max_length=256),
    Field("sipHeaders", "object"),
)

UPDATE = (
    Field("state", choices=("active", "rejected", "completed", "transferring")),
    Field("recordingEnabled", "bool"),
    Field("recordingFileFormat", choices=("wav", "mp3")),
    Field("transferTo", pattern=PHONE_OR_SIP, pattern_hint="an E.164 number or a sip: URI"),
    Field("transferCallerId"),
    Field("whisperAudio", "object"),
    Field("callbackUrl"),
    Field("tag", max_length=256),
    Field("diversionTreatment", choices=("none", "propagate", "stack")),
    Field(
        "diversionReason",
        choices=(
            "unknown",
            "user-busy",
            "no-answer",
            "unavailable",
            "unconditional",
            "time-of-day",
            "do-not-disturb",
            "deflection",
            "follow-me",
            "out-of-service",
            "away",
        ),
    ),
)

AUDIO = (
    Field("fileUrl"),
    Field("sentence", max_length=1000),
    Field("gender", choices=("female", "male")),
    Field("locale", choices=LOCALES),
    Field("voice"),
    Field("loopEnabled", "bool"),
    Field("tag", max_length=256),
    Field("volume", "int", minimum=-4, maximum=4),
)

DTMF = (
    Field(
        "dtmfOut",
        required=True,
        max_length=92,
        pattern=DTMF_OUT,
        pattern_hint="digits 0-9, A-D, *, #, and pauses , w W",
        allow_blank=False,
    ),
)

GATHER = (
    Field("maxDigits", "int", minimum=1, maximum=30),
    Field("interDigitTimeout", "float", minimum=1, maximum=30),
    Field("terminatingDigits", max_length=30, allow_blank=False),
    Field("tag", max_length=256),
    Field("prompt", "object"),
)

PROMPT = (
    Field("sentence", max_length=1000),
    Field("gender", choices=("female", "male")),
    Field("locale", choices=LOCALES),
    Field("voice"),
    Field("fileUrl"),
    Field("loopEnabled", "bool"),
    Field("bargeable", "bool"),
)


def _owned(sim: Simulator, number: str) -> bool:
    return sim.world.number(number) is not None


def create_call(sim: Simulator, req: ApiRequest) -> Reply:
    body = read_body("call", CREATE, req.body)
    from_ = str(body["from"])
    if not _owned(sim, from_):
        raise validation(
            f"The callerId {from_} is not allowed. It must be private or a phone number owned by user", "from"
        )
    bridge_id = body.get("bridgeId")
    if isinstance(bridge_id, str):
        bridge = sim.world.bridges.get(bridge_id)
        if bridge is None:
            raise not_found("bridge", bridge_id)
        if bridge.state == "completed" or len(bridge.call_ids) >= MAX_BRIDGE_CALLS:
            raise ApiProblem(
                400,
                "bad-request",
                "bridge-callIds-overflow",
                f"The bridge {bridge_id} is {bridge.state} with {len(bridge.call_ids)} calls; it cannot take another",
            )
    conference_id = body.get("conferenceId")
    if isinstance(conference_id, str) and conference_id not in sim.world.conferences:
        raise not_found("conference", conference_id)
    headers = body.get("sipHeaders") or {}
    assert isinstance(headers, dict)
    _check_sip_headers(headers)
    call = Call(
        id=sim.world.ids.new("c"),
        direction="out",
        from_=from_,
        to=str(body["to"]),
        state="started",
        start_time=sim.clock.now(),
        target=read_target(body),
        call_timeout=_int(body.get("callTimeout"), 60),
        tag=_opt(body.get("tag")),
        bridge_id=_opt(bridge_id),
        conference_id=_opt(conference_id),
        recording_enabled=bool(body.get("recordingEnabled", False)),
        recording_max_duration=_int(body.get("recordingMaxDuration"), 3600),
        recording_file_format=str(body.get("recordingFileFormat", "wav")),
        transcription_enabled=bool(body.get("transcriptionEnabled", False)),
        sip_headers={str(k): str(v) for k, v in headers.items()},
    )
    sim.voice.note(call, "rest", f"{req.method} {req.path}", body=req.body, status=201)
    sim.voice.create_outbound(call)
    if call.bridge_id is not None:
        bridge = sim.world.bridges[call.bridge_id]
        if call.id not in bridge.call_ids:
            sim.rooms.bridge_calls(bridge, [*bridge.call_ids, call.id])
    return created(sim.urls.of("calls", call.id))


def _check_sip_headers(headers: dict[str, JSON]) -> None:
    if len(headers) > 5:
        raise validation("At most 5 sipHeaders may be sent", "sipHeaders")
    for name, value in headers.items():
        if not name.startswith("X-") or len(name) > 256:
            raise validation(
                f"The SIP header {name!r} must start with 'X-' and be at most 256 characters", "sipHeaders"
            )
        if not isinstance(value, str) or len(value) > 256:
            raise validation(
                f"The value of the SIP header {name!r} must be a string of at most 256 characters",
                "sipHeaders",
            )


def _int(value: JSON, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _opt(value: JSON) -> str | None:
    return value if isinstance(value, str) else None


def get_call(sim: Simulator, req: ApiRequest) -> Reply:
    return Reply(body=sim.voice.call(req.params["callId"]).to_json(sim.urls))


def list_calls(sim: Simulator, req: ApiRequest) -> Reply:
    calls = list(sim.world.calls.values())
    q = req.query
    for name, attr in (
        ("bridgeId", "bridge_id"),
        ("conferenceId", "conference_id"),
        ("from", "from_"),
        ("to", "to"),
    ):
        if name in q:
            wanted = q[name]
            calls = [c for c in calls if getattr(c, attr) == wanted]
    calls.sort(key=lambda c: c.start_time, reverse=descending(q))
    if "bridgeId" not in q and "conferenceId" not in q:
        calls = page(calls, q)
    return Reply(body=[c.to_json(sim.urls) for c in calls])


def update_call(sim: Simulator, req: ApiRequest) -> Reply:
    call = sim.voice.call(req.params["callId"])
    body = read_body("call", UPDATE, req.body)
    state = body.get("state")
    if call.ended:
        raise invalid_call_state(call.id, call.state)
    if "tag" in body:
        call.tag = _opt(body["tag"])
    if "recordingFileFormat" in body:
        call.recording_file_format = str(body["recordingFileFormat"])
    if state == "transferring":
        leg = _transfer(sim, call, body)
        return created(sim.urls.of("calls", leg.id))
    if state == "active":
        if call.state == "started" and call.direction == "in":
            sim.voice.answer(call)
        elif call.state != "active":
            raise invalid_call_state(call.id, call.state)
    elif state == "rejected":
        if call.state != "started" or call.direction != "in":
            raise invalid_call_state(call.id, call.state)
        sim.voice.reject(call)
    elif state == "completed":
        unanswered_out = call.direction == "out" and call.state == "started"
        sim.voice.end(call, "ORIGINATOR_CANCEL" if unanswered_out else "NORMAL_CLEARING")
    if "recordingEnabled" in body and not call.ended:
        sim.voice.set_recording(call, bool(body["recordingEnabled"]))
    return Reply()


def _transfer(sim: Simulator, call: Call, body: JSONObject) -> Call:
    to = body.get("transferTo")
    if not isinstance(to, str):
        raise ApiProblem(
            400,
            "bad-request",
            "missing-property",
            "The 'call' resource property 'transferTo' is required but was not specified",
            details=[{"name": "property", "value": "transferTo"}],
        )
    caller_id = body.get("transferCallerId")
    if caller_id is None:
        chosen = call.from_
    else:
        chosen = str(caller_id)
        allowed = (
            chosen == "private" or _owned(sim, chosen) or (call.direction == "in" and chosen == call.from_)
        )
        if not allowed:
            raise validation(
                f"The callerId {chosen} is not allowed. It must be private or a phone number owned by user",
                "transferCallerId",
            )
    whisper_body = body.get("whisperAudio")
    whisper: AudioItem | None = None
    if isinstance(whisper_body, dict):
        read_body("whisperAudio", AUDIO, whisper_body)
        whisper = sim.voice.audio_item(whisper_body)
    target = call.target
    url = body.get("callbackUrl")
    if isinstance(url, str) and url:
        target = read_target({"callbackUrl": url}, call.target)
    return sim.voice.transfer(call, to, chosen, whisper, target)


def call_audio(sim: Simulator, req: ApiRequest) -> Reply:
    call = sim.voice.call(req.params["callId"])
    body = read_body("audio", AUDIO, req.body)
    sim.voice.require_active(call)
    if body.get("sentence") == "" or body.get("fileUrl") == "":
        sim.voice.stop_audio(call)
        return Reply()
    item = sim.voice.audio_item(body)
    if item is None:
        raise validation("An audio request needs a 'sentence' or a 'fileUrl'", "sentence")
    sim.voice.play(call, item)
    return Reply()


def call_dtmf(sim: Simulator, req: ApiRequest) -> Reply:
    call = sim.voice.call(req.params["callId"])
    body = read_body("dtmf", DTMF, req.body)
    sim.voice.require_active(call)
    sim.voice.send_dtmf(call, str(body["dtmfOut"]))
    return Reply()


def create_gather(sim: Simulator, req: ApiRequest) -> Reply:
    call = sim.voice.call(req.params["callId"])
    body = read_body("gather", GATHER, req.body)
    prompt_body = body.get("prompt")
    prompt: AudioItem | None = None
    if isinstance(prompt_body, dict):
        checked = read_body("prompt", PROMPT, prompt_body)
        prompt = sim.voice.audio_item(checked)
    timeout = body.get("interDigitTimeout", 5.0)
    max_digits = body.get("maxDigits")
    gather = Gather(
        id=sim.world.ids.new("g"),
        call_id=call.id,
        created_time=sim.clock.now(),
        max_digits=max_digits if isinstance(max_digits, int) else None,
        inter_digit_timeout=float(timeout) if isinstance(timeout, int | float) else 5.0,
        terminating_digits=str(body.get("terminatingDigits", "#")),
        tag=_opt(body.get("tag")),
        prompt=prompt,
    )
    sim.voice.start_gather(call, gather)
    return created(sim.urls.of("calls", call.id, "gather", gather.id))


def _gather(sim: Simulator, req: ApiRequest) -> Gather:
    call = sim.voice.call(req.params["callId"])
    gather = sim.world.gathers.get(req.params["gatherId"])
    if gather is None or gather.call_id != call.id:
        raise not_found("gather", req.params["gatherId"])
    return gather


def get_gather(sim: Simulator, req: ApiRequest) -> Reply:
    return Reply(body=_gather(sim, req).to_json(sim.urls))


def update_gather(sim: Simulator, req: ApiRequest) -> Reply:
    gather = _gather(sim, req)
    body = read_body("gather", (Field("state", required=True, choices=("completed",)),), req.body)
    if body["state"] == "completed":
        sim.voice.stop_gather(gather)
    return Reply()


def call_events(sim: Simulator, req: ApiRequest) -> Reply:
    call = sim.voice.call(req.params["callId"])
    return Reply(body=[event.to_json() for event in call.events])


def call_event(sim: Simulator, req: ApiRequest) -> Reply:
    call = sim.voice.call(req.params["callId"])
    for event in call.events:
        if event.id == req.params["eventId"]:
            return Reply(body=event.to_json())
    raise not_found("event", req.params["eventId"])


def call_recordings(sim: Simulator, req: ApiRequest) -> Reply:
    call = sim.voice.call(req.params["callId"])
    return Reply(body=[sim.world.recordings[r].to_json(sim.urls) for r in call.recordings])


def call_transcriptions(sim: Simulator, req: ApiRequest) -> Reply:
    call = sim.voice.call(req.params["callId"])
    found: list[JSON] = []
    for recording_id in call.recordings:
        for transcription_id in sim.world.recordings[recording_id].transcription_ids:
            found.append(sim.world.transcriptions[transcription_id].to_json(sim.urls))
    return Reply(body=found)


ROUTES: tuple[Route, ...] = (
    Route("POST", "/calls", create_call),
    Route("GET", "/calls", list_calls),
    Route("GET", "/calls/{callId}", get_call),
    Route("POST", "/calls/{callId}", update_call),
    Route("POST", "/calls/{callId}/audio", call_audio),
    Route("POST", "/calls/{callId}/dtmf", call_dtmf),
    Route("POST", "/calls/{callId}/gather", create_gather),
    Route("GET", "/calls/{callId}/gather/{gatherId}", get_gather),
    Route("POST", "/calls/{callId}/gather/{gatherId}", update_gather),
    Route("GET", "/calls/{callId}/events", call_events),
    Route("GET", "/calls/{callId}/events/{eventId}", call_event),
    Route("GET", "/calls/{callId}/recordings", call_recordings),
    Route("GET", "/calls/{callId}/transcriptions", call_transcriptions),
)
