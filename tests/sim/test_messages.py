"""Messages over HTTP: sending one or a batch, receipts and delivery outcomes, inbound texts, reads."""

from __future__ import annotations

import pytest

from .support import CALLER, OURS, Harness


async def send(harness: Harness, **extra: object) -> str:
    body = {
        "from": OURS,
        "to": CALLER,
        "text": "Good morning",
        "callbackUrl": harness.receiver.url("/sms"),
        **extra,
    }
    return str(await harness.ok("POST", "/messages", body))


class TestSending:
    async def test_a_message_answers_201_and_reports_sent(self, harness: Harness) -> None:
        await harness.own()
        status, headers, _ = await harness.rest(
            "POST",
            "/messages",
            {
                "from": OURS,
                "to": CALLER,
                "text": "Hi",
                "callbackUrl": harness.receiver.url("/sms"),
                "tag": "t",
            },
        )
        assert status == 201
        message_id = headers["Location"].rsplit("/", 1)[-1]
        assert headers["Location"] == f"{harness.sim.urls.user}/messages/{message_id}"
        message = await harness.ok("GET", f"/messages/{message_id}")
        assert (message["state"], message["direction"], message["segmentCount"]) == ("queued", "out", 1)
        await harness.advance(0.5)
        [event] = harness.receiver.events("/sms")
        assert event["eventType"] == "sms"
        assert (event["state"], event["direction"], event["messageId"]) == ("sent", "out", message_id)
        assert event["tag"] == "t"
        assert event["messageUri"].endswith(f"/messages/{message_id}")
        assert (await harness.ok("GET", f"/messages/{message_id}"))["state"] == "sent"

    async def test_receipt_all_reports_sent_then_delivered(self, harness: Harness) -> None:
        await harness.own()
        await send(harness, receiptRequested="all")
        await harness.advance(2)
        events = harness.receiver.events("/sms")
        assert [(e["state"], e["deliveryState"]) for e in events] == [
            ("sent", "waiting"),
            ("sent", "delivered"),
        ]
        assert (events[1]["deliveryCode"], events[1]["deliveryDescription"]) == (
            "0",
            "Message Delivered to Carrier",
        )

    @pytest.mark.parametrize(
        ("receipt", "expected"),
        [
            pytest.param("error", [("sent", "waiting"), ("sent", "not-delivered")], id="error-receipts"),
            pytest.param("none", [("sent", None)], id="no-receipts"),
        ],
    )
    async def test_an_undelivered_message_reports_its_code(
        self, harness: Harness, receipt: str, expected: list[tuple[str, str | None]]
    ) -> None:
        await harness.own()
        status, _ = await harness.control(
            "PUT", f"/sim/deliveries/{CALLER}", {"outcome": "not-delivered", "code": 775}
        )
        assert status == 200
        await send(harness, receiptRequested=receipt)
        await harness.advance(2)
        events = harness.receiver.events("/sms")
        assert [(e["state"], e.get("deliveryState")) for e in events] == expected
        if receipt == "error":
            assert (events[1]["deliveryCode"], events[1]["deliveryDescription"]) == (
                "775",
                "Rejected due to user opt out",
            )

    async def test_a_send_error_reports_state_error(self, harness: Harness) -> None:
        await harness.own()
        await harness.control("PUT", f"/sim/deliveries/{CALLER}", {"outcome": "error", "code": 720})
        message_id = await send(harness)
        await harness.advance(1)
        [event] = harness.receiver.events("/sms")
        assert (event["state"], event["deliveryCode"]) == ("error", "720")
        assert (await harness.ok("GET", f"/messages/{message_id}"))["state"] == "error"

    async def test_long_text_is_split_into_segments_and_media_makes_an_mms(self, harness: Harness) -> None:
        await harness.own()
        long_id = await send(harness, text="a" * 161)
        assert (await harness.ok("GET", f"/messages/{long_id}"))["segmentCount"] == 2
        await send(harness, media=["https://example.com/cat.jpg"])
        await harness.advance(1)
        mms = [e for e in harness.receiver.events("/sms") if e["eventType"] == "mms"]
        assert mms[0]["media"] == ["https://example.com/cat.jpg"]
        assert mms[0]["segmentCount"] == 1

    async def test_a_batch_answers_202_with_a_result_per_message(self, harness: Harness) -> None:
        await harness.own()
        status, _, body = await harness.rest(
            "POST", "/messages", [{"from": OURS, "to": CALLER, "text": "one"}, {"from": OURS, "text": "two"}]
        )
        assert status == 202
        assert body[0]["result"] == "accepted"
        assert "/messages/m-" in body[0]["location"]
        assert body[1]["result"] == "error"
        assert body[1]["error"]["code"] == "missing-property"

    async def test_a_batch_of_more_than_fifty_is_refused(self, harness: Harness) -> None:
        await harness.own()
        batch = [{"from": OURS, "to": CALLER, "text": str(i)} for i in range(51)]
        status, _, body = await harness.rest("POST", "/messages", batch)
        assert (status, body["code"]) == (403, "multi-message-limit")

    @pytest.mark.parametrize(
        ("body", "code"),
        [
            pytest.param({"to": CALLER, "text": "x"}, "missing-property", id="no-from"),
            pytest.param({"from": CALLER, "to": OURS, "text": "x"}, "validation-error", id="from-not-owned"),
            pytest.param({"from": OURS, "to": CALLER, "text": "x" * 2049}, "validation-error", id="too-long"),
            pytest.param(
                {"from": OURS, "to": CALLER, "text": "x", "receiptRequested": "maybe"},
                "validation-error",
                id="bad-receipt",
            ),
        ],
    )
    async def test_bad_messages_are_refused(
        self, harness: Harness, body: dict[str, object], code: str
    ) -> None:
        await harness.own()
        status, _, error = await harness.rest("POST", "/messages", body)
        assert (status, error["code"]) == (400, code)


class TestReceivingAndReading:
    async def test_an_inbound_text_goes_to_the_applications_message_url(self, harness: Harness) -> None:
        app_id = await harness.own()
        status, body = await harness.control(
            "POST", "/sim/messages", {"from": CALLER, "to": OURS, "text": "STOP"}
        )
        assert status == 201
        await harness.sim.settle()
        [event] = harness.receiver.events("/messages")
        assert event["eventType"] == "sms"
        assert (event["direction"], event["state"], event["text"]) == ("in", "received", "STOP")
        assert event["applicationId"] == app_id
        assert event["messageId"] == body["messageId"]

    async def test_an_inbound_mms_carries_its_media(self, harness: Harness) -> None:
        await harness.own()
        await harness.control(
            "POST", "/sim/messages", {"from": CALLER, "to": OURS, "text": "", "media": ["http://x/a.jpg"]}
        )
        await harness.sim.settle()
        [event] = harness.receiver.events("/messages")
        assert (event["eventType"], event["media"]) == ("mms", ["http://x/a.jpg"])

    async def test_messages_are_listed_filtered_and_paged_with_a_link_header(self, harness: Harness) -> None:
        await harness.own()
        ids = [await send(harness, text=str(i)) for i in range(3)]
        await harness.control("POST", "/sim/messages", {"from": CALLER, "to": OURS, "text": "in"})
        status, headers, page_one = await harness.rest("GET", "/messages?direction=out&size=2")
        assert status == 200
        assert [m["id"] for m in page_one] == ids[:2]
        link = headers["Link"]
        assert link.endswith('>; rel="next"')
        next_url = link[1 : link.index(">")]
        tail = next_url.split(f"/v1/users/{harness.config.user_id}", 1)[1]
        status, headers, page_two = await harness.rest("GET", tail)
        assert [m["id"] for m in page_two] == ids[2:]
        assert "Link" not in headers
        newest = await harness.ok("GET", "/messages?sortOrder=desc&size=1")
        assert newest[0]["direction"] == "in"
        assert await harness.ok("GET", "/messages?fromDateTime=2099-01-01%2000:00:00") == []

    async def test_a_message_text_can_be_redacted_and_nothing_else_changed(self, harness: Harness) -> None:
        await harness.own()
        message_id = await send(harness)
        status, _, _ = await harness.rest("PATCH", f"/messages/{message_id}", {"text": ""})
        assert status == 200
        assert (await harness.ok("GET", f"/messages/{message_id}"))["text"] == ""
        status, _, body = await harness.rest("PATCH", f"/messages/{message_id}", {"text": "new"})
        assert (status, body["code"]) == (400, "validation-error")

    async def test_an_unknown_message_is_404(self, harness: Harness) -> None:
        status, _, body = await harness.rest("GET", "/messages/m-nope")
        assert (status, body["code"]) == (404, "message-not-found")


async def test_inbound_texts_come_by_get_when_the_application_says_so(harness: Harness) -> None:
    await harness.own(method="GET")
    await harness.control("POST", "/sim/messages", {"from": CALLER, "to": OURS, "text": "by get"})
    await harness.sim.settle()
    [request] = [r for r in harness.receiver.received if r.path == "/messages"]
    assert request.method == "GET"
    assert (request.query["eventType"], request.query["text"], request.query["segmentCount"]) == (
        "sms",
        "by get",
        "1",
    )
