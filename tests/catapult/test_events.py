"""Tests of callback event parsing against the reference's own examples and malformed input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from flowengine.catapult import events as ev
from flowengine.catapult.events import EVENT_TYPES, parse_callback
from flowengine.errors import CallbackParseError, CatapultError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "catapult" / "events"
EXAMPLES = sorted(FIXTURES.glob("*.json"))


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


class TestReferenceExamples:
    def test_there_is_an_example_for_every_event_type(self) -> None:
        seen = {json.loads(path.read_text())["eventType"] for path in EXAMPLES}
        assert seen == EVENT_TYPES

    @pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
    def test_every_example_parses_to_its_typed_event(self, path: Path) -> None:
        data = json.loads(path.read_text())
        event = parse_callback(data)
        assert not isinstance(event, ev.UnknownEvent)
        assert event.event_type == data["eventType"]
        context = event.to_context()
        assert context["event_type"] == data["eventType"]

    def test_the_gather_example_keeps_digits_reason_and_tag(self) -> None:
        event = parse_callback(
            _load("gather-example-gather-event-completed-because-the-max-digits-were-reached.json")
        )
        assert isinstance(event, ev.GatherEvent)
        assert (event.digits, event.reason, event.tag, event.gather_id) == (
            "25",
            "max-digits",
            "{tag}",
            "{gatherId}",
        )

    def test_the_reject_example_is_a_hangup_with_its_cause(self) -> None:
        event = parse_callback(_load("reject-reject-event.json"))
        assert isinstance(event, ev.HangupEvent)
        assert (event.cause, event.call_state) == ("CALL_REJECTED", "completed")

    def test_the_mms_example_keeps_its_media_list(self) -> None:
        event = parse_callback(_load("mms-example-inbound-mms.json"))
        assert isinstance(event, ev.MessageEvent)
        assert event.inbound
        assert len(event.media) == 2
        assert event.segment_count == 1

    def test_the_transcription_example_reads_status_and_size(self) -> None:
        event = parse_callback(_load("transcription-example-transcription-completed-and-available.json"))
        assert isinstance(event, ev.TranscriptionEvent)
        assert (event.status, event.text_size, event.recording_id) == ("completed", 3627, "{recordingId}")


class TestShapes:
    def test_numbers_and_booleans_may_be_strings(self) -> None:
        data = {
            "eventType": "conference-member",
            "conferenceId": "cf-1",
            "callId": "c-1",
            "memberId": "m-1",
            "state": "active",
            "activeMembers": "3",
            "hold": "true",
            "mute": "False",
        }
        event = parse_callback(data)
        assert isinstance(event, ev.ConferenceMemberEvent)
        assert (event.active_members, event.hold, event.mute) == (3, True, False)

    def test_recording_accepts_state_when_status_is_missing(self) -> None:
        event = parse_callback(
            {"eventType": "recording", "callId": "c", "recordingId": "r", "state": "complete"}
        )
        assert isinstance(event, ev.RecordingEvent)
        assert event.status == "complete"

    def test_the_member_event_type_with_a_trailing_dot_is_accepted(self) -> None:
        data = {
            "eventType": "conference-member.",
            "conferenceId": "cf",
            "callId": "c",
            "memberId": "m",
            "state": "active",
        }
        assert isinstance(parse_callback(data), ev.ConferenceMemberEvent)

    def test_a_single_media_url_becomes_a_list(self) -> None:
        data = {
            "eventType": "mms",
            "direction": "in",
            "from": "+1",
            "to": "+2",
            "media": "https://m.test/a.jpg",
        }
        event = parse_callback(data)
        assert isinstance(event, ev.MessageEvent)
        assert event.media == ("https://m.test/a.jpg",)

    def test_to_context_uses_snake_case_names_without_the_trailing_underscore(self) -> None:
        event = parse_callback({"eventType": "incomingcall", "callId": "c", "from": "+1", "to": "+2"})
        assert event.to_context()["from"] == "+1"
        assert event.to_context()["call_id"] == "c"

    def test_an_unknown_event_type_is_kept_not_raised(self) -> None:
        event = parse_callback({"eventType": "redirect", "callId": "c-1"})
        assert isinstance(event, ev.UnknownEvent)
        assert event.data == {"eventType": "redirect", "callId": "c-1"}


class TestErrors:
    @pytest.mark.parametrize(
        ("data", "field"),
        [
            pytest.param({}, "eventType", id="no eventType"),
            pytest.param({"eventType": 5}, "eventType", id="eventType not a string"),
            pytest.param({"eventType": "answer"}, "callId", id="no callId"),
            pytest.param({"eventType": "answer", "callId": ""}, "callId", id="empty callId"),
            pytest.param({"eventType": "answer", "callId": ["x"]}, "callId", id="callId a list"),
            pytest.param({"eventType": "dtmf", "callId": "c"}, "dtmfDigit", id="no digit"),
            pytest.param({"eventType": "speak", "callId": "c"}, "status", id="no status"),
            pytest.param(
                {"eventType": "recording", "callId": "c", "recordingId": "r"}, "status", id="no status"
            ),
            pytest.param(
                {
                    "eventType": "conference-member",
                    "conferenceId": "f",
                    "callId": "c",
                    "memberId": "m",
                    "state": "active",
                    "hold": "maybe",
                },
                "hold",
                id="bad boolean",
            ),
            pytest.param(
                {
                    "eventType": "conference-member",
                    "conferenceId": "f",
                    "callId": "c",
                    "memberId": "m",
                    "state": "active",
                    "activeMembers": "x",
                },
                "activeMembers",
                id="bad integer",
            ),
            pytest.param(
                {"eventType": "sms", "direction": "sideways", "from": "+1", "to": "+2"},
                "direction",
                id="bad direction",
            ),
            pytest.param({"eventType": "sms", "direction": "in", "to": "+2"}, "from", id="no from"),
            pytest.param(
                {"eventType": "mms", "direction": "in", "from": "+1", "to": "+2", "media": [1]},
                "media",
                id="bad media",
            ),
            pytest.param(
                {"eventType": "answer", "callId": "c", "diversion": "x"}, "diversion", id="bad diversion"
            ),
            pytest.param(
                {"eventType": "dtmf", "callId": "c", "dtmfDigit": "1", "tag": "x" * 20000},
                "tag",
                id="huge tag",
            ),
        ],
    )
    def test_malformed_events_name_the_field(self, data: dict[str, Any], field: str) -> None:
        with pytest.raises(CallbackParseError) as info:
            parse_callback(data)
        assert info.value.field == field
        assert field in str(info.value)
        assert isinstance(info.value, CatapultError)

    def test_a_body_that_is_not_an_object_is_refused(self) -> None:
        with pytest.raises(CallbackParseError, match="JSON object"):
            parse_callback([1, 2])  # type: ignore[arg-type]
