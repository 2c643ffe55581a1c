"""The event pipeline that joins the callback server, the runtime, the store and the REST client.

For every callback (and every timer that falls due) the dispatcher does, per session, one at a time::

    route + lock + load -> runtime.handle -> commit(snapshot + outbox, atomically) -> answer the callback
          -> execute the outbox through the REST client / HTTP -> feed results back -> commit -> mark done
          + release

Each arrow into the store is one round trip (``begin_route``, ``commit``, ``finish``; a new session is
``begin_route`` finding nothing, then ``create`` under the id derived from the call, which takes the lock and
commits the first step together, or ``begin`` and ``commit`` when that session exists): a result fed back
is committed together with marking its entry done, and the last entry is marked done as the lock is released
(see ``Dispatcher._execute`` for the rule that keeps that crash-safe); when the last entry's result is fed
back and decides nothing more, that commit releases the lock itself (``commit(release=True)``).

Events of one call go through one FIFO lane (:mod:`flowengine.server.lanes`), so they are handled in arrival
order; different calls use different lanes and never wait for each other. Across instances the store's
session lock serialises them. The callback is answered once the new state is committed (durable); executing
the commands continues in the lane before the next event of that call.

Backpressure: while ``max_pending`` jobs (callbacks, timers, executions and the commands they decided) are
queued or running in the lanes, a callback that would start a new session is answered ``overloaded`` (503:
the API then tries the application's fallback URL) and a new execution raises :class:`Overloaded`; events
of existing sessions are still taken, since refusing them would lose calls in progress.

The dispatcher knows nothing of flows: it talks to the runtime through :class:`RuntimeAdapter`, which turns
the runtime's typed events, sessions and commands into the plain data below (outbox entries are JSON so
that any instance can execute them after a crash).

Outbox entries (``OutboxEntry.command``) have one of two shapes::

    {"kind": "rest", "method": "POST", "path": "/v1/users/{userId}/calls/c-1/gather", "body": {...},
     "operation": "createGather", "command_id": "7" | null,
     "result": true,                      # optional: feed a success back (someone waits for the id)
     "conference_name": "standup"}        # optional, on createConference: share the conference by name
    {"kind": "http", "method": "POST", "url": "https://crm.example/hook", "headers": {...},
     "json": ... | null, "body": "..." | null, "timeout": 10.0, "command_id": "8" | null}

When an entry fails, the rest of its batch is dropped (the runtime decided them as a unit) and the failure
is fed back as an event, so the flow's ``error`` handler (or the runtime's safe default) takes over.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Literal, Protocol
from urllib.parse import urlsplit

import aiohttp
import orjson
import structlog

from flowengine.catapult.client import CatapultClient, redact_url
from flowengine.errors import (
    CatapultAPIError,
    CatapultError,
    DuplicateEventError,
    FlowEngineError,
    LockTimeoutError,
    StoreError,
)
from flowengine.server.known import KnownSessions
from flowengine.server.lanes import Lanes, Then, current_lane
from flowengine.server.metrics import Metrics
from flowengine.store.base import EXTEND_BELOW, Advances, Lock, OutboxEntry, Store, Timer
from flowengine.testing.record import CallRecorder
from flowengine.typing import JSON, JSONObject, Seconds, SnapshotData

_log = structlog.get_logger("flowengine.server")

_LANE_CACHE_LIMIT = 200_000

_NEW_CALL = "incomingcall"
"""The callback of an inbound call: the API gives every one a call id of its own."""

KNOWN_SESSIONS = 16_384
"""Sessions whose last committed version and snapshot an instance keeps, at most (see ``_advance_known``)."""

KNOWN_BYTES = 32 * 1024 * 1024
"""The snapshots kept that way take this much at most; the oldest are forgotten first."""

Status = Literal[
    "handled",
    "started",
    "duplicate",
    "unknown-call",
    "unknown-event",
    "ended",
    "bad-request",
    "unavailable",
    "refused",
    "overloaded",
]


class BadCallback(FlowEngineError):
    """A callback's data is malformed (a field missing or of the wrong type); answered with 400."""


class NoSuchFlow(FlowEngineError):
    """An execution names a flow that is not loaded (or is of the wrong kind)."""


_RECONCILE_INTERVAL: Seconds = 1.0
"""At the session cap, how often sessions that ended on other instances are looked for in the store."""


class AtCapacity(FlowEngineError):
    """A new execution was refused: the instance runs ``max_sessions`` sessions already."""


class Overloaded(FlowEngineError):
    """A new execution was refused: ``max_pending`` jobs are queued or running already."""


@dataclass(slots=True)  # not frozen: one per callback, and a frozen one costs 5x as much to make
class Outcome:
    """How a callback was answered: ``status`` and a sentence for the log and the JSON answer."""

    status: Status
    detail: str = ""
    session_id: str | None = None


@dataclass(slots=True)  # not frozen: one per callback, and a frozen one costs 5x as much to make
class Routed:
    """A parsed callback: the runtime's event, its API type, and the key that finds its session.

    ``route_key`` is None for an event type the runtime does not know (answered 200 and logged).
    """

    event: object
    event_type: str
    route_key: str | None
    call_id: str = ""


@dataclass(slots=True)  # not frozen: one per callback, and a frozen one costs 5x as much to make
class Step:
    """What handling one event decided, in the store's terms.

    Attributes:
        session_id: the session.
        snapshot: its new snapshot (usually JSON text, as the store keeps it).
        entries: commands to execute (outbox entries in the shapes of the module docstring), in order.
        timers_set: timer key -> due time; timers_cancel: timer keys to drop.
        routes: route keys that now lead to the session (e.g. a dialled leg's call id); those committed
            before may be left out.
        ended: the session is over.
        logs: (level, message) lines the flow asked to log.
        flow, state: for logs and the executions API.
    """

    session_id: str
    snapshot: SnapshotData
    entries: Sequence[JSONObject] = ()
    timers_set: Mapping[str, Seconds] = field(default_factory=dict)
    timers_cancel: Sequence[str] = ()
    routes: Sequence[str] = ()
    ended: bool = False
    logs: Sequence[tuple[str, str]] = ()
    flow: str = ""
    state: str = ""


@dataclass(frozen=True, slots=True)
class HttpResult:
    """The outcome of a flow's ``http`` action: ``status`` 0 and ``error`` set when there was no answer."""

    status: int
    text: str = ""
    json: JSON = None
    headers: Mapping[str, str] = field(default_factory=dict)
    error: str = ""


class RuntimeAdapter(Protocol):
    """What the dispatcher needs from the runtime; every method is pure and synchronous."""

    def parse(self, data: Mapping[str, object]) -> Routed:
        """Parse a callback's fields; raise :class:`BadCallback` with the field at fault."""
        ...

    def start(self, routed: Routed, now: Seconds) -> Step | None:
        """Start a session for an inbound call or message on a flow's number; None when none applies."""
        ...

    def start_outbound(self, flow: str, to: str, from_: str, variables: JSONObject, now: Seconds) -> Step:
        """Start an execution of ``flow``; raise :class:`NoSuchFlow` or ``ValueError`` for bad input."""
        ...

    def handle(self, snapshot: SnapshotData, event: object, now: Seconds) -> Step:
        """Feed an event to the session saved as ``snapshot`` (as the store gave it back)."""
        ...

    def timer_event(self, key: str) -> object:
        """The event of the session timer ``key`` falling due."""
        ...

    def result_event(
        self, entry: JSONObject, resource_id: str | None, error: CatapultError | None
    ) -> object | None:
        """The event reporting a REST entry's outcome, or None when the runtime need not hear of it."""
        ...

    def http_event(self, entry: JSONObject, result: HttpResult) -> object:
        """The event reporting a flow ``http`` action's outcome (``http.ok`` / ``http.error``)."""
        ...

    def cancel(self, snapshot: SnapshotData, now: Seconds) -> Step:
        """End the session at an operator's request (hang up its legs)."""
        ...

    def describe(self, snapshot: SnapshotData) -> JSONObject:
        """The session as the executions API shows it: ``flow``, ``state``, ``variables``, ``steps``..."""
        ...


class Dispatcher:
    """Runs events through the runtime with the store and executes what it decides. See the module doc."""

    def __init__(
        self,
        *,
        runtime: RuntimeAdapter,
        store: Store,
        client: CatapultClient,
        http: aiohttp.ClientSession,
        metrics: Metrics,
        instance_id: str,
        clock: Callable[[], Seconds] = time.time,
        timer_interval: Seconds = 0.1,
        sweep_interval: Seconds = 30.0,
        http_max_bytes: int = 1024 * 1024,
        http_timeout: Seconds = 10.0,
        http_allow_hosts: Sequence[str] = (),
        max_sessions: int = 0,
        max_pending: int = 0,
        busy_message: str = "",
        recorder: CallRecorder | None = None,
        known_sessions: int = KNOWN_SESSIONS,
        known_bytes: int = KNOWN_BYTES,
    ) -> None:
        self.runtime = runtime
        self._known_limit = known_sessions
        self._known_budget = known_bytes
        self.store = store  # and whether it ``advances`` (see the setter)
        self.client = client
        self._http = http
        self.metrics = metrics
        self.instance_id = instance_id
        self._clock = clock
        self._timer_interval = timer_interval
        self._sweep_interval = sweep_interval
        self._http_max_bytes = http_max_bytes
        self._http_timeout = http_timeout
        self._http_allow_hosts = tuple(http_allow_hosts)
        self._max_sessions = max_sessions
        self._max_pending = max_pending
        self._busy_message = busy_message
        self._recorder = recorder
        # Read once: `flowengine serve` configures logging before it builds the dispatcher.
        self._debug = _log.is_enabled_for(logging.DEBUG)
        # Sessions this instance started and has not seen end (bounded by max_sessions); see _room_for.
        self._live: set[str] = set()
        self._reconciled_at = -_RECONCILE_INTERVAL
        self._starting = 0
        self._lanes: Lanes[Outcome] = Lanes()
        # route key -> lane, learnt from commits and lookups, so that every event of a session (tagged or
        # not, of any leg, timers too) queues in one lane: the one its first event ran in. Bounded; a miss
        # only costs order within this instance until the next commit (the store lock still serialises).
        self._lane_of: dict[str, str] = {}
        # With a store that can ``advance`` a session (take its lock and commit its next step in one round
        # trip, if nobody changed it meanwhile): route key -> session id, and session id -> (version,
        # snapshot) as this instance last committed it, for the live sessions committed most recently.
        # (``_advancer`` and ``_known`` are set with ``store``.)
        self._session_of: dict[str, str] = {}
        self._timer_task: asyncio.Task[None] | None = None
        # Locks whose release failed while the store was away, by session: released (and their outboxes
        # resumed) as soon as it is back, rather than blocking the call until the lock expires.
        self._unreleased: dict[str, Lock] = {}
        # Final writes started and not waited for (see _finish); close() waits for them.
        self._finishing: set[asyncio.Future[None]] = set()

    @property
    def store(self) -> Store:
        return self._store

    @store.setter
    def store(self, store: Store) -> None:
        self._store = store
        self._advancer: Advances | None = (
            store if self._known_limit > 0 and isinstance(store, Advances) else None
        )
        self._known = KnownSessions(limit=self._known_limit, budget=self._known_budget)

    @property
    def pending(self) -> int:
        """Jobs queued or running in the lanes (callbacks, timers, executions, their commands)."""
        return self._lanes.pending

    # ------------------------------------------------------------------------------------ callbacks

    async def callback(self, data: Mapping[str, object]) -> Outcome:
        """Handle one callback's fields; return how to answer it. Never raises for bad input."""
        try:
            routed = self.runtime.parse(data)
        except BadCallback as exc:
            return Outcome("bad-request", str(exc))
        if routed.route_key is None:
            _log.info("callback.unknown_event", event_type=routed.event_type, call_id=routed.call_id)
            return Outcome("unknown-event", f"event type {routed.event_type!r} is not handled")
        fields = data if isinstance(data, dict) else dict(data)
        dedup = _dedup_key(fields)
        key = routed.route_key
        lane = self._lane_of.get(key, key)
        future = self._lanes.submit(lane, lambda: self._handle_callback(routed, key, dedup, data))
        try:
            # No shield needed: the job runs in its lane's task, which a cancelled wait here leaves alone.
            return await future
        except (StoreError, LockTimeoutError) as exc:
            self.metrics.errors.labels(kind="store").inc()
            _log.error("callback.store_unavailable", route=key, error=str(exc))
            return Outcome("unavailable", "the session store is unavailable; retry later")

    async def _handle_callback(
        self, routed: Routed, route_key: str, dedup: str, data: Mapping[str, object]
    ) -> tuple[Outcome, Then | None]:
        now = self._clock()
        if self._advancer is not None:
            session_id = self._session_of.get(route_key)
            if session_id is not None and (known := self._known.get(session_id)) is not None:
                version, snapshot, _ = known
                if snapshot is None:  # it ended here, and an ended session stays ended
                    return await self._ended(routed, route_key, session_id, dedup, data, now)
                advanced = await self._advance_known(
                    routed, route_key, session_id, version, snapshot, dedup, data, now
                )
                if advanced is not None:
                    return advanced
        if routed.event_type == _NEW_CALL and self._room_now():
            # A new call's id leads to no session yet, unless this very callback was delivered before (the
            # same first step then names the same session, which ``create`` finds): start it at once, one
            # store round trip instead of two. At the limits, the long way looks the route up first.
            step = self.runtime.start(routed, now)
            if step is not None:
                begun = await self._start_session(step, routed, route_key, dedup, data)
                if begun is not None:
                    return begun
        found = await self.store.begin_route(route_key, owner=self.instance_id)
        if found is not None:
            session_id, lock, record = found
            self._learn((route_key,), session_id)
        else:
            step = self.runtime.start(routed, now)
            if step is None:
                _log.info(
                    "callback.unknown_call",
                    route=route_key,
                    event_type=routed.event_type,
                    call_id=routed.call_id,
                )
                return Outcome("unknown-call", f"no session for {route_key!r}"), None
            begun = await self._start_session(step, routed, route_key, dedup, data)
            if begun is not None:
                return begun
            # Another instance started this very session meanwhile: handle the event as part of it.
            session_id = step.session_id
            lock, record = await self.store.begin(session_id, owner=self.instance_id)
        try:
            if record is None or record.ended:
                await self._release(lock)
                return await self._ended(routed, route_key, session_id, dedup, data, now)
            started = time.perf_counter()
            step = self.runtime.handle(record.snapshot_json, routed.event, now)
            entries = await self._commit(
                lock, step, dedup=dedup, event_type=routed.event_type, call_id=routed.call_id
            )
            self.metrics.handling.observe(time.perf_counter() - started)
        except DuplicateEventError:
            await self._release(lock)  # another instance handled the same callback at the same time
            return Outcome("duplicate", "this callback was already handled", session_id), None
        except BaseException:
            await self._release(lock)
            raise
        return Outcome("handled", "", session_id), self._then(lock, step, entries, callback=data)

    async def _ended(
        self,
        routed: Routed,
        route_key: str,
        session_id: str,
        dedup: str,
        data: Mapping[str, object],
        now: Seconds,
    ) -> tuple[Outcome, Then | None]:
        """A callback whose route leads to a session that has ended (no lock held)."""
        # A conversation key outlives its ended session: a new inbound message starts a new one.
        step = self.runtime.start(routed, now)
        if step is not None and step.session_id != session_id:
            begun = await self._start_session(step, routed, route_key, dedup, data)
            if begun is not None:
                return begun
        # Routine (the other leg's hangup after the flow ended the call): not worth a line at info.
        _log.debug("callback.session_ended", session_id=session_id, event_type=routed.event_type)
        return Outcome("ended", "the session has ended", session_id), None

    async def _advance_known(
        self,
        routed: Routed,
        route_key: str,
        session_id: str,
        version: int,
        snapshot: SnapshotData,
        dedup: str,
        data: Mapping[str, object],
        now: Seconds,
    ) -> tuple[Outcome, Then | None] | None:
        """Handle the event from the session as this instance last committed it, then take the lock and
        commit in one round trip; None, with nothing written or locked, when the session has changed since
        (another instance, a timer), has ended, or is locked: the caller then goes the long way.

        Half the store round trips of ``begin_route`` then ``commit``, on the path of nearly every callback.
        """
        assert self._advancer is not None
        started = time.perf_counter()
        step = self.runtime.handle(snapshot, routed.event, now)
        entries = _outbox(step)
        try:
            lock = await self._advancer.advance(
                route_key,
                session_id,
                version=version,
                owner=self.instance_id,
                snapshot=step.snapshot,
                outbox=entries,
                routes=step.routes,
                timers_set=dict(step.timers_set),
                timers_cancel=step.timers_cancel,
                dedup_key=dedup,
                ended=step.ended,
            )
        except DuplicateEventError:  # nothing was written or locked
            return Outcome("duplicate", "this callback was already handled", session_id), None
        if lock is None:
            self._known.forget(session_id)
            return None
        self._committed(step, routed.event_type, routed.call_id, False)
        self._remember(step, version + 1)
        self.metrics.handling.observe(time.perf_counter() - started)
        return Outcome("handled", "", session_id), self._then(lock, step, entries, callback=data)

    def _remember(self, step: Step, version: int) -> None:
        """Keep a session's version and snapshot as just committed (see ``_advance_known``); for an ended
        session, only that it ended."""
        if self._advancer is not None:
            self._known.remember(step.session_id, version, None if step.ended else step.snapshot)

    async def _start_session(
        self, step: Step, routed: Routed, route_key: str, dedup: str, data: Mapping[str, object]
    ) -> tuple[Outcome, Then | None] | None:
        """Start the session a callback asks for, within ``max_sessions``; None when another instance
        started it at the same time (the event then belongs to that session)."""
        # This callback's own job is one of the pending ones: refuse when max_pending others are in flight.
        if self._max_pending and self._lanes.pending > self._max_pending:
            return self._overloaded(routed)
        if not await self._reserve_session():
            return self._refuse(routed, data)
        try:
            return await self._begin(
                step,
                routes=(route_key,),
                dedup=dedup,
                event_type=routed.event_type,
                call_id=routed.call_id,
                callback=data,
            )
        finally:
            self._starting -= 1

    async def _begin(
        self,
        step: Step,
        *,
        routes: Sequence[str],
        dedup: str | None,
        event_type: str,
        call_id: str = "",
        callback: Mapping[str, object] | None = None,
    ) -> tuple[Outcome, Then | None] | None:
        """Commit a brand-new session; the caller has not taken a lock yet.

        Returns None when the session exists already (started by another instance at the same time).
        """
        started = time.perf_counter()
        step = _with_routes(step, routes)
        try:
            created = await self._create(step, dedup=dedup, event_type=event_type, call_id=call_id)
        except DuplicateEventError:  # nothing was written or locked
            return Outcome("duplicate", "this callback was already handled", step.session_id), None
        if created is not None:
            lock, entries = created
        else:  # the session exists, or another instance is starting it right now
            lock, existing = await self.store.begin(step.session_id, owner=self.instance_id)
            try:
                if existing is not None:
                    await self._release(lock)
                    return None
                entries = await self._commit(lock, step, dedup=dedup, event_type=event_type, call_id=call_id)
            except DuplicateEventError:
                await self._release(lock)
                return Outcome("duplicate", "this callback was already handled", step.session_id), None
            except BaseException:
                await self._release(lock)
                raise
        self.metrics.handling.observe(time.perf_counter() - started)
        self.metrics.active_sessions.inc()
        if not step.ended:
            self._live.add(step.session_id)
        _log.info("session.started", session_id=step.session_id, flow=step.flow, state=step.state)
        return Outcome("started", "", step.session_id), self._then(lock, step, entries, callback=callback)

    def _room_now(self) -> bool:
        """Whether a new session would be let in now, by ``max_pending`` and ``max_sessions`` (no side effects)."""
        if self._max_pending and self._lanes.pending > self._max_pending:
            return False
        return not self._max_sessions or len(self._live) + self._starting < self._max_sessions

    async def _reserve_session(self) -> bool:
        """Take a place for a new session (``max_sessions``; 0 is no limit); the caller gives back
        ``_starting`` once the session is begun (it is then in ``_live``) or failed to begin.

        Sessions started here may end on another instance, so at the limit the ones that are over in the
        store are forgotten before refusing (at most once a second, so a flood of refusals stays cheap).
        """
        if self._max_sessions and len(self._live) + self._starting >= self._max_sessions:
            # Reconcile at most once a second: under a flood, each refusal must stay cheap.
            if time.monotonic() - self._reconciled_at >= _RECONCILE_INTERVAL:
                self._reconciled_at = time.monotonic()
                for session_id in list(self._live):
                    record = await self.store.load(session_id)
                    if record is None or record.ended:
                        self._live.discard(session_id)
            if len(self._live) + self._starting >= self._max_sessions:
                return False
        self._starting += 1
        return True

    def _overloaded(self, routed: Routed) -> tuple[Outcome, Then | None]:
        """Answer a new call or conversation 503 so that the API tries the fallback URL (another instance)."""
        self.metrics.errors.labels(kind="overload").inc()
        _log.warning(
            "session.refused_overloaded",
            event_type=routed.event_type,
            call_id=routed.call_id,
            max_pending=self._max_pending,
        )
        detail = f"overloaded: {self._max_pending} jobs are queued or running; new sessions are refused"
        return Outcome("overloaded", detail), None

    def _refuse(self, routed: Routed, data: Mapping[str, object]) -> tuple[Outcome, Then | None]:
        """Turn a new call or conversation away politely: reject the call; answer a text if configured."""
        self.metrics.errors.labels(kind="capacity").inc()
        _log.warning(
            "session.refused_at_capacity",
            event_type=routed.event_type,
            call_id=routed.call_id,
            max_sessions=self._max_sessions,
        )
        detail = f"at capacity: {self._max_sessions} sessions are running; new ones are refused"
        request: tuple[str, JSONObject, str] | None = None
        if routed.event_type == "incomingcall" and routed.call_id:
            request = (f"/calls/{routed.call_id}", {"state": "rejected"}, "rejectCall")
        elif (
            self._busy_message
            and isinstance(ours := data.get("to"), str)
            and isinstance(theirs := data.get("from"), str)
        ):
            body: JSONObject = {"from": ours, "to": theirs, "text": self._busy_message}
            request = ("/messages", body, "sendBusyMessage")
        if request is None:
            return Outcome("refused", detail), None
        path, body, operation = request

        async def turn_away() -> None:
            try:
                await self.client.execute("POST", path, body, operation=operation)
            except (CatapultError, ValueError) as exc:
                self.metrics.errors.labels(kind="rest").inc()
                _log.warning("session.refusal_failed", operation=operation, error=str(exc))

        return Outcome("refused", detail), turn_away

    # ------------------------------------------------------------------------------------ executions

    async def start_execution(
        self, flow: str, to: str, from_: str, variables: JSONObject
    ) -> tuple[str, JSONObject]:
        """Start an outbound flow; return its session id and description once the start is committed.

        Raises:
            NoSuchFlow, ValueError: bad request; AtCapacity: ``max_sessions`` reached; Overloaded:
            ``max_pending`` jobs are in flight; StoreError: the store is unavailable.
        """
        step = self.runtime.start_outbound(flow, to, from_, variables, self._clock())
        if self._max_pending and self._lanes.pending >= self._max_pending:
            self.metrics.errors.labels(kind="overload").inc()
            _log.warning("session.refused_overloaded", flow=flow, execution=True)
            raise Overloaded(f"{self._max_pending} jobs are queued or running already; retry later")
        if not await self._reserve_session():
            self.metrics.errors.labels(kind="capacity").inc()
            _log.warning("session.refused_at_capacity", flow=flow, execution=True)
            raise AtCapacity(f"this instance runs {self._max_sessions} sessions already; retry later")
        try:
            future = self._lanes.submit(
                self._session_lane(step.session_id), lambda: self._begin_execution(step)
            )
            outcome = await asyncio.shield(future)
        finally:
            self._starting -= 1
        if outcome.status != "started":
            raise StoreError(f"execution {step.session_id!r} could not start: {outcome.detail}")
        return step.session_id, self.runtime.describe(step.snapshot)

    async def _begin_execution(self, step: Step) -> tuple[Outcome, Then | None]:
        begun = await self._begin(step, routes=(), dedup=None, event_type="execution")
        if begun is None:  # a random id that exists already: practically impossible, but say so
            return Outcome("duplicate", f"session {step.session_id!r} exists already", step.session_id), None
        return begun

    async def describe(self, session_id: str) -> JSONObject | None:
        """The executions API's view of a session, or None if unknown or expired."""
        record = await self.store.load(session_id)
        if record is None:
            return None
        return self._describe_record(record.session_id, record.snapshot_json, record.ended, record.updated_at)

    async def list_executions(self, *, limit: int) -> list[JSONObject]:
        records = await self.store.list_sessions(limit=limit)
        return [self._describe_record(r.session_id, r.snapshot_json, r.ended, r.updated_at) for r in records]

    def _describe_record(
        self, session_id: str, snapshot: SnapshotData, ended: bool, updated_at: Seconds
    ) -> JSONObject:
        view = dict(self.runtime.describe(snapshot))
        view["id"] = session_id
        view["status"] = "ended" if ended else "active"
        view["updatedAt"] = updated_at
        return view

    async def cancel_execution(self, session_id: str) -> bool:
        """End a session (hang up its calls); False if it is unknown or already ended."""
        future = self._lanes.submit(self._session_lane(session_id), lambda: self._cancel(session_id))
        outcome = await asyncio.shield(future)
        return outcome.status == "handled"

    async def _cancel(self, session_id: str) -> tuple[Outcome, Then | None]:
        lock, record = await self.store.begin(session_id, owner=self.instance_id)
        try:
            if record is None or record.ended:
                await self._release(lock)
                return Outcome("ended", "", session_id), None
            step = self.runtime.cancel(record.snapshot_json, self._clock())
            entries = await self._commit(lock, step, dedup=None, event_type="cancel")
        except BaseException:
            await self._release(lock)
            raise
        return Outcome("handled", "", session_id), self._then(lock, step, entries)

    # ---------------------------------------------------------------------------- commit and execute

    async def _commit(
        self,
        lock: Lock,
        step: Step,
        *,
        dedup: str | None,
        event_type: str,
        was_ended: bool = False,
        call_id: str = "",
        done: Sequence[str] = (),
        release: bool = False,
    ) -> list[OutboxEntry]:
        """Commit a step (with ``done``: executed entries marked done in the same write); return its entries.

        The commit leaves the lock at least ``EXTEND_BELOW`` of its ttl, or gives it up with ``release``.
        """
        entries = _outbox(step)
        version = await self.store.commit(
            lock,
            snapshot=step.snapshot,
            outbox=entries,
            routes=step.routes,
            timers_set=dict(step.timers_set),
            timers_cancel=step.timers_cancel,
            dedup_key=dedup,
            ended=step.ended,
            done=done,
            release=release,
        )
        self._committed(step, event_type, call_id, was_ended)
        self._remember(step, version)
        return entries

    async def _create(
        self, step: Step, *, dedup: str | None, event_type: str, call_id: str
    ) -> tuple[Lock, list[OutboxEntry]] | None:
        """Commit a brand-new session's first step under a new lock, in one store round trip; None when the
        session exists or its lock is held (nothing written: the caller goes the long way)."""
        entries = _outbox(step)
        lock = await self.store.create(
            step.session_id,
            owner=self.instance_id,
            snapshot=step.snapshot,
            outbox=entries,
            routes=step.routes,
            timers_set=dict(step.timers_set),
            dedup_key=dedup,
            ended=step.ended,
        )
        if lock is None:
            return None
        self._committed(step, event_type, call_id, False)
        self._remember(step, 1)
        return lock, entries

    def _committed(self, step: Step, event_type: str, call_id: str, was_ended: bool) -> None:
        """What follows every commit of a step: metrics, the lanes of its routes, its log lines."""
        self.metrics.events.labels(type=event_type).inc()
        self._learn(step.routes, step.session_id)
        # One line per event at debug level: at info it would cost more than the event's own handling
        # (structlog renders and writes each line); binding is left to the rarer lines below.
        debug = self._debug
        if debug or step.logs or step.ended:
            # ``event`` is the line's own name in structlog: the callback's type goes in ``event_type``.
            log = _log.bind(
                session_id=step.session_id, flow=step.flow, state=step.state, event_type=event_type
            )
            if call_id:
                log = log.bind(call_id=call_id)
            if debug:
                log.debug("event.handled", commands=len(step.entries))
            for level, message in step.logs:
                getattr(log, level if level in ("debug", "info", "warning", "error") else "info")(
                    "flow.log", message=message
                )
            if step.ended:
                self._live.discard(step.session_id)
            if step.ended and not was_ended:
                self.metrics.active_sessions.dec()
                log.info("session.ended")

    def _learn(self, routes: Sequence[str], session_id: str) -> None:
        """Point the session's route keys at its lane: the lane its first event here ran in."""
        lane_of = self._lane_of
        key = "session:" + session_id
        lane = lane_of.get(key)
        if lane is None:
            if len(lane_of) > _LANE_CACHE_LIMIT:
                lane_of.clear()
            lane = lane_of[key] = current_lane.get() or key
        for route in routes:
            lane_of[route] = lane
        if self._advancer is not None:  # only its fast path reads this (an entry per live route)
            session_of = self._session_of
            if len(session_of) > _LANE_CACHE_LIMIT:
                session_of.clear()
            for route in routes:
                session_of[route] = session_id

    def _session_lane(self, session_id: str) -> str:
        key = f"session:{session_id}"
        return self._lane_of.get(key, key)

    def _then(
        self,
        lock: Lock,
        step: Step,
        entries: list[OutboxEntry],
        *,
        callback: Mapping[str, object] | None = None,
    ) -> Then:
        held: list[Lock | None] = [lock]
        done: list[str] = []
        recording = self._recorder is not None and callback is not None
        executed: list[JSONObject] | None = [] if recording else None

        async def execute() -> None:
            try:
                await self._execute(held, done, step.snapshot, entries, ended=step.ended, executed=executed)
            finally:
                if held[0] is not None:  # None: the last commit released it
                    await self._finish(held[0], done)
            if self._recorder is not None and callback is not None and executed is not None:
                self._recorder.record(
                    step.session_id, callback, at=self._clock(), flow=step.flow, commands=executed
                )

        return execute

    async def _execute(
        self,
        held: list[Lock | None],
        done: list[str],
        snapshot: SnapshotData,
        entries: list[OutboxEntry],
        *,
        ended: bool,
        executed: list[JSONObject] | None = None,
    ) -> None:
        """Execute entries in order, feeding outcomes back to the runtime; the lock is held throughout.

        ``held[0]`` is the session's lock; it is replaced when renewed, so the caller finishes the latest,
        and set to None when a commit feeding back the last result released it (nothing left to do).
        ``done`` collects the ids executed (or dropped) and not yet marked done in the store; the caller
        passes what is left in it to ``finish``.

        The rule that keeps a crash from re-executing more than one entry: before an entry is executed,
        every entry executed before it is marked done in the store. So an entry's id rides on the next
        write that comes anyway, the commit feeding its result back or the final ``finish``, and gets a
        ``mark_done`` of its own only when another entry is to be executed first.
        """
        lock = held[0]
        assert lock is not None
        queue = list(entries)
        session_id = lock.session_id
        renewed = time.monotonic()
        while queue:
            entry = queue.pop(0)
            if done:
                await self.store.mark_done(session_id, done)
                done.clear()
            if time.monotonic() - renewed > lock.ttl * _RENEW_AFTER:
                # Long executions (rate-limit waits, slow APIs) must not let the lock lapse under us.
                lock = held[0] = await self.store.renew(lock)
                renewed = time.monotonic()
            name = _conference_name(entry.command)
            # One creation per conference name at a time, across instances (a store lock): the feedback
            # commit below registers ``conference-name:<name>`` before the next session looks it up.
            name_lock = None
            if name is not None:
                name_lock = await self.store.acquire(f"{CONFERENCE_NAME_ROUTE}{name}", owner=self.instance_id)
            try:
                command = entry.command
                if command.get("kind") == "rest":  # nearly every entry: called directly, one coroutine less
                    outcome = await self._run_rest(command, session_id, name)
                else:
                    outcome = await self._run_entry(command, session_id)
                if executed is not None:  # for --record: each command with the resource it created
                    resource = getattr(outcome[0], "resource_id", None) if outcome else None
                    executed.append({**entry.command, **({"resource_id": resource} if resource else {})})
                done.append(entry.id)
                if outcome is None:
                    continue
                feedback, failed = outcome
                if failed:
                    done.extend(e.id for e in queue)
                    if queue:
                        _log.warning(
                            "outbox.dropped_after_failure",
                            session_id=session_id,
                            dropped=len(queue),
                        )
                    queue = []
                if feedback is None:
                    continue
                step = self.runtime.handle(snapshot, feedback, self._clock())
                snapshot = step.snapshot
                last = not queue and not step.entries  # release with this write: one round trip less
                new_entries = await self._commit(
                    lock, step, dedup=None, event_type="result", was_ended=ended, done=done, release=last
                )
                if last:
                    held[0] = None
                done.clear()
                renewed = time.monotonic()  # the commit left at least EXTEND_BELOW of the ttl
                queue.extend(new_entries)
                ended = ended or step.ended
            finally:
                if name_lock is not None:
                    await self._release(name_lock)

    async def _existing_conference(self, name: str) -> str | None:
        """The id of a live conference another session created under ``name``, if any."""
        owner = await self.store.lookup(f"{CONFERENCE_NAME_ROUTE}{name}")
        if owner is None:
            return None
        record = await self.store.load(owner)
        conference = record.snapshot.get("conference") if record is not None else None
        conference_id = conference.get("id") if isinstance(conference, dict) else None
        if not isinstance(conference_id, str) or not conference_id:
            return None
        try:
            state = (await self.client.get_conference(conference_id)).get("state")
        except CatapultError as exc:
            _log.warning("conference.lookup_failed", conference=name, error=str(exc))
            return None
        return conference_id if state in ("created", "active") else None

    async def _run_entry(self, command: JSONObject, session_id: str) -> tuple[object | None, bool] | None:
        """Execute one entry that is not a REST request (``_execute`` runs those with ``_run_rest``); return
        (feedback event or None, failed) or None when nothing is to be fed back."""
        kind = command.get("kind")
        if kind == "http":
            result = await self._run_http(command, session_id)
            return self.runtime.http_event(command, result), False
        if kind == "lookup":
            result = await self._run_lookup(command, session_id)
            return self.runtime.http_event(command, result), False
        _log.error("outbox.unknown_entry", session_id=session_id, kind=kind)
        return None

    async def _run_rest(
        self, command: JSONObject, session_id: str, name: str | None
    ) -> tuple[object | None, bool] | None:
        """Execute one REST entry (``name``: the conference it creates, if it creates one)."""
        if name is not None:
            existing = await self._existing_conference(name)
            if existing is not None:
                _log.info("conference.shared", session_id=session_id, conference=name, conference_id=existing)
                return self.runtime.result_event(command, existing, None), False
        method = str(command.get("method", "POST"))
        path = str(command.get("path", ""))
        operation = str(command.get("operation", ""))
        try:
            response = await self.client.execute(method, path, command.get("body"), operation=operation)
        except CatapultError as exc:
            self.metrics.errors.labels(kind="rest").inc()
            _log.warning(
                "rest.failed",
                session_id=session_id,
                operation=operation,
                status=getattr(exc, "status", 0),
                code=exc.code if isinstance(exc, CatapultAPIError) else "",
                error=str(exc),
            )
            return self.runtime.result_event(command, None, exc), True
        except ValueError as exc:
            self.metrics.errors.labels(kind="rest").inc()
            _log.error("rest.invalid_command", session_id=session_id, operation=operation, error=str(exc))
            return None
        event = self.runtime.result_event(command, response.location_id or None, None)
        if event is None:
            return None
        return event, False

    async def _run_lookup(self, command: JSONObject, session_id: str) -> HttpResult:
        """A flow's ``lookup_caller``: the number's caller-id name through the API (404: it has none)."""
        number = str(command.get("number", ""))
        try:
            info = await self.client.get_number_info(number)
        except CatapultAPIError as exc:
            if exc.status != 404:
                self.metrics.errors.labels(kind="rest").inc()
                _log.warning("lookup.failed", session_id=session_id, status=exc.status, code=exc.code)
            return HttpResult(exc.status, error=f"{exc.code}: {exc.message}" if exc.code else str(exc))
        except CatapultError as exc:
            self.metrics.errors.labels(kind="rest").inc()
            _log.warning("lookup.failed", session_id=session_id, error=str(exc))
            return HttpResult(0, error=str(exc))
        return HttpResult(200, json=info)

    async def _run_http(self, command: JSONObject, session_id: str) -> HttpResult:
        url = str(command.get("url", ""))
        method = str(command.get("method", "GET")).upper()
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return self._http_refused(session_id, url, "only http and https URLs are allowed")
        if self._http_allow_hosts and not host_allowed(parts.hostname, self._http_allow_hosts):
            return self._http_refused(
                session_id, url, f"host {parts.hostname!r} is not in the allow-list (--http-allow-hosts)"
            )
        headers_value = command.get("headers")
        headers = (
            {str(k): str(v) for k, v in headers_value.items()} if isinstance(headers_value, dict) else {}
        )
        data: bytes | None = None
        if command.get("json") is not None:
            data = orjson.dumps(command["json"])
            headers.setdefault("Content-Type", "application/json")
        elif command.get("body") is not None:
            data = str(command["body"]).encode()
        timeout_value = command.get("timeout")
        timeout = float(timeout_value) if isinstance(timeout_value, int | float) else self._http_timeout
        timeout = min(max(timeout, 0.001), self._http_timeout)
        try:
            # No redirects: a 3xx is the flow's answer, so a redirect cannot lead past the allow-list.
            async with self._http.request(
                method,
                url,
                headers=headers,
                data=data,
                timeout=aiohttp.ClientTimeout(total=timeout),
                allow_redirects=False,
            ) as response:
                raw = await response.content.read(self._http_max_bytes + 1)
                if len(raw) > self._http_max_bytes:
                    return HttpResult(
                        response.status, error=f"the answer is larger than {self._http_max_bytes} bytes"
                    )
                text = raw.decode(response.charset or "utf-8", errors="replace")
                body: JSON = None
                if raw:
                    try:
                        body = orjson.loads(raw)
                    except orjson.JSONDecodeError:
                        body = None
                # aiohttp's header names are `istr`; plain str keys keep the snapshot JSON-serialisable
                headers_seen = {str(name): str(value) for name, value in response.headers.items()}
                result = HttpResult(response.status, text=text, json=body, headers=headers_seen)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            self.metrics.errors.labels(kind="http-action").inc()
            reason = "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
            _log.warning("http_action.failed", session_id=session_id, url=_loggable(url), error=reason)
            return HttpResult(0, error=reason)
        _log.info("http_action.done", session_id=session_id, url=_loggable(url), status=result.status)
        return result

    def _http_refused(self, session_id: str, url: str, reason: str) -> HttpResult:
        self.metrics.errors.labels(kind="http-action").inc()
        _log.warning("http_action.refused", session_id=session_id, url=_loggable(url), error=reason)
        return HttpResult(0, error=f"{reason}: {_loggable(url)!r}")

    async def _release(self, lock: Lock) -> None:
        await self._finish(lock, ())

    async def _finish(self, lock: Lock, done: Sequence[str]) -> None:
        """Mark ``done`` done and release the lock; if the store is away, keep the lock for when it is back
        (the ``done`` entries then stay pending and run again when the outbox is resumed: at least once).

        A store that applies operations in call order (``FinishesInOrder``) is not waited for: whatever the
        lane does next (the session's next event) asks the store after this, so it runs after it anyway,
        and the write need not hold the next event up for a round trip of its own.
        """
        finish_soon = getattr(self.store, "finish_soon", None)
        try:
            if finish_soon is None:
                await self.store.finish(lock, done)
                return
            future = finish_soon(lock, done)
        except StoreError as exc:
            self._release_failed(lock, exc)
            return
        if future is not None:
            self._finishing.add(future)
            future.add_done_callback(partial(self._finished, lock))

    def _finished(self, lock: Lock, future: asyncio.Future[None]) -> None:
        """A ``finish_soon`` came back: remember the lock if it failed (see ``_finish``)."""
        self._finishing.discard(future)
        error = StoreError("cancelled") if future.cancelled() else future.exception()
        if error is not None:
            self._release_failed(lock, error)

    def _release_failed(self, lock: Lock, error: BaseException) -> None:
        self._unreleased[lock.session_id] = lock
        _log.warning("store.release_failed", session_id=lock.session_id, error=str(error))

    async def _release_unreleased(self) -> None:
        """Give back the locks whose release failed, then resume whatever their sessions left pending.

        A store failing in the middle of an outbox leaves the outbox pending and the lock held; without
        this the call would wait for the lock's expiry and the next sweep. Raises ``StoreError`` while the
        store is still away (the locks are kept for the next round).
        """
        for session_id, lock in list(self._unreleased.items()):
            await self.store.release(lock)  # a lock lost meanwhile is a no-op
            del self._unreleased[session_id]
            self._background(self._session_lane(session_id), self._resume_job(session_id), "sweep")

    # ----------------------------------------------------------------------------- timers, recovery

    async def recover(self) -> int:
        """Execute outboxes left pending by a previous run (crash); return how many sessions had one."""
        pending = await self.store.pending_outboxes()
        for item in pending:
            await self._lanes.submit(self._session_lane(item.session_id), self._resume_job(item.session_id))
        return len(pending)

    async def sweep(self) -> int:
        """Queue every pending outbox for execution (without waiting); return how many were queued.

        Outboxes stay pending when the store failed in the middle of executing them; sessions busy right now
        are simply handled after their current work (and then have nothing pending).
        """
        pending = await self.store.pending_outboxes()
        for item in pending:
            self._background(self._session_lane(item.session_id), self._resume_job(item.session_id), "sweep")
        return len(pending)

    def _background(
        self, lane: str, job: Callable[[], Awaitable[tuple[Outcome, Then | None]]], what: str
    ) -> None:
        """Queue a job nobody waits for; its failure is logged and counted, never lost silently."""

        def done(future: asyncio.Future[Outcome]) -> None:
            if future.cancelled():
                return
            exc = future.exception()
            if exc is not None:
                kind = "store" if isinstance(exc, StoreError) else what
                self.metrics.errors.labels(kind=kind).inc()
                _log.warning(f"{what}.failed", lane=lane, error=str(exc) or type(exc).__name__)

        self._lanes.submit(lane, job).add_done_callback(done)

    def _resume_job(self, session_id: str) -> Callable[[], Awaitable[tuple[Outcome, Then | None]]]:
        return lambda: self._resume(session_id)

    def _fire_job(self, timer: Timer) -> Callable[[], Awaitable[tuple[Outcome, Then | None]]]:
        return lambda: self._fire(timer)

    async def _resume(self, session_id: str) -> tuple[Outcome, Then | None]:
        lock, record = await self.store.begin(session_id, owner=self.instance_id)
        if record is None or not record.outbox:
            await self._release(lock)
            return Outcome("handled", "nothing pending", session_id), None
        _log.info("outbox.resumed", session_id=session_id, entries=len(record.outbox))
        step = Step(session_id=session_id, snapshot=record.snapshot_json, ended=record.ended)
        return Outcome("handled", "", session_id), self._then(lock, step, list(record.outbox))

    def start_timers(self) -> None:
        """Start the background loop that fires due session timers."""
        if self._timer_task is None:
            self._timer_task = asyncio.create_task(self._timer_loop(), name="flowengine-timers")

    async def _timer_loop(self) -> None:
        last_sweep = time.monotonic()
        while True:
            try:
                if self._unreleased:
                    await self._release_unreleased()
                await self.fire_due_timers()
                if time.monotonic() - last_sweep >= self._sweep_interval:
                    last_sweep = time.monotonic()
                    await self.sweep()
                    purged = await self.store.purge()  # reclaim space of sessions past their retention
                    if purged:
                        _log.info("sessions.purged", count=purged)
            except StoreError as exc:
                self.metrics.errors.labels(kind="store").inc()
                _log.warning("timers.store_unavailable", error=str(exc))
            except Exception:
                self.metrics.errors.labels(kind="timers").inc()
                _log.exception("timers.failed")
            await asyncio.sleep(self._timer_interval)

    async def fire_due_timers(self) -> int:
        """Claim every due timer and queue its event in its session's lane; return how many were claimed."""
        now = self._clock()
        claimed = 0
        for timer in await self.store.due_timers(now):
            if await self.store.claim_timer(timer, now=now):
                claimed += 1
                self._background(self._session_lane(timer.session_id), self._fire_job(timer), "timer")
        return claimed

    async def _fire(self, timer: Timer) -> tuple[Outcome, Then | None]:
        lock, record = await self.store.begin(timer.session_id, owner=self.instance_id)
        try:
            if record is None or record.ended:
                await self._release(lock)
                return Outcome("ended", "", timer.session_id), None
            event = self.runtime.timer_event(timer.key)
            step = self.runtime.handle(record.snapshot_json, event, self._clock())
            step = replace(step, timers_cancel=(timer.key, *step.timers_cancel))
            try:
                entries = await self._commit(lock, step, dedup=timer.dedup_key, event_type="timer")
            except DuplicateEventError:
                # Already handled (by an instance that died before finishing it; the refused commit wrote
                # nothing): just drop the timer.
                await self.store.commit(lock, snapshot=record.snapshot_json, timers_cancel=[timer.key])
                await self._release(lock)
                return Outcome("duplicate", "", timer.session_id), None
        except BaseException:
            await self._release(lock)
            raise
        return Outcome("handled", "", timer.session_id), self._then(lock, step, entries)

    async def close(self, timeout: Seconds = 10.0) -> None:
        """Stop firing timers and let queued events finish (graceful shutdown)."""
        if self._timer_task is not None:
            self._timer_task.cancel()
            await asyncio.gather(self._timer_task, return_exceptions=True)
            self._timer_task = None
        if not await self._lanes.drain(timeout):
            _log.warning("shutdown.lanes_cancelled", timeout=timeout)
        if self._finishing:  # the store is closed next: let the last writes land first
            await asyncio.wait(set(self._finishing), timeout=timeout)


_RENEW_AFTER = EXTEND_BELOW - 2 / 3
"""Share of a lock's ttl after which an execution renews it before its next entry: a commit leaves at least
``EXTEND_BELOW``, so at least two thirds are left when each entry starts."""


def _dedup_key(fields: Mapping[str, object]) -> str:
    """A callback's de-duplication key: SHA-256 over its sorted fields, behind the digits of its ``time``.

    The same callback delivered again has the same fields, so the same key. Keys start with the event's time
    (``cb:20121114162159616:...``) so that a store keeping them in an index inserts each next to the last
    ones, not at a random place: with SQLite that is one page written per batch of callbacks instead of one
    per callback. Behind the time, 96 bits of the digest; a callback without a ``time`` gets 144 bits.
    Stores keep one key per handled callback for a day, so its length is memory.
    """
    digest = hashlib.sha256(orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)).digest()
    moment = fields.get("time")
    if isinstance(moment, str) and moment:
        # The whole time is in the digest. Bytes' translate deletes in C; str's looks up a dict per character
        # (1.3 µs of the key's 3.6); UTF-8 puts no ASCII byte inside another character, so both agree.
        ordered = moment[:_TIME_PREFIX].encode().translate(None, _NOT_DIGITS).decode()
        return f"cb:{ordered}:{base64.urlsafe_b64encode(digest[:12]).decode()}"
    return "cb:" + base64.urlsafe_b64encode(digest[:18]).decode()


_TIME_PREFIX = 32
"""At most this much of a callback's ``time`` goes into its key."""
_NOT_DIGITS = b"-:.TZ+ "
"""What ``_dedup_key`` drops from an ISO 8601 time (``2012-11-14T16:21:59.616Z`` -> ``20121114162159616``)."""


def host_allowed(host: str, allowed: Sequence[str]) -> bool:
    """Whether ``host`` matches an allow-list entry: the same name, or a subdomain for ``*.name``."""
    host = host.lower().rstrip(".")
    for entry in allowed:
        if entry.startswith("*."):
            if host.endswith(entry[1:]):
                return True
        elif host == entry.strip("[]"):
            return True
    return False


def _loggable(url: str) -> str:
    """``url`` for logs and errors: no credentials, no query or fragment (they may carry tokens)."""
    parts = urlsplit(redact_url(url))
    return parts._replace(query="", fragment="").geturl()


CONFERENCE_NAME_ROUTE = "conference-name:"
"""Route key prefix under which a session with a live conference is found by the conference's flow name."""


def _conference_name(command: JSONObject) -> str | None:
    name = command.get("conference_name")
    if command.get("operation") == "createConference" and isinstance(name, str) and name:
        return name
    return None


def _outbox(step: Step) -> list[OutboxEntry]:
    """A step's commands as outbox entries, with ids unique to this commit (and ordered after earlier ones)."""
    version_hint = int(time.time_ns())
    return [
        OutboxEntry(id=f"{version_hint}.{index}", command=command)
        for index, command in enumerate(step.entries)
    ]


def _with_routes(step: Step, routes: Sequence[str]) -> Step:
    if not routes:
        return step
    return replace(step, routes=tuple(dict.fromkeys((*routes, *step.routes))))


__all__ = [
    "BadCallback",
    "Dispatcher",
    "HttpResult",
    "NoSuchFlow",
    "Outcome",
    "Overloaded",
    "Routed",
    "RuntimeAdapter",
    "Step",
    "host_allowed",
]
