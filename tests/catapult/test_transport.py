"""HttpTransport against real loopback servers: raw asyncio servers that misbehave on purpose, aiohttp servers
for the ordinary cases, and a TLS server with a certificate from a throwaway CA."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
import trustme
from aiohttp import web

from flowengine.catapult.transport import ConnectError, HeaderBlock, HttpTransport, PoolStats, RequestError


@dataclass
class Request:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """One request from the stream (Content-Length bodies only), or None at the end of the connection."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    first, *lines = head.decode("latin-1").split("\r\n")
    method, target, _ = first.split(" ", 2)
    headers = {}
    for line in lines:
        if line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Request(method, target, headers, body)


def response(status: int = 200, body: bytes = b"", headers: str = "", reason: str = "OK") -> bytes:
    return f"HTTP/1.1 {status} {reason}\r\n{headers}Content-Length: {len(body)}\r\n\r\n".encode() + body


Handler = Callable[["RawServer", asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class RawServer:
    """A loopback TCP server running ``handler`` per connection; counts connections and keeps the requests."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.accepted = 0
        self.requests: list[Request] = []
        self.closed_by_peer = 0
        self.gate = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connected, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.accepted += 1
        try:
            await self.handler(self, reader, writer)
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def next_request(self, reader: asyncio.StreamReader) -> Request | None:
        request = await read_request(reader)
        if request is None:
            self.closed_by_peer += 1
        else:
            self.requests.append(request)
        return request


async def echo_target(server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Keep-alive: answer every request with its target as the body."""
    while (request := await server.next_request(reader)) is not None:
        writer.write(response(200, request.target.encode()))
        await writer.drain()


@pytest.fixture
async def start_raw() -> AsyncIterator[Callable[[Handler], Awaitable[RawServer]]]:
    servers: list[RawServer] = []

    async def start(handler: Handler) -> RawServer:
        server = RawServer(handler)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.gate.set()
        await server.stop()


StartRaw = Callable[[Handler], Awaitable[RawServer]]


@pytest.fixture
async def transport() -> AsyncIterator[HttpTransport]:
    async with HttpTransport() as transport:
        yield transport


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait (boundedly) for something the event loop has to get round to."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


async def _gated(server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A server handler that answers each request (200, its target as the body) once ``server.gate`` opens."""
    while (request := await server.next_request(reader)) is not None:
        await server.gate.wait()
        writer.write(response(200, request.target.encode()))
        await writer.drain()


def only_pool(transport: HttpTransport) -> PoolStats:
    (stats,) = transport.stats()
    return stats


class TestKeepAlive:
    async def test_sequential_requests_reuse_one_connection(
        self, start_raw: StartRaw, transport: HttpTransport
    ) -> None:
        server = await start_raw(echo_target)
        for n in range(5):
            reply = await transport.request("GET", f"{server.url}/r/{n}")
            assert (reply.status, reply.body) == (200, f"/r/{n}".encode())
        assert server.accepted == 1
        assert only_pool(transport) == PoolStats(server.url, open=1, idle=1, waiting=0)

    async def test_an_aiohttp_server_sees_one_connection_for_many_requests(
        self, transport: HttpTransport
    ) -> None:
        peers: set[int] = set()

        async def handle(request: web.Request) -> web.Response:
            assert request.transport is not None
            peers.add(id(request.transport))
            return web.json_response(
                {"seen": await request.json()}, status=201, headers={"Location": "/x/c-1"}
            )

        app = web.Application()
        app.router.add_post("/v1/calls", handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            for n in range(3):
                reply = await transport.request(
                    "POST",
                    f"http://127.0.0.1:{port}/v1/calls",
                    body=b'{"n": %d}' % n,
                    headers={"Content-Type": "application/json"},
                )
                assert reply.status == 201
                assert reply.headers["location"] == "/x/c-1"
                assert reply.content_type == "application/json"
                assert reply.body == b'{"seen": {"n": %d}}' % n
            assert len(peers) == 1
        finally:
            await runner.cleanup()

    async def test_connection_close_is_honoured(self, start_raw: StartRaw, transport: HttpTransport) -> None:
        async def close_after_each(
            server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> None:
            if await server.next_request(reader) is not None:
                writer.write(response(200, b"bye", "Connection: close\r\n"))
                await writer.drain()

        server = await start_raw(close_after_each)
        for _ in range(2):
            assert (await transport.request("GET", server.url + "/")).body == b"bye"
        assert server.accepted == 2

    async def test_an_http_1_0_answer_is_not_kept(
        self, start_raw: StartRaw, transport: HttpTransport
    ) -> None:
        async def old(server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while await server.next_request(reader) is not None:
                writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()

        server = await start_raw(old)
        for _ in range(2):
            assert (await transport.request("GET", server.url + "/")).body == b"ok"
        assert server.accepted == 2

    async def test_a_connection_the_server_closed_while_idle_is_replaced(
        self, start_raw: StartRaw, transport: HttpTransport
    ) -> None:
        async def one_then_close(
            server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> None:
            if await server.next_request(reader) is not None:
                writer.write(response(200, b"once"))
                await writer.drain()

        server = await start_raw(one_then_close)
        assert (await transport.request("GET", server.url + "/a")).body == b"once"
        await until(lambda: only_pool(transport).open == 0, "the client noticed the close")
        assert (await transport.request("GET", server.url + "/b")).body == b"once"
        assert server.accepted == 2

    async def test_idle_connections_are_closed_after_the_keepalive_timeout(self, start_raw: StartRaw) -> None:
        server = await start_raw(echo_target)
        async with HttpTransport(keepalive_timeout=0.05) as transport:
            await transport.request("GET", server.url + "/")
            await until(lambda: server.closed_by_peer == 1, "the idle connection was closed")
            assert only_pool(transport).open == 0
            await transport.request("GET", server.url + "/")
        assert server.accepted == 2

    async def test_204_and_304_have_no_body_and_keep_the_connection(
        self, start_raw: StartRaw, transport: HttpTransport
    ) -> None:
        async def bodiless(
            server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> None:
            while (request := await server.next_request(reader)) is not None:
                status = int(request.target.strip("/"))
                writer.write(f"HTTP/1.1 {status} X\r\nETag: abc\r\n\r\n".encode())
                await writer.drain()

        server = await start_raw(bodiless)
        for status in (204, 304, 204):
            reply = await transport.request("GET", f"{server.url}/{status}")
            assert (reply.status, reply.body, reply.headers["etag"]) == (status, b"", "abc")
        assert server.accepted == 1

    async def test_head_reads_no_body_even_with_a_content_length(
        self, start_raw: StartRaw, transport: HttpTransport
    ) -> None:
        async def head(server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while await server.next_request(reader) is not None:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\nContent-Type: text/plain\r\n\r\n")
                await writer.drain()

        server = await start_raw(head)
        reply = await transport.request("HEAD", server.url + "/file")
        assert (reply.status, reply.body, reply.headers["Content-Length"]) == (200, b"", "50")
        assert server.requests[0].method == "HEAD"
        assert (await transport.request("HEAD", server.url + "/file")).status == 200

    async def test_an_informational_answer_is_skipped(
        self, start_raw: StartRaw, transport: HttpTransport
    ) -> None:
        async def hints(
            server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> None:
            while await server.next_request(reader) is not None:
                writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + response(200, b"real"))
                await writer.drain()

        server = await start_raw(hints)
        reply = await transport.request("GET", server.url + "/")
        assert (reply.status, reply.body, "Link" in reply.headers) == (200, b"real", False)


class TestRequestsAndBodies:
    async def test_the_request_carries_host_length_headers_and_the_target(
        self, start_raw: StartRaw, transport: HttpTransport
    ) -> None:
        server = await start_raw(echo_target)
        await transport.request(
            "POST",
            f"{server.url}/v1/users/u/calls/c%2B1?page=2#fragment",
            headers={"Authorization": "Basic abc", "Content-Type": "application/json"},
            body=b'{"a": 1}',
            params={"to": "+1 919", "tag": "a&b"},
        )
        await transport.request("POST", f"{server.url}/v1/empty")
        await transport.request("GET", f"{server.url}")
        posted, empty, got = server.requests
        assert posted.method == "POST"
        assert posted.target == "/v1/users/u/calls/c%2B1?page=2&to=%2B1+919&tag=a%26b"
        assert posted.headers["host"] == f"127.0.0.1:{server.port}"
        assert posted.headers["authorization"] == "Basic abc"
        assert posted.headers["content-type"] == "application/json"
        assert (posted.headers["content-length"], posted.body) == ("8", b'{"a": 1}')
        assert (empty.headers["content-length"], empty.body) == ("0", b"")
        assert (got.target, "content-length" in got.headers) == ("/", False)

    async def test_a_query_from_params_alone(self, start_raw: StartRaw, transport: HttpTransport) -> None:
        server = await start_raw(echo_target)
        reply = await transport.request(
            "GET", server.url + "/v1/calls", params={"bridgeId": "b 1", "page": "0"}
        )
        assert reply.body == b"/v1/calls?bridgeId=b+1&page=0"

    async def test_a_chunked_body_is_joined(self, start_raw: StartRaw, transport: HttpTransport) -> None:
        async def chunked(
            server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> None:
            while await server.next_request(reader) is not None:
                writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
                await writer.drain()
                await asyncio.sleep(0)
                writer.write(b"6\r\n world\r\n0\r\n\r\n")
                await writer.drain()

        server = await start_raw(chunked)
        for _ in range(2):
            assert (await transport.request("GET", server.url + "/")).body == b"hello world"
        assert server.accepted == 1

    async def test_a_body_ended_by_the_close_of_the_connection(
        self, start_raw: StartRaw, transport: HttpTransport
    ) -> None:
        async def until_close(
            server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> None:
            if await server.next_request(reader) is not None:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of ")
                await writer.drain()
                writer.write(b"it")

        server = await start_raw(until_close)
        for _ in range(2):
            assert (await transport.request("GET", server.url + "/")).body == b"all of it"
        assert server.accepted == 2

    @pytest.mark.parametrize(
        "headers",
        [
            pytest.param({"X-Evil": "a\r\nInjected: 1"}, id="crlf-in-value"),
            pytest.param({"Content-Length": "5"}, id="content-length"),
            pytest.param({"host": "elsewhere"}, id="host"),
        ],
    )
    async def test_headers_that_cannot_be_sent_are_refused(
        self, start_raw: StartRaw, transport: HttpTransport, headers: dict[str, str]
    ) -> None:
        server = await start_raw(echo_target)
        with pytest.raises(ValueError, match="header"):
            await transport.request("GET", server.url + "/", headers=headers)
        assert server.requests == []

    @pytest.mark.parametrize(
        "url", ["ftp://127.0.0.1/x", "http://user:pw@127.0.0.1/x", "http://127.0.0.1/a b", "/relative"]
    )
    async def test_urls_that_cannot_be_requested_are_refused(
        self, transport: HttpTransport, url: str
    ) -> None:
        with pytest.raises(ValueError, match=r"URL|credentials"):
            await transport.request("GET", url)


class TestPool:
    async def test_n_plus_one_requests_with_limit_n_share_n_connections(self, start_raw: StartRaw) -> None:
        server = await start_raw(_gated)
        async with HttpTransport(limit=2) as transport:
            tasks = [asyncio.create_task(transport.request("GET", f"{server.url}/{n}")) for n in range(3)]
            await until(lambda: len(server.requests) == 2, "two requests reached the server")
            assert only_pool(transport) == PoolStats(server.url, open=2, idle=0, waiting=1)
            server.gate.set()
            replies = await asyncio.gather(*tasks)
        assert sorted(reply.body for reply in replies) == [b"/0", b"/1", b"/2"]
        assert server.accepted == 2

    async def test_waiters_are_served_first_come_first_served(self, start_raw: StartRaw) -> None:
        server = await start_raw(_gated)
        async with HttpTransport(limit=1) as transport:
            tasks = [asyncio.create_task(transport.request("GET", f"{server.url}/0"))]
            await until(lambda: len(server.requests) == 1, "the first request arrived")
            for n in range(1, 4):
                tasks.append(asyncio.create_task(transport.request("GET", f"{server.url}/{n}")))
                await until(lambda n=n: only_pool(transport).waiting == n, f"{n} waiting")
            server.gate.set()
            await asyncio.gather(*tasks)
        assert [request.target for request in server.requests] == ["/0", "/1", "/2", "/3"]
        assert server.accepted == 1

    async def test_a_cancelled_waiter_gives_its_turn_away(self, start_raw: StartRaw) -> None:
        server = await start_raw(_gated)
        async with HttpTransport(limit=1) as transport:
            first = asyncio.create_task(transport.request("GET", server.url + "/first"))
            await until(lambda: len(server.requests) == 1, "the first request arrived")
            waiting = asyncio.create_task(transport.request("GET", server.url + "/cancelled"))
            await until(lambda: only_pool(transport).waiting == 1, "the second one waits")
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            server.gate.set()
            await first
            assert (await transport.request("GET", server.url + "/last")).status == 200
            assert only_pool(transport) == PoolStats(server.url, open=1, idle=1, waiting=0)
        assert [request.target for request in server.requests] == ["/first", "/last"]

    async def test_the_most_recently_used_idle_connection_is_taken(
        self, start_raw: StartRaw, transport: HttpTransport
    ) -> None:
        async def numbered(
            server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> None:
            number = server.accepted
            while await server.next_request(reader) is not None:
                await server.gate.wait()
                writer.write(response(200, str(number).encode()))
                await writer.drain()

        server = await start_raw(numbered)
        first = asyncio.create_task(transport.request("GET", server.url + "/"))
        second = asyncio.create_task(transport.request("GET", server.url + "/"))
        await until(lambda: len(server.requests) == 2, "two connections are busy")
        server.gate.set()
        assert {(await first).body, (await second).body} == {b"1", b"2"}
        # Taken oldest first, sequential requests would alternate between the two.
        bodies = {(await transport.request("GET", server.url + "/")).body for _ in range(4)}
        assert len(bodies) == 1
        assert server.accepted == 2

    async def test_one_pool_per_origin(self, start_raw: StartRaw, transport: HttpTransport) -> None:
        one = await start_raw(echo_target)
        two = await start_raw(echo_target)
        await transport.request("GET", one.url + "/")
        await transport.request("GET", two.url + "/")
        await transport.request("GET", f"http://localhost:{one.port}/")
        assert sorted(stats.origin for stats in transport.stats()) == sorted(
            [one.url, two.url, f"http://localhost:{one.port}"]
        )
        assert (one.accepted, two.accepted) == (2, 1)

    async def test_close_fails_waiters_and_refuses_new_requests(self, start_raw: StartRaw) -> None:
        async def silent(
            server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> None:
            await server.next_request(reader)
            await server.gate.wait()

        server = await start_raw(silent)
        transport = HttpTransport(limit=1)
        busy = asyncio.create_task(transport.request("GET", server.url + "/busy"))
        await until(lambda: len(server.requests) == 1, "the request arrived")
        waiting = asyncio.create_task(transport.request("GET", server.url + "/waiting"))
        await until(lambda: only_pool(transport).waiting == 1, "the second one waits")
        await transport.close()
        with pytest.raises(RequestError):
            await busy
        with pytest.raises(RuntimeError, match="closed"):
            await waiting
        with pytest.raises(RuntimeError, match="closed"):
            await transport.request("GET", server.url + "/")


class TestFailures:
    async def test_a_timeout_raises_and_closes_the_connection(self, start_raw: StartRaw) -> None:
        async def answer_second(
            server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> None:
            while await server.next_request(reader) is not None:
                if len(server.requests) > 1:
                    writer.write(response(200, b"late"))
                    await writer.drain()

        server = await start_raw(answer_second)
        async with HttpTransport() as transport:
            with pytest.raises(TimeoutError):
                await transport.request("GET", server.url + "/slow", timeout=0.05)
            await until(lambda: server.closed_by_peer == 1, "the timed-out connection was closed")
            assert only_pool(transport).open == 0
            assert (await transport.request("GET", server.url + "/next")).body == b"late"
        assert server.accepted == 2

    async def test_a_refused_connection_raises_the_connect_error(
        self, transport: HttpTransport, unused_tcp_port: int
    ) -> None:
        with pytest.raises(ConnectError, match=f"127.0.0.1:{unused_tcp_port}"):
            await transport.request("POST", f"http://127.0.0.1:{unused_tcp_port}/v1/calls", body=b"{}")
        assert only_pool(transport).open == 0

    @pytest.mark.parametrize(
        "answer",
        [
            pytest.param(b"garbage\r\n\r\n", id="not-http"),
            pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", id="bad-length"),
            pytest.param(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", id="bad-chunk"),
            pytest.param(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n", id="upgrade"
            ),
        ],
    )
    async def test_a_malformed_response_is_a_request_error(
        self, start_raw: StartRaw, transport: HttpTransport, answer: bytes
    ) -> None:
        async def broken(
            server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> None:
            if await server.next_request(reader) is not None:
                writer.write(answer)
                await writer.drain()
                await server.next_request(reader)

        server = await start_raw(broken)
        with pytest.raises(RequestError):
            await transport.request("GET", server.url + "/")
        await until(lambda: server.closed_by_peer == 1, "the broken connection was closed")

    @pytest.mark.parametrize(
        "answer",
        [
            pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n01234567890", id="content-length"),
            pytest.param(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n012345\r\n5\r\n67890\r\n0\r\n\r\n",
                id="chunked",
            ),
            pytest.param(b"HTTP/1.1 200 OK\r\n\r\n01234567890", id="until-close"),
        ],
    )
    async def test_a_body_above_the_limit_is_a_request_error(
        self, start_raw: StartRaw, answer: bytes
    ) -> None:
        async def big(server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if await server.next_request(reader) is not None:
                writer.write(answer)
                await writer.drain()
                await server.next_request(reader)

        server = await start_raw(big)
        async with HttpTransport(max_body=10) as transport:
            with pytest.raises(RequestError, match="above the limit"):
                await transport.request("GET", server.url + "/")
        await until(lambda: server.closed_by_peer == 1, "the connection was closed")

    async def test_headers_above_the_limit_are_a_request_error(
        self, start_raw: StartRaw, transport: HttpTransport
    ) -> None:
        async def endless(
            server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> None:
            if await server.next_request(reader) is not None:
                writer.write(b"HTTP/1.1 200 OK\r\n")
                for n in range(2000):
                    writer.write(b"X-Filler-%d: %s\r\n" % (n, b"x" * 40))
                await writer.drain()
                await server.next_request(reader)

        server = await start_raw(endless)
        with pytest.raises(RequestError, match="headers are above the limit"):
            await transport.request("GET", server.url + "/")

    async def test_a_body_at_the_limit_is_accepted(self, start_raw: StartRaw) -> None:
        server = await start_raw(echo_target)
        async with HttpTransport(max_body=10) as transport:
            assert (await transport.request("GET", server.url + "/234567890")).body == b"/234567890"

    @pytest.mark.parametrize(
        "partial",
        [
            pytest.param(b"", id="nothing"),
            pytest.param(b"HTTP/1.1 200 OK\r\nContent-Le", id="in-the-head"),
            pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234", id="in-the-body"),
            pytest.param(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", id="in-chunks"
            ),
        ],
    )
    async def test_a_close_before_the_response_is_complete_is_a_request_error(
        self, start_raw: StartRaw, transport: HttpTransport, partial: bytes
    ) -> None:
        async def hang_up(
            server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> None:
            if await server.next_request(reader) is not None:
                writer.write(partial)
                await writer.drain()

        server = await start_raw(hang_up)
        with pytest.raises(RequestError, match="closed the connection"):
            await transport.request("POST", server.url + "/v1/calls", body=b"{}")
        await until(lambda: only_pool(transport).open == 0, "the connection was forgotten")


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


class TestTLS:
    @pytest.fixture
    async def tls_port(self, ca: trustme.CA) -> AsyncIterator[int]:
        server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("localhost").configure_cert(server_context)

        async def handle(request: web.Request) -> web.Response:
            return web.Response(text=f"{request.scheme} {request.host} {request.path_qs}")

        app = web.Application()
        app.router.add_get("/{tail:.*}", handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context)
        await site.start()
        yield runner.addresses[0][1]
        await runner.cleanup()

    async def test_https_with_a_trusted_certificate(self, ca: trustme.CA, tls_port: int) -> None:
        context = ssl.create_default_context()
        ca.configure_trust(context)
        async with HttpTransport(ssl_context=context) as transport:
            for _ in range(2):
                reply = await transport.request("GET", f"https://localhost:{tls_port}/v1/x?y=1")
                assert reply.body == f"https localhost:{tls_port} /v1/x?y=1".encode()
            assert only_pool(transport).open == 1

    async def test_an_untrusted_certificate_is_a_connect_error(self, tls_port: int) -> None:
        async with HttpTransport() as transport:
            with pytest.raises(ConnectError, match="certificate"):
                await transport.request("GET", f"https://localhost:{tls_port}/")

    async def test_a_certificate_for_another_name_is_a_connect_error(
        self, ca: trustme.CA, tls_port: int
    ) -> None:
        context = ssl.create_default_context()
        ca.configure_trust(context)
        async with HttpTransport(ssl_context=context) as transport:
            with pytest.raises(ConnectError, match="certificate"):
                await transport.request("GET", f"https://127.0.0.1:{tls_port}/")


def test_the_same_exchanges_on_uvloop() -> None:
    """uvloop's transports are not asyncio's classes; the transport must not depend on them."""
    uvloop = pytest.importorskip("uvloop")

    async def chunked_then_close(
        server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while (request := await server.next_request(reader)) is not None:
            if request.target == "/chunked":
                writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")
            elif request.target == "/until-close":
                writer.write(b"HTTP/1.1 200 OK\r\n\r\nto the end")
                return
            elif request.target != "/silent":
                writer.write(response(200, request.target.encode()))
            await writer.drain()

    async def scenario() -> None:
        server = RawServer(chunked_then_close)
        await server.start()
        try:
            async with HttpTransport(limit=2) as transport:
                replies = await asyncio.gather(
                    *(transport.request("GET", f"{server.url}/{n}") for n in range(4))
                )
                assert [reply.body for reply in replies] == [b"/0", b"/1", b"/2", b"/3"]
                assert (await transport.request("GET", server.url + "/chunked")).body == b"ok"
                assert (await transport.request("GET", server.url + "/until-close")).body == b"to the end"
                with pytest.raises(TimeoutError):
                    await transport.request("GET", server.url + "/silent", timeout=0.05)
                assert (await transport.request("POST", server.url + "/after", body=b"x")).body == b"/after"
            assert server.accepted == 3
        finally:
            await server.stop()

    uvloop.run(scenario())


async def answer_all_but_silent(
    server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Keep-alive: echo the target of every request except ``/silent``, which is never answered."""
    while (request := await server.next_request(reader)) is not None:
        if request.target != "/silent":
            writer.write(response(200, request.target.encode()))
            await writer.drain()


class TestDeadlines:
    async def test_one_silent_request_among_answered_ones_times_out_alone(self, start_raw: StartRaw) -> None:
        server = await start_raw(answer_all_but_silent)
        async with HttpTransport(timeout=0.2) as transport:
            targets = ["/a", "/b", "/silent", "/c", "/d"]
            replies = await asyncio.gather(
                *(transport.request("GET", server.url + target) for target in targets), return_exceptions=True
            )
            assert [r.body if not isinstance(r, BaseException) else type(r) for r in replies] == [
                b"/a",
                b"/b",
                TimeoutError,
                b"/c",
                b"/d",
            ]
            await until(lambda: server.closed_by_peer == 1, "the timed-out connection was closed")
            assert only_pool(transport) == PoolStats(server.url, open=4, idle=4, waiting=0)

    async def test_a_shorter_timeout_behind_longer_ones_runs_out_first(self, start_raw: StartRaw) -> None:
        server = await start_raw(answer_all_but_silent)
        async with HttpTransport() as transport:
            slow = asyncio.create_task(transport.request("GET", server.url + "/silent", timeout=60))
            await until(lambda: len(server.requests) == 1, "the first request arrived")
            async with asyncio.timeout(10):  # only so that a regression fails instead of hanging
                with pytest.raises(TimeoutError):
                    await transport.request("GET", server.url + "/silent", timeout=0.05)
            assert not slow.done()
            slow.cancel()
            with pytest.raises(asyncio.CancelledError):
                await slow

    async def test_requests_time_out_again_after_the_queue_emptied(self, start_raw: StartRaw) -> None:
        server = await start_raw(answer_all_but_silent)
        async with HttpTransport(timeout=0.05) as transport:
            for _ in range(2):
                with pytest.raises(TimeoutError):
                    await transport.request("GET", server.url + "/silent")
                assert (await transport.request("GET", server.url + "/ok")).body == b"/ok"
            await until(lambda: server.closed_by_peer == 2, "both timed-out connections were closed")
        assert server.accepted == 3  # each timed-out connection replaced by a new one

    async def test_waiting_for_a_connection_counts_in_the_timeout(self, start_raw: StartRaw) -> None:
        server = await start_raw(_gated)
        async with HttpTransport(limit=1) as transport:
            busy = asyncio.create_task(transport.request("GET", server.url + "/busy"))
            await until(lambda: len(server.requests) == 1, "the first request arrived")
            with pytest.raises(TimeoutError):
                await transport.request("GET", server.url + "/waits", timeout=0.05)
            assert only_pool(transport).waiting == 0
            server.gate.set()
            assert (await busy).body == b"/busy"
            assert (await transport.request("GET", server.url + "/next")).body == b"/next"
        assert [request.target for request in server.requests] == ["/busy", "/next"]
        assert server.accepted == 1

    async def test_a_cancelled_request_closes_its_connection_and_does_not_time_out_later(
        self, start_raw: StartRaw
    ) -> None:
        server = await start_raw(answer_all_but_silent)
        async with HttpTransport(timeout=0.05) as transport:
            task = asyncio.create_task(transport.request("GET", server.url + "/silent"))
            await until(lambda: len(server.requests) == 1, "the request arrived")
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await until(lambda: server.closed_by_peer == 1, "the cancelled connection was closed")
            await asyncio.sleep(0.1)  # past the cancelled request's deadline: nothing to fail any more
            assert (await transport.request("GET", server.url + "/after")).body == b"/after"


class TestHeaderBlocks:
    async def test_a_header_block_is_sent_like_the_headers_it_holds(
        self, start_raw: StartRaw, transport: HttpTransport
    ) -> None:
        server = await start_raw(echo_target)
        block = HeaderBlock({"Authorization": "Basic abc", "Content-Type": "application/json"})
        for n in range(2):
            await transport.request("POST", f"{server.url}/v1/calls/{n}", headers=block, body=b"{}")
        for request in server.requests:
            assert request.headers["authorization"] == "Basic abc"
            assert request.headers["content-type"] == "application/json"
            assert (request.headers["content-length"], request.body) == ("2", b"{}")

    @pytest.mark.parametrize(
        ("headers", "message"),
        [
            pytest.param({"X-Evil": "a\r\nInjected: 1"}, "cannot be sent", id="crlf-in-value"),
            pytest.param({"Bad:Name": "x"}, "cannot be sent", id="colon-in-name"),
            pytest.param({"Connection": "close"}, "sets the Connection header", id="connection"),
            pytest.param({"X-Name": "\u00e9\u4e2d"}, "not Latin-1", id="not-latin-1"),
        ],
    )
    def test_a_header_block_refuses_what_cannot_be_sent_when_made(
        self, headers: dict[str, str], message: str
    ) -> None:
        with pytest.raises(ValueError, match=message):
            HeaderBlock(headers)

    def test_a_header_block_shows_names_not_values(self) -> None:
        block = HeaderBlock({"Authorization": "Basic c2VjcmV0", "Accept": "application/json"})
        assert repr(block) == "HeaderBlock(['Authorization', 'Accept'])"


class TestRouting:
    async def test_later_requests_to_the_same_origin_are_checked_like_the_first(
        self, start_raw: StartRaw, transport: HttpTransport
    ) -> None:
        server = await start_raw(echo_target)
        for _ in range(2):
            assert (await transport.request("GET", server.url + "/plain?q=1")).body == b"/plain?q=1"
            assert (await transport.request("GET", server.url + "/frag#part")).body == b"/frag"
            assert (await transport.request("GET", server.url + "/caf\u00e9")).body == b"/caf%C3%A9"
            with pytest.raises(ValueError, match="percent-encoded"):
                await transport.request("GET", server.url + "/a b")
        assert server.accepted == 1

    async def test_a_url_that_only_begins_like_the_last_origin_is_routed_afresh(
        self, start_raw: StartRaw, transport: HttpTransport
    ) -> None:
        server = await start_raw(echo_target)
        await transport.request("GET", server.url + "/")
        with pytest.raises(ValueError, match="credentials"):
            await transport.request("GET", f"{server.url}@elsewhere.example/")
        assert (await transport.request("GET", server.url)).body == b"/"
        assert [stats.origin for stats in transport.stats()] == [server.url]
