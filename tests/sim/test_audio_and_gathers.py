"""Audio, DTMF and gathers over HTTP: event order, durations on the virtual clock, and the errors."""

from __future__ import annotations

import pytest

from .support import OURS, Harness


async def answered(harness: Harness) -> str:
    await harness.own()
    call_id = await harness.inbound()
    harness.receiver.received.clear()
    return call_id


class TestAudio:
    async def test_a_sentence_sends_speak_started_then_done_after_its_duration(
        self, harness: Harness
    ) -> None:
        call_id = await answered(harness)
        sentence = "Hello, thank you for calling."  # 29 characters: 1.74 s at 60 ms per character
        await harness.ok("POST", f"/calls/{call_id}/audio", {"sentence": sentence, "tag": "greeting"})
        await harness.sim.settle()
        started = harness.receiver.events()
        assert [(e["eventType"], e["status"], e["state"]) for e in started] == [
            ("speak", "started", "PLAYBACK_START")
        ]
        assert started[0]["tag"] == "greeting"
        await harness.advance(1.7)
        assert len(harness.receiver.events()) == 1
        await harness.advance(0.05)
        assert harness.receiver.types(call_id) == ["speak:started", "speak:done"]
        assert harness.receiver.events()[1]["state"] == "PLAYBACK_STOP"

    async def test_a_short_sentence_lasts_at_least_half_a_second(self, harness: Harness) -> None:
        call_id = await answered(harness)
        await harness.ok("POST", f"/calls/{call_id}/audio", {"sentence": "Hi"})
        await harness.advance(0.49)
        assert harness.receiver.types(call_id) == ["speak:started"]
        await harness.advance(0.01)
        assert harness.receiver.types(call_id) == ["speak:started", "speak:done"]

    async def test_audio_requests_queue_and_play_in_order(self, harness: Harness) -> None:
        call_id = await answered(harness)
        await harness.ok("POST", f"/calls/{call_id}/audio", {"sentence": "One", "tag": "1"})
        await harness.ok(
            "POST", f"/calls/{call_id}/audio", {"fileUrl": "http://example.com/a.mp3", "tag": "2"}
        )
        await harness.advance(10)
        events = harness.receiver.events()
        assert [(e["eventType"], e["status"], e["tag"]) for e in events] == [
            ("speak", "started", "1"),
            ("speak", "done", "1"),
            ("playback", "started", "2"),
            ("playback", "done", "2"),
        ]

    async def test_an_empty_sentence_stops_the_audio(self, harness: Harness) -> None:
        call_id = await answered(harness)
        await harness.ok("POST", f"/calls/{call_id}/audio", {"sentence": "A long sentence to be cut short."})
        await harness.advance(0.5)
        await harness.ok("POST", f"/calls/{call_id}/audio", {"sentence": ""})
        await harness.sim.settle()
        assert harness.receiver.types(call_id) == ["speak:started", "speak:done"]
        status, _, body = await harness.rest("POST", f"/calls/{call_id}/audio", {"sentence": ""})
        assert status == 403
        assert body["code"] == "call-audio-invalid-state"

    async def test_a_looping_file_plays_until_stopped(self, harness: Harness) -> None:
        call_id = await answered(harness)
        await harness.ok(
            "POST", f"/calls/{call_id}/audio", {"fileUrl": "http://x/hold.mp3", "loopEnabled": "true"}
        )
        await harness.advance(60)
        assert harness.receiver.types(call_id) == ["playback:started"]
        await harness.ok("POST", f"/calls/{call_id}/audio", {"fileUrl": ""})
        await harness.sim.settle()
        assert harness.receiver.types(call_id) == ["playback:started", "playback:done"]

    async def test_audio_without_sentence_or_file_is_refused(self, harness: Harness) -> None:
        call_id = await answered(harness)
        status, _, body = await harness.rest("POST", f"/calls/{call_id}/audio", {"gender": "female"})
        assert status == 400
        assert body["code"] == "validation-error"

    async def test_the_transcript_shows_what_the_caller_heard_and_every_request(
        self, harness: Harness
    ) -> None:
        call_id = await answered(harness)
        await harness.ok("POST", f"/calls/{call_id}/audio", {"sentence": "Welcome."})
        await harness.advance(1)
        await harness.control("POST", f"/sim/calls/{call_id}/press", {"digits": "5"})
        status, transcript = await harness.control("GET", f"/sim/calls/{call_id}/transcript")
        assert status == 200
        lines = [(t["kind"], t["text"]) for t in transcript]
        assert lines[:3] == [
            ("call", f"+13235550100 calls {OURS}"),
            ("event", "incomingcall"),
            ("call", "answered"),
        ]
        rest = lines.index(("rest", f"POST /v1/users/u-sim/calls/{call_id}/audio"))
        assert lines[rest + 1 : rest + 3] == [("heard", "Welcome."), ("event", "speak")]
        assert ("pressed", "5") in lines
        assert transcript[rest]["status"] == 200
        assert transcript[rest]["body"] == {"sentence": "Welcome."}


class TestDtmf:
    async def test_pressing_digits_sends_one_dtmf_event_per_digit(self, harness: Harness) -> None:
        call_id = await answered(harness)
        await harness.control("POST", f"/sim/calls/{call_id}/press", {"digits": "12#"})
        await harness.sim.settle()
        assert [e["dtmfDigit"] for e in harness.receiver.events()] == ["1", "2", "#"]

    async def test_sending_dtmf_out_sends_no_event(self, harness: Harness) -> None:
        call_id = await answered(harness)
        status, _, _ = await harness.rest("POST", f"/calls/{call_id}/dtmf", {"dtmfOut": "1WWW,59#"})
        assert status == 200
        await harness.sim.settle()
        assert harness.receiver.events() == []

    @pytest.mark.parametrize("digits", ["", "12x", "9" * 93])
    async def test_bad_dtmf_out_is_refused(self, harness: Harness, digits: str) -> None:
        call_id = await answered(harness)
        status, _, body = await harness.rest("POST", f"/calls/{call_id}/dtmf", {"dtmfOut": digits})
        assert status == 400
        assert body["details"][0] == {"name": "property", "value": "dtmfOut"}

    async def test_pressing_an_invalid_key_is_refused_by_the_control_api(self, harness: Harness) -> None:
        call_id = await answered(harness)
        status, body = await harness.control("POST", f"/sim/calls/{call_id}/press", {"digits": "1x"})
        assert status == 400
        assert "digits" in body["message"]


class TestGathers:
    async def start(self, harness: Harness, call_id: str, **body: object) -> str:
        status, headers, _ = await harness.rest("POST", f"/calls/{call_id}/gather", body)
        assert status == 201
        assert f"/calls/{call_id}/gather/" in headers["Location"]
        return headers["Location"].rsplit("/", 1)[-1]

    def gathers(self, harness: Harness) -> list[dict[str, object]]:
        return [e for e in harness.receiver.events() if e["eventType"] == "gather"]

    async def test_max_digits_ends_the_gather(self, harness: Harness) -> None:
        call_id = await answered(harness)
        gather_id = await self.start(harness, call_id, maxDigits="2", tag="menu")
        await harness.control("POST", f"/sim/calls/{call_id}/press", {"digits": "25"})
        await harness.sim.settle()
        [event] = self.gathers(harness)
        assert event["reason"] == "max-digits"
        assert event["digits"] == "25"
        assert event["state"] == "completed"
        assert event["gatherId"] == gather_id
        assert event["tag"] == "menu"
        body = await harness.ok("GET", f"/calls/{call_id}/gather/{gather_id}")
        assert body["state"] == "completed"
        assert body["digits"] == "25"
        assert body["reason"] == "max-digits"
        assert body["call"].endswith(f"/calls/{call_id}")

    async def test_a_terminating_digit_ends_the_gather_and_is_not_in_the_digits(
        self, harness: Harness
    ) -> None:
        call_id = await answered(harness)
        await self.start(harness, call_id, maxDigits=5, terminatingDigits="*")
        await harness.control("POST", f"/sim/calls/{call_id}/press", {"digits": "12*"})
        await harness.sim.settle()
        [event] = self.gathers(harness)
        assert (event["reason"], event["digits"]) == ("terminating-digit", "12")

    async def test_silence_ends_the_gather_after_the_inter_digit_timeout(self, harness: Harness) -> None:
        call_id = await answered(harness)
        await self.start(harness, call_id, maxDigits=4, interDigitTimeout=5)
        await harness.advance(4.9)
        assert self.gathers(harness) == []
        await harness.advance(0.1)
        [event] = self.gathers(harness)
        assert (event["reason"], event["digits"]) == ("inter-digit-timeout", "")

    async def test_each_digit_restarts_the_inter_digit_timer(self, harness: Harness) -> None:
        call_id = await answered(harness)
        await self.start(harness, call_id, maxDigits=4, interDigitTimeout=3)
        await harness.advance(2)
        await harness.control("POST", f"/sim/calls/{call_id}/press", {"digits": "7"})
        await harness.advance(2.9)
        assert self.gathers(harness) == []
        await harness.advance(0.1)
        [event] = self.gathers(harness)
        assert (event["reason"], event["digits"]) == ("inter-digit-timeout", "7")

    async def test_the_timer_starts_when_the_prompt_ends_and_a_digit_stops_the_prompt(
        self, harness: Harness
    ) -> None:
        call_id = await answered(harness)
        prompt = "Press 1 for sales."  # 18 characters: 1.08 s
        await self.start(harness, call_id, maxDigits=1, interDigitTimeout=2, prompt={"sentence": prompt})
        await harness.advance(3)
        assert self.gathers(harness) == []
        await harness.advance(0.1)
        assert self.gathers(harness)[0]["reason"] == "inter-digit-timeout"
        second = await self.start(harness, call_id, maxDigits=1, prompt={"sentence": prompt})
        await harness.control("POST", f"/sim/calls/{call_id}/press", {"digits": "1"})
        await harness.sim.settle()
        assert self.gathers(harness)[1]["gatherId"] == second
        _, transcript = await harness.control("GET", f"/sim/calls/{call_id}/transcript")
        kinds = [(t["kind"], t["text"]) for t in transcript if t["kind"].startswith("heard")]
        assert kinds == [("heard", prompt), ("heard", prompt), ("heard-stopped", prompt)]

    async def test_a_second_gather_is_409_call_duplicate_gather_error(self, harness: Harness) -> None:
        call_id = await answered(harness)
        await self.start(harness, call_id, maxDigits=1)
        status, _, body = await harness.rest("POST", f"/calls/{call_id}/gather", {"maxDigits": 1})
        assert status == 409
        assert body["code"] == "call-duplicate-gather-error"
        assert body["message"] == f"DTMF digits are already being gathered for call {call_id}"

    async def test_hanging_up_ends_the_gather_before_the_hangup_event(self, harness: Harness) -> None:
        call_id = await answered(harness)
        await self.start(harness, call_id, maxDigits=3)
        await harness.control("POST", f"/sim/calls/{call_id}/press", {"digits": "4"})
        await harness.control("POST", f"/sim/calls/{call_id}/hangup")
        await harness.sim.settle()
        assert harness.receiver.types(call_id) == ["dtmf", "gather:hung-up", "hangup:NORMAL_CLEARING"]
        assert self.gathers(harness)[0]["digits"] == "4"

    async def test_the_app_can_stop_a_gather(self, harness: Harness) -> None:
        call_id = await answered(harness)
        gather_id = await self.start(harness, call_id, maxDigits=3)
        await harness.ok("POST", f"/calls/{call_id}/gather/{gather_id}", {"state": "completed"})
        await harness.sim.settle()
        assert self.gathers(harness)[0]["reason"] == "stopped"
        status, _, body = await harness.rest(
            "POST", f"/calls/{call_id}/gather/{gather_id}", {"state": "started"}
        )
        assert status == 400
        assert body["code"] == "validation-error"

    async def test_an_unknown_gather_is_404(self, harness: Harness) -> None:
        call_id = await answered(harness)
        status, _, body = await harness.rest("GET", f"/calls/{call_id}/gather/g-nope")
        assert status == 404
        assert body["code"] == "gather-not-found"

    async def test_a_blank_terminating_digit_is_refused(self, harness: Harness) -> None:
        call_id = await answered(harness)
        status, _, body = await harness.rest("POST", f"/calls/{call_id}/gather", {"terminatingDigits": ""})
        assert status == 400
        assert body["code"] == "blank-property"


class TestTransfers:
    async def test_a_transfer_rings_a_new_leg_and_ties_the_two_calls(self, harness: Harness) -> None:
        call_id = await answered(harness)
        status, headers, _ = await harness.rest(
            "POST",
            f"/calls/{call_id}",
            {
                "state": "transferring",
                "transferTo": "+19195554444",
                "whisperAudio": {"sentence": "Hello agent", "gender": "female"},
                "callbackUrl": harness.receiver.url("/leg"),
            },
        )
        assert status == 201
        leg_id = headers["Location"].rsplit("/", 1)[-1]
        call = await harness.ok("GET", f"/calls/{call_id}")
        assert call["state"] == "transferring"
        await harness.advance(1)
        leg = await harness.ok("GET", f"/calls/{leg_id}")
        assert (leg["state"], leg["from"], leg["to"]) == ("active", "+13235550100", "+19195554444")
        assert harness.receiver.types(leg_id, path="/leg") == ["answer", "speak:started"]
        call = await harness.ok("GET", f"/calls/{call_id}")
        assert call["state"] == "active"
        await harness.control("POST", f"/sim/calls/{leg_id}/hangup")
        await harness.sim.settle()
        assert harness.receiver.types(call_id)[-1] == "hangup:NORMAL_CLEARING"

    async def test_a_transfer_needs_transfer_to(self, harness: Harness) -> None:
        call_id = await answered(harness)
        status, _, body = await harness.rest("POST", f"/calls/{call_id}", {"state": "transferring"})
        assert status == 400
        assert body["code"] == "missing-property"
        assert "'transferTo'" in body["message"]

    async def test_a_transfer_caller_id_must_be_allowed(self, harness: Harness) -> None:
        call_id = await answered(harness)
        status, _, body = await harness.rest(
            "POST",
            f"/calls/{call_id}",
            {"state": "transferring", "transferTo": "+19195554444", "transferCallerId": "+15555550000"},
        )
        assert status == 400
        assert body["details"][0] == {"name": "property", "value": "transferCallerId"}
