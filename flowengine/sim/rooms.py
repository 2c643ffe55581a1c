"""Where calls meet: bridges (two calls talking) and conferences (up to 20 members), with their
states, members, audio and events. Runs on the simulator's clock like ``voice.py``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowengine.sim.clock import iso8601
from flowengine.sim.problems import ApiProblem, invalid_call_state
from flowengine.sim.state import AudioItem, Bridge, Call, Conference, Member
from flowengine.typing import JSON, JSONObject, Seconds

if TYPE_CHECKING:
    from flowengine.sim.simulator import Simulator

MAX_BRIDGE_CALLS = 2
MAX_CONFERENCE_MEMBERS = 20


class Rooms:
    """Bridges and conferences of one simulator."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.world = sim.world

    def now(self) -> Seconds:
        return self.sim.clock.now()

    # -- bridges ---------------------------------------------------------------------------------

    def bridge_calls(self, bridge: Bridge, call_ids: list[str]) -> None:
        """Put exactly ``call_ids`` in the bridge (an empty list removes every call)."""
        if len(call_ids) > MAX_BRIDGE_CALLS:
            raise ApiProblem(
                400,
                "bad-request",
                "bridge-callIds-overflow",
                f"A bridge holds at most {MAX_BRIDGE_CALLS} calls, not {len(call_ids)}",
            )
        calls = [self.sim.voice.call(call_id) for call_id in call_ids]
        for call in calls:
            if call.ended:
                raise ApiProblem(
                    400,
                    "bad-request",
                    "bridge-invalid-state",
                    f"The call {call.id} is {call.state!r} and cannot be bridged",
                )
            if call.bridge_id not in (None, bridge.id):
                other = self.world.bridges.get(call.bridge_id or "")
                if other is not None and other.state != "completed" and call.id in other.call_ids:
                    raise ApiProblem(
                        400,
                        "bad-request",
                        "bridge-bridged-callId",
                        f"The call {call.id} is already in the bridge {other.id}",
                    )
        for call_id in bridge.call_ids:
            if call_id not in call_ids:
                self.world.calls[call_id].bridge_id = None
        for call in calls:
            call.bridge_id = bridge.id
        bridge.call_ids = list(call_ids)
        self.refresh_bridge(bridge)

    def refresh_bridge(self, bridge: Bridge) -> None:
        """Recompute the bridge's state from its calls.

        ``active``: two active calls with audio on; ``hold``: audio off; ``completed``: every call it
        ever had is gone; otherwise ``created``.
        """
        if bridge.state == "completed":
            return
        if bridge.call_ids:
            bridge.used = True
        active = [c for c in bridge.call_ids if self.world.calls[c].state == "active"]
        before = bridge.state
        if not bridge.call_ids:
            if bridge.used:
                bridge.state = "completed"
                bridge.completed_time = self.now()
        elif not bridge.bridge_audio:
            bridge.state = "hold"
        elif len(active) == MAX_BRIDGE_CALLS:
            bridge.state = "active"
            if bridge.activated_time is None:
                bridge.activated_time = self.now()
        else:
            bridge.state = "created"
        if bridge.state == "active" and before != "active":
            first, second = active
            self.sim.voice.note(self.world.calls[first], "call", f"bridged with {second}", bridgeId=bridge.id)
            self.sim.voice.note(self.world.calls[second], "call", f"bridged with {first}", bridgeId=bridge.id)

    # -- conferences -----------------------------------------------------------------------------

    def conference_event(self, conference: Conference, event_type: str, **fields: JSON) -> None:
        event: JSONObject = {
            "eventType": event_type,
            "conferenceId": conference.id,
            "conferenceUri": self.sim.urls.of("conferences", conference.id),
            **fields,
            "time": iso8601(self.now()),
        }
        if conference.tag is not None:
            event["tag"] = conference.tag
        self.sim.dispatcher.send(conference.id, conference.target, event)

    def create_conference(self, conference: Conference) -> None:
        self.world.conferences[conference.id] = conference
        self.conference_event(
            conference, "conference", status="created", createdTime=iso8601(conference.created_time)
        )

    def active_members(self, conference: Conference) -> list[Member]:
        members = (self.world.members[m] for m in conference.member_ids)
        return [m for m in members if m.state == "active"]

    def add_member(self, conference: Conference, member: Member) -> None:
        call = self.sim.voice.call(member.call_id)
        if conference.state == "completed":
            raise ApiProblem(
                403, "forbidden", "conference-error", f"The conference {conference.id} has completed"
            )
        if call.state != "active":
            raise invalid_call_state(call.id, call.state)
        if call.conference_id not in (None, conference.id):
            raise ApiProblem(
                400,
                "bad-request",
                "validation-error",
                f"The call {call.id} was created for the conference {call.conference_id}, not {conference.id}",
                details=[{"name": "property", "value": "callId"}],
            )
        if call.member_id is not None and self.world.members[call.member_id].state == "active":
            raise ApiProblem(
                400,
                "bad-request",
                "validation-error",
                f"The call {call.id} is already a member of a conference",
                details=[{"name": "property", "value": "callId"}],
            )
        if len(self.active_members(conference)) >= MAX_CONFERENCE_MEMBERS:
            raise ApiProblem(
                403,
                "forbidden",
                "conference-max-members",
                f"The conference {conference.id} already has {MAX_CONFERENCE_MEMBERS} members",
            )
        self.world.members[member.id] = member
        conference.member_ids.append(member.id)
        call.conference_id = conference.id
        call.member_id = member.id
        conference.state = "active"
        self.sim.voice.note(call, "call", f"joined conference {conference.id}", memberId=member.id)
        self.member_event(conference, member)

    def member_event(self, conference: Conference, member: Member) -> None:
        self.conference_event(
            conference,
            "conference-member",
            activeMembers=len(self.active_members(conference)),
            callId=member.call_id,
            memberId=member.id,
            memberUri=self.sim.urls.of("conferences", conference.id, "members", member.id),
            state=member.state,
            hold=member.hold,
            mute=member.mute,
        )

    def remove_member(self, member: Member) -> None:
        conference = self.world.conferences[member.conference_id]
        if member.state != "active":
            return
        member.state = "completed"
        member.removed_time = self.now()
        call = self.world.calls[member.call_id]
        self.sim.voice.note(call, "call", f"left conference {conference.id}", memberId=member.id)
        self.member_event(conference, member)
        if not self.active_members(conference) and conference.state == "active":
            self.complete_conference(conference)

    def complete_conference(self, conference: Conference) -> None:
        if conference.state == "completed":
            return
        for member in self.active_members(conference):
            member.state = "completed"
            member.removed_time = self.now()
            self.member_event(conference, member)
        conference.state = "completed"
        conference.completed_time = self.now()
        if conference.playing is not None and conference.playing.timer is not None:
            conference.playing.timer.cancel()
        conference.playing = None
        conference.audio.clear()
        self.conference_event(
            conference,
            "conference",
            status="completed",
            createdTime=iso8601(conference.created_time),
            completedTime=iso8601(conference.completed_time),
        )

    def conference_play(self, conference: Conference, item: AudioItem) -> None:
        conference.audio.append(item)
        if conference.playing is None:
            self._conference_next(conference)

    def conference_stop(self, conference: Conference) -> None:
        conference.audio.clear()
        if conference.playing is not None:
            self._conference_done(conference, conference.playing)

    def _conference_next(self, conference: Conference) -> None:
        if not conference.audio or conference.state == "completed":
            return
        item = conference.audio.popleft()
        conference.playing = item
        for member in self.active_members(conference):
            if not member.hold:
                self.sim.voice.note(
                    self.world.calls[member.call_id], "heard", item.content, conference=conference.id
                )
        self._conference_audio_event(conference, item, "started")

        def finish() -> None:
            if item.loop and conference.playing is item:
                item.timer = self.sim.clock.call_later(item.duration, finish)
            else:
                self._conference_done(conference, item)

        item.timer = self.sim.clock.call_later(item.duration, finish)

    def _conference_done(self, conference: Conference, item: AudioItem) -> None:
        if conference.playing is not item:
            return
        if item.timer is not None:
            item.timer.cancel()
        conference.playing = None
        self._conference_audio_event(conference, item, "done")
        self._conference_next(conference)

    def _conference_audio_event(self, conference: Conference, item: AudioItem, status: str) -> None:
        kind = "conference-speak" if item.kind == "sentence" else "conference-playback"
        self.conference_event(conference, kind, status=status)

    def take_key(self, call: Call, digit: str) -> bool:
        """With the ``interpret_digits`` profile the conference takes the keys: ``#`` leaves.

        Returns:
            True when the conference took the key (no ``dtmf`` event, no gather sees it).
        """
        if call.member_id is None:
            return False
        member = self.world.members[call.member_id]
        conference = self.world.conferences[member.conference_id]
        if member.state != "active" or conference.profile != "interpret_digits":
            return False
        if digit == "#":
            self.remove_member(member)
        return True
