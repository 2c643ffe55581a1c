"""SIP domains and endpoints: create, list, read, update and delete with the documented fields and errors;
passwords are never answered, only checked (the control API's registrar)."""

from __future__ import annotations

import pytest

from .support import Harness

JSMITH = {
    "name": "jsmith_mobile",
    "description": "John Smiths mobile client",
    "enabled": "false",
    "credentials": {"password": "abc123"},
}


async def a_domain(harness: Harness, name: str = "mycoolapp") -> str:
    return str(await harness.ok("POST", "/domains", {"name": name, "description": "disruptive app"}))


async def register(harness: Harness, sip_uri: str, password: str) -> tuple[int, dict[str, object]]:
    status, body = await harness.control(
        "POST", "/sim/sip/register", {"sipUri": sip_uri, "password": password}
    )
    return status, body


class TestDomains:
    async def test_a_created_domain_is_listed_with_its_endpoints_url(self, harness: Harness) -> None:
        status, headers, _ = await harness.rest(
            "POST", "/domains", {"name": "mycoolapp", "description": "app"}
        )
        assert status == 201
        domain_id = headers["Location"].rsplit("/", 1)[1]
        assert headers["Location"].endswith(f"/v1/users/{harness.config.user_id}/domains/{domain_id}")
        [listed] = await harness.ok("GET", "/domains")
        assert listed == {
            "id": domain_id,
            "name": "mycoolapp",
            "description": "app",
            "endpoints": headers["Location"] + "/endpoints",
        }

    @pytest.mark.parametrize(
        ("body", "status", "code"),
        [
            pytest.param({"description": "x"}, 400, "missing-property", id="no-name"),
            pytest.param({"name": "app"}, 400, "missing-property", id="no-description"),
            pytest.param({"name": "my app", "description": "x"}, 400, "validation-error", id="space"),
            pytest.param({"name": "a" * 64, "description": "x"}, 400, "validation-error", id="too-long"),
            pytest.param({"name": "MyCoolApp", "description": "x"}, 409, "duplicate-domain", id="duplicate"),
        ],
    )
    async def test_a_bad_domain_gets_the_documented_error(
        self, harness: Harness, body: dict[str, str], status: int, code: str
    ) -> None:
        await a_domain(harness)
        got, _, reply = await harness.rest("POST", "/domains", body)
        assert (got, reply["code"]) == (status, code)

    async def test_an_account_has_at_most_100_domains(self, harness: Harness) -> None:
        for index in range(100):
            await a_domain(harness, f"d{index}")
        status, _, body = await harness.rest("POST", "/domains", {"name": "one-more", "description": "x"})
        assert (status, body["category"], body["code"]) == (403, "limit", "domain-limit-reached")

    async def test_deleting_a_domain_deletes_its_endpoints(self, harness: Harness) -> None:
        domain_id = await a_domain(harness)
        endpoint_id = await harness.ok("POST", f"/domains/{domain_id}/endpoints", JSMITH)
        await harness.ok("DELETE", f"/domains/{domain_id}")
        assert await harness.ok("GET", "/domains") == []
        assert harness.sim.world.endpoints == {}
        status, _, body = await harness.rest("GET", f"/domains/{domain_id}/endpoints/{endpoint_id}")
        assert (status, body["code"]) == (404, "domain-not-found")
        status, _, body = await harness.rest("DELETE", f"/domains/{domain_id}")
        assert (status, body["code"]) == (404, "domain-not-found")


class TestEndpoints:
    async def test_an_endpoint_reads_back_with_its_sip_uri_and_no_password(self, harness: Harness) -> None:
        app_id = await harness.own()
        domain_id = await a_domain(harness)
        status, headers, _ = await harness.rest(
            "POST", f"/domains/{domain_id}/endpoints", {**JSMITH, "applicationId": app_id}
        )
        assert status == 201
        endpoint_id = headers["Location"].rsplit("/", 1)[1]
        assert headers["Location"].endswith(f"/domains/{domain_id}/endpoints/{endpoint_id}")
        read = await harness.ok("GET", f"/domains/{domain_id}/endpoints/{endpoint_id}")
        assert read == {
            "id": endpoint_id,
            "name": "jsmith_mobile",
            "description": "John Smiths mobile client",
            "domainId": domain_id,
            "applicationId": app_id,
            "enabled": "false",
            "sipUri": "jsmith_mobile@mycoolapp.bwapp.bwsipp.io",
            "credentials": {"realm": "mycoolapp.bwapp.bwsipp.io", "username": "jsmith_mobile"},
        }
        assert await harness.ok("GET", f"/domains/{domain_id}/endpoints") == [read]
        assert "abc123" not in repr(harness.sim.world.endpoints)

    @pytest.mark.parametrize(
        ("change", "status", "code"),
        [
            pytest.param({"credentials": None}, 400, "missing-property", id="no-credentials"),
            pytest.param({"credentials": {}}, 400, "missing-property", id="no-password"),
            pytest.param(
                {"credentials": {"password": "12345"}}, 400, "validation-error", id="short-password"
            ),
            pytest.param(
                {"credentials": {"password": "пароль123"}}, 400, "validation-error", id="not-latin-1"
            ),
            pytest.param({"name": "j smith"}, 400, "validation-error", id="bad-name"),
            pytest.param({"enabled": "maybe"}, 400, "validation-error", id="bad-enabled"),
            pytest.param({"applicationId": "a-nope"}, 404, "application-not-found", id="unknown-application"),
        ],
    )
    async def test_a_bad_endpoint_gets_the_documented_error(
        self, harness: Harness, change: dict[str, object], status: int, code: str
    ) -> None:
        domain_id = await a_domain(harness)
        body = {key: value for key, value in {**JSMITH, **change}.items() if value is not None}
        got, _, reply = await harness.rest("POST", f"/domains/{domain_id}/endpoints", body)
        assert (got, reply["code"]) == (status, code)

    async def test_endpoint_names_are_unique_within_a_domain_only(self, harness: Harness) -> None:
        first, second = await a_domain(harness, "one"), await a_domain(harness, "two")
        await harness.ok("POST", f"/domains/{first}/endpoints", JSMITH)
        await harness.ok("POST", f"/domains/{second}/endpoints", JSMITH)
        status, _, body = await harness.rest("POST", f"/domains/{first}/endpoints", JSMITH)
        assert (status, body["code"]) == (409, "duplicate-endpoint")

    async def test_an_update_changes_sent_fields_and_the_password_the_registrar_checks(
        self, harness: Harness
    ) -> None:
        domain_id = await a_domain(harness)
        endpoint_id = await harness.ok("POST", f"/domains/{domain_id}/endpoints", JSMITH)
        uri = "sip:jsmith_mobile@mycoolapp.bwapp.bwsipp.io"
        status, body = await register(harness, uri, "abc123")
        assert (status, body["code"]) == (403, "endpoint-disabled")
        await harness.ok(
            "POST",
            f"/domains/{domain_id}/endpoints/{endpoint_id}",
            {"enabled": "true", "credentials": {"password": "n3w-secret"}},
        )
        assert (await register(harness, uri, "abc123"))[0] == 401
        assert await register(harness, uri, "n3w-secret") == (
            200,
            {"registered": True, "endpointId": endpoint_id, "sipUri": uri.removeprefix("sip:")},
        )
        read = await harness.ok("GET", f"/domains/{domain_id}/endpoints/{endpoint_id}")
        assert (read["enabled"], read["description"]) == ("true", "John Smiths mobile client")
        assert (await register(harness, "sip:nobody@mycoolapp.bwapp.bwsipp.io", "x"))[0] == 404

    async def test_an_endpoints_name_cannot_change(self, harness: Harness) -> None:
        domain_id = await a_domain(harness)
        endpoint_id = await harness.ok("POST", f"/domains/{domain_id}/endpoints", JSMITH)
        status, _, body = await harness.rest(
            "POST", f"/domains/{domain_id}/endpoints/{endpoint_id}", {"name": "other"}
        )
        assert (status, body["code"]) == (400, "validation-error")

    async def test_a_deleted_endpoint_is_gone_and_other_domains_cannot_reach_it(
        self, harness: Harness
    ) -> None:
        domain_id, other = await a_domain(harness), await a_domain(harness, "other")
        endpoint_id = await harness.ok("POST", f"/domains/{domain_id}/endpoints", JSMITH)
        status, _, body = await harness.rest("GET", f"/domains/{other}/endpoints/{endpoint_id}")
        assert (status, body["code"]) == (404, "endpoint-not-found")
        await harness.ok("DELETE", f"/domains/{domain_id}/endpoints/{endpoint_id}")
        status, _, body = await harness.rest("GET", f"/domains/{domain_id}/endpoints/{endpoint_id}")
        assert (status, body["code"]) == (404, "endpoint-not-found")
        assert await harness.ok("GET", f"/domains/{domain_id}/endpoints") == []
