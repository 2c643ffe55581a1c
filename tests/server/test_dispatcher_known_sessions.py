"""The dispatcher over a store that ``advances`` (SQLite, Redis): most events cost one store round trip.

An instance keeps the version and snapshot of the sessions it committed last. The next event of such a
session is handled from them and committed with ``advance``, which takes the lock in the same round trip;
when anything changed meanwhile (another instance, a timer, a held lock), the store refuses and the event
goes the long way, ``begin_route`` then ``commit``, with nothing lost or applied twice.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from flowengine.catapult.client import CatapultClient
from flowengine.server.dispatcher import Dispatcher
from flowengine.server.metrics import Metrics
from flowengine.store import Store
from flowengine.store.redis import RedisStore
from flowengine.store.sqlite import SQLiteStore
from tests.store.redis_db import REDIS_DB, REDIS_HOST, REDIS_PORT, delete_prefix, redis_available

from .support import USER, EchoRuntime, FakeAPI, dtmf, fake_loader, incoming

MakeDispatcher = Callable[..., AsyncIterator[Dispatcher]]


class Counting:
    """Mixed into a store: notes the name of each operation of the dispatcher's that it is asked for."""

    calls: list[str]

    def note(self, name: str) -> None:
        self.__dict__.setdefault("calls", []).append(name)

    async def advance(self, *args: Any, **options: Any) -> Any:
        self.note("advance")
        return await super().advance(*args, **options)  # type: ignore[misc]

    async def begin_route(self, *args: Any, **options: Any) -> Any:
        self.note("begin_route")
        return await super().begin_route(*args, **options)  # type: ignore[misc]

    async def begin(self, *args: Any, **options: Any) -> Any:
        self.note("begin")
        return await super().begin(*args, **options)  # type: ignore[misc]

    async def create(self, *args: Any, **options: Any) -> Any:
        self.note("create")
        return await super().create(*args, **options)  # type: ignore[misc]

    async def commit(self, *args: Any, **options: Any) -> Any:
        self.note("commit")
        return await super().commit(*args, **options)  # type: ignore[misc]

    def taken(self) -> list[str]:
        """The operations noted since the last call."""
        calls, self.__dict__["calls"] = self.__dict__.get("calls", []), []
        return calls


class CountingSQLite(Counting, SQLiteStore):
    pass


class CountingRedis(Counting, RedisStore):
    pass


@pytest.fixture(params=["sqlite", "redis"])
async def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Callable[[], Any]]:
    """``await open_store()``: another counting store on one backend of the parametrised kind."""
    if request.param == "sqlite":
        yield lambda: CountingSQLite.open(str(tmp_path / "state.db"))
        return
    await redis_available()
    prefix = f"fetest:{uuid.uuid4().hex}:"
    yield lambda: CountingRedis.open(f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}?prefix={prefix}")
    await delete_prefix(prefix)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def make(
    tmp_path: Path,
    fake_api: tuple[FakeAPI, TestServer],
    http: aiohttp.ClientSession,
    open_store: Callable[[], Any],
) -> AsyncIterator[Callable[..., Any]]:
    """``await make(name, **options)``: a dispatcher on a counting store; all of them share one backend."""
    _, server = fake_api
    (tmp_path / "echo.yaml").write_text("echo v1\n")
    flow = fake_loader(tmp_path / "echo.yaml")
    made: list[tuple[Dispatcher, Store]] = []

    async def build(name: str, **options: Any) -> Dispatcher:
        store = await open_store()
        client = CatapultClient(
            http, user_id=USER, token="t", secret="s", base_url=str(server.make_url("/v1"))
        )
        dispatcher = Dispatcher(
            runtime=EchoRuntime({"echo": flow}),
            store=store,
            client=client,
            http=http,
            metrics=Metrics(),
            instance_id=name,
            **options,
        )
        made.append((dispatcher, store))
        return dispatcher

    yield build
    for dispatcher, store in made:
        await dispatcher.close()
        await store.close()


def _store(dispatcher: Dispatcher) -> Counting:
    assert isinstance(dispatcher.store, Counting)
    return dispatcher.store


async def _idle(*dispatchers: Dispatcher) -> None:
    """Wait until every job (and its commands) is done."""
    for _ in range(600):
        if all(d.pending == 0 for d in dispatchers):
            return
        await asyncio.sleep(0.005)
    raise AssertionError("jobs still pending")


async def _seen(dispatcher: Dispatcher, session_id: str) -> list[str]:
    record = await dispatcher.store.load(session_id)
    assert record is not None
    seen = record.snapshot["seen"]
    assert isinstance(seen, list)
    return [str(label) for label in seen]


class TestOneRoundTripPerEvent:
    async def test_a_new_call_is_created_without_a_lookup_first(self, make: Callable[..., Any]) -> None:
        one = await make("one")

        assert (await one.callback(incoming("c-1"))).status == "started"

        assert _store(one).taken() == ["create"]

    async def test_the_next_events_of_a_session_each_cost_one_advance(self, make: Callable[..., Any]) -> None:
        one = await make("one")
        await one.callback(incoming("c-1"))
        await _idle(one)
        _store(one).taken()

        assert (await one.callback(dtmf("c-1", "5"))).status == "handled"
        await _idle(one)
        assert (await one.callback(dtmf("c-1", "7", 1))).status == "handled"
        await _idle(one)

        assert _store(one).taken() == ["advance", "advance"]
        assert await _seen(one, "s-c-1") == ["dtmf:5", "dtmf:7"]

    async def test_a_redelivered_callback_is_refused_as_a_duplicate(self, make: Callable[..., Any]) -> None:
        one = await make("one")
        await one.callback(incoming("c-1"))
        await one.callback(dtmf("c-1", "5"))
        await _idle(one)

        outcome = await one.callback(dtmf("c-1", "5"))

        assert outcome.status == "duplicate"
        assert await _seen(one, "s-c-1") == ["dtmf:5"]

    async def test_an_event_after_the_session_ended_here_needs_no_round_trip(
        self, make: Callable[..., Any]
    ) -> None:
        one = await make("one")
        await one.callback(incoming("c-1"))
        await one.callback({"eventType": "hangup", "callId": "c-1", "time": "2012-11-14T16:23:00.000Z"})
        await _idle(one)
        _store(one).taken()

        outcome = await one.callback(dtmf("c-1", "5"))

        assert (outcome.status, outcome.session_id) == ("ended", "s-c-1")
        assert _store(one).taken() == []


class TestTheLongWayWhenTheSessionChanged:
    async def test_after_another_instance_handled_an_event_none_is_lost(
        self, make: Callable[..., Any]
    ) -> None:
        one, two = await make("one"), await make("two")
        await one.callback(incoming("c-1"))
        await one.callback(dtmf("c-1", "5"))
        await _idle(one)
        assert (await two.callback(dtmf("c-1", "9", 1))).status == "handled"
        await _idle(two)
        _store(one).taken()

        assert (await one.callback(dtmf("c-1", "7", 2))).status == "handled"
        await _idle(one)

        # One's snapshot was one event behind: the store refused it, and the long way read the latest.
        assert _store(one).taken() == ["advance", "begin_route", "commit"]
        assert await _seen(one, "s-c-1") == ["dtmf:5", "dtmf:9", "dtmf:7"]
        # ... and one knows the latest again: its next event is one round trip.
        await one.callback(dtmf("c-1", "8", 3))
        await _idle(one)
        assert _store(one).taken() == ["advance"]

    async def test_while_another_instance_holds_the_lock_the_event_waits_for_it(
        self, make: Callable[..., Any]
    ) -> None:
        one, two = await make("one"), await make("two")
        await one.callback(incoming("c-1"))
        await _idle(one)
        held = await two.store.acquire("s-c-1", owner="two", ttl=0.3)
        _store(one).taken()

        outcome = await one.callback(dtmf("c-1", "5"))

        assert outcome.status == "handled"
        assert _store(one).taken() == ["advance", "begin_route", "commit"]
        assert await _seen(one, "s-c-1") == ["dtmf:5"]
        await two.store.release(held)  # long expired: a no-op

    # The echo runtime's snapshots are objects, each counted as 1 KiB: either limit leaves room for two.
    @pytest.mark.parametrize("limit", [{"known_sessions": 2}, {"known_bytes": 2048}], ids=["count", "bytes"])
    async def test_sessions_beyond_the_limits_are_forgotten_oldest_first(
        self, make: Callable[..., Any], limit: dict[str, int]
    ) -> None:
        one = await make("one", **limit)
        for call in ("c-1", "c-2", "c-3"):
            await one.callback(incoming(call))
        await _idle(one)
        _store(one).taken()

        for n, call in enumerate(("c-3", "c-2", "c-1")):
            assert (await one.callback(dtmf(call, "5", n))).status == "handled"
            await _idle(one)

        # c-1 was the oldest of three: forgotten, so its event looked the session up.
        assert _store(one).taken() == ["advance", "advance", "begin_route", "commit"]
        assert await _seen(one, "s-c-1") == ["dtmf:5"]

    async def test_with_no_sessions_kept_every_event_goes_the_long_way(
        self, make: Callable[..., Any]
    ) -> None:
        one = await make("one", known_sessions=0)
        await one.callback(incoming("c-1"))
        await _idle(one)
        _store(one).taken()

        await one.callback(dtmf("c-1", "5"))
        await _idle(one)

        assert _store(one).taken() == ["begin_route", "commit"]
