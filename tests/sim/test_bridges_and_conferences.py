"""Bridges and conferences over HTTP: states, members, audio, and the events they send."""

from __future__ import annotations

from .support import AGENT, OURS, Harness


async def two_calls(harness: Harness) -> tuple[str, str]:
    await harness.own()
    first = await harness.inbound()
    second = await harness.outbound()
    await harness.advance(1)
    return first, second


class TestBridges:
    async def test_a_bridge_of_two_active_calls_is_active(self, harness: Harness) -> None:
        first, second = await two_calls(harness)
        status, headers, _ = await harness.rest(
            "POST", "/bridges", {"bridgeAudio": "true", "callIds": [first, second]}
        )
        assert status == 201
        bridge_id = headers["Location"].rsplit("/", 1)[-1]
        bridge = await harness.ok("GET", f"/bridges/{bridge_id}")
        assert bridge["state"] == "active"
        assert bridge["callIds"] == [first, second]
        assert bridge["bridgeAudio"] is True
        assert bridge["activatedTime"]
        calls = await harness.ok("GET", f"/bridges/{bridge_id}/calls")
        assert [c["id"] for c in calls] == [first, second]
        assert all(c["bridgeId"] == bridge_id for c in calls)
        listed = await harness.ok("GET", f"/calls?bridgeId={bridge_id}")
        assert {c["id"] for c in listed} == {first, second}

    async def test_bridge_audio_off_holds_and_hanging_up_every_call_completes(self, harness: Harness) -> None:
        first, second = await two_calls(harness)
        bridge_id = await harness.ok("POST", "/bridges", {"callIds": [first, second]})
        await harness.ok("POST", f"/bridges/{bridge_id}", {"bridgeAudio": "false"})
        assert (await harness.ok("GET", f"/bridges/{bridge_id}"))["state"] == "hold"
        await harness.control("POST", f"/sim/calls/{first}/hangup")
        await harness.control("POST", f"/sim/calls/{second}/hangup")
        bridge = await harness.ok("GET", f"/bridges/{bridge_id}")
        assert bridge["state"] == "completed"
        assert bridge["completedTime"]

    async def test_an_empty_call_list_removes_every_call(self, harness: Harness) -> None:
        first, second = await two_calls(harness)
        bridge_id = await harness.ok("POST", "/bridges", {"callIds": [first, second]})
        await harness.ok("POST", f"/bridges/{bridge_id}", {"callIds": []})
        bridge = await harness.ok("GET", f"/bridges/{bridge_id}")
        assert (bridge["state"], bridge["callIds"]) == ("completed", [])
        call = await harness.ok("GET", f"/calls/{first}")
        assert "bridgeId" not in call

    async def test_a_bridge_created_empty_takes_a_call_created_into_it(self, harness: Harness) -> None:
        await harness.own()
        bridge_id = await harness.ok("POST", "/bridges", {"bridgeAudio": "true"})
        assert (await harness.ok("GET", f"/bridges/{bridge_id}"))["state"] == "created"
        first = await harness.inbound()
        await harness.ok("POST", f"/bridges/{bridge_id}", {"callIds": [first]})
        second = await harness.outbound(bridgeId=bridge_id)
        assert (await harness.ok("GET", f"/bridges/{bridge_id}"))["state"] == "created"
        await harness.advance(1)
        bridge = await harness.ok("GET", f"/bridges/{bridge_id}")
        assert (bridge["state"], bridge["callIds"]) == ("active", [first, second])

    async def test_three_calls_overflow_a_bridge(self, harness: Harness) -> None:
        first, second = await two_calls(harness)
        third = await harness.outbound(to="+13235550111")
        status, _, body = await harness.rest("POST", "/bridges", {"callIds": [first, second, third]})
        assert status == 400
        assert body["code"] == "bridge-callIds-overflow"

    async def test_a_call_in_one_bridge_cannot_join_another(self, harness: Harness) -> None:
        first, second = await two_calls(harness)
        await harness.ok("POST", "/bridges", {"callIds": [first, second]})
        status, _, body = await harness.rest("POST", "/bridges", {"callIds": [first]})
        assert status == 400
        assert body["code"] == "bridge-bridged-callId"

    async def test_bridge_audio_plays_to_both_calls(self, harness: Harness) -> None:
        first, second = await two_calls(harness)
        bridge_id = await harness.ok("POST", "/bridges", {"callIds": [first, second]})
        await harness.sim.settle()
        harness.receiver.received.clear()
        await harness.ok("POST", f"/bridges/{bridge_id}/audio", {"sentence": "Hello, both."})
        await harness.advance(2)
        assert harness.receiver.types(first) == ["speak:started", "speak:done"]
        assert harness.receiver.types(second) == ["speak:started", "speak:done"]

    async def test_an_unknown_bridge_is_404_and_bridges_are_listed(self, harness: Harness) -> None:
        status, _, body = await harness.rest("GET", "/bridges/brg-nope")
        assert (status, body["code"]) == (404, "bridge-not-found")
        await harness.ok("POST", "/bridges", {})
        assert len(await harness.ok("GET", "/bridges")) == 1


class TestConferences:
    async def conference(self, harness: Harness, **extra: object) -> str:
        body = {"from": OURS, "callbackUrl": harness.receiver.url("/conf"), "tag": "room", **extra}
        return str(await harness.ok("POST", "/conferences", body))

    def conf_events(self, harness: Harness) -> list[dict[str, object]]:
        return harness.receiver.events("/conf")

    async def test_a_conference_lives_from_created_through_members_to_completed(
        self, harness: Harness
    ) -> None:
        first, second = await two_calls(harness)
        conf_id = await self.conference(harness)
        conf = await harness.ok("GET", f"/conferences/{conf_id}")
        assert (conf["state"], conf["activeMembers"], conf["from"]) == ("created", 0, OURS)
        status, headers, _ = await harness.rest(
            "POST", f"/conferences/{conf_id}/members", {"callId": first, "joinTone": "false"}
        )
        assert status == 201
        member_one = headers["Location"].rsplit("/", 1)[-1]
        member_two = await harness.ok("POST", f"/conferences/{conf_id}/members", {"callId": second})
        conf = await harness.ok("GET", f"/conferences/{conf_id}")
        assert (conf["state"], conf["activeMembers"]) == ("active", 2)
        await harness.ok("POST", f"/conferences/{conf_id}/members/{member_one}", {"mute": "true"})
        await harness.ok("POST", f"/conferences/{conf_id}/members/{member_one}", {"state": "completed"})
        await harness.control("POST", f"/sim/calls/{second}/hangup")
        await harness.sim.settle()
        events = self.conf_events(harness)
        summary = [
            (e["eventType"], e.get("status") or e.get("state"), e.get("activeMembers")) for e in events
        ]
        assert summary == [
            ("conference", "created", None),
            ("conference-member", "active", 1),
            ("conference-member", "active", 2),
            ("conference-member", "active", 2),
            ("conference-member", "completed", 1),
            ("conference-member", "completed", 0),
            ("conference", "completed", None),
        ]
        assert events[3]["mute"] is True
        assert events[1]["memberId"] == member_one
        assert events[2]["memberId"] == member_two
        assert all(e["tag"] == "room" for e in events)
        member = await harness.ok("GET", f"/conferences/{conf_id}/members/{member_one}")
        assert (member["state"], member["mute"]) == ("completed", True)
        assert member["removedTime"]
        members = await harness.ok("GET", f"/conferences/{conf_id}/members")
        assert len(members) == 2
        conf = await harness.ok("GET", f"/conferences/{conf_id}")
        assert conf["state"] == "completed"
        assert conf["completedTime"]

    async def test_completing_a_conference_removes_its_members(self, harness: Harness) -> None:
        first, _ = await two_calls(harness)
        conf_id = await self.conference(harness)
        await harness.ok("POST", f"/conferences/{conf_id}/members", {"callId": first})
        await harness.ok("POST", f"/conferences/{conf_id}", {"state": "completed"})
        await harness.sim.settle()
        assert [e["eventType"] for e in self.conf_events(harness)][-2:] == ["conference-member", "conference"]
        status, _, body = await harness.rest("POST", f"/conferences/{conf_id}/members", {"callId": first})
        assert (status, body["code"]) == (403, "conference-error")

    async def test_conference_audio_sends_conference_speak_and_playback(self, harness: Harness) -> None:
        first, _ = await two_calls(harness)
        conf_id = await self.conference(harness)
        await harness.ok("POST", f"/conferences/{conf_id}/members", {"callId": first})
        await harness.ok(
            "POST", f"/conferences/{conf_id}/audio", {"sentence": "Welcome all", "gender": "female"}
        )
        await harness.ok("POST", f"/conferences/{conf_id}/audio", {"fileUrl": "http://x/tone.mp3"})
        await harness.advance(5)
        kinds = [(e["eventType"], e["status"]) for e in self.conf_events(harness) if "status" in e][1:]
        assert kinds == [
            ("conference-speak", "started"),
            ("conference-speak", "done"),
            ("conference-playback", "started"),
            ("conference-playback", "done"),
        ]
        _, transcript = await harness.control("GET", f"/sim/calls/{first}/transcript")
        assert ("heard", "Welcome all") in [(t["kind"], t["text"]) for t in transcript]

    async def test_member_audio_sends_the_calls_own_speak_events(self, harness: Harness) -> None:
        first, _ = await two_calls(harness)
        conf_id = await self.conference(harness)
        member = await harness.ok("POST", f"/conferences/{conf_id}/members", {"callId": first})
        await harness.sim.settle()
        harness.receiver.received.clear()
        await harness.ok("POST", f"/conferences/{conf_id}/members/{member}/audio", {"sentence": "Just you"})
        await harness.advance(1)
        assert harness.receiver.types(first) == ["speak:started", "speak:done"]

    async def test_a_member_must_be_an_active_call(self, harness: Harness) -> None:
        await harness.own()
        conf_id = await self.conference(harness)
        waiting = await harness.outbound()
        status, _, body = await harness.rest("POST", f"/conferences/{conf_id}/members", {"callId": waiting})
        assert (status, body["code"]) == (403, "call-invalid-state")
        status, _, body = await harness.rest("POST", f"/conferences/{conf_id}/members", {})
        assert (status, body["code"]) == (400, "missing-property")

    async def test_a_call_created_for_another_conference_cannot_join(self, harness: Harness) -> None:
        await harness.own()
        one = await self.conference(harness)
        two = await self.conference(harness)
        call_id = await harness.outbound(to=AGENT, conferenceId=one)
        await harness.advance(1)
        status, _, body = await harness.rest("POST", f"/conferences/{two}/members", {"callId": call_id})
        assert (status, body["code"]) == (400, "validation-error")

    async def test_unknown_conferences_and_members_are_404(self, harness: Harness) -> None:
        status, _, body = await harness.rest("GET", "/conferences/conf-nope")
        assert (status, body["code"]) == (404, "conference-not-found")
        await harness.own()
        conf_id = await self.conference(harness)
        status, _, body = await harness.rest("GET", f"/conferences/{conf_id}/members/member-nope")
        assert (status, body["code"]) == (404, "conference-member-not-found")


async def test_a_call_created_into_a_full_bridge_is_refused_and_never_rings(harness: Harness) -> None:
    first, second = await two_calls(harness)
    bridge_id = await harness.ok("POST", "/bridges", {"callIds": [first, second]})
    before = len(await harness.ok("GET", "/calls"))
    status, _, body = await harness.rest(
        "POST", "/calls", {"from": OURS, "to": "+13235550111", "bridgeId": bridge_id}
    )
    assert (status, body["code"]) == (400, "bridge-callIds-overflow")
    assert len(await harness.ok("GET", "/calls")) == before


async def test_with_interpret_digits_the_conference_takes_the_keys_and_hash_leaves(harness: Harness) -> None:
    first, second = await two_calls(harness)
    interpret = await harness.ok(
        "POST", "/conferences", {"from": OURS, "callbackUrl": harness.receiver.url("/conf")}
    )
    passthru = await harness.ok(
        "POST",
        "/conferences",
        {"from": OURS, "profile": "passthru_digits", "callbackUrl": harness.receiver.url("/conf")},
    )
    await harness.ok("POST", f"/conferences/{interpret}/members", {"callId": first})
    await harness.ok("POST", f"/conferences/{passthru}/members", {"callId": second})
    await harness.sim.settle()
    harness.receiver.received.clear()
    await harness.control("POST", f"/sim/calls/{first}/press", {"digits": "5#"})
    await harness.control("POST", f"/sim/calls/{second}/press", {"digits": "5#"})
    await harness.sim.settle()
    assert harness.receiver.types(first, path="/events") == []
    assert harness.receiver.types(second, path="/out") == ["dtmf", "dtmf"]
    left = [e for e in harness.receiver.events("/conf") if e["eventType"] == "conference-member"]
    assert [(e["callId"], e["state"]) for e in left] == [(first, "completed")]
    assert (await harness.ok("GET", f"/conferences/{interpret}"))["state"] == "completed"
