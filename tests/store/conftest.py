"""Fixtures that give every contract test each store implementation, plus helpers to run Redis servers.

Redis tests use the server on 127.0.0.1:6379, database 9, under a key prefix unique to the test, and delete
their keys afterwards. Where that server is missing they fail when ``CI`` is set and skip otherwise.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from flowengine.store import MemoryBackend, MemoryStore, Store
from flowengine.store.redis import RedisStore
from flowengine.store.sqlite import SQLiteStore

from .redis_db import REDIS_DB, REDIS_HOST, REDIS_PORT, delete_prefix, redis_available, redis_missing

StoreFactory = Callable[..., Awaitable[Store]]
"""Opens another store on the same backend: ``await make(retention=..., dedup_ttl=...)``."""


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """A factory of stores that share one backend of the parametrised kind; all are closed afterwards."""
    kind: str = request.param
    opened: list[Store] = []
    backend = MemoryBackend()
    prefix = f"fetest:{uuid.uuid4().hex}:"
    if kind == "redis":
        await redis_available()

    async def make(**options: float) -> Store:
        store: Store
        if kind == "memory":
            store = MemoryStore(backend, **options)
        elif kind == "sqlite":
            store = await SQLiteStore.open(str(tmp_path / "state.db"), **options)
        else:
            url = f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}?prefix={prefix}"
            store = await RedisStore.open(url, **options)
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()
    if kind == "redis":
        await delete_prefix(prefix)


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    """The URL of the test Redis database with a key prefix of its own; its keys are deleted afterwards."""
    await redis_available()
    prefix = f"fetest:{uuid.uuid4().hex}:"
    yield f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}?prefix={prefix}"
    await delete_prefix(prefix)


@pytest.fixture
async def store(make_store: StoreFactory) -> Store:
    """One store of each kind, with the default settings."""
    return await make_store()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisProcess:
    """A throwaway ``redis-server`` on a free loopback port, that a test stops and starts again."""

    def __init__(self, port: int, data_dir: Path | None = None) -> None:
        self.port = port
        self.data_dir = data_dir
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            redis_missing("redis-server is not installed")
            return
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        if self.data_dir is None:
            command += ["--appendonly", "no"]
        else:  # keeps its data across a stop and start, like a production Redis
            command += ["--dir", str(self.data_dir), "--appendonly", "yes", "--appendfsync", "always"]
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"redis-server did not listen on port {self.port} within 5 s")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=5)
            self.process = None


@pytest.fixture
def unused_port() -> int:
    """A loopback TCP port nobody listens on (right now)."""
    return free_port()


@pytest.fixture
def durable_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A throwaway redis-server with an append-only file, so its data survive a stop and start."""
    data = tmp_path / "redis-data"
    data.mkdir()
    server = RedisProcess(free_port(), data)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_process() -> Iterator[RedisProcess]:
    server = RedisProcess(free_port())
    server.start()
    yield server
    server.stop()


async def eventually(check: Callable[[], Awaitable[bool]], *, within: float = 5.0) -> None:
    """Wait until ``check`` is true, for at most ``within`` seconds."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(0.02)
