"""The executions API over loopback: bearer auth, start, read, list, end; every answer validated against
docs/openapi.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .openapi import check, document
from .support import EXEC_TOKEN, OUR_NUMBER, MakeHarness, incoming

AUTH = {"Authorization": f"Bearer {EXEC_TOKEN}"}
REQUEST = {"flow": "echo", "to": "+15557654321", "from": OUR_NUMBER, "variables": {"name": "Ada"}}


class TestAuth:
    @pytest.mark.parametrize(
        "headers",
        [
            pytest.param({}, id="missing"),
            pytest.param({"Authorization": "Bearer wrong"}, id="wrong"),
            pytest.param({"Authorization": f"Basic {EXEC_TOKEN}"}, id="other-scheme"),
        ],
    )
    @pytest.mark.parametrize(
        ("method", "path", "template"),
        [
            ("POST", "/v1/executions", "/v1/executions"),
            ("GET", "/v1/executions", "/v1/executions"),
            ("GET", "/v1/executions/x", "/v1/executions/{id}"),
            ("DELETE", "/v1/executions/x", "/v1/executions/{id}"),
        ],
    )
    async def test_every_route_needs_the_bearer_token(
        self, make_harness: MakeHarness, headers: dict[str, str], method: str, path: str, template: str
    ) -> None:
        h = await make_harness()
        response = await h.client.request(method, path, json=REQUEST, headers=headers)
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        await check(response, template, method)
        assert h.api.seen == []


class TestLifecycle:
    async def test_start_read_list_and_end_an_execution(self, make_harness: MakeHarness) -> None:
        h = await make_harness()
        created = await h.client.post("/v1/executions", json=REQUEST, headers=AUTH)
        assert created.status == 201
        body = await check(created, "/v1/executions", "POST")
        execution_id = body["id"]
        assert created.headers["Location"] == f"/v1/executions/{execution_id}"
        assert (body["flow"], body["status"], body["variables"]) == ("echo", "active", {"name": "Ada"})
        await h.settle(lambda: len(h.api.seen) == 1)
        assert h.api.seen[0].path == "/calls"
        assert h.api.seen[0].body == {"from": OUR_NUMBER, "to": "+15557654321", "tag": execution_id}
        # the dial's result came back: the runtime learnt the new call id and routed it to the session
        await h.settle(lambda: any(e.startswith("result:dial:new-") for _, e in h.runtime.handled))

        got = await h.client.get(f"/v1/executions/{execution_id}", headers=AUTH)
        view = await check(got, "/v1/executions/{id}", "GET")
        assert view["state"] == "dialing"
        assert view["steps"] == ["result:dial:new-1:None"]

        await h.post(incoming("c-1"))
        listed = await h.client.get("/v1/executions", params={"status": "active"}, headers=AUTH)
        listing = await check(listed, "/v1/executions", "GET")
        assert sorted(e["id"] for e in listing["executions"]) == sorted([execution_id, "s-c-1"])
        only_echo = await h.client.get("/v1/executions", params={"flow": "nope"}, headers=AUTH)
        assert (await check(only_echo, "/v1/executions", "GET")) == {"executions": [], "count": 0}

        ended = await h.client.delete(f"/v1/executions/{execution_id}", headers=AUTH)
        view = await check(ended, "/v1/executions/{id}", "DELETE")
        assert (view["status"], view["state"]) == ("ended", "end")
        await h.settle(lambda: h.api.paths()[-1] == "POST /calls/new-1")
        assert h.api.seen[-1].body == {"state": "completed"}
        again = await h.client.delete(f"/v1/executions/{execution_id}", headers=AUTH)
        assert (await check(again, "/v1/executions/{id}", "DELETE"))["status"] == "ended"

    async def test_an_execution_above_the_session_cap_is_refused_with_503(
        self, make_harness: MakeHarness
    ) -> None:
        h = await make_harness(max_sessions=1)
        first = await h.client.post("/v1/executions", json=REQUEST, headers=AUTH)
        assert first.status == 201
        refused = await h.client.post("/v1/executions", json=REQUEST, headers=AUTH)
        assert refused.status == 503
        body = await check(refused, "/v1/executions", "POST")
        assert body["error"]["code"] == "at-capacity"
        metrics = await (await h.client.get("/metrics")).text()
        assert 'flowengine_errors_total{kind="capacity"} 1.0' in metrics
        # ending the first execution makes room again
        await h.client.delete(f"/v1/executions/{(await first.json())['id']}", headers=AUTH)
        again = await h.client.post("/v1/executions", json=REQUEST, headers=AUTH)
        assert again.status == 201


class TestBadRequests:
    @pytest.mark.parametrize(
        ("body", "status", "message"),
        [
            pytest.param({**REQUEST, "flow": "nope"}, 404, "no flow 'nope'", id="unknown-flow"),
            pytest.param({**REQUEST, "to": "555"}, 400, "'to' must be an E.164 number", id="bad-to"),
            pytest.param({**REQUEST, "from": None}, 400, "'from' must be an E.164", id="bad-from"),
            pytest.param({**REQUEST, "extra": 1}, 400, "unknown properties ['extra']", id="unknown-key"),
            pytest.param({**REQUEST, "variables": [1]}, 400, "'variables' must be an object", id="vars"),
            pytest.param([REQUEST], 400, "must be a JSON object", id="array"),
            pytest.param(
                {**REQUEST, "to": "+15559999999"}, 400, "that number is blocked", id="runtime-refuses"
            ),
        ],
    )
    async def test_bad_start_requests_say_what_is_wrong(
        self, make_harness: MakeHarness, body: Any, status: int, message: str
    ) -> None:
        h = await make_harness()
        response = await h.client.post("/v1/executions", json=body, headers=AUTH)
        assert response.status == status
        error = (await check(response, "/v1/executions", "POST"))["error"]
        assert message in error["message"]
        assert h.api.seen == []

    async def test_an_unknown_execution_is_404(self, make_harness: MakeHarness) -> None:
        h = await make_harness()
        for method in ("GET", "DELETE"):
            response = await h.client.request(method, "/v1/executions/nope", headers=AUTH)
            assert response.status == 404
            await check(response, "/v1/executions/{id}", method)

    @pytest.mark.parametrize("query", [{"limit": "0"}, {"limit": "x"}, {"status": "sleeping"}])
    async def test_bad_list_filters_are_400(self, make_harness: MakeHarness, query: dict[str, str]) -> None:
        h = await make_harness()
        response = await h.client.get("/v1/executions", params=query, headers=AUTH)
        assert response.status == 400
        await check(response, "/v1/executions", "GET")


class TestDocument:
    def test_the_document_describes_exactly_the_routes_the_server_serves(self) -> None:
        from flowengine.config import ServeConfig
        from flowengine.server.app import create_app

        app = create_app(ServeConfig(flows_dir=Path("."), simulator=True))
        served = {
            (route.method.lower(), route.resource.canonical)
            for route in app.router.routes()
            # "*" is the fallback that answers 404 and 405 (flowengine.server.guard), not a served route.
            if route.method not in ("HEAD", "*") and route.resource is not None
        }
        documented = {(m, p) for p, ops in document()["paths"].items() for m in ops if m != "parameters"}
        assert served == documented

    async def test_callback_answers_match_the_document(self, make_harness: MakeHarness) -> None:
        h = await make_harness()
        await check(await h.post(incoming("c-1")), "/callbacks/voice", "POST")
        await check(
            await h.post({"eventType": "x"}, path="/callbacks/messaging"), "/callbacks/messaging", "POST"
        )
        await check(await h.post([1]), "/callbacks/voice", "POST")
        await check(await h.client.get("/callbacks/voice", params=incoming("c-2")), "/callbacks/voice", "GET")
        await check(await h.client.get("/readyz"), "/readyz", "GET")
        await check(await h.client.get("/healthz"), "/healthz", "GET")

    def test_the_validation_itself_rejects_an_undocumented_shape(self) -> None:
        import jsonschema

        from .openapi import response_schema, validate

        schema = response_schema("/v1/executions/{id}", "GET", 200)
        assert schema is not None
        with pytest.raises(jsonschema.ValidationError, match="'steps' is a required property"):
            validate({"id": "x", "flow": "f", "state": "s", "status": "active", "variables": {}}, schema)

    def test_the_document_is_valid_openapi_3_1(self) -> None:
        from openapi_spec_validator import validate as validate_spec

        validate_spec(document())  # raises with the path of the first problem
        assert document()["openapi"] == "3.1.0"


class TestStoreOutage:
    async def test_the_executions_api_answers_503_while_the_store_is_down(
        self, make_harness: MakeHarness
    ) -> None:
        h = await make_harness()
        h.backend.available = False
        for method, path, template in [
            ("GET", "/v1/executions", "/v1/executions"),
            ("GET", "/v1/executions/x", "/v1/executions/{id}"),
            ("POST", "/v1/executions", "/v1/executions"),
        ]:
            response = await h.client.request(method, path, json=REQUEST, headers=AUTH)
            assert response.status == 503
            assert (await check(response, template, method))["error"]["code"] == "store-unavailable"
        h.backend.available = True
        response = await h.client.get("/v1/executions", headers=AUTH)
        assert response.status == 200
