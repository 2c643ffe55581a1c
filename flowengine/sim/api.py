"""The REST half of the simulator's HTTP app: routes under ``/v1/users/{userId}``, Basic auth,
rate limits and faults, JSON bodies, and the documented error body for every failure."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
from collections.abc import Awaitable, Callable

import orjson
import structlog
from aiohttp import web

from flowengine.sim.limits import injected_error
from flowengine.sim.problems import ApiProblem
from flowengine.sim.resources import ROUTES
from flowengine.sim.rest import ApiRequest, Reply, Route
from flowengine.sim.simulator import Simulator
from flowengine.sim.state import TranscriptEntry
from flowengine.typing import JSON

log = structlog.get_logger("flowengine.sim")

SIM_KEY = web.AppKey("simulator", Simulator)

AiohttpHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(status: int, body: JSON, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps(body),
        content_type="application/json",
        headers=headers,
    )


def learn_origin(sim: Simulator, request: web.Request) -> None:
    """Use the origin clients reach us at in URLs, unless a public URL was configured."""
    if sim.learn_origin:
        sim.urls.origin = f"{request.scheme}://{request.host}"
        sim.learn_origin = False


def _authorized(sim: Simulator, request: web.Request) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        token, _, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return hmac.compare_digest(token, sim.config.token) and hmac.compare_digest(secret, sim.config.secret)


def _problem_response(sim: Simulator, problem: ApiProblem, request: web.Request) -> web.Response:
    body = problem.body(request.method, request.path, request.remote or "")
    sim.api_errors.append({"time": sim.clock.now(), "status": problem.status, **body})
    return json_response(problem.status, body, problem.headers)


def _handler(route: Route) -> AiohttpHandler:
    async def handle(request: web.Request) -> web.StreamResponse:
        sim = request.app[SIM_KEY]
        learn_origin(sim, request)
        try:
            if not _authorized(sim, request):
                raise ApiProblem(
                    401,
                    "authentication",
                    "unauthorized",
                    "Missing or wrong credentials: send the API token and secret as HTTP Basic auth",
                )
            if request.match_info.get("userId", sim.config.user_id) != sim.config.user_id:
                raise ApiProblem(
                    401,
                    "authorization",
                    "user-access-denied",
                    f"The credentials do not give access to the user {request.match_info['userId']!r}",
                )
            api_request = await _read(request)
            fail, delay = sim.faults.decide()
            if delay:
                await asyncio.sleep(delay)
            if fail:
                raise injected_error()
            if sim.rate_limits:
                creates = request.method == "POST" and route.path in ("/calls", "/messages")
                sim.limiter.check(
                    request.method, route.family, creates, _from_of(api_request.body), sim.clock.now()
                )
            entry = _note_rest(sim, request, api_request)
            try:
                reply = route.handler(sim, api_request)
            except ApiProblem as refused:
                if entry is not None:
                    entry.data["status"] = refused.status
                    entry.data["code"] = refused.code
                raise
        except ApiProblem as problem:
            return _problem_response(sim, problem, request)
        except Exception:
            # A bug in the simulator must not look like a dropped connection to the client.
            log.exception("sim_handler_failed", method=request.method, path=request.path)
            failure = ApiProblem(
                500, "backend", "internal-server-error", "The simulator failed on this request"
            )
            return _problem_response(sim, failure, request)
        if entry is not None:
            entry.data["status"] = reply.status
        return _response(reply)

    return handle


def _from_of(body: JSON) -> str:
    value = body.get("from") if isinstance(body, dict) else None
    return value if isinstance(value, str) else ""


async def _read(request: web.Request) -> ApiRequest:
    raw = await request.read()
    body: JSON = None
    if request.method in ("POST", "PATCH") and raw.strip():
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ApiProblem(
                400, "bad-request", "invalid-json", f"The request body is not valid JSON: {exc}"
            ) from None
    elif request.method == "POST":
        body = {}
    params = {k: v for k, v in request.match_info.items() if k != "userId"}
    return ApiRequest(
        request.method,
        request.path,
        params,
        dict(request.query),
        body,
        raw,
        request.headers.get("Content-Type", ""),
    )


def _note_rest(sim: Simulator, request: web.Request, api_request: ApiRequest) -> TranscriptEntry | None:
    """Write a request on a call into the call's transcript, before what it causes."""
    call_id = request.match_info.get("callId")
    call = sim.world.calls.get(call_id) if call_id else None
    if call is None:
        return None
    data: dict[str, JSON] = {}
    if api_request.body is not None:
        data["body"] = api_request.body
    sim.voice.note(call, "rest", f"{request.method} {request.path}", **data)
    return call.transcript[-1]


def _response(reply: Reply) -> web.Response:
    if reply.raw is not None:
        headers = {"Content-Type": reply.content_type or "application/octet-stream", **reply.headers}
        return web.Response(status=reply.status, body=reply.raw, headers=headers)
    if reply.body is None:
        return web.Response(status=reply.status, headers=reply.headers)
    return json_response(reply.status, reply.body, reply.headers)


def add_rest_routes(app: web.Application) -> None:
    """Register every resource route, with and without a trailing slash (the reference uses both)."""
    for route in ROUTES:
        handler = _handler(route)
        path = ("/v1" if route.root else "/v1/users/{userId}") + route.path
        app.router.add_route(route.method, path, handler)
        app.router.add_route(route.method, path + "/", handler)
