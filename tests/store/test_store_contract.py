"""The contract every store keeps, run against the memory, SQLite and Redis implementations alike."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from flowengine.errors import DuplicateEventError, LockTimeoutError, StaleLockError, StoreError
from flowengine.store import OutboxEntry, Store, Timer

SID = "call-c-1"
StoreFactory = Callable[..., Awaitable[Store]]


async def _commit(store: Store, session_id: str = SID, **changes: object) -> int:
    lock = await store.acquire(session_id, owner="test")
    try:
        return await store.commit(lock, **{"snapshot": {"state": "x"}, **changes})  # type: ignore[arg-type]
    finally:
        await store.release(lock)


class TestCommitAndLoad:
    async def test_a_session_never_committed_loads_as_none(self, store: Store) -> None:
        assert await store.load("nobody") is None
        assert await store.lookup("call:nobody") is None

    async def test_commit_writes_snapshot_outbox_routes_timers_and_dedup_together(self, store: Store) -> None:
        lock = await store.acquire(SID, owner="a")
        version = await store.commit(
            lock,
            snapshot={"state": "menu", "vars": {"n": 1, "ok": True, "list": [1, 2.5, None]}},
            outbox=[OutboxEntry("1.0", {"op": "speak", "text": "hi"}), OutboxEntry("1.1", {"op": "gather"})],
            routes=["call:c-1"],
            timers_set={"after:10s": 1000.0},
            dedup_key="ev-1",
        )
        await store.release(lock)

        assert version == 1
        record = await store.load(SID)
        assert record is not None
        assert record.snapshot == {"state": "menu", "vars": {"n": 1, "ok": True, "list": [1, 2.5, None]}}
        assert record.version == 1
        assert [entry.id for entry in record.outbox] == ["1.0", "1.1"]
        assert record.outbox[0].command == {"op": "speak", "text": "hi"}
        assert record.ended is False
        assert await store.lookup("call:c-1") == SID
        assert await store.due_timers(1000.0) == [Timer(SID, "after:10s", 1000.0)]
        assert await store.seen("ev-1") is True
        assert await store.seen("ev-2") is False

    async def test_each_commit_raises_the_version_and_appends_to_the_outbox(self, store: Store) -> None:
        await _commit(store, snapshot={"n": 1}, outbox=[OutboxEntry("1.0", {"op": "a"})])
        version = await _commit(store, snapshot={"n": 2}, outbox=[OutboxEntry("2.0", {"op": "b"})])

        record = await store.load(SID)
        assert version == 2
        assert record is not None
        assert record.snapshot == {"n": 2}
        assert [(e.id, e.command) for e in record.outbox] == [("1.0", {"op": "a"}), ("2.0", {"op": "b"})]

    async def test_a_loaded_snapshot_is_a_copy_the_caller_may_change(self, store: Store) -> None:
        snapshot = {"vars": {"n": 1}}
        await _commit(store, snapshot=snapshot)
        snapshot["vars"]["n"] = 99
        first = await store.load(SID)
        assert first is not None
        first.snapshot["vars"] = {}

        again = await store.load(SID)
        assert again is not None
        assert again.snapshot == {"vars": {"n": 1}}

    async def test_a_snapshot_that_is_not_json_is_refused_and_nothing_is_written(self, store: Store) -> None:
        lock = await store.acquire(SID, owner="a")
        with pytest.raises(StoreError, match="not JSON"):
            await store.commit(lock, snapshot={"when": object()}, routes=["call:c-1"])  # type: ignore[dict-item]
        await store.release(lock)

        assert await store.load(SID) is None
        assert await store.lookup("call:c-1") is None

    async def test_a_snapshot_given_as_json_text_is_kept_as_it_is(self, store: Store) -> None:
        await _commit(store, snapshot=b'{"state":"menu","n":1}')
        record = await store.load(SID)
        assert record is not None
        stored = record.snapshot_json
        assert (stored.encode() if isinstance(stored, str) else stored) == b'{"state":"menu","n":1}'
        assert record.snapshot == {"state": "menu", "n": 1}

        await _commit(store, snapshot='{"state":"end"}')
        again = await store.load(SID)
        assert again is not None
        assert again.snapshot == {"state": "end"}
        assert again.version == 2

    @pytest.mark.parametrize("text", [b"[1, 2]", b"", "null", b"not json"])
    async def test_json_text_that_is_not_an_object_is_refused_and_nothing_is_written(
        self, store: Store, text: bytes | str
    ) -> None:
        lock = await store.acquire(SID, owner="a")
        with pytest.raises(ValueError, match="snapshot must be a JSON object"):
            await store.commit(lock, snapshot=text, routes=["call:c-1"])
        await store.release(lock)

        assert await store.load(SID) is None
        assert await store.lookup("call:c-1") is None

    async def test_a_refused_commit_writes_nothing_at_all(self, store: Store) -> None:
        await _commit(store, snapshot={"n": 1}, dedup_key="ev-1")
        lock = await store.acquire(SID, owner="a")
        with pytest.raises(DuplicateEventError, match="ev-1"):
            await store.commit(
                lock,
                snapshot={"n": 2},
                outbox=[OutboxEntry("2.0", {"op": "speak"})],
                routes=["call:c-2"],
                timers_set={"t": 5.0},
                dedup_key="ev-1",
                ended=True,
            )
        await store.release(lock)

        record = await store.load(SID)
        assert record is not None
        assert (record.snapshot, record.version, record.outbox, record.ended) == ({"n": 1}, 1, (), False)
        assert await store.lookup("call:c-2") is None
        assert await store.due_timers(10.0) == []
        assert await store.pending_outboxes() == []

    @pytest.mark.parametrize(
        ("changes", "message"),
        [
            pytest.param(
                {"outbox": [OutboxEntry("1", {}), OutboxEntry("2", {}), OutboxEntry("1", {})]},
                r"outbox ids repeated within one commit: \['1'\]",
                id="repeated-outbox-id",
            ),
            pytest.param({"timers_set": {"t": float("nan")}}, "timer 't' due time", id="nan-due"),
            pytest.param({"timers_set": {"t": float("inf")}}, "must be a finite number", id="infinite-due"),
            pytest.param({"timers_set": {"t": "soon"}}, "got 'soon'", id="text-due"),
        ],
    )
    async def test_malformed_changes_are_refused_before_anything_is_written(
        self, store: Store, changes: dict[str, object], message: str
    ) -> None:
        lock = await store.acquire(SID, owner="a")
        with pytest.raises(ValueError, match=message):
            await store.commit(lock, snapshot={}, **changes)  # type: ignore[arg-type]
        assert await store.load(SID) is None

    async def test_list_sessions_shows_the_most_recently_updated_first(self, store: Store) -> None:
        for sid in ("s-a", "s-b", "s-c"):
            await _commit(store, sid, snapshot={"id": sid})
            await asyncio.sleep(0.002)
        await _commit(store, "s-a", snapshot={"id": "s-a", "again": True})

        listed = await store.list_sessions(limit=2)
        assert [record.session_id for record in listed] == ["s-a", "s-c"]
        assert listed[0].snapshot == {"id": "s-a", "again": True}

    async def test_ping_answers_while_the_backend_is_up(self, store: Store) -> None:
        await store.ping()
        assert store.description


class TestLocks:
    async def test_a_held_lock_makes_others_wait_then_time_out(self, store: Store) -> None:
        await store.acquire(SID, owner="a", ttl=5)
        with pytest.raises(LockTimeoutError, match=SID):
            await store.acquire(SID, owner="b", wait=0.05)

    async def test_locks_of_different_sessions_do_not_block_each_other(self, store: Store) -> None:
        await store.acquire("s-1", owner="a", ttl=5)
        lock = await store.acquire("s-2", owner="b", wait=0.05)
        assert lock.session_id == "s-2"

    async def test_release_lets_a_waiting_owner_in(self, store: Store) -> None:
        first = await store.acquire(SID, owner="a", ttl=5)
        waiter = asyncio.create_task(store.acquire(SID, owner="b", wait=2))
        await asyncio.sleep(0.05)
        assert not waiter.done()
        await store.release(first)
        second = await waiter
        assert second.owner == "b"
        assert second.token > first.token

    async def test_an_expired_lock_lets_another_owner_in(self, store: Store) -> None:
        await store.acquire(SID, owner="dead-instance", ttl=0.1)
        started = time.monotonic()
        lock = await store.acquire(SID, owner="b", wait=2)
        assert lock.owner == "b"
        assert time.monotonic() - started < 1.5

    async def test_a_commit_with_a_stale_fencing_token_is_refused(self, make_store: StoreFactory) -> None:
        one, two = await make_store(), await make_store()  # two instances on one backend, like two engines
        slow = await one.acquire(SID, owner="slow", ttl=0.1)
        await asyncio.sleep(0.15)
        fast = await two.acquire(SID, owner="fast", wait=1)
        await two.commit(fast, snapshot={"by": "fast"})

        with pytest.raises(StaleLockError, match="stale"):
            await one.commit(slow, snapshot={"by": "slow"})
        await one.release(slow)  # releasing a lost lock is a no-op and must not free the new holder's
        with pytest.raises(LockTimeoutError):
            await one.acquire(SID, owner="third", wait=0.05)
        await two.release(fast)

        with pytest.raises(StaleLockError):
            await one.commit(slow, snapshot={"by": "slow"})
        record = await two.load(SID)
        assert record is not None
        assert record.snapshot == {"by": "fast"}

    async def test_the_holder_may_commit_after_expiry_if_nobody_took_the_lock(self, store: Store) -> None:
        lock = await store.acquire(SID, owner="a", ttl=0.05)
        await asyncio.sleep(0.1)
        assert await store.commit(lock, snapshot={"late": True}) == 1

    async def test_a_stale_commit_with_a_dedup_key_is_refused_as_stale_and_leaves_the_key(
        self, make_store: StoreFactory
    ) -> None:
        one, two = await make_store(), await make_store()
        slow = await one.acquire(SID, owner="slow", ttl=0.1)
        await asyncio.sleep(0.15)
        fast = await two.acquire(SID, owner="fast", wait=1)

        with pytest.raises(StaleLockError):
            await one.commit(slow, snapshot={"by": "slow"}, dedup_key="ev-stale")
        assert not await one.seen("ev-stale")
        await two.commit(fast, snapshot={"by": "fast"}, dedup_key="ev-stale")
        with pytest.raises(StaleLockError):  # stale comes first, even when the key is taken too
            await one.commit(slow, snapshot={"by": "slow"}, dedup_key="ev-stale")
        await two.release(fast)

    async def test_renew_keeps_a_lock_past_its_first_expiry(self, store: Store) -> None:
        lock = await store.acquire(SID, owner="a", ttl=0.2)
        renewed = await store.renew(lock, ttl=5)
        await asyncio.sleep(0.3)
        with pytest.raises(LockTimeoutError):
            await store.acquire(SID, owner="b", wait=0.05)
        assert renewed.token == lock.token

    async def test_renewing_a_lost_lock_raises(self, store: Store) -> None:
        lock = await store.acquire(SID, owner="a", ttl=0.05)
        await asyncio.sleep(0.1)
        await store.acquire(SID, owner="b", wait=1)
        with pytest.raises(StaleLockError):
            await store.renew(lock)

    async def test_fencing_tokens_grow_with_every_acquisition(self, store: Store) -> None:
        tokens = []
        for sid in ("s-1", "s-2", "s-1"):
            lock = await store.acquire(sid, owner="a")
            tokens.append(lock.token)
            await store.release(lock)
        assert tokens == sorted(tokens)
        assert len(set(tokens)) == 3

    @pytest.mark.parametrize("ttl", [0, -1.0])
    async def test_a_lock_ttl_must_be_positive(self, store: Store, ttl: float) -> None:
        with pytest.raises(ValueError, match="ttl must be a positive"):
            await store.acquire(SID, owner="a", ttl=ttl)


class TestConcurrency:
    async def test_the_lock_serialises_handlers_of_one_session_across_instances(
        self, make_store: StoreFactory
    ) -> None:
        stores = [await make_store(), await make_store()]

        async def increment(store: Store, number: int) -> None:
            lock = await store.acquire(SID, owner=f"worker-{number}", wait=5)
            try:
                record = await store.load(SID)
                count = 0 if record is None else record.snapshot["count"]
                await asyncio.sleep(0)  # let the other handlers try to get in
                entries = [OutboxEntry(f"{number}", {"op": "x"})]
                await store.commit(
                    lock, snapshot={"count": count + 1}, outbox=entries, dedup_key=f"ev-{number}"
                )
                await store.mark_done(SID, [f"{number}"])
            finally:
                await store.release(lock)

        await asyncio.gather(*(increment(stores[n % 2], n) for n in range(20)))
        record = await stores[0].load(SID)
        assert record is not None
        assert (record.snapshot, record.version, record.outbox) == ({"count": 20}, 20, ())

    async def test_many_sessions_handled_at_once_through_one_store_each_keep_their_history(
        self, store: Store
    ) -> None:
        async def call(number: int) -> None:
            sid = f"s-{number}"
            for step in range(5):
                lock = await store.acquire(sid, owner="a")
                try:
                    await store.load(sid)
                    entries = [OutboxEntry(f"{step}.0", {"step": step}), OutboxEntry(f"{step}.1", {})]
                    await store.commit(
                        lock,
                        snapshot={"step": step},
                        outbox=entries,
                        routes=[f"call:{number}"],
                        dedup_key=f"{sid}:{step}",
                    )
                    await store.mark_done(sid, [entry.id for entry in entries])
                finally:
                    await store.release(lock)

        await asyncio.gather(*(call(n) for n in range(12)))
        for number in range(12):
            record = await store.load(f"s-{number}")
            assert record is not None
            assert (record.snapshot, record.version, record.outbox) == ({"step": 4}, 5, ())
            assert await store.lookup(f"call:{number}") == f"s-{number}"
        assert await store.pending_outboxes() == []


class TestRoutes:
    async def test_a_route_key_moves_to_the_session_that_claims_it(self, store: Store) -> None:
        await _commit(store, "s-1", routes=["conv:+1:+2"])
        await _commit(store, "s-2", routes=["conv:+1:+2"])
        assert await store.lookup("conv:+1:+2") == "s-2"

    async def test_unroute_removes_only_keys_pointing_at_the_session(self, store: Store) -> None:
        await _commit(store, "s-1", routes=["call:a", "call:b"])
        await _commit(store, "s-2", routes=["call:b"])
        await _commit(store, "s-1", unroutes=["call:a", "call:b"])
        assert await store.lookup("call:a") is None
        assert await store.lookup("call:b") == "s-2"


class TestTimers:
    async def test_due_timers_lists_only_due_ones_earliest_first_up_to_the_limit(self, store: Store) -> None:
        await _commit(store, "s-1", timers_set={"late": 30.0, "early": 10.0})
        await _commit(store, "s-2", timers_set={"mid": 20.0})

        assert await store.due_timers(5.0) == []
        assert await store.due_timers(25.0) == [Timer("s-1", "early", 10.0), Timer("s-2", "mid", 20.0)]
        assert await store.due_timers(100.0, limit=1) == [Timer("s-1", "early", 10.0)]

    async def test_cancel_applies_before_set_so_a_timer_can_be_re_armed(self, store: Store) -> None:
        await _commit(store, timers_set={"t": 10.0, "u": 11.0})
        await _commit(store, timers_cancel=["t", "u"], timers_set={"t": 50.0})
        assert await store.due_timers(100.0) == [Timer(SID, "t", 50.0)]

    async def test_a_claimed_timer_is_hidden_for_its_lease_then_due_again(self, store: Store) -> None:
        await _commit(store, timers_set={"t": 10.0})
        [timer] = await store.due_timers(10.0)

        assert await store.claim_timer(timer, now=10.0, lease=5.0) is True
        assert await store.claim_timer(timer, now=10.0, lease=5.0) is False
        assert await store.due_timers(14.0) == []
        [again] = await store.due_timers(15.0)
        assert again == timer
        assert again.dedup_key == timer.dedup_key  # so a late commit of the first claimer is a duplicate
        assert await store.claim_timer(again, now=15.0) is True

    async def test_a_claimed_timer_is_finished_by_the_commit_that_handles_it(self, store: Store) -> None:
        await _commit(store, timers_set={"t": 10.0})
        [timer] = await store.due_timers(10.0)
        assert await store.claim_timer(timer, now=10.0, lease=1.0)
        await _commit(store, timers_cancel=[timer.key], dedup_key=timer.dedup_key)
        assert await store.due_timers(1000.0) == []

    async def test_a_claimer_that_commits_after_its_lease_lapsed_is_refused_as_a_duplicate(
        self, make_store: StoreFactory
    ) -> None:
        one, two = await make_store(), await make_store()
        await _commit(one, timers_set={"t": 10.0})
        [slow] = await one.due_timers(10.0)
        assert await one.claim_timer(slow, now=10.0, lease=5.0)
        [refired] = await two.due_timers(16.0)
        assert await two.claim_timer(refired, now=16.0, lease=5.0)
        await _commit(two, snapshot={"fired_by": "two"}, timers_cancel=["t"], dedup_key=refired.dedup_key)

        lock = await one.acquire(SID, owner="one")
        with pytest.raises(DuplicateEventError):
            await one.commit(
                lock, snapshot={"fired_by": "one"}, timers_cancel=["t"], dedup_key=slow.dedup_key
            )
        record = await one.load(SID)
        assert record is not None
        assert record.snapshot == {"fired_by": "two"}

    async def test_a_timer_set_again_is_a_new_firing_with_a_new_dedup_key(self, store: Store) -> None:
        await _commit(store, timers_set={"t": 10.0})
        [first] = await store.due_timers(10.0)
        await _commit(store, timers_cancel=["t"], timers_set={"t": 20.0}, dedup_key=first.dedup_key)
        [second] = await store.due_timers(20.0)
        assert second.due == 20.0
        assert second.dedup_key != first.dedup_key

    async def test_a_timer_moved_or_not_yet_due_cannot_be_claimed(self, store: Store) -> None:
        await _commit(store, timers_set={"t": 10.0})
        [timer] = await store.due_timers(10.0)
        assert await store.claim_timer(timer, now=9.0) is False
        await _commit(store, timers_set={"t": 12.0})
        assert await store.claim_timer(timer, now=20.0) is False

    async def test_timers_are_claimed_once_across_two_instances_racing(
        self, make_store: StoreFactory
    ) -> None:
        one, two = await make_store(), await make_store()
        for batch in range(5):
            lock = await one.acquire(f"s-{batch}", owner="setup")
            await one.commit(lock, snapshot={}, timers_set={f"t{i}": float(i) for i in range(10)})
            await one.release(lock)

        claimed: list[tuple[str, str]] = []

        async def worker(store: Store) -> None:
            while True:
                due = await store.due_timers(100.0, limit=7)
                if not due:
                    return
                for timer in due:
                    if await store.claim_timer(timer, now=100.0, lease=60.0):
                        claimed.append((timer.session_id, timer.key))

        await asyncio.gather(worker(one), worker(two), worker(one), worker(two))
        assert len(claimed) == 50
        assert len(set(claimed)) == 50


class TestDedup:
    async def test_a_dedup_key_is_forgotten_after_its_time_to_live(self, make_store: StoreFactory) -> None:
        store = await make_store(dedup_ttl=0.2)
        await _commit(store, dedup_key="ev-1")
        assert await store.seen("ev-1") is True
        await asyncio.sleep(0.3)
        assert await store.seen("ev-1") is False
        assert await _commit(store, dedup_key="ev-1") == 2


class TestRetention:
    async def test_an_ended_session_stays_loadable_for_the_retention_then_is_gone(
        self, make_store: StoreFactory
    ) -> None:
        store = await make_store(retention=0.3)
        await _commit(store, routes=["call:c-1"], timers_set={"t": 1.0}, outbox=[OutboxEntry("1", {})])
        await _commit(store, snapshot={"state": "end"}, ended=True)

        record = await store.load(SID)
        assert record is not None
        assert record.ended
        assert record.ended_at is not None
        assert await store.lookup("call:c-1") == SID
        assert await store.due_timers(1000.0) == []

        await asyncio.sleep(0.4)
        assert await store.load(SID) is None
        assert await store.lookup("call:c-1") is None
        assert await store.list_sessions() == []
        assert await store.pending_outboxes() == []
        assert await store.purge() == 1
        assert await store.purge() == 0

    async def test_an_ended_session_stays_ended(self, store: Store) -> None:
        await _commit(store, ended=True)
        await _commit(store, snapshot={"late": "event"})
        record = await store.load(SID)
        assert record is not None
        assert record.ended
        assert record.version == 2

    async def test_live_sessions_are_not_purged(self, store: Store) -> None:
        await _commit(store)
        assert await store.purge() == 0
        assert await store.load(SID) is not None


class TestRecovery:
    async def test_pending_outboxes_lists_unfinished_commands_in_commit_order(self, store: Store) -> None:
        await _commit(store, "s-1", outbox=[OutboxEntry("1.0", {"op": "a"}), OutboxEntry("1.1", {"op": "b"})])
        await _commit(store, "s-2", outbox=[OutboxEntry("1.0", {"op": "c"})])
        await _commit(store, "s-3")
        await store.mark_done("s-1", ["1.0", "no-such-id"])

        pending = await store.pending_outboxes()
        assert [(p.session_id, [e.id for e in p.entries]) for p in pending] == [
            ("s-1", ["1.1"]),
            ("s-2", ["1.0"]),
        ]

        await store.mark_done("s-1", ["1.1"])
        await store.mark_done("s-2", ["1.0"])
        assert await store.pending_outboxes() == []
        record = await store.load("s-1")
        assert record is not None
        assert record.outbox == ()

    async def test_a_new_instance_sees_what_the_first_left_pending(self, make_store: StoreFactory) -> None:
        first = await make_store()
        await _commit(first, outbox=[OutboxEntry("1.0", {"op": "speak"})], timers_set={"t": 5.0})
        await first.close()  # the first instance dies

        second = await make_store()
        [pending] = await second.pending_outboxes()
        assert pending.session_id == SID
        assert pending.entries == (OutboxEntry("1.0", {"op": "speak"}),)
        assert await second.due_timers(10.0) == [Timer(SID, "t", 5.0)]

    async def test_a_closed_store_refuses_to_work(self, make_store: StoreFactory) -> None:
        store = await make_store()
        await store.close()
        with pytest.raises(StoreError):
            await store.load(SID)
