"""The server's error answers, without a middleware: every route's handler is wrapped by :func:`add_route`,
and :func:`add_fallback_route` answers paths and methods that no route takes.

Any aiohttp middleware makes aiohttp build a middleware chain and set the current application around every
request (two more coroutines each time); with none, it calls the handler directly. On the callback path
that was 2% of the server's instructions per callback, so the error handling lives here instead:

* an HTTP error aiohttp raises (a body over the size limit, a 404 or 405) is answered in the server's JSON
  error shape, keeping its ``Allow``, ``WWW-Authenticate`` and ``Retry-After`` headers;
* :class:`~flowengine.errors.StoreError` is answered ``503 store-unavailable``;
* any other exception is logged with its traceback and answered ``500 internal-error``; it never takes the
  server down.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from flowengine.errors import StoreError
from flowengine.server.keys import METRICS
from flowengine.server.responses import error_response

_log = structlog.get_logger("flowengine.server")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_KEPT_HEADERS = ("Allow", "WWW-Authenticate", "Retry-After")


def guarded(handler: Handler) -> Handler:
    """``handler``, with its errors answered as JSON (see the module docstring)."""

    @functools.wraps(handler)
    async def guard(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except Exception as exc:  # answered below, or re-raised for aiohttp (a redirect, a JSON error)
            return _error_answer(request, exc)

    return guard


def add_route(
    app: web.Application, method: str, path: str, handler: Handler, *, allow_head: bool = False
) -> None:
    """Add a route whose handler is :func:`guarded` (a ``GET`` one answers ``HEAD`` too with
    ``allow_head``, as aiohttp's ``add_get`` does)."""
    if method == "GET" and allow_head:
        app.router.add_get(path, guarded(handler))
    else:
        app.router.add_route(method, path, guarded(handler))


def add_fallback_route(app: web.Application) -> None:
    """Answer ``404 not-found`` (or ``405 method-not-allowed`` with ``Allow``) where no route matches, in
    the JSON error shape. Add it after every other route: it takes any path and method."""
    resource = app.router.add_resource("/{path:.*}")

    async def unmatched(request: web.Request) -> web.StreamResponse:
        allowed: set[str] = set()
        for other in request.app.router.resources():
            if other is not resource:
                _, methods = await other.resolve(request)
                allowed |= methods
        if allowed:
            return error_response(
                405, "method-not-allowed", "Method Not Allowed", {"Allow": ",".join(sorted(allowed))}
            )
        return error_response(404, "not-found", "Not Found")

    resource.add_route("*", unmatched)


def _error_answer(request: web.Request, exc: Exception) -> web.StreamResponse:
    """The answer to an exception a handler raised; called inside the ``except`` block (for the log's
    traceback). Re-raises what aiohttp should answer itself."""
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return error_response(413, "body-too-large", exc.text or "the body is too large")
    if isinstance(exc, web.HTTPException):
        if exc.status >= 400 and exc.content_type != "application/json":
            code = (exc.reason or "error").lower().replace(" ", "-")
            kept = {key: value for key, value in exc.headers.items() if key in _KEPT_HEADERS}
            return error_response(exc.status, code, exc.reason, kept)
        raise exc
    if isinstance(exc, StoreError):
        _log.error("request.store_unavailable", path=request.path, error=str(exc))
        return error_response(503, "store-unavailable", "the session store is unavailable; retry later")
    _log.exception("request.failed", method=request.method, path=request.path)
    metrics = request.app.get(METRICS)
    if metrics is not None:
        metrics.errors.labels(kind="internal").inc()
    return error_response(500, "internal-error", "the server failed to handle this request")
