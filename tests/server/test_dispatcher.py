"""The dispatcher without HTTP in front: two instances on one store, crash recovery of a pending outbox,
timers firing once across instances, the store round trips an event costs and the order of its writes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from flowengine.catapult.client import CatapultClient
from flowengine.errors import StoreError
from flowengine.server import dispatcher as dispatcher_module
from flowengine.server.dispatcher import Dispatcher
from flowengine.server.metrics import Metrics
from flowengine.store import Lock, MemoryBackend, MemoryStore, OutboxEntry
from flowengine.store.base import DEFAULT_LOCK_TTL, EXTEND_BELOW

from .support import USER, EchoRuntime, FakeAPI, dtmf, fake_loader, incoming, rest

MakeDispatcher = Callable[..., Dispatcher]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def backend() -> MemoryBackend:
    return MemoryBackend()


@pytest.fixture
async def make_dispatcher(
    tmp_path: Path,
    fake_api: tuple[FakeAPI, TestServer],
    http: aiohttp.ClientSession,
    backend: MemoryBackend,
) -> AsyncIterator[MakeDispatcher]:
    _, server = fake_api
    (tmp_path / "echo.yaml").write_text("echo v1\n")
    flow = fake_loader(tmp_path / "echo.yaml")
    made: list[Dispatcher] = []

    def make(name: str, **options: Any) -> Dispatcher:
        client = CatapultClient(
            http, user_id=USER, token="t", secret="s", base_url=str(server.make_url("/v1"))
        )
        dispatcher = Dispatcher(
            runtime=EchoRuntime({"echo": flow}),
            store=MemoryStore(backend),
            client=client,
            http=http,
            metrics=Metrics(),
            instance_id=name,
            **{"timer_interval": 0.005, **options},
        )
        made.append(dispatcher)
        return dispatcher

    yield make
    for dispatcher in made:
        await dispatcher.close()


async def _settle(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


class TestTwoInstances:
    async def test_the_same_first_callback_at_two_instances_starts_one_session(
        self, make_dispatcher: MakeDispatcher, fake_api: tuple[FakeAPI, TestServer]
    ) -> None:
        api, _ = fake_api
        one, two = make_dispatcher("one"), make_dispatcher("two")
        outcomes = await asyncio.gather(one.callback(incoming("c-1")), two.callback(incoming("c-1")))
        assert sorted(o.status for o in outcomes) == ["duplicate", "started"]
        await _settle(lambda: len(api.seen) >= 2)
        await asyncio.sleep(0.05)
        assert api.paths() == ["POST /calls/c-1", "POST /calls/c-1/audio"]

    async def test_a_session_started_elsewhere_after_the_lookup_takes_the_event_as_its_own(
        self, make_dispatcher: MakeDispatcher, fake_api: tuple[FakeAPI, TestServer]
    ) -> None:
        api, _ = fake_api
        one, two = make_dispatcher("one"), make_dispatcher("two")
        assert (await one.callback(incoming("c-4"))).status == "started"
        await _settle(lambda: one.pending == 0)
        looked_up = two.store.begin_route

        async def too_early(route_key: str, **options: Any) -> Any:
            # What two saw had it looked the route up just before one committed the session.
            two.store.begin_route = looked_up  # type: ignore[method-assign]
            return None

        two.store.begin_route = too_early  # type: ignore[method-assign]
        # The API's retry of the first callback, and then a first callback of its own for the session.
        assert (await two.callback(incoming("c-4"))).status == "duplicate"
        two.store.begin_route = too_early  # type: ignore[method-assign]
        again = {**incoming("c-4"), "time": "2012-11-14T16:22:30.000Z"}
        assert (await two.callback(again)).status == "handled"
        await _settle(lambda: two.pending == 0)

        record = await two.store.load("s-c-4")
        assert record is not None
        assert record.snapshot["seen"] == ["incomingcall:"]  # handled by the session, not a new one
        assert api.paths().count("POST /calls/c-4") == 1

    async def test_either_instance_takes_the_next_event_of_a_call(
        self, make_dispatcher: MakeDispatcher
    ) -> None:
        one, two = make_dispatcher("one"), make_dispatcher("two")
        assert (await one.callback(incoming("c-2"))).status == "started"
        assert (await two.callback(dtmf("c-2", "5"))).status == "handled"
        assert (await one.callback(dtmf("c-2", "6", 1))).status == "handled"
        record = await one.store.load("s-c-2")
        assert record is not None
        assert record.snapshot["seen"] == ["dtmf:5", "dtmf:6"]

    async def test_a_timer_fires_once_across_instances(self, make_dispatcher: MakeDispatcher) -> None:
        one, two = make_dispatcher("one"), make_dispatcher("two")
        await one.callback(incoming("c-3"))
        await one.callback(dtmf("c-3", "1"))  # the echo flow arms timer t1 for 50 ms later
        one.start_timers()
        two.start_timers()
        await asyncio.sleep(0.3)
        fired = [e for r in (one.runtime, two.runtime) for s, e in r.handled if e == "timer:t1"]  # type: ignore[attr-defined]
        assert fired == ["timer:t1"]


class TestRecovery:
    async def test_a_pending_outbox_left_by_a_crash_is_executed_at_start_up(
        self, make_dispatcher: MakeDispatcher, fake_api: tuple[FakeAPI, TestServer], backend: MemoryBackend
    ) -> None:
        api, _ = fake_api
        crashed = MemoryStore(backend)
        lock = await crashed.acquire("s-c-9", owner="dead")
        snapshot = {"id": "s-c-9", "flow": "echo", "state": "greet", "call": "c-9", "seen": []}
        await crashed.commit(
            lock,
            snapshot=snapshot,  # type: ignore[arg-type]
            outbox=[OutboxEntry("1.0", rest("POST", "/calls/c-9", {"state": "active"}))],
            routes=["call:c-9"],
        )
        await crashed.release(lock)  # the process died after committing, before executing

        survivor = make_dispatcher("survivor")
        assert await survivor.recover() == 1
        await _settle(lambda: api.paths() == ["POST /calls/c-9"])
        await _settle(lambda: not backend.sessions["s-c-9"].outbox)
        assert await survivor.store.pending_outboxes() == []

    async def test_a_running_instance_sweeps_up_outboxes_left_pending(
        self, make_dispatcher: MakeDispatcher, fake_api: tuple[FakeAPI, TestServer], backend: MemoryBackend
    ) -> None:
        api, _ = fake_api
        running = make_dispatcher("running", sweep_interval=0.05)
        running.start_timers()
        # e.g. the store failed just before mark_done: the entry is still pending
        stalled = MemoryStore(backend)
        lock = await stalled.acquire("s-c-8", owner="running")
        snapshot = {"id": "s-c-8", "flow": "echo", "state": "greet", "call": "c-8", "seen": []}
        entry = OutboxEntry("1.0", rest("POST", "/calls/c-8", {"state": "completed"}))
        await stalled.commit(lock, snapshot=snapshot, outbox=[entry])  # type: ignore[arg-type]
        await stalled.release(lock)
        await _settle(lambda: api.paths() == ["POST /calls/c-8"])
        await _settle(lambda: not backend.sessions["s-c-8"].outbox)


async def test_the_timer_loop_purges_what_outlived_its_retention(make_dispatcher: MakeDispatcher) -> None:
    dispatcher = make_dispatcher("a", sweep_interval=0.0)
    purges = 0
    original = dispatcher.store.purge

    async def counting_purge() -> int:
        nonlocal purges
        purges += 1
        return await original()

    dispatcher.store.purge = counting_purge  # type: ignore[method-assign]
    dispatcher.start_timers()
    await _settle(lambda: purges >= 2)


async def test_refusals_at_the_session_cap_do_not_reload_every_live_session(
    make_dispatcher: MakeDispatcher,
) -> None:
    dispatcher = make_dispatcher("a", max_sessions=3)
    for n in range(3):
        assert (await dispatcher.callback(incoming(f"c-{n}"))).status == "started"
    loads = 0
    original = dispatcher.store.load

    async def counting_load(session_id: str) -> Any:
        nonlocal loads
        loads += 1
        return await original(session_id)

    dispatcher.store.load = counting_load  # type: ignore[method-assign]
    outcomes = [await dispatcher.callback(incoming(f"c-new-{n}")) for n in range(20)]
    assert all(o.status == "refused" or o.detail.startswith("at capacity") for o in outcomes)
    assert loads <= 3  # one reconciliation of the three live sessions, not one per refused call


class TestNewCalls:
    async def test_a_new_call_is_created_without_a_lookup_first(
        self, make_dispatcher: MakeDispatcher, backend: MemoryBackend
    ) -> None:
        dispatcher = make_dispatcher("a")
        store = _recording(dispatcher, backend)

        assert (await dispatcher.callback(incoming("c-1"))).status == "started"

        assert store.names()[0] == "create"

    async def test_a_redelivered_first_callback_is_a_duplicate_even_at_the_session_limit(
        self, make_dispatcher: MakeDispatcher, backend: MemoryBackend, fake_api: tuple[FakeAPI, TestServer]
    ) -> None:
        api, _ = fake_api
        dispatcher = make_dispatcher("a", max_sessions=1)
        assert (await dispatcher.callback(incoming("c-1"))).status == "started"
        await _settle(lambda: dispatcher.pending == 0)
        store = _recording(dispatcher, backend)

        outcome = await dispatcher.callback(incoming("c-1"))

        # At the limit the route is looked up first: the call is not turned away as a new one.
        assert outcome.status == "duplicate"
        assert store.names()[0] == "begin_route"
        assert not [seen for seen in api.seen if (seen.body or {}).get("state") == "rejected"]


class RecordingStore(MemoryStore):
    """A memory store that logs each operation called (one entry per round trip a real store makes) and
    the ``done`` ids each one carries."""

    def __init__(self, backend: MemoryBackend) -> None:
        super().__init__(backend)
        self.calls: list[tuple[str, list[str]]] = []

    async def lookup(self, route_key: str) -> str | None:
        self.calls.append(("lookup", []))
        return await super().lookup(route_key)

    async def begin_route(self, route_key: str, **options: Any) -> Any:
        self.calls.append(("begin_route", []))
        return await super().begin_route(route_key, **options)

    async def begin(self, session_id: str, **options: Any) -> Any:
        self.calls.append(("begin", []))
        return await super().begin(session_id, **options)

    async def create(self, session_id: str, **options: Any) -> Any:
        self.calls.append(("create", []))
        return await super().create(session_id, **options)

    async def commit(self, lock: Lock, **changes: Any) -> int:
        self.calls.append(("commit", list(changes.get("done", ()))))
        return await super().commit(lock, **changes)

    async def renew(self, lock: Lock, **options: Any) -> Lock:
        self.calls.append(("renew", []))
        return await super().renew(lock, **options)

    async def mark_done(self, session_id: str, outbox_ids: Any) -> None:
        ids = list(outbox_ids)
        self.calls.append(("mark_done", ids))
        await super().mark_done(session_id, ids)

    async def finish(self, lock: Lock, done: Any) -> None:
        ids = list(done)
        self.calls.append(("finish", ids))
        await super().finish(lock, ids)

    def finish_soon(self, lock: Lock, done: Any) -> None:
        ids = list(done)
        self.calls.append(("finish", ids))
        super().finish_soon(lock, ids)

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


def _recording(dispatcher: Dispatcher, backend: MemoryBackend) -> RecordingStore:
    store = RecordingStore(backend)
    dispatcher.store = store
    return store


async def _started_then_recorded(
    make_dispatcher: MakeDispatcher, backend: MemoryBackend, call_id: str
) -> tuple[Dispatcher, RecordingStore]:
    """A dispatcher whose session for ``call_id`` has started and settled, then records its store calls."""
    dispatcher = make_dispatcher("a")
    await dispatcher.callback(incoming(call_id))
    await _settle(lambda: dispatcher.pending == 0)
    return dispatcher, _recording(dispatcher, backend)


def _commits_done(store: RecordingStore) -> list[tuple[str, list[str]]]:
    return [(name, done) for name, done in store.calls if name == "commit" and done]


def _watch_outbox(
    dispatcher: Dispatcher, backend: MemoryBackend, session_id: str
) -> list[tuple[str, list[str]]]:
    """Record, as each REST request goes out, the ids still pending in the session's outbox."""
    seen: list[tuple[str, list[str]]] = []
    original = dispatcher.client.execute

    async def execute(method: str, path: str, body: Any, **options: Any) -> Any:
        seen.append((path.rpartition(f"/{USER}")[2], list(backend.sessions[session_id].outbox)))
        return await original(method, path, body, **options)

    dispatcher.client.execute = execute  # type: ignore[method-assign]
    return seen


class TestStoreRoundTrips:
    async def test_a_callback_costs_begin_route_commit_and_finish(
        self, make_dispatcher: MakeDispatcher, backend: MemoryBackend
    ) -> None:
        dispatcher = make_dispatcher("a")
        assert (await dispatcher.callback(incoming("c-1"))).status == "started"
        await _settle(lambda: dispatcher.pending == 0)
        store = _recording(dispatcher, backend)

        assert (await dispatcher.callback(dtmf("c-1", "5"))).status == "handled"
        await _settle(lambda: "finish" in store.names())

        assert store.calls == [("begin_route", []), ("commit", []), ("finish", [])]

    async def test_each_entry_is_marked_done_before_the_next_is_executed(
        self, make_dispatcher: MakeDispatcher, backend: MemoryBackend
    ) -> None:
        dispatcher = make_dispatcher("a")
        store = _recording(dispatcher, backend)
        pending_at_request = _watch_outbox(dispatcher, backend, "s-c-2")

        assert (await dispatcher.callback(incoming("c-2"))).status == "started"
        await _settle(lambda: "finish" in store.names())

        [(first, both), (second, last)] = pending_at_request
        assert (first, second) == ("/calls/c-2", "/calls/c-2/audio")
        assert len(both) == 2
        assert last == both[1:]  # a crash while the second runs re-executes the second only
        # A new call's id leads to no session yet: it is created at once, without a lookup first
        assert store.calls == [
            ("create", []),
            ("mark_done", both[:1]),
            ("finish", last),
        ]
        assert backend.sessions["s-c-2"].outbox == {}

    async def test_the_last_result_fed_back_releases_the_lock_in_its_commit(
        self, make_dispatcher: MakeDispatcher, backend: MemoryBackend
    ) -> None:
        dispatcher, store = await _started_then_recorded(make_dispatcher, backend, "c-6")

        # "6": one gather, whose result the session hears of and which decides nothing more
        assert (await dispatcher.callback(dtmf("c-6", "6"))).status == "handled"
        await _settle(lambda: dispatcher.pending == 0)

        [(_, [gather_entry])] = _commits_done(store)
        assert store.calls == [("begin_route", []), ("commit", []), ("commit", [gather_entry])]  # no finish
        assert "s-c-6" not in backend.locks
        record = await store.load("s-c-6")
        assert record is not None
        assert record.outbox == ()
        assert record.snapshot["seen"][-1].startswith("result:g:")
        assert (await dispatcher.callback(dtmf("c-6", "5"))).status == "handled"  # the lock is free

    async def test_a_result_fed_back_is_committed_with_its_entry_marked_done(
        self, make_dispatcher: MakeDispatcher, backend: MemoryBackend
    ) -> None:
        dispatcher, store = await _started_then_recorded(make_dispatcher, backend, "c-3")
        pending_at_request = _watch_outbox(dispatcher, backend, "s-c-3")

        # "3": a gather whose result the session hears of, then a prompt
        assert (await dispatcher.callback(dtmf("c-3", "3"))).status == "handled"
        await _settle(lambda: "finish" in store.names())

        [(_, both), (_, last)] = pending_at_request
        assert store.calls == [
            ("begin_route", []),
            ("commit", []),
            ("commit", both[:1]),  # the gather's result, and the gather marked done, in one write
            ("finish", last),
        ]
        assert last == both[1:]
        record = await store.load("s-c-3")
        assert record is not None
        assert record.outbox == ()
        assert record.snapshot["seen"][-1].startswith("result:g:")


class GatedStore(MemoryStore):
    """A memory store whose last writes (``finish``) report back only when the test opens the gate.

    ``finish_soon`` applies the write at once, as an in-order store guarantees for later calls, but its
    future stays pending (or fails) at the test's will; ``finish`` waits for the gate before it writes.
    """

    def __init__(self, backend: MemoryBackend) -> None:
        super().__init__(backend)
        self.gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.apply = True

    async def finish(self, lock: Lock, done: Any) -> None:
        await asyncio.shield(self.gate)
        await super().finish(lock, done)

    def finish_soon(self, lock: Lock, done: Any) -> asyncio.Future[None]:
        if self.apply:
            super().finish_soon(lock, done)
        return self.gate


class AwaitedStore(GatedStore):
    """The same store without ``finish_soon``, as a store that does not apply calls in order (Redis)."""

    finish_soon = None  # type: ignore[assignment]


async def _started_on(
    make_dispatcher: MakeDispatcher,
    backend: MemoryBackend,
    kind: type[GatedStore] = GatedStore,
    *,
    apply: bool = True,
) -> tuple[Dispatcher, GatedStore]:
    """A dispatcher on a gated store (``apply``: whether its ``finish_soon`` writes), its call c-1 started."""
    dispatcher = make_dispatcher("a")
    store = kind(backend)
    store.apply = apply
    dispatcher.store = store
    assert (await dispatcher.callback(incoming("c-1"))).status == "started"
    return dispatcher, store


class TestTheLastWriteIsNotWaitedFor:
    async def test_the_next_event_of_the_session_runs_while_the_last_write_reports_back(
        self, make_dispatcher: MakeDispatcher, backend: MemoryBackend
    ) -> None:
        dispatcher, store = await _started_on(make_dispatcher, backend)

        second = await asyncio.wait_for(dispatcher.callback(dtmf("c-1", "5")), 2)

        assert second.status == "handled"
        assert not store.gate.done()
        store.gate.set_result(None)
        await _settle(lambda: dispatcher.pending == 0)
        assert "s-c-1" not in backend.locks

    async def test_a_store_that_may_reorder_calls_is_waited_for(
        self, make_dispatcher: MakeDispatcher, backend: MemoryBackend
    ) -> None:
        dispatcher, store = await _started_on(make_dispatcher, backend, AwaitedStore)

        second = asyncio.ensure_future(dispatcher.callback(dtmf("c-1", "5")))
        await asyncio.sleep(0.05)

        assert not second.done()  # queued behind the first event's finish
        store.gate.set_result(None)
        assert (await asyncio.wait_for(second, 2)).status == "handled"

    async def test_a_failed_last_write_keeps_the_lock_until_the_store_can_release_it(
        self, make_dispatcher: MakeDispatcher, backend: MemoryBackend
    ) -> None:
        # The last write does not happen: the lock stays held.
        dispatcher, store = await _started_on(make_dispatcher, backend, apply=False)
        await _settle(lambda: dispatcher.pending == 0)

        store.gate.set_exception(StoreError("disk I/O error"))
        await asyncio.sleep(0)
        assert "s-c-1" in backend.locks
        store.apply = True
        dispatcher.start_timers()  # its loop gives the lock back and resumes the session's outbox

        assert (await asyncio.wait_for(dispatcher.callback(dtmf("c-1", "5")), 3)).status == "handled"
        await _settle(lambda: dispatcher.pending == 0 and "s-c-1" not in backend.locks)
        assert await dispatcher.store.pending_outboxes() == []

    async def test_close_waits_for_the_last_writes(
        self, make_dispatcher: MakeDispatcher, backend: MemoryBackend
    ) -> None:
        dispatcher, store = await _started_on(make_dispatcher, backend)
        await _settle(lambda: dispatcher.pending == 0)

        closing = asyncio.ensure_future(dispatcher.close())
        await asyncio.sleep(0.05)
        assert not closing.done()
        store.gate.set_result(None)
        await asyncio.wait_for(closing, 2)


class TestLockRenewal:
    """A commit may leave a lock with only ``EXTEND_BELOW`` of its ttl; executions renew it in time."""

    async def test_an_execution_renews_the_lock_before_less_than_two_thirds_could_be_left(
        self, make_dispatcher: MakeDispatcher, backend: MemoryBackend, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        dispatcher = make_dispatcher("a")
        store = _recording(dispatcher, backend)
        now = [1000.0]
        fake_time = SimpleNamespace(
            monotonic=lambda: now[0], perf_counter=time.perf_counter, time=time.time, time_ns=time.time_ns
        )
        monkeypatch.setattr(dispatcher_module, "time", fake_time)
        original = dispatcher.client.execute
        # Each request takes 30% of the ttl: the second entry would start with 60% of it left at worst.
        step = DEFAULT_LOCK_TTL * 0.3
        assert EXTEND_BELOW - 0.3 < 2 / 3

        async def slow(method: str, path: str, body: Any, **options: Any) -> Any:
            now[0] += step
            return await original(method, path, body, **options)

        dispatcher.client.execute = slow  # type: ignore[method-assign]

        assert (await dispatcher.callback(incoming("c-r"))).status == "started"
        await _settle(lambda: "finish" in store.names())

        names = store.names()
        assert names[0] == "create"
        assert names.index("renew") < names.index("finish")
        assert names.count("renew") == 1
