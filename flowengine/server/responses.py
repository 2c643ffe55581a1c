"""JSON answers of the server, and its one error shape: ``{"error": {"code": ..., "message": ...}}``."""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from aiohttp import web

from flowengine.typing import JSONObject


def json_response(status: int, body: JSONObject, headers: Mapping[str, str] | None = None) -> web.Response:
    """A JSON answer."""
    return web.Response(
        status=status, body=orjson.dumps(body), content_type="application/json", headers=headers
    )


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    """The server's JSON error answer: ``{"error": {"code": ..., "message": ...}}``."""
    return json_response(status, {"error": {"code": code, "message": message}}, headers)
