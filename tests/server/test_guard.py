"""The server's error answers without a middleware (``flowengine.server.guard``): paths and methods no route
takes, exceptions in handlers, the store being down; all in the JSON error shape, and the server keeps
serving after each."""

from __future__ import annotations

from typing import Any

import pytest
import structlog
from aiohttp import web

from flowengine.server.guard import add_fallback_route, add_route

from .support import EXEC_TOKEN, MakeHarness, incoming

AUTH = {"Authorization": f"Bearer {EXEC_TOKEN}"}


async def _error(response: Any) -> dict[str, str]:
    assert response.headers["Content-Type"].startswith("application/json")
    error: dict[str, str] = (await response.json())["error"]
    return error


class TestUnmatched:
    async def test_an_unknown_path_gets_a_json_404(self, make_harness: MakeHarness) -> None:
        h = await make_harness()
        response = await h.client.get("/nowhere/at/all")
        assert response.status == 404
        assert await _error(response) == {"code": "not-found", "message": "Not Found"}

    @pytest.mark.parametrize(
        ("method", "path", "allow"),
        [
            pytest.param("DELETE", "/healthz", "GET,HEAD", id="healthz"),
            pytest.param("PUT", "/callbacks/voice", "GET,POST", id="callbacks"),
            pytest.param("PATCH", "/v1/executions/s-1", "DELETE,GET,HEAD", id="variable-path"),
        ],
    )
    async def test_a_method_no_route_of_the_path_takes_gets_a_json_405_with_allow(
        self, make_harness: MakeHarness, method: str, path: str, allow: str
    ) -> None:
        h = await make_harness()
        response = await h.client.request(method, path)
        assert response.status == 405
        assert response.headers["Allow"] == allow
        assert await _error(response) == {"code": "method-not-allowed", "message": "Method Not Allowed"}
        assert (await h.post(incoming("c-1"))).status == 200


class TestHandlerErrors:
    async def test_an_unexpected_exception_is_logged_and_answered_500_and_the_server_keeps_serving(
        self, make_harness: MakeHarness, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        h = await make_harness()
        original = h.runtime.parse

        def broken(data: Any) -> Any:
            raise RuntimeError("the runtime broke")

        monkeypatch.setattr(h.runtime, "parse", broken)
        with structlog.testing.capture_logs() as logs:
            response = await h.post(incoming("c-1"))
        assert response.status == 500
        assert (await _error(response))["code"] == "internal-error"
        failed = [entry for entry in logs if entry["event"] == "request.failed"]
        assert [entry["path"] for entry in failed] == ["/callbacks/voice"]
        assert failed[0]["exc_info"]
        metrics = await (await h.client.get("/metrics")).text()
        assert 'flowengine_errors_total{kind="internal"} 1.0' in metrics
        monkeypatch.setattr(h.runtime, "parse", original)
        assert (await h.post(incoming("c-1"))).status == 200

    async def test_the_store_being_down_is_answered_503_on_the_executions_api(
        self, make_harness: MakeHarness
    ) -> None:
        h = await make_harness()
        h.backend.available = False
        response = await h.client.get("/v1/executions", headers=AUTH)
        assert response.status == 503
        assert (await _error(response))["code"] == "store-unavailable"
        h.backend.available = True
        assert (await h.client.get("/v1/executions", headers=AUTH)).status == 200


class TestGuardOnItsOwn:
    async def test_http_errors_keep_their_status_and_headers_and_redirects_pass_through(
        self, aiohttp_client: Any
    ) -> None:
        async def unauthorized(request: web.Request) -> web.StreamResponse:
            raise web.HTTPUnauthorized(headers={"WWW-Authenticate": "Bearer", "X-Other": "dropped"})

        async def moved(request: web.Request) -> web.StreamResponse:
            raise web.HTTPFound("/elsewhere")

        app = web.Application()
        add_route(app, "GET", "/private", unauthorized)
        add_route(app, "GET", "/old", moved)
        add_fallback_route(app)
        client = await aiohttp_client(app)
        response = await client.get("/private")
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert "X-Other" not in response.headers
        assert await _error(response) == {"code": "unauthorized", "message": "Unauthorized"}
        redirect = await client.get("/old", allow_redirects=False)
        assert (redirect.status, redirect.headers["Location"]) == (302, "/elsewhere")
