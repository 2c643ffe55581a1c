"""The account (balance, transactions), user errors (errors answered and callbacks not delivered) and number
info (CNAM answered from the table the control API sets), over loopback HTTP."""

from __future__ import annotations

from typing import Any

from flowengine.sim.callbacks import basic_auth

from .support import AGENT, CALLER, OURS, Harness


async def cnam(harness: Harness, number: str) -> tuple[int, Any]:
    headers = {"Authorization": basic_auth(harness.config.token, harness.config.secret)}
    async with harness.client.get(f"/v1/phoneNumbers/numberInfo/{number}", headers=headers) as response:
        return response.status, await response.json()


class TestAccount:
    async def test_a_new_account_is_pre_pay_with_its_opening_credit(self, harness: Harness) -> None:
        assert await harness.ok("GET", "/account") == {"balance": "100.00000", "accountType": "pre-pay"}
        [credit] = await harness.ok("GET", "/account/transactions")
        assert (credit["type"], credit["amount"], credit["units"]) == ("credit", "100.00000", 0)

    async def test_numbers_messages_calls_and_lookups_are_charged_newest_first(
        self, harness: Harness
    ) -> None:
        await harness.own(OURS)
        await harness.advance(1)
        await harness.ok("POST", "/messages", {"from": OURS, "to": CALLER, "text": "hi"})
        await harness.advance(1)
        call_id = await harness.inbound()
        await harness.advance(61)
        await harness.control("POST", f"/sim/calls/{call_id}/hangup")
        await harness.advance(1)
        await harness.control("PUT", f"/sim/cnam/{CALLER}", {"name": "JANE DOE"})
        assert (await cnam(harness, CALLER))[0] == 200
        lines = await harness.ok("GET", "/account/transactions")
        products = [line.get("productType", line["type"]) for line in lines]
        assert products == ["cnam-search", "call-in", "sms-out", "local-number-per-month", "credit"]
        call = next(line for line in lines if line.get("productType") == "call-in")
        assert (call["units"], call["amount"], call["number"], call["resourceId"]) == (
            2,
            "0.02000",
            OURS,
            call_id,
        )
        assert set(lines[0]) == {"id", "time", "amount", "type", "units", "productType", "number"}
        spent = 0.004 + 0.02 + 0.0075 + 0.35
        assert (await harness.ok("GET", "/account"))["balance"] == f"{100 - spent:.5f}"

    async def test_transactions_filter_by_type_number_date_and_count(self, harness: Harness) -> None:
        await harness.own(OURS)
        await harness.ok("POST", "/messages", {"from": OURS, "to": CALLER, "text": "one"})
        await harness.advance(10)
        await harness.ok("POST", "/messages", {"from": OURS, "to": AGENT, "text": "two"})
        lines = await harness.ok("GET", "/account/transactions")
        assert [line["type"] for line in await harness.ok("GET", "/account/transactions?type=Credit")] == [
            "credit"
        ]
        assert await harness.ok("GET", "/account/transactions?type=payment") == []
        by_number = await harness.ok("GET", "/account/transactions?number=%2B19195550001")
        assert len(by_number) == 3
        assert {line["number"] for line in by_number} == {OURS}
        assert await harness.ok("GET", "/account/transactions?maxItems=1") == lines[:1]
        newest = lines[0]["time"]
        assert await harness.ok("GET", f"/account/transactions?toDate={newest}") == lines[1:]
        assert await harness.ok("GET", f"/account/transactions?fromDate={lines[1]['time']}") == lines[:1]

    async def test_a_bad_transaction_filter_is_a_validation_error_naming_it(self, harness: Harness) -> None:
        for query, name in (
            ("fromDate=yesterday", "fromDate"),
            ("type=refund", "type"),
            ("maxItems=x", "maxItems"),
        ):
            status, _, body = await harness.rest("GET", f"/account/transactions?{query}")
            assert (status, body["code"]) == (400, "validation-error")
            assert {"name": "property", "value": name} in body["details"]


class TestErrors:
    async def test_errors_answered_are_listed_newest_first_and_read_by_id(self, harness: Harness) -> None:
        await harness.rest("GET", "/calls/c-nope")
        await harness.advance(1)
        await harness.rest("POST", "/applications", {"name": "no urls"})
        errors = await harness.ok("GET", "/errors")
        assert [e["code"] for e in errors] == ["validation-error", "call-not-found"]
        first = errors[1]
        assert set(first) == {"id", "time", "category", "code", "message", "details"}
        assert first["category"] == "not-found"
        assert {"name": "requestMethod", "value": "GET"} in [
            {"name": d["name"], "value": d["value"]} for d in first["details"]
        ]
        assert all(d["id"] for d in first["details"])
        assert await harness.ok("GET", f"/errors/{first['id']}") == first

    async def test_an_undelivered_callback_is_a_user_error_without_credentials(
        self, harness: Harness
    ) -> None:
        harness.receiver.failing.add("/events")
        app = {
            "name": "failing",
            "incomingCallUrl": harness.receiver.url("/events").replace("http://", "http://bob:pw@"),
        }
        app_id = await harness.ok("POST", "/applications", app)
        await harness.ok("POST", "/phoneNumbers", {"number": OURS, "applicationId": app_id})
        call_id = await harness.inbound()
        errors = await harness.ok("GET", "/errors")
        assert [e["code"] for e in errors] == ["callback-delivery-failed"] * 2  # incomingcall, then answer
        error = errors[1]
        assert (error["category"], error["code"]) == ("unavailable", "callback-delivery-failed")
        assert "incomingcall event could not be delivered" in error["message"].lower()
        values = {d["name"]: d["value"] for d in error["details"]}
        assert values["callId"] == call_id
        assert values["eventType"] == "incomingcall"
        assert "HTTP 500" in values["attempt1"]
        assert "pw" not in str(error)

    async def test_an_unknown_error_id_is_user_error_not_found(self, harness: Harness) -> None:
        status, _, body = await harness.rest("GET", "/errors/ue-a99")
        assert (status, body["code"]) == (404, "user-error-not-found")

    async def test_errors_page_and_size(self, harness: Harness) -> None:
        for _ in range(3):
            await harness.rest("GET", "/calls/c-nope")
        assert len(await harness.ok("GET", "/errors?size=2")) == 2
        assert len(await harness.ok("GET", "/errors?size=2&page=1")) == 1


class TestNumberInfo:
    async def test_a_lookup_answers_the_name_the_control_api_set(self, harness: Harness) -> None:
        status, body = await harness.control("PUT", f"/sim/cnam/{CALLER}", {"name": "JANE DOE"})
        assert (status, body) == (200, {"number": CALLER, "name": "JANE DOE"})
        await harness.advance(5)
        status, info = await cnam(harness, CALLER.replace("+", "%2B"))
        assert status == 200
        assert set(info) == {"created", "name", "number", "updated"}
        assert (info["name"], info["number"]) == ("JANE DOE", CALLER)
        assert info["created"] > info["updated"]  # first queried after it was set
        assert (await harness.control("GET", "/sim/cnam"))[1] == {CALLER: "JANE DOE"}

    async def test_an_unknown_number_is_cnam_not_found_and_a_bad_one_invalid_cnam_search(
        self, harness: Harness
    ) -> None:
        status, body = await cnam(harness, AGENT)
        assert (status, body["code"]) == (404, "cnam-not-found")
        status, body = await cnam(harness, "not-a-number")
        assert (status, body["category"], body["code"]) == (403, "forbidden", "invalid-cnam-search")

    async def test_the_control_api_refuses_a_name_over_15_characters_and_forgets_on_delete(
        self, harness: Harness
    ) -> None:
        status, body = await harness.control("PUT", f"/sim/cnam/{CALLER}", {"name": "A" * 16})
        assert (status, body["code"]) == (400, "validation-error")
        await harness.control("PUT", f"/sim/cnam/{CALLER}", {"name": "JANE"})
        assert (await harness.control("DELETE", f"/sim/cnam/{CALLER}"))[0] == 200
        assert (await cnam(harness, CALLER))[0] == 404
        assert (await harness.control("DELETE", f"/sim/cnam/{CALLER}"))[0] == 404


async def test_the_control_routes_of_these_resources_refuse_bad_bodies(harness: Harness) -> None:
    import random

    from flowengine.sim.resources import CONTROL_ROUTES

    from .test_robustness import RAW_BODIES, assert_documented_error, bodies

    rng = random.Random(10)
    for method, path, _ in CONTROL_ROUTES:
        target = path.replace("{number}", "%2B13235550100")
        for body in [*bodies(rng, 10), {"name": 5}, {"sipUri": None, "password": []}]:
            async with harness.client.request(method, target, json=body) as response:
                reply = await response.json()
            assert_documented_error(response.status, reply, f"{method} {target} {body!r}")
        for raw in RAW_BODIES:
            async with harness.client.request(method, target, data=raw) as response:
                reply = await response.json()
            assert_documented_error(response.status, reply, f"{method} {target} {raw!r}")
