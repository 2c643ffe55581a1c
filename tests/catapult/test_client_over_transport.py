"""The REST client's retry decisions over HttpTransport: a connection lost after the request was sent is
repeated only for operations that are safe to repeat; one that never opened is repeated for any."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from flowengine.catapult.client import CatapultClient, RetryPolicy
from flowengine.catapult.transport import HttpTransport
from flowengine.errors import CatapultConnectionError


class HangUpServer:
    """Reads each request's head, then closes the connection without answering."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            self.requests.append(await reader.readuntil(b"\r\n\r\n"))
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


@pytest.fixture
async def hang_up() -> AsyncIterator[HangUpServer]:
    fake = HangUpServer()
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    fake.port = server.sockets[0].getsockname()[1]
    yield fake
    server.close()
    await server.wait_closed()


async def no_wait(seconds: float) -> None:
    return None


@pytest.fixture
async def client(hang_up: HangUpServer) -> AsyncIterator[CatapultClient]:
    async with HttpTransport() as transport:
        yield CatapultClient(
            transport,
            user_id="u-1",
            token="t",
            secret="s",
            base_url=f"http://127.0.0.1:{hang_up.port}/v1",
            retry=RetryPolicy(attempts=3),
            sleep=no_wait,
        )


async def test_a_lost_create_is_not_repeated(client: CatapultClient, hang_up: HangUpServer) -> None:
    with pytest.raises(CatapultConnectionError, match="closed the connection"):
        await client.create_call({"from": "+1", "to": "+2"})
    assert len(hang_up.requests) == 1


async def test_a_lost_read_is_repeated(client: CatapultClient, hang_up: HangUpServer) -> None:
    with pytest.raises(CatapultConnectionError, match="closed the connection"):
        await client.get_call("c-1")
    assert len(hang_up.requests) == 3
    assert hang_up.requests[0].startswith(b"GET /v1/users/u-1/calls/c-1 HTTP/1.1\r\n")
