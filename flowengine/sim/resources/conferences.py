"""Conferences and their members: create, update, audio to all or to one member, read and list."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowengine.sim.params import E164, Field, read_body
from flowengine.sim.problems import ApiProblem, not_found, validation
from flowengine.sim.resources.calls import AUDIO
from flowengine.sim.rest import CALLBACK_FIELDS, ApiRequest, Reply, Route, created, read_target
from flowengine.sim.state import Conference, Member

if TYPE_CHECKING:
    from flowengine.sim.simulator import Simulator

CREATE = (
    Field("from", required=True, pattern=E164, pattern_hint="an E.164 number like +19195551212"),
    *CALLBACK_FIELDS,
    Field("profile", choices=("interpret_digits", "passthru_digits")),
    Field("tag", max_length=256),
)
UPDATE = (
    Field("state", choices=("completed",)),
    Field("hold", "bool"),
    Field("mute", "bool"),
    *CALLBACK_FIELDS,
    Field("tag", max_length=256),
)
MEMBER = (
    Field("callId", required=True, allow_blank=False),
    Field("joinTone", "bool"),
    Field("leavingTone", "bool"),
    Field("mute", "bool"),
    Field("hold", "bool"),
)
MEMBER_UPDATE = (
    Field("state", choices=("completed",)),
    Field("joinTone", "bool"),
    Field("leavingTone", "bool"),
    Field("mute", "bool"),
    Field("hold", "bool"),
)


def _conference(sim: Simulator, req: ApiRequest) -> Conference:
    conference = sim.world.conferences.get(req.params["conferenceId"])
    if conference is None:
        raise not_found("conference", req.params["conferenceId"])
    return conference


def _member(sim: Simulator, req: ApiRequest) -> tuple[Conference, Member]:
    conference = _conference(sim, req)
    member = sim.world.members.get(req.params["memberId"])
    if member is None or member.conference_id != conference.id:
        raise not_found("conference-member", req.params["memberId"])
    return conference, member


def _json(sim: Simulator, conference: Conference) -> object:
    return conference.to_json(sim.urls, len(sim.rooms.active_members(conference)))


def create_conference(sim: Simulator, req: ApiRequest) -> Reply:
    body = read_body("conference", CREATE, req.body)
    from_ = str(body["from"])
    if sim.world.number(from_) is None:
        raise validation(f"The number {from_} is not a phone number owned by user", "from")
    tag = body.get("tag")
    conference = Conference(
        id=sim.world.ids.new("conf"),
        from_=from_,
        created_time=sim.clock.now(),
        target=read_target(body),
        profile=str(body.get("profile", "interpret_digits")),
        tag=tag if isinstance(tag, str) else None,
    )
    sim.rooms.create_conference(conference)
    return created(sim.urls.of("conferences", conference.id))


def get_conference(sim: Simulator, req: ApiRequest) -> Reply:
    conference = _conference(sim, req)
    return Reply(body=conference.to_json(sim.urls, len(sim.rooms.active_members(conference))))


def update_conference(sim: Simulator, req: ApiRequest) -> Reply:
    conference = _conference(sim, req)
    body = read_body("conference", UPDATE, req.body)
    if conference.state == "completed":
        raise ApiProblem(
            403, "forbidden", "conference-error", f"The conference {conference.id} has completed"
        )
    if any(name in body for name in ("callbackUrl", "callbackTimeout", "callbackHttpMethod", "fallbackUrl")):
        conference.target = read_target(body, conference.target)
    if "tag" in body:
        tag = body["tag"]
        conference.tag = tag if isinstance(tag, str) else None
    if "hold" in body:
        conference.hold = bool(body["hold"])
    if "mute" in body:
        conference.mute = bool(body["mute"])
    if body.get("state") == "completed":
        sim.rooms.complete_conference(conference)
    return Reply()


def conference_audio(sim: Simulator, req: ApiRequest) -> Reply:
    conference = _conference(sim, req)
    body = read_body("audio", AUDIO, req.body)
    if conference.state == "completed":
        raise ApiProblem(
            403, "forbidden", "conference-error", f"The conference {conference.id} has completed"
        )
    if body.get("sentence") == "" or body.get("fileUrl") == "":
        sim.rooms.conference_stop(conference)
        return Reply()
    item = sim.voice.audio_item(body)
    if item is None:
        raise validation("An audio request needs a 'sentence' or a 'fileUrl'", "sentence")
    sim.rooms.conference_play(conference, item)
    return Reply()


def add_member(sim: Simulator, req: ApiRequest) -> Reply:
    conference = _conference(sim, req)
    body = read_body("member", MEMBER, req.body)
    member = Member(
        id=sim.world.ids.new("member"),
        conference_id=conference.id,
        call_id=str(body["callId"]),
        added_time=sim.clock.now(),
        join_tone=bool(body.get("joinTone", False)),
        leaving_tone=bool(body.get("leavingTone", False)),
        mute=bool(body.get("mute", conference.mute)),
        hold=bool(body.get("hold", conference.hold)),
    )
    sim.rooms.add_member(conference, member)
    return created(sim.urls.of("conferences", conference.id, "members", member.id))


def list_members(sim: Simulator, req: ApiRequest) -> Reply:
    conference = _conference(sim, req)
    return Reply(body=[sim.world.members[m].to_json(sim.urls) for m in conference.member_ids])


def get_member(sim: Simulator, req: ApiRequest) -> Reply:
    _, member = _member(sim, req)
    return Reply(body=member.to_json(sim.urls))


def update_member(sim: Simulator, req: ApiRequest) -> Reply:
    conference, member = _member(sim, req)
    body = read_body("member", MEMBER_UPDATE, req.body)
    if member.state == "completed":
        raise ApiProblem(
            403, "forbidden", "conference-error", f"The member {member.id} has left the conference"
        )
    for name, attr in (("joinTone", "join_tone"), ("leavingTone", "leaving_tone")):
        if name in body:
            setattr(member, attr, bool(body[name]))
    changed = False
    for name in ("mute", "hold"):
        if name in body and bool(body[name]) != getattr(member, name):
            setattr(member, name, bool(body[name]))
            changed = True
    if body.get("state") == "completed":
        sim.rooms.remove_member(member)
    elif changed:
        sim.rooms.member_event(conference, member)
    return Reply()


def member_audio(sim: Simulator, req: ApiRequest) -> Reply:
    _, member = _member(sim, req)
    body = read_body("audio", AUDIO, req.body)
    call = sim.voice.call(member.call_id)
    sim.voice.require_active(call)
    if body.get("sentence") == "" or body.get("fileUrl") == "":
        sim.voice.stop_audio(call)
        return Reply()
    item = sim.voice.audio_item(body)
    if item is None:
        raise validation("An audio request needs a 'sentence' or a 'fileUrl'", "sentence")
    sim.voice.play(call, item)
    return Reply()


ROUTES: tuple[Route, ...] = (
    Route("POST", "/conferences", create_conference),
    Route("GET", "/conferences/{conferenceId}", get_conference),
    Route("POST", "/conferences/{conferenceId}", update_conference),
    Route("POST", "/conferences/{conferenceId}/audio", conference_audio),
    Route("POST", "/conferences/{conferenceId}/members", add_member),
    Route("GET", "/conferences/{conferenceId}/members", list_members),
    Route("GET", "/conferences/{conferenceId}/members/{memberId}", get_member),
    Route("POST", "/conferences/{conferenceId}/members/{memberId}", update_member),
    Route("POST", "/conferences/{conferenceId}/members/{memberId}/audio", member_audio),
)
