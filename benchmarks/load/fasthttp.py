"""Just enough HTTP/1.1 over asyncio protocols for the load benchmark: a keep-alive client connection and a
server that answers each request at once from a synchronous handler.

The load driver has one core to play both the API's callback sender and its REST endpoint, at about twice the
rate the server under test handles; aiohttp on both sides would measure the driver. Only what loopback
benchmarking needs: ``Content-Length`` bodies (no chunked encoding), keep-alive, no TLS, no pipelining on the
client side (the server side accepts pipelined requests).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

Handler = Callable[[bytes, bytes, bytes], bytes]
"""(method, target, body) -> the complete response bytes."""

_HEAD_END = b"\r\n\r\n"


class HTTPError(Exception):
    """A response or request this module cannot read (chunked, malformed) or a connection that closed."""


def _content_length(head: bytes) -> int:
    lower = head.lower()
    at = lower.find(b"\r\ncontent-length:")
    if at < 0:
        if b"\r\ntransfer-encoding:" in lower:
            raise HTTPError("chunked bodies are not supported by the benchmark's HTTP")
        return 0
    start = at + 17
    end = lower.find(b"\r\n", start)
    return int(head[start : end if end >= 0 else len(head)].strip())


def response(status: int, reason: str, body: bytes = b"", headers: str = "") -> bytes:
    """The bytes of a complete response (``headers`` is extra ``Name: value\\r\\n`` lines)."""
    content_type = "Content-Type: application/json\r\n" if body else ""
    return (
        f"HTTP/1.1 {status} {reason}\r\n{content_type}{headers}Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


class ClientConnection(asyncio.Protocol):
    """One keep-alive connection; ``await request(raw)`` sends a complete request and returns (status, body)."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self._transport: asyncio.Transport | None = None
        self.closed = False

    @classmethod
    async def open(cls, host: str, port: int) -> ClientConnection:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(cls, host, port)
        return protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's transports are not subclasses

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(HTTPError(f"connection closed: {exc or 'by the server'}"))

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        end = buffer.find(_HEAD_END)
        if end < 0:
            return
        head = bytes(buffer[:end])
        try:
            length = _content_length(head)
            status = int(head[9:12])
        except (HTTPError, ValueError) as exc:
            if self._waiter is not None and not self._waiter.done():
                self._waiter.set_exception(HTTPError(f"unreadable response: {exc}"))
            return
        total = end + 4 + length
        if len(buffer) < total:
            return
        body = bytes(buffer[end + 4 : total])
        del buffer[:total]
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((status, body))

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        if self.closed or self._transport is None:
            raise HTTPError("connection closed")
        waiter: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        self._transport.write(raw)
        return await waiter

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


def post_request(host: str, port: int, target: str) -> Callable[[bytes], bytes]:
    """A function that frames a JSON body as a complete POST of ``target``."""
    head = f"POST {target} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"

    def frame(body: bytes) -> bytes:
        return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body

    return frame


class ServerProtocol(asyncio.Protocol):
    """Answers each request on the connection with ``handler(method, target, body)``."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's transports are not subclasses

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        transport = self._transport
        assert transport is not None
        while True:
            end = buffer.find(_HEAD_END)
            if end < 0:
                return
            head = bytes(buffer[:end])
            try:
                length = _content_length(head)
            except (HTTPError, ValueError):
                transport.write(response(400, "Bad Request"))
                transport.close()
                return
            total = end + 4 + length
            if len(buffer) < total:
                return
            body = bytes(buffer[end + 4 : total])
            del buffer[:total]
            line_end = head.find(b"\r\n")
            parts = head[: line_end if line_end >= 0 else len(head)].split(b" ")
            if len(parts) != 3:
                transport.write(response(400, "Bad Request"))
                transport.close()
                return
            transport.write(self._handler(parts[0], parts[1], body))


async def serve(handler: Handler, host: str, port: int) -> asyncio.Server:
    """Listen on ``host:port`` (0: a free port) and answer with ``handler``."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: ServerProtocol(handler), host, port, backlog=1024)
