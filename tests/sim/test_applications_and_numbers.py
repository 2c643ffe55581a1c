"""Applications and phone numbers over HTTP, and how a number routes calls and texts to its app."""

from __future__ import annotations

from .support import CALLER, OURS, Harness


class TestApplications:
    async def test_an_application_is_created_read_updated_listed_and_deleted(self, harness: Harness) -> None:
        body = {
            "name": "MyFirstApp",
            "incomingCallUrl": "http://example.com/calls.php",
            "autoAnswer": "false",
        }
        status, headers, _ = await harness.rest("POST", "/applications", body)
        assert status == 201
        app_id = headers["Location"].rsplit("/", 1)[-1]
        app = await harness.ok("GET", f"/applications/{app_id}")
        assert app == {
            "id": app_id,
            "name": "MyFirstApp",
            "incomingCallUrl": "http://example.com/calls.php",
            "incomingCallUrlCallbackTimeout": 10000,
            "incomingMessageUrlCallbackTimeout": 10000,
            "callbackHttpMethod": "POST",
            "autoAnswer": False,
        }
        await harness.ok(
            "POST", f"/applications/{app_id}", {"incomingCallUrl": "http://different.example.com/calls.php"}
        )
        app = await harness.ok("GET", f"/applications/{app_id}")
        assert (app["name"], app["incomingCallUrl"]) == (
            "MyFirstApp",
            "http://different.example.com/calls.php",
        )
        assert [a["id"] for a in await harness.ok("GET", "/applications")] == [app_id]
        status, _, _ = await harness.rest("DELETE", f"/applications/{app_id}")
        assert status == 200
        status, _, body = await harness.rest("GET", f"/applications/{app_id}")
        assert (status, body["code"]) == (404, "application-not-found")

    async def test_an_application_needs_a_name_and_an_incoming_url(self, harness: Harness) -> None:
        status, _, body = await harness.rest("POST", "/applications", {"incomingCallUrl": "http://x/y"})
        assert (status, body["code"]) == (400, "missing-property")
        status, _, body = await harness.rest("POST", "/applications", {"name": "x"})
        assert (status, body["code"]) == (400, "validation-error")


class TestNumbers:
    async def test_a_number_is_added_read_by_id_and_by_e164_updated_and_released(
        self, harness: Harness
    ) -> None:
        status, headers, _ = await harness.rest(
            "POST", "/phoneNumbers", {"number": "+19195551212", "name": "home phone"}
        )
        assert status == 201
        number_id = headers["Location"].rsplit("/", 1)[-1]
        record = await harness.ok("GET", f"/phoneNumbers/{number_id}")
        assert (record["number"], record["nationalNumber"], record["name"]) == (
            "+19195551212",
            "(919) 555-1212",
            "home phone",
        )
        assert record["numberState"] == "enabled"
        assert await harness.ok("GET", "/phoneNumbers/%2B19195551212") == record
        app_id = await harness.ok("POST", "/applications", {"name": "a", "incomingCallUrl": "http://x/y"})
        await harness.ok("POST", "/phoneNumbers/%2B19195551212", {"applicationId": app_id})
        record = await harness.ok("GET", f"/phoneNumbers/{number_id}")
        assert record["applicationId"] == app_id
        assert record["application"].endswith(f"/applications/{app_id}")
        await harness.ok("POST", f"/phoneNumbers/{number_id}", {"applicationId": ""})
        assert "applicationId" not in await harness.ok("GET", f"/phoneNumbers/{number_id}")
        assert len(await harness.ok("GET", "/phoneNumbers")) == 1
        status, _, _ = await harness.rest("DELETE", f"/phoneNumbers/{number_id}")
        assert status == 200
        status, _, body = await harness.rest("GET", f"/phoneNumbers/{number_id}")
        assert (status, body["code"]) == (404, "number-not-found")

    async def test_a_number_is_owned_once_and_needs_a_real_application(self, harness: Harness) -> None:
        await harness.ok("POST", "/phoneNumbers", {"number": OURS})
        status, _, body = await harness.rest("POST", "/phoneNumbers", {"number": OURS})
        assert (status, body["category"]) == (409, "conflict")
        status, _, body = await harness.rest(
            "POST", "/phoneNumbers", {"number": "+19195550009", "applicationId": "a-nope"}
        )
        assert (status, body["code"]) == (404, "application-not-found")

    async def test_moving_a_number_to_another_application_moves_its_calls_and_texts(
        self, harness: Harness
    ) -> None:
        await harness.own()
        other = await harness.ok(
            "POST",
            "/applications",
            {
                "name": "b",
                "incomingCallUrl": harness.receiver.url("/b-calls"),
                "incomingMessageUrl": harness.receiver.url("/b-texts"),
            },
        )
        await harness.ok("POST", f"/phoneNumbers/{OURS.replace('+', '%2B')}", {"applicationId": other})
        call_id = await harness.inbound()
        await harness.control("POST", "/sim/messages", {"from": CALLER, "to": OURS, "text": "hi"})
        await harness.sim.settle()
        assert harness.receiver.types(call_id, path="/b-calls") == ["incomingcall", "answer"]
        assert [e["text"] for e in harness.receiver.events("/b-texts")] == ["hi"]
        assert harness.receiver.events("/events") == []
