"""A lean pooled keep-alive HTTP/1.1 client for the REST API client, on asyncio protocols and llhttp.

:class:`CatapultClient <flowengine.catapult.client.CatapultClient>` sends one small JSON request per API
operation, most of them on the hot path of a callback. Through that client, ``aiohttp.ClientSession`` spends
about four and a half times the CPU per request of this module (``benchmarks/rest_client_bench.py``), on
features the API client never uses (cookies, redirects, compression, streaming, tracing); :class:`HttpTransport`
does only what the client needs:

* one pool per origin (scheme, host, port), at most ``limit`` connections each, FIFO waiters when all are
  busy, idle connections reused most recently used first and closed after ``keepalive_timeout`` seconds idle;
* TLS for ``https`` (the default context unless one is given; SNI is the host);
* requests with ``Host``, ``Content-Length`` and the given headers (a :class:`HeaderBlock` checks and formats
  the ones a caller sends every time once); whole-body responses framed by ``Content-Length``, chunked
  encoding or the end of the connection, up to ``max_body`` bytes;
* a total timeout per request (requests that share a timeout share one timer); a connection that timed out,
  failed or was cancelled is closed, never reused.

Errors say whether anything was sent: :class:`ConnectError` (the connection could not be opened; repeating the
request is safe) or :class:`RequestError` (the request may have reached the server). A timeout raises
:class:`TimeoutError`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, cast
from urllib.parse import quote, urlencode, urlsplit

import httptools
from multidict import CIMultiDict

from flowengine.__about__ import __version__

DEFAULT_LIMIT: Final = 100
DEFAULT_KEEPALIVE_TIMEOUT: Final = 15.0
DEFAULT_TIMEOUT: Final = 30.0
DEFAULT_MAX_BODY: Final = 64 * 1024 * 1024

# aiohttp asks for gzip; the API's answers are small, and identity spares a decompression.
_FIXED_HEADERS: Final = f"User-Agent: flowengine/{__version__}\r\nAccept-Encoding: identity\r\n"
_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})
_RESERVED_HEADERS: Final = frozenset({"host", "content-length", "transfer-encoding", "connection"})
# Characters left as they are when a target with non-ASCII text is percent-encoded (RFC 3986 reserved + '%').
_TARGET_SAFE: Final = "/?#[]@!$&'()*+,;=:%~"
_CLOSE_GRACE: Final = 2.0
_MAX_HEAD: Final = 64 * 1024
"""The most bytes of response header names and values read (llhttp itself sets no limit)."""


class TransportError(Exception):
    """A request that got no complete response."""


class ConnectError(TransportError):
    """The connection could not be opened (refused, unresolvable, TLS handshake failed): nothing was sent."""


class RequestError(TransportError):
    """The request failed after it started to be sent (connection lost, malformed or oversized response)."""


@dataclass(slots=True)  # not frozen: one per callback, and a frozen one costs 5x as much to make
class HttpResponse:
    """A complete response: status, headers (case-insensitive) and the whole body."""

    status: int
    headers: CIMultiDict[str]
    body: bytes

    @property
    def content_type(self) -> str:
        """The media type of ``Content-Type`` in lower case, without parameters ("" when absent)."""
        value = self.headers.get("Content-Type", "")
        return value.split(";", 1)[0].strip().lower()


@dataclass(frozen=True, slots=True)
class PoolStats:
    """One origin's pool: connections open (idle or busy, including those being opened), idle, and the
    requests waiting for a connection."""

    origin: str
    open: int
    idle: int
    waiting: int


class HeaderBlock:
    """Request headers checked and formatted once, for a caller that sends the same ones with many requests.

    Raises:
        ValueError: a header the transport sets itself, or one that cannot be sent as given.
    """

    __slots__ = ("lines",)

    def __init__(self, headers: Mapping[str, str]) -> None:
        self.lines: Final = _header_lines(headers)

    def __repr__(self) -> str:
        names = [line.split(":", 1)[0] for line in self.lines.split("\r\n") if line]
        return f"HeaderBlock({names!r})"


def _header_lines(headers: Mapping[str, str]) -> str:
    """``Name: value\\r\\n`` for each header, checked: ValueError for those that cannot be sent."""
    lines = []
    for name, value in headers.items():
        if name.lower() in _RESERVED_HEADERS:
            raise ValueError(f"the transport sets the {name} header itself")
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
            raise ValueError(f"header {name!r} cannot be sent as given")
        line = f"{name}: {value}\r\n"
        try:
            line.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(f"header {name!r} is not Latin-1 text") from None
        lines.append(line)
    return "".join(lines)


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: sends a request, parses its response with llhttp, one request at a time."""

    def __init__(self, pool: _Pool) -> None:
        self._pool = pool
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.lost: asyncio.Future[None] = pool.loop.create_future()
        self.idle_since = 0.0
        self.sent = 0  # requests sent on this connection: the number that waiting() and time_out() take
        self._waiter: asyncio.Future[HttpResponse] | None = None
        self._head_request = False
        self._headers: list[tuple[str, str]] = []
        self._header_map: CIMultiDict[str] | None = None
        self._chunks: list[bytes] = []
        self._size = 0
        self._head_size = 0
        self._status = 0
        self._until_close = False
        self._headers_done = False
        self._error: RequestError | None = None
        self.reusable = False

    # ---------------------------------------------------------------------------------- the request side

    def usable(self) -> bool:
        return not self.closed and self.transport is not None and not self.transport.is_closing()

    def send(self, data: bytes, head_request: bool) -> asyncio.Future[HttpResponse]:
        """Write a complete request; the future completes with its response or fails with RequestError."""
        if self.closed or self.transport is None or self.transport.is_closing():
            raise RequestError("the connection closed before the request could be sent")
        waiter: asyncio.Future[HttpResponse] = self._pool.loop.create_future()
        self._waiter = waiter
        self.sent += 1
        self._head_request = head_request
        self.reusable = False
        self._headers_done = False
        self._error = None
        self.transport.write(data)
        return waiter

    def waiting(self, request: int) -> bool:
        """Whether request number ``request`` (the value of ``sent`` after it) still waits for its response."""
        waiter = self._waiter
        return request == self.sent and waiter is not None and not waiter.done()

    def time_out(self, request: int) -> None:
        """Request number ``request`` ran out of time: it fails with TimeoutError, the connection is aborted."""
        waiter = self._waiter
        if request == self.sent and waiter is not None and not waiter.done():
            self._waiter = None
            waiter.set_exception(TimeoutError())
            self.abort()

    def close(self) -> None:
        """Close gracefully (an idle connection)."""
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Close at once, dropping anything unsent (a connection in an unknown state)."""
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    # ---------------------------------------------------------------------------------- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not an isinstance check: uvloop's transports do not subclass asyncio.Transport.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:
            # Bytes nobody asked for: the connection is out of step with its requests.
            self.abort()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(self._error or RequestError("the server switched protocols"))
        except httptools.HttpParserError as exc:
            self._fail(self._error or RequestError(f"malformed response: {exc}"))

    def eof_received(self) -> bool:
        self._closing()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing()
        self._pool.lost(self)
        if not self.lost.done():
            self.lost.set_result(None)

    def _closing(self) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if self._until_close and self._headers_done:
            self._complete()
        else:
            self._fail(RequestError("the server closed the connection before the response was complete"))

    def _fail(self, error: RequestError) -> None:
        self.reusable = False
        waiter = self._waiter
        self._waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        self.abort()

    def _complete(self) -> None:
        waiter = self._waiter
        self._waiter = None
        headers = self._header_map
        if headers is None:
            headers = CIMultiDict(self._headers)
        self._header_map = None
        response = HttpResponse(self._status, headers, b"".join(self._chunks))
        self._chunks = []
        if waiter is not None and not waiter.done():
            waiter.set_result(response)

    # --------------------------------------------------------------------------------- llhttp callbacks

    def on_message_begin(self) -> None:
        if self._waiter is None:
            raise RequestError("a response nobody asked for")
        self._headers = []
        self._header_map = None
        self._chunks = []
        self._size = 0
        self._head_size = 0
        self._until_close = False
        self._headers_done = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value)
        if self._head_size > _MAX_HEAD:
            self._error = RequestError(f"the response headers are above the limit of {_MAX_HEAD} bytes")
            raise self._error
        self._headers.append((name.decode("latin-1"), value.decode("utf-8", "surrogateescape")))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        self._status = status
        self._headers_done = True
        if status == 101:
            self._error = RequestError("the server switched protocols")
            raise self._error
        if status < 200:
            return
        headers = self._header_map = CIMultiDict(self._headers)
        length = headers.get("Content-Length")
        limit = self._pool.max_body
        if length is not None and length.strip().isdigit() and int(length) > limit:
            self._error = RequestError(
                f"the response body ({int(length)} bytes) is above the limit of {limit}"
            )
            raise self._error
        if self._head_request:
            # llhttp cannot be told that no body follows a HEAD answer: finish here, and do not reuse the
            # connection (its parser still expects the body the headers announced).
            self._complete()
            return
        no_body = status in (204, 304)
        self._until_close = not no_body and length is None and "Transfer-Encoding" not in headers

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > self._pool.max_body:
            self._error = RequestError(f"the response body is above the limit of {self._pool.max_body} bytes")
            raise self._error
        self._chunks.append(body)

    def on_message_complete(self) -> None:
        if self._status < 200:
            # An informational answer (100 Continue, 103 Early Hints): the real one follows.
            self._headers = []
            return
        if self._waiter is None:
            return
        self.reusable = self._parser.should_keep_alive() and not self._until_close
        self._complete()


class _Pool:
    """The connections to one origin."""

    def __init__(
        self,
        owner: HttpTransport,
        origin: str,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext | None,
        host_header: str,
    ) -> None:
        self.owner = owner
        self.loop = owner.loop
        self.origin = origin
        self.host = host
        self.port = port
        self.ssl = ssl_context
        self.host_header = host_header
        # What follows the target in every request line and head: the version, Host and the fixed headers.
        self.head_tail = f" HTTP/1.1\r\nHost: {host_header}\r\n{_FIXED_HEADERS}"
        self.limit = owner.limit
        self.keepalive = owner.keepalive_timeout
        self.max_body = owner.max_body
        self.idle: list[_Connection] = []  # oldest first; taken from the end (most recently used)
        self.busy: set[_Connection] = set()
        self.opening = 0
        self.waiters: collections.deque[asyncio.Future[_Connection | None]] = collections.deque()
        self._sweep: asyncio.TimerHandle | None = None

    @property
    def open(self) -> int:
        return len(self.idle) + len(self.busy) + self.opening

    def take(self) -> _Connection | None:
        """An idle connection that can be reused at once (the most recently used), or None."""
        idle = self.idle
        if not idle:
            return None
        now = self.loop.time()
        while idle:
            conn = idle.pop()
            if conn.usable() and now - conn.idle_since < self.keepalive:
                self.busy.add(conn)
                return conn
            conn.close()
        return None

    async def acquire(self) -> _Connection:
        """A connection: an idle one, one handed over by a finished request, or a new one."""
        conn = self.take()
        if conn is not None:
            return conn
        if self.open >= self.limit or self.waiters:
            waiter: asyncio.Future[_Connection | None] = self.loop.create_future()
            self.waiters.append(waiter)
            self._wake()
            try:
                handed = await waiter
            except BaseException:
                if not waiter.done() or waiter.cancelled():
                    # Cancelled (a timeout cancels the task, which cancels the waiter first): out of the
                    # line now, not when a released connection skips it.
                    waiter.cancel()
                    with contextlib.suppress(ValueError):  # already taken out by release() or _wake()
                        self.waiters.remove(waiter)
                elif waiter.exception() is None:
                    # Woken and cancelled in the same turn: pass on what we were given.
                    given = waiter.result()
                    if given is not None:
                        self.release(given)
                    else:
                        self.opening -= 1
                        self._wake()
                raise
            if handed is not None:
                self.busy.add(handed)
                return handed
            # A slot was handed over (counted in ``opening``): open a connection in it.
        else:
            self.opening += 1
        return await self._connect()

    async def _connect(self) -> _Connection:
        try:
            _, conn = await self.loop.create_connection(
                lambda: _Connection(self),
                self.host,
                self.port,
                ssl=self.ssl,
                server_hostname=self.host if self.ssl is not None else None,
            )
        except OSError as exc:  # refused, unreachable, DNS (gaierror), TLS (SSLError)
            self.opening -= 1
            self._wake()
            reason = str(exc) or type(exc).__name__
            raise ConnectError(f"cannot connect to {self.origin}: {reason}") from exc
        except BaseException:
            self.opening -= 1
            self._wake()
            raise
        self.opening -= 1
        self.busy.add(conn)
        if not conn.usable():
            raise ConnectError(f"the connection to {self.origin} closed as soon as it opened")
        return conn

    def release(self, conn: _Connection) -> None:
        """Give back a connection after a complete response: to the first waiter, to the idle list, or closed.

        A connection that is not reused stays counted as open until ``connection_lost`` frees its slot.
        """
        if not (conn.reusable and conn.usable()) or self.owner.closed:
            if conn.reusable:
                conn.close()
            else:
                conn.abort()
            return
        self.busy.discard(conn)
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                self.busy.add(conn)
                waiter.set_result(conn)
                return
        conn.idle_since = self.loop.time()
        self.idle.append(conn)
        if self._sweep is None:
            self._sweep = self.loop.call_at(conn.idle_since + self.keepalive, self._expire)

    def discard(self, conn: _Connection) -> None:
        """A connection in an unknown state (timeout, cancellation, error): closed, never reused."""
        conn.abort()

    def lost(self, conn: _Connection) -> None:
        """connection_lost: forget the connection and hand its slot to the first waiter."""
        if conn in self.busy:
            self.busy.discard(conn)
        else:
            try:
                self.idle.remove(conn)
            except ValueError:
                return
        self._wake()

    def _wake(self) -> None:
        while self.waiters and self.open < self.limit:
            waiter = self.waiters.popleft()
            if not waiter.done():
                self.opening += 1
                waiter.set_result(None)

    def _expire(self) -> None:
        self._sweep = None
        deadline = self.loop.time() - self.keepalive
        idle = self.idle
        while idle and idle[0].idle_since <= deadline:
            idle.pop(0).close()
        self._wake()
        if idle:
            self._sweep = self.loop.call_at(idle[0].idle_since + self.keepalive, self._expire)

    def close(self) -> list[asyncio.Future[None]]:
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_exception(RuntimeError("the HTTP transport was closed"))
        pending = [conn.lost for conn in (*self.idle, *self.busy)]
        for conn in self.idle:
            conn.close()
        for conn in list(self.busy):
            conn.abort()
        return pending

    def stats(self) -> PoolStats:
        return PoolStats(self.origin, self.open, len(self.idle), len(self.waiters))


class HttpTransport:
    """A pooled keep-alive HTTP/1.1 client for whole-body request/response exchanges.

    Create it inside a running event loop; ``close()`` it (or use ``async with``) when done.

    Args:
        limit: connections per origin at most; further requests wait in line.
        keepalive_timeout: seconds an idle connection is kept for reuse.
        timeout: the default total time of a request (waiting for a connection, connecting, sending and
            reading the whole response).
        max_body: the largest response body accepted, in bytes.
        ssl_context: for ``https``; ``ssl.create_default_context()`` when not given.
    """

    def __init__(
        self,
        *,
        limit: int = DEFAULT_LIMIT,
        keepalive_timeout: float = DEFAULT_KEEPALIVE_TIMEOUT,
        timeout: float = DEFAULT_TIMEOUT,
        max_body: int = DEFAULT_MAX_BODY,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if limit < 1:
            raise ValueError(f"the connection limit must be at least 1, got {limit!r}")
        if keepalive_timeout < 0 or timeout <= 0 or max_body < 0:
            raise ValueError("keepalive_timeout and max_body must not be negative, timeout must be positive")
        self.loop = asyncio.get_running_loop()
        self.limit = limit
        self.keepalive_timeout = keepalive_timeout
        self.timeout = timeout
        self.max_body = max_body
        self._ssl_context = ssl_context
        self._pools: dict[str, _Pool] = {}
        self._last_route: tuple[str, _Pool] | None = None  # (origin + "/", its pool)
        # In-flight requests by deadline, for the deadlines that come in order (see _watch).
        self._deadlines: collections.deque[tuple[float, _Connection, int]] = collections.deque()
        self._deadline_timer: asyncio.TimerHandle | None = None
        self.closed = False

    async def __aenter__(self) -> HttpTransport:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def stats(self) -> list[PoolStats]:
        """Each origin's connections and waiters."""
        return [pool.stats() for pool in self._pools.values()]

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | HeaderBlock | None = None,
        body: bytes | None = None,
        params: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> HttpResponse:
        """Send one request and read its whole response.

        ``url`` is absolute (``http://`` or ``https://``) with its path already percent-encoded; ``params`` are
        urlencoded onto its query. ``Host`` and ``Content-Length`` come from the transport; given
        ``Host``, ``Content-Length``, ``Transfer-Encoding`` or ``Connection`` headers are refused. A caller
        that sends the same headers with many requests can check them once as a :class:`HeaderBlock`.

        Raises:
            ConnectError: the connection could not be opened; nothing was sent.
            RequestError: the request may have been sent, but no complete, valid response came back.
            TimeoutError: ``timeout`` (or the transport's default) ran out; the connection is closed.
            ValueError: the URL or a header cannot be sent.
            RuntimeError: the transport is closed.
        """
        if self.closed:
            raise RuntimeError("the HTTP transport is closed")
        loop = self.loop
        deadline = loop.time() + (self.timeout if timeout is None else timeout)
        pool, target = self._route(url)
        if params:
            target += ("&" if "?" in target else "?") + urlencode(params)
        if headers is None:
            lines = ""
        elif isinstance(headers, HeaderBlock):
            lines = headers.lines
        else:
            lines = _header_lines(headers)
        if body:
            head = f"{method} {target}{pool.head_tail}{lines}Content-Length: {len(body)}\r\n\r\n"
            data = head.encode("latin-1") + body
        elif method in _BODY_METHODS:
            data = f"{method} {target}{pool.head_tail}{lines}Content-Length: 0\r\n\r\n".encode("latin-1")
        else:
            data = f"{method} {target}{pool.head_tail}{lines}\r\n".encode("latin-1")
        conn = pool.take()
        if conn is None:
            # Waiting for a connection and opening one count in the request's time.
            async with asyncio.timeout_at(deadline):
                conn = await pool.acquire()
        try:
            waiter = conn.send(data, method == "HEAD")
            self._watch(deadline, conn)
            response = await waiter
        except BaseException:
            pool.discard(conn)
            raise
        pool.release(conn)
        return response

    def _watch(self, deadline: float, conn: _Connection) -> None:
        """Time out the request just sent on ``conn`` if no response has come by ``deadline``.

        Cheaper than an ``asyncio.timeout`` per request: deadlines that come in order (the same timeout for
        every request) wait in one queue behind one timer, and the answered ones at its head are dropped as
        new ones arrive. Only a deadline earlier than the last one queued gets a timer of its own.
        """
        request = conn.sent
        pending = self._deadlines
        if pending and deadline < pending[-1][0]:
            self.loop.call_at(deadline, conn.time_out, request)
            return
        while pending and not pending[0][1].waiting(pending[0][2]):
            pending.popleft()
        pending.append((deadline, conn, request))
        if self._deadline_timer is None:
            self._deadline_timer = self.loop.call_at(pending[0][0], self._expire_requests)

    def _expire_requests(self) -> None:
        self._deadline_timer = None
        # A timer may run a little early (uvloop counts in milliseconds): what is due within 1 ms is due.
        due = self.loop.time() + 0.001
        pending = self._deadlines
        while pending:
            deadline, conn, request = pending[0]
            if conn.waiting(request):
                if deadline > due:
                    self._deadline_timer = self.loop.call_at(deadline, self._expire_requests)
                    return
                conn.time_out(request)
            pending.popleft()

    def _route(self, url: str) -> tuple[_Pool, str]:
        """The pool of the URL's origin and the request target (path and query)."""
        # The last origin used, first: the API client sends every request to one origin.
        last = self._last_route
        if last is not None and url.startswith(last[0]):
            target = url[len(last[0]) - 1 :]
            if (
                target.isascii()
                and "#" not in target
                and " " not in target
                and "\r" not in target
                and "\n" not in target
            ):
                return last[1], target
        if url.startswith("http://"):
            start = 7
        elif url.startswith("https://"):
            start = 8
        else:
            raise ValueError(f"only http:// and https:// URLs can be requested, not {url!r}")
        slash = url.find("/", start)
        query = url.find("?", start)
        end = min(at for at in (slash, query, len(url)) if at >= 0)
        origin = url[:end]
        target = url[end:]
        fragment = target.find("#")
        if fragment >= 0:
            target = target[:fragment]
        if not target.startswith("/"):
            target = "/" + target
        if not target.isascii():
            target = quote(target, safe=_TARGET_SAFE)
        if " " in target or "\r" in target or "\n" in target:
            raise ValueError(f"the URL path {target!r} must be percent-encoded")
        pool = self._pools.get(origin)
        if pool is None:
            pool = self._new_pool(origin)
        self._last_route = (origin + "/", pool)
        return pool, target

    def _new_pool(self, origin: str) -> _Pool:
        parts = urlsplit(origin)
        host = parts.hostname
        if not host or parts.username is not None or parts.password is not None:
            raise ValueError(f"cannot request {origin!r}: a host without credentials is needed")
        secure = parts.scheme == "https"
        default_port = 443 if secure else 80
        port = parts.port or default_port
        shown = f"[{host}]" if ":" in host else host
        host_header = shown if port == default_port else f"{shown}:{port}"
        context: ssl.SSLContext | None = None
        if secure:
            if self._ssl_context is None:
                self._ssl_context = ssl.create_default_context()
            context = self._ssl_context
        pool = _Pool(self, origin, host, port, context, host_header)
        self._pools[origin] = pool
        return pool

    async def close(self) -> None:
        """Close every connection; requests in progress fail, waiting ones raise RuntimeError."""
        if self.closed:
            return
        self.closed = True
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
            self._deadline_timer = None
        self._deadlines.clear()
        pending: list[asyncio.Future[None]] = []
        for pool in self._pools.values():
            pending += pool.close()
        if pending:
            _, late = await asyncio.wait(pending, timeout=_CLOSE_GRACE)
            for pool in self._pools.values():
                for conn in (*pool.idle, *pool.busy):
                    if conn.lost in late:
                        conn.abort()
