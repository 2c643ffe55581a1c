"""Callback delivery over loopback HTTP: POST and GET, fallback URLs, timeouts, credentials in the
URL, order per call, and failures that are recorded but never fatal."""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from flowengine.sim.callbacks import query_params

from .support import OURS, Harness, Received


class TestDelivery:
    async def test_post_sends_json_with_the_documented_headers(self, harness: Harness) -> None:
        await harness.own()
        await harness.inbound()
        first = harness.receiver.received[0]
        assert first.method == "POST"
        assert first.headers["Content-Type"] == "application/json; charset=utf-8"
        assert first.headers["User-Agent"].startswith("BandwidthAPI/v1 (")
        assert first.body["eventType"] == "incomingcall"

    async def test_get_sends_the_same_fields_as_query_parameters(self, harness: Harness) -> None:
        await harness.own(method="GET")
        call_id = await harness.inbound()
        methods = {r.method for r in harness.receiver.received}
        assert methods == {"GET"}
        incoming, answer = harness.receiver.received
        assert incoming.query["eventType"] == "incomingcall"
        assert incoming.query["callId"] == call_id
        assert incoming.query["from"] == "+13235550100"
        assert answer.query["callState"] == "active"

    async def test_get_flattens_lists_and_objects(self) -> None:
        pairs = query_params(
            {"media": ["a", "b"], "diversion": {"origTo": "+1", "counter": 1}, "hold": False}
        )
        assert pairs == [
            ("media", "a"),
            ("media", "b"),
            ("diversion.origTo", "+1"),
            ("diversion.counter", "1"),
            ("hold", "false"),
        ]

    async def test_a_failing_primary_url_falls_back_to_the_fallback_url_by_post(
        self, harness: Harness
    ) -> None:
        harness.receiver.failing.add("/primary")
        await harness.own(path="/primary", fallback="/fallback")
        call_id = await harness.inbound()
        assert [r.path for r in harness.receiver.received] == [
            "/primary",
            "/fallback",
            "/primary",
            "/fallback",
        ]
        assert harness.receiver.types(call_id, path="/fallback") == ["incomingcall", "answer"]
        deliveries = [d for d in harness.sim.deliveries() if d.key == call_id]
        assert [d.status for d in deliveries] == ["delivered", "delivered"]
        assert [a.status for a in deliveries[0].attempts] == [500, 200]

    async def test_a_failing_primary_url_falls_back_to_the_fallback_url_by_get(
        self, harness: Harness
    ) -> None:
        harness.receiver.failing.add("/primary")
        await harness.own(path="/primary", fallback="/fallback", method="GET")
        call_id = await harness.inbound()
        fallback = [r for r in harness.receiver.received if r.path == "/fallback"]
        assert [r.method for r in fallback] == ["GET", "GET"]
        assert [r.query["eventType"] for r in fallback] == ["incomingcall", "answer"]
        assert all(r.query["callId"] == call_id for r in fallback)

    async def test_an_outbound_calls_callback_and_fallback_urls_are_used(self, harness: Harness) -> None:
        await harness.own()
        harness.receiver.failing.add("/down")
        call_id = await harness.outbound(
            callbackUrl=harness.receiver.url("/down"),
            fallbackUrl=harness.receiver.url("/backup"),
            callbackHttpMethod="GET",
        )
        await harness.advance(1)
        [answer] = [r for r in harness.receiver.received if r.path == "/backup"]
        assert (answer.method, answer.query["eventType"], answer.query["callId"]) == (
            "GET",
            "answer",
            call_id,
        )

    async def test_a_callback_slower_than_the_callback_timeout_fails_over(self, harness: Harness) -> None:
        await harness.own()
        harness.receiver.stalling.add("/slow")
        call_id = await harness.outbound(
            callbackUrl=harness.receiver.url("/slow"),
            fallbackUrl=harness.receiver.url("/fast"),
            callbackTimeout=50,
        )
        await harness.advance(1)
        [delivery] = [d for d in harness.sim.deliveries() if d.key == call_id]
        assert delivery.attempts[0].error == "no answer within 50 ms"
        assert delivery.status == "delivered"
        assert harness.receiver.types(call_id, path="/fast") == ["answer"]

    async def test_credentials_in_the_url_become_basic_auth(self, harness: Harness) -> None:
        await harness.own()
        url = harness.receiver.url("/secure").replace("http://", "http://alice:s3cret@")
        await harness.outbound(callbackUrl=url)
        await harness.advance(1)
        [request] = [r for r in harness.receiver.received if r.path == "/secure"]
        assert request.headers["Authorization"] == "Basic YWxpY2U6czNjcmV0"

    async def test_failures_are_recorded_and_visible_in_the_control_api(self, harness: Harness) -> None:
        harness.receiver.failing.add("/events")
        await harness.own()
        call_id = await harness.inbound()
        status, failed = await harness.control("GET", "/sim/callbacks?status=failed")
        assert status == 200
        assert [f["eventType"] for f in failed] == ["incomingcall", "answer"]
        assert failed[0]["attempts"][0]["status"] == 500
        assert failed[0]["attempts"][0]["error"] == "HTTP 500"
        await harness.ok("POST", f"/calls/{call_id}/audio", {"sentence": "Still working"})
        call = await harness.ok("GET", f"/calls/{call_id}")
        assert call["state"] == "active"

    async def test_an_unreachable_server_is_a_recorded_failure(self, harness: Harness) -> None:
        await harness.own()
        await harness.outbound(callbackUrl="http://127.0.0.1:9/nothing-listens-here")
        await harness.advance(1)
        [failed] = harness.sim.deliveries(failed_only=True)
        assert failed.attempts[0].status is None
        assert failed.attempts[0].error

    async def test_events_of_one_call_are_delivered_one_at_a_time_in_order(self, harness: Harness) -> None:
        await harness.own()
        in_flight = 0
        overlaps = 0

        async def slow(item: Received) -> None:
            nonlocal in_flight, overlaps
            in_flight += 1
            overlaps = max(overlaps, in_flight)
            await asyncio.sleep(0.01)
            in_flight -= 1

        harness.receiver.on_event = slow
        call_id = await harness.inbound()
        await harness.control("POST", f"/sim/calls/{call_id}/press", {"digits": "123"})
        await harness.control("POST", f"/sim/calls/{call_id}/hangup")
        await harness.sim.settle()
        assert harness.receiver.types(call_id) == [
            "incomingcall",
            "answer",
            "dtmf",
            "dtmf",
            "dtmf",
            "hangup:NORMAL_CLEARING",
        ]
        assert overlaps == 1

    async def test_a_call_without_a_callback_url_records_skipped_events(self, harness: Harness) -> None:
        await harness.own()
        await harness.ok("POST", "/calls", {"from": OURS, "to": "+13235550111"})
        await harness.advance(1)
        assert [d.status for d in harness.sim.deliveries()] == ["skipped"]


async def test_a_failed_delivery_is_logged_with_its_call_and_urls(harness: Harness) -> None:
    harness.receiver.failing.update({"/events", "/backup"})
    await harness.own(fallback="/backup")
    with capture_logs() as logs:
        call_id = await harness.inbound()
    failures = [entry for entry in logs if entry["event"] == "callback_failed"]
    assert [(f["key"], f["event_type"]) for f in failures] == [(call_id, "incomingcall"), (call_id, "answer")]
    assert failures[0]["url"].endswith("/events")
    assert failures[0]["fallback_url"].endswith("/backup")
    assert failures[0]["error"] == "HTTP 500"
    assert failures[0]["log_level"] == "warning"
