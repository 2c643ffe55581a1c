"""The executions API: start an outbound flow (a call or an SMS conversation) and follow or end it.

``POST /v1/executions`` ``{"flow", "to", "from", "variables"}`` starts one (201 with ``Location``);
``GET /v1/executions/{id}`` returns its state, variables and step history; ``GET /v1/executions`` lists them
(filters ``flow``, ``status``, ``limit``); ``DELETE /v1/executions/{id}`` ends it. Every request needs
``Authorization: Bearer <executions token>``. ``docs/openapi.yaml`` describes it all.
"""

from __future__ import annotations

import hmac
import re
from typing import Final

import orjson
import structlog
from aiohttp import web

from flowengine.errors import StoreError
from flowengine.server.dispatcher import AtCapacity, NoSuchFlow, Overloaded
from flowengine.server.guard import add_route
from flowengine.server.keys import CONFIG, DISPATCHER
from flowengine.server.responses import error_response
from flowengine.typing import JSONObject

_log = structlog.get_logger("flowengine.server")

_E164: Final = re.compile(r"^\+[1-9][0-9]{1,14}$")
_ADDRESS: Final = re.compile(r"^(\+[1-9][0-9]{1,14}|sip:[^\s@]+@[^\s]+)$")
MAX_LIMIT: Final = 1000


def add_routes(app: web.Application) -> None:
    """Add the executions routes to the server application."""
    add_route(app, "POST", "/v1/executions", _create)
    add_route(app, "GET", "/v1/executions", _list, allow_head=True)
    add_route(app, "GET", "/v1/executions/{id}", _get, allow_head=True)
    add_route(app, "DELETE", "/v1/executions/{id}", _delete)


def _problem(status: int, code: str, message: str, **headers: str) -> web.Response:
    return error_response(status, code, message, headers or None)


def _check_token(request: web.Request) -> web.Response | None:
    expected = request.app[CONFIG].executions_token
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected.encode()):
        return _problem(
            401,
            "unauthorized",
            "send 'Authorization: Bearer <token>' with the executions token",
            **{"WWW-Authenticate": 'Bearer realm="flowengine executions"'},
        )
    return None


def _ok(status: int, body: object, **headers: str) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(body), content_type="application/json", headers=headers or None
    )


async def _create(request: web.Request) -> web.Response:
    if (denied := _check_token(request)) is not None:
        return denied
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        return _problem(400, "malformed-body", f"the body is not valid JSON: {exc}")
    if not isinstance(body, dict):
        return _problem(400, "malformed-body", "the body must be a JSON object")
    problems = _validate(body)
    if problems:
        return _problem(400, "invalid-execution", "; ".join(problems))
    variables = body.get("variables") or {}
    try:
        session_id, view = await request.app[DISPATCHER].start_execution(
            body["flow"], body["to"], body["from"], variables
        )
    except NoSuchFlow as exc:
        return _problem(404, "flow-not-found", str(exc))
    except AtCapacity as exc:
        return _problem(503, "at-capacity", str(exc))
    except Overloaded as exc:
        return _problem(503, "overloaded", str(exc), **{"Retry-After": "1"})
    except ValueError as exc:
        return _problem(400, "invalid-execution", str(exc))
    except StoreError as exc:
        _log.error("execution.store_unavailable", error=str(exc))
        return _problem(503, "store-unavailable", "the session store is unavailable; retry later")
    view = {**view, "id": session_id, "status": "active"}
    _log.info("execution.started", session_id=session_id, flow=body["flow"], to=body["to"])
    return _ok(201, view, Location=f"/v1/executions/{session_id}")


def _validate(body: JSONObject) -> list[str]:
    problems: list[str] = []
    allowed = {"flow", "to", "from", "variables"}
    unknown = sorted(set(body) - allowed)
    if unknown:
        problems.append(f"unknown properties {unknown!r}; allowed are {sorted(allowed)!r}")
    flow = body.get("flow")
    if not isinstance(flow, str) or not flow:
        problems.append("'flow' is required: the name of a loaded flow")
    to = body.get("to")
    if not isinstance(to, str) or not _ADDRESS.match(to):
        problems.append(f"'to' must be an E.164 number or a sip: URI, got {to!r}")
    from_ = body.get("from")
    if not isinstance(from_, str) or not _E164.match(from_):
        problems.append(f"'from' must be an E.164 number we own, got {from_!r}")
    variables = body.get("variables", {})
    if variables is not None and not isinstance(variables, dict):
        problems.append("'variables' must be an object")
    return problems


async def _get(request: web.Request) -> web.Response:
    if (denied := _check_token(request)) is not None:
        return denied
    execution_id = request.match_info["id"]
    view = await request.app[DISPATCHER].describe(execution_id)
    if view is None:
        return _problem(404, "execution-not-found", f"no execution {execution_id!r}")
    return _ok(200, view)


async def _list(request: web.Request) -> web.Response:
    if (denied := _check_token(request)) is not None:
        return denied
    query = request.query
    try:
        limit = int(query.get("limit", "100"))
    except ValueError:
        return _problem(400, "invalid-query", f"limit must be a whole number, got {query['limit']!r}")
    if not 1 <= limit <= MAX_LIMIT:
        return _problem(400, "invalid-query", f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    status = query.get("status")
    if status is not None and status not in ("active", "ended"):
        return _problem(400, "invalid-query", f"status must be 'active' or 'ended', got {status!r}")
    flow = query.get("flow")
    views = await request.app[DISPATCHER].list_executions(limit=MAX_LIMIT)
    selected = [
        v
        for v in views
        if (status is None or v.get("status") == status) and (flow is None or v.get("flow") == flow)
    ][:limit]
    return _ok(200, {"executions": selected, "count": len(selected)})


async def _delete(request: web.Request) -> web.Response:
    if (denied := _check_token(request)) is not None:
        return denied
    execution_id = request.match_info["id"]
    dispatcher = request.app[DISPATCHER]
    if await dispatcher.describe(execution_id) is None:
        return _problem(404, "execution-not-found", f"no execution {execution_id!r}")
    await dispatcher.cancel_execution(execution_id)
    view = await dispatcher.describe(execution_id)
    if view is None:  # expired in between
        return _problem(404, "execution-not-found", f"no execution {execution_id!r}")
    _log.info("execution.cancelled", session_id=execution_id)
    return _ok(200, view)
