"""The aiohttp application of ``flowengine serve``: callbacks, the executions API, health and metrics.

``create_app(config)`` builds it; resources (the pooled HTTP client session, the REST client, the store, the
flows, the dispatcher and its timer loop, the reload watcher) are made and closed in ``cleanup_ctx``.

Callback endpoints (the URLs to configure in the Bandwidth application; both take POST with a JSON body or
GET with query parameters): ``/callbacks/voice`` and ``/callbacks/messaging``. Answers:

* ``200 {"status": "handled" | "started" | "duplicate" | "ignored", ...}``: accepted (an event of an unknown
  call or an unknown event type is ``ignored`` and logged);
* ``400 {"error": {"code": "malformed-body" | "invalid-event", "message": ...}}``: a malformed body;
* ``401`` when callback auth is configured and the request's Basic auth does not match;
* ``413`` for a body above the size limit; ``503`` while the session store is unavailable (code
  ``store-unavailable``) or, for an event that would start a new session, while ``max_pending`` jobs are in
  flight (code ``overloaded``): the API retries or uses its fallback URL.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Final

import aiohttp
import orjson
import structlog
from aiohttp import web

from flowengine.catapult.client import CatapultClient
from flowengine.catapult.transport import HttpTransport
from flowengine.config import ServeConfig
from flowengine.errors import FlowEngineError, StoreError
from flowengine.flow.model import Flow
from flowengine.server.dispatcher import Dispatcher, Outcome
from flowengine.server.flows import FlowLibrary, Loader, ReloadReport, default_loader
from flowengine.server.guard import add_fallback_route, add_route
from flowengine.server.keys import (
    CONFIG,
    DISPATCHER,
    HTTP,
    LIBRARY,
    METRICS,
    RELOAD,
    RUNTIME,
    STORE,
    ReloadableRuntime,
)
from flowengine.server.metrics import CONTENT_TYPE, Metrics
from flowengine.server.responses import error_response, json_response
from flowengine.store import Store, open_store
from flowengine.testing.record import CallRecorder
from flowengine.typing import JSONObject

_log = structlog.get_logger("flowengine.server")

RuntimeFactory = Callable[[Mapping[str, Flow], ServeConfig], ReloadableRuntime]

_STATUS_BY_OUTCOME: Final = {
    "handled": 200,
    "started": 200,
    "duplicate": 200,
    "unknown-call": 200,
    "unknown-event": 200,
    "ended": 200,
    "bad-request": 400,
    "unavailable": 503,
    "refused": 200,
    "overloaded": 503,
}


def default_runtime_factory(flows: Mapping[str, Flow], config: ServeConfig) -> ReloadableRuntime:
    """The runtime adapter over ``flowengine.runtime.engine.Engine``."""
    from flowengine.server.runtime_adapter import EngineAdapter

    return EngineAdapter(flows, config)


def create_app(
    config: ServeConfig,
    *,
    store: Store | None = None,
    runtime_factory: RuntimeFactory = default_runtime_factory,
    loader: Loader = default_loader,
    timer_interval: float = 0.1,
) -> web.Application:
    """Build the server application.

    Args:
        config: the settings (API, store, auth, limits...).
        store: a store to use instead of opening ``config.store`` (tests); it is closed with the app.
        runtime_factory: builds the runtime adapter from the loaded flows (a seam for tests).
        loader: reads one flow file (a seam for tests).
        timer_interval: how often due session timers are looked for, in seconds.
    """
    # No middleware: error answers come from the handlers' guard (see flowengine.server.guard).
    app = web.Application(client_max_size=config.max_body)
    app[CONFIG] = config
    app[METRICS] = Metrics()
    app[RELOAD] = asyncio.Lock()
    library = FlowLibrary(config.flows_dir, loader=loader)
    app[LIBRARY] = library

    async def resources(app: web.Application) -> AsyncIterator[None]:
        metrics = app[METRICS]
        report = library.load(force=True)
        metrics.flows.set(len(library.flows))
        for _ in report.rejected:
            metrics.errors.labels(kind="flow-load").inc()
        # The flow ``http`` action keeps aiohttp (any URL, redirects, limits); the API client gets the lean
        # keep-alive transport (a third of aiohttp's CPU per request).
        async with (
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=config.http_connections)) as http,
            HttpTransport(limit=config.api_connections) as api_transport,
        ):
            app[HTTP] = http
            the_store = store if store is not None else await open_store(config.store)
            app[STORE] = the_store
            try:
                runtime = runtime_factory(library.flows, config)
                app[RUNTIME] = runtime
                client = CatapultClient(
                    api_transport,
                    user_id=config.user_id,
                    token=config.token,
                    secret=config.secret,
                    base_url=config.api_url,
                    timeout=config.api_timeout,
                    observer=metrics.observe_rest,
                )
                dispatcher = Dispatcher(
                    runtime=runtime,
                    store=the_store,
                    client=client,
                    http=http,
                    metrics=metrics,
                    instance_id=config.instance_id,
                    timer_interval=timer_interval,
                    http_max_bytes=config.http_max_bytes,
                    http_timeout=config.http_timeout,
                    http_allow_hosts=config.allowed_hosts,
                    max_sessions=config.max_sessions,
                    max_pending=config.max_pending,
                    busy_message=config.busy_message,
                    recorder=_recorder(config, library),
                )
                app[DISPATCHER] = dispatcher
                try:
                    recovered = await dispatcher.recover()
                    if recovered:
                        _log.info("startup.recovered_outboxes", sessions=recovered)
                except StoreError as exc:
                    _log.error("startup.recovery_failed", error=str(exc))
                dispatcher.start_timers()
                watcher = None
                if config.reload_interval > 0:
                    watcher = asyncio.create_task(_watch_flows(app), name="flowengine-reload")
                try:
                    yield
                finally:
                    if watcher is not None:
                        watcher.cancel()
                        await asyncio.gather(watcher, return_exceptions=True)
                    await dispatcher.close()
            finally:
                await the_store.close()

    app.cleanup_ctx.append(resources)
    for kind in ("voice", "messaging"):
        add_route(app, "POST", f"/callbacks/{kind}", _callback)
        add_route(app, "GET", f"/callbacks/{kind}", _callback)
    add_route(app, "GET", "/healthz", _healthz, allow_head=True)
    add_route(app, "GET", "/readyz", _readyz, allow_head=True)
    add_route(app, "GET", "/metrics", _metrics, allow_head=True)
    from flowengine.server.executions import add_routes

    add_routes(app)
    add_fallback_route(app)  # last: it takes every path and method no other route takes
    return app


async def reload_flows(app: web.Application) -> ReloadReport:
    """Re-read changed flow files and give the runtime the new versions (SIGHUP and the file watcher)."""
    async with app[RELOAD]:
        library = app[LIBRARY]
        report = library.load()
        metrics = app[METRICS]
        for _ in report.rejected:
            metrics.errors.labels(kind="flow-load").inc()
        if report.changed:
            try:
                app[RUNTIME].replace_flows(library.flows)
            except FlowEngineError as exc:  # the loader compiles each flow, so this is a last resort
                metrics.errors.labels(kind="flow-load").inc()
                _log.error("flows.replace_failed", error=str(exc))
                return report
            metrics.flows.set(len(library.flows))
        return report


async def _watch_flows(app: web.Application) -> None:
    interval = app[CONFIG].reload_interval
    library = app[LIBRARY]
    while True:
        await asyncio.sleep(interval)
        try:
            if library.changed():
                await reload_flows(app)
        except Exception:
            _log.exception("flows.reload_failed")


# ---------------------------------------------------------------------------------------- handlers


def _authorized(request: web.Request, auth: tuple[str, str]) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    expected = f"{auth[0]}:{auth[1]}".encode()
    return hmac.compare_digest(decoded, expected)


async def _read_callback(request: web.Request) -> dict[str, object] | web.Response:
    if request.method == "GET":
        data: dict[str, object] = {}
        for key in request.query:
            values = request.query.getall(key)
            data[key] = values[0] if len(values) == 1 else list(values)
        return data
    raw = await request.read()
    if not raw.strip():
        return error_response(400, "malformed-body", "the body is empty; expected a JSON object")
    try:
        decoded = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return error_response(400, "malformed-body", f"the body is not valid JSON: {exc}")
    if not isinstance(decoded, dict):
        return error_response(
            400, "malformed-body", f"the body is a JSON {type(decoded).__name__}, expected an object"
        )
    return decoded


async def _callback(request: web.Request) -> web.StreamResponse:
    app = request.app
    config = app[CONFIG]
    metrics = app[METRICS]
    auth = config.callback_auth
    if auth is not None and not _authorized(request, auth):
        metrics.callbacks.labels(outcome="unauthorized").inc()
        _log.warning("callback.unauthorized", path=request.path, remote=request.remote)
        return error_response(
            401,
            "unauthorized",
            "callback credentials are missing or wrong",
            {"WWW-Authenticate": 'Basic realm="flowengine callbacks"'},
        )
    data = await _read_callback(request)
    if not isinstance(data, dict):  # web.Response is an ABC (a MutableMapping): dict is the quick test
        metrics.callbacks.labels(outcome="bad-request").inc()
        _log.warning("callback.malformed", path=request.path, status=data.status)
        return data
    outcome = await app[DISPATCHER].callback(data)
    metrics.callbacks.labels(outcome=outcome.status).inc()
    return _outcome_response(outcome)


def _outcome_response(outcome: Outcome) -> web.Response:
    status = _STATUS_BY_OUTCOME[outcome.status]
    if outcome.status == "bad-request":
        return error_response(400, "invalid-event", outcome.detail)
    if outcome.status == "unavailable":
        return error_response(503, "store-unavailable", outcome.detail, {"Retry-After": "1"})
    if outcome.status == "overloaded":
        return error_response(503, "overloaded", outcome.detail, {"Retry-After": "1"})
    body: JSONObject = {
        "status": "ignored"
        if outcome.status in ("unknown-call", "unknown-event", "ended", "refused")
        else outcome.status
    }
    if outcome.detail:
        body["reason"] = outcome.detail
    if outcome.session_id:
        body["session"] = outcome.session_id
    return json_response(status, body)


async def _healthz(request: web.Request) -> web.Response:
    return json_response(200, {"status": "ok"})


async def _readyz(request: web.Request) -> web.Response:
    app = request.app
    checks: JSONObject = {}
    ready = True
    store = app.get(STORE)
    if store is None:
        checks["store"] = "starting"
        ready = False
    else:
        try:
            await store.ping()
            checks["store"] = "ok"
        except StoreError as exc:
            checks["store"] = f"unavailable: {exc}"
            ready = False
    flows = len(app[LIBRARY].flows)
    checks["flows"] = flows
    if flows == 0:
        ready = False
    return json_response(
        200 if ready else 503, {"status": "ready" if ready else "not-ready", "checks": checks}
    )


async def _metrics(request: web.Request) -> web.Response:
    body = request.app[METRICS].render()
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE
    return response


def _recorder(config: ServeConfig, library: FlowLibrary) -> CallRecorder | None:
    """The ``--record`` recorder; the flows' own numbers stay unmasked so that a replay still routes."""
    if not config.record:
        return None
    keep = [number for flow in library.flows.values() for number in flow.numbers]
    return CallRecorder(config.record, mask_numbers=config.mask_numbers, keep=keep)
