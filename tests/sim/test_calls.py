"""Calls over HTTP: inbound and outbound life cycles, updates, and the errors the reference names."""

from __future__ import annotations

import pytest

from .support import AGENT, CALLER, OURS, Harness


class TestInboundCalls:
    async def test_an_inbound_call_sends_incomingcall_then_answer_with_auto_answer(
        self, harness: Harness
    ) -> None:
        app_id = await harness.own()
        call_id = await harness.inbound()
        events = harness.receiver.events("/events")
        assert [e["eventType"] for e in events] == ["incomingcall", "answer"]
        incoming = events[0]
        assert incoming["callId"] == call_id
        assert incoming["from"] == CALLER
        assert incoming["to"] == OURS
        assert incoming["callState"] == "active"
        assert incoming["applicationId"] == app_id
        assert incoming["callUri"].endswith(f"/v1/users/u-sim/calls/{call_id}")
        assert events[1]["callState"] == "active"

    async def test_without_auto_answer_the_call_waits_for_the_app_to_answer(self, harness: Harness) -> None:
        await harness.own(auto_answer=False)
        call_id = await harness.inbound()
        assert harness.receiver.types(call_id) == ["incomingcall"]
        call = await harness.ok("GET", f"/calls/{call_id}")
        assert call["state"] == "started"
        assert call["direction"] == "in"
        status, _, body = await harness.rest("POST", f"/calls/{call_id}", {"state": "active"})
        assert (status, body) == (200, None)
        await harness.sim.settle()
        assert harness.receiver.types(call_id) == ["incomingcall", "answer"]

    async def test_rejecting_sends_a_hangup_with_call_rejected(self, harness: Harness) -> None:
        await harness.own(auto_answer=False)
        call_id = await harness.inbound()
        await harness.ok("POST", f"/calls/{call_id}", {"state": "rejected"})
        await harness.sim.settle()
        assert harness.receiver.types(call_id) == ["incomingcall", "hangup:CALL_REJECTED"]
        call = await harness.ok("GET", f"/calls/{call_id}")
        assert call["state"] == "rejected"

    async def test_the_caller_hanging_up_sends_hangup_with_normal_clearing(self, harness: Harness) -> None:
        await harness.own()
        call_id = await harness.inbound()
        await harness.advance(30)
        status, _ = await harness.control("POST", f"/sim/calls/{call_id}/hangup")
        assert status == 200
        await harness.sim.settle()
        assert harness.receiver.types(call_id)[-1] == "hangup:NORMAL_CLEARING"
        call = await harness.ok("GET", f"/calls/{call_id}")
        assert call["state"] == "completed"
        assert call["chargeableDuration"] == 60
        assert "endTime" in call

    async def test_a_caller_who_gives_up_before_an_answer_is_an_originator_cancel(
        self, harness: Harness
    ) -> None:
        await harness.own(auto_answer=False)
        call_id = await harness.inbound()
        await harness.control("POST", f"/sim/calls/{call_id}/hangup")
        await harness.sim.settle()
        assert harness.receiver.types(call_id) == ["incomingcall", "hangup:ORIGINATOR_CANCEL"]

    async def test_a_number_without_an_application_cannot_be_called(self, harness: Harness) -> None:
        await harness.ok("POST", "/phoneNumbers", {"number": OURS})
        status, body = await harness.control("POST", "/sim/calls", {"from": CALLER, "to": OURS})
        assert status == 409
        assert body["code"] == "no-application-for-number"


class TestOutboundCalls:
    async def test_creating_a_call_answers_201_with_a_location(self, harness: Harness) -> None:
        await harness.own()
        status, headers, body = await harness.rest("POST", "/calls", {"from": OURS, "to": AGENT})
        assert status == 201
        assert body is None
        call_id = headers["Location"].rsplit("/", 1)[-1]
        assert headers["Location"] == f"{harness.sim.urls.user}/calls/{call_id}"
        assert call_id.startswith("c-")

    async def test_a_dialled_phone_answers_after_ringing(self, harness: Harness) -> None:
        await harness.own()
        call_id = await harness.outbound(tag="t1")
        call = await harness.ok("GET", f"/calls/{call_id}")
        assert call["state"] == "started"
        await harness.advance(1)
        events = harness.receiver.events("/out")
        assert [e["eventType"] for e in events] == ["answer"]
        assert events[0]["tag"] == "t1"
        assert events[0]["from"] == OURS
        assert events[0]["to"] == AGENT
        call = await harness.ok("GET", f"/calls/{call_id}")
        assert call["state"] == "active"
        assert call["activeTime"]

    @pytest.mark.parametrize(
        ("mode", "state", "expected"),
        [
            pytest.param("busy", "rejected", ["hangup:USER_BUSY"], id="busy"),
            pytest.param("reject", "rejected", ["hangup:CALL_REJECTED"], id="reject"),
            pytest.param("unallocated", "completed", ["hangup:UNALLOCATED_NUMBER"], id="unallocated"),
            pytest.param("no-answer", "completed", ["timeout", "hangup:NO_ANSWER"], id="no-answer"),
        ],
    )
    async def test_a_dialled_phone_that_does_not_answer_ends_the_call(
        self, harness: Harness, mode: str, state: str, expected: list[str]
    ) -> None:
        await harness.own()
        status, _ = await harness.control("PUT", f"/sim/phones/{AGENT}", {"mode": mode})
        assert status == 200
        call_id = await harness.outbound(callTimeout="10")
        await harness.advance(9)
        if mode == "no-answer":
            assert harness.receiver.types(call_id) == []
        await harness.advance(2)
        assert harness.receiver.types(call_id) == expected
        call = await harness.ok("GET", f"/calls/{call_id}")
        assert call["state"] == state

    async def test_a_phone_answering_after_the_call_timeout_is_a_timeout(self, harness: Harness) -> None:
        await harness.own()
        await harness.control("PUT", f"/sim/phones/{AGENT}", {"mode": "answer", "after": 20})
        call_id = await harness.outbound(callTimeout=15)
        await harness.advance(60)
        assert harness.receiver.types(call_id) == ["timeout", "hangup:NO_ANSWER"]

    async def test_a_phone_can_hang_up_by_itself_after_answering(self, harness: Harness) -> None:
        await harness.own()
        await harness.control("PUT", f"/sim/phones/{AGENT}", {"after": 2, "hangupAfter": 5})
        call_id = await harness.outbound()
        await harness.advance(10)
        assert harness.receiver.types(call_id) == ["answer", "hangup:NORMAL_CLEARING"]

    async def test_the_app_hanging_up_completes_the_call(self, harness: Harness) -> None:
        await harness.own()
        call_id = await harness.outbound()
        await harness.advance(1)
        await harness.ok("POST", f"/calls/{call_id}", {"state": "completed"})
        await harness.sim.settle()
        assert harness.receiver.types(call_id) == ["answer", "hangup:NORMAL_CLEARING"]

    async def test_a_sip_uri_and_sip_headers_are_accepted(self, harness: Harness) -> None:
        await harness.own()
        call_id = await harness.outbound(to="sip:someone@somewhere.com", sipHeaders={"X-Header-1": "value1"})
        call = await harness.ok("GET", f"/calls/{call_id}")
        assert call["to"] == "sip:someone@somewhere.com"
        assert call["sipHeaders"] == {"X-Header-1": "value1"}


class TestCallErrors:
    async def test_wrong_credentials_get_401(self, harness: Harness) -> None:
        status, _, body = await harness.rest("GET", "/calls", auth=False)
        assert status == 401
        assert body["category"] == "authentication"
        harness.config = harness.config.__class__(token="t-sim", secret="wrong")
        status, _, _ = await harness.rest("GET", "/calls")
        assert status == 401

    async def test_an_unknown_call_is_404_call_not_found(self, harness: Harness) -> None:
        status, _, body = await harness.rest("GET", "/calls/c-nope")
        assert status == 404
        assert body["code"] == "call-not-found"
        assert body["category"] == "not-found"
        assert {"name": "requestMethod", "value": "GET"} in body["details"]

    async def test_updating_an_ended_call_is_403_call_invalid_state(self, harness: Harness) -> None:
        await harness.own()
        call_id = await harness.inbound()
        await harness.ok("POST", f"/calls/{call_id}", {"state": "completed"})
        status, _, body = await harness.rest("POST", f"/calls/{call_id}/audio", {"sentence": "Hi"})
        assert status == 403
        assert body["code"] == "call-invalid-state"
        assert body["message"] == f"Unable to update call {call_id}. Invalid call state completed"

    async def test_a_missing_property_is_named(self, harness: Harness) -> None:
        await harness.own()
        status, _, body = await harness.rest("POST", "/calls", {"from": OURS})
        assert status == 400
        assert body["code"] == "missing-property"
        assert body["message"] == "The 'call' resource property 'to' is required but was not specified"

    @pytest.mark.parametrize(
        ("body", "prop"),
        [
            pytest.param({"to": AGENT, "callTimeout": "soon"}, "callTimeout", id="not-a-number"),
            pytest.param({"to": AGENT, "callTimeout": 301}, "callTimeout", id="over-maximum"),
            pytest.param({"to": "12345"}, "to", id="not-e164"),
            pytest.param({"to": AGENT, "recordingEnabled": "yes"}, "recordingEnabled", id="not-a-boolean"),
            pytest.param(
                {"to": AGENT, "recordingFileFormat": "ogg"}, "recordingFileFormat", id="not-a-choice"
            ),
        ],
    )
    async def test_a_bad_value_is_a_validation_error_naming_the_property(
        self, harness: Harness, body: dict[str, object], prop: str
    ) -> None:
        await harness.own()
        status, _, error = await harness.rest("POST", "/calls", {"from": OURS, **body})
        assert status == 400
        assert error["code"] == "validation-error"
        assert f"'{prop}'" in error["message"]
        assert {"name": "property", "value": prop} in error["details"]

    async def test_calling_from_a_number_not_owned_is_refused(self, harness: Harness) -> None:
        status, _, body = await harness.rest("POST", "/calls", {"from": CALLER, "to": AGENT})
        assert status == 400
        assert body["code"] == "validation-error"
        assert "not allowed" in body["message"]

    async def test_a_callback_url_that_is_not_http_is_refused(self, harness: Harness) -> None:
        await harness.own()
        status, _, body = await harness.rest(
            "POST", "/calls", {"from": OURS, "to": AGENT, "callbackUrl": "ftp://x"}
        )
        assert status == 400
        assert body["code"] == "callback-invalid-url"

    async def test_a_body_that_is_not_json_is_a_clear_400(self, harness: Harness) -> None:
        status, _, body = await harness.rest("POST", "/calls", raw=b'{"from": ')
        assert status == 400
        assert body["code"] == "invalid-json"


class TestCallReads:
    async def test_calls_are_listed_newest_first_and_filtered(self, harness: Harness) -> None:
        await harness.own()
        first = await harness.outbound()
        await harness.advance(1)
        second = await harness.outbound(to="+13235550111")
        listed = await harness.ok("GET", "/calls")
        assert [c["id"] for c in listed] == [second, first]
        listed = await harness.ok("GET", "/calls?to=%2B13235550111")
        assert [c["id"] for c in listed] == [second]
        listed = await harness.ok("GET", "/calls?sortOrder=asc&size=1&page=1")
        assert [c["id"] for c in listed] == [second]

    async def test_a_calls_events_are_listed_with_ids(self, harness: Harness) -> None:
        await harness.own()
        call_id = await harness.inbound()
        events = await harness.ok("GET", f"/calls/{call_id}/events")
        assert [e["name"] for e in events] == ["create", "incomingcall", "answer"]
        one = await harness.ok("GET", f"/calls/{call_id}/events/{events[1]['id']}")
        assert one == events[1]
