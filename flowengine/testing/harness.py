"""The in-process telephone exchange scenarios run on: the simulator, the runtime, and a small executor.

One :class:`Harness` joins, in one event loop and without sockets:

- the simulator (``flowengine.sim.Simulator``) on a ``VirtualClock``, whose callbacks are handed straight
  to the runtime instead of being POSTed (:class:`_InProcessCallbacks`);
- the runtime, through the server's ``RuntimeAdapter`` protocol (``flowengine.server.dispatcher``): the same
  JSON-level seam ``flowengine serve`` uses, so a scenario exercises the very snapshots and outbox entries the
  server stores;
- an executor that plays the outbox the way the server's dispatcher does (in order, results fed back, the rest
  of a batch dropped after a failure), sending REST entries to the simulator's route table, answering the
  flow's ``http`` actions from the scenario's canned responses, and putting session timers on the simulator's
  virtual clock, so speech, gathers, timers and HTTP delays share one timeline.

Everything the flow does that a scenario can expect (transfers, dials, bridges, messages...) is recorded as an
:class:`Observation`; what the caller hears comes from the simulator's transcript.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, TypeAlias, cast

import orjson

from flowengine.errors import CatapultAPIError, CatapultError
from flowengine.server.dispatcher import BadCallback, HttpResult, RuntimeAdapter, Step
from flowengine.sim.callbacks import CallbackDispatcher, Delivery, Target
from flowengine.sim.clock import Timer, VirtualClock
from flowengine.sim.config import SimConfig
from flowengine.sim.problems import ApiProblem
from flowengine.sim.resources import ROUTES
from flowengine.sim.rest import ApiRequest, Reply, Route
from flowengine.sim.simulator import Simulator
from flowengine.testing.record import CallRecorder
from flowengine.testing.scenario import CannedResponse, Phone
from flowengine.typing import JSON, JSONObject, Seconds, SnapshotData

USER_ID = "u-scenario"
"""The simulated account every scenario runs on."""

CALLBACK_URL = "http://flowengine.test/callbacks"
"""Where the simulator thinks it sends callbacks; in a harness they never leave the process."""

ObservationKind: TypeAlias = Literal["transfer", "dial", "bridge", "conference", "recording", "sms", "http"]


@dataclass(frozen=True, slots=True)
class Observation:
    """Something the flow did that a scenario can expect, at a virtual time."""

    kind: ObservationKind
    time: Seconds
    text: str
    data: JSONObject = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Visit:
    """One event handled by a session: the state before and after, and the event's API type."""

    session_id: str
    flow: str
    before: str
    after: str
    event_type: str
    data: Mapping[str, object] = field(default_factory=dict)


@dataclass(slots=True)
class _Session:
    snapshot: SnapshotData
    flow: str
    state: str
    ended: bool = False
    timers: dict[str, Timer] = field(default_factory=dict)


class _InProcessCallbacks(CallbackDispatcher):
    """The simulator's callback dispatcher, delivering to the harness instead of over HTTP.

    Events queue in one FIFO (which keeps every call's events in order) and are handled when the simulator
    settles, exactly as the real dispatcher would deliver them one after another.
    """

    def __init__(self, now: Callable[[], Seconds], deliver: Callable[[JSONObject], None]) -> None:
        super().__init__(now)
        self._handler = deliver
        self._pending: deque[Delivery] = deque()

    def send(self, key: str, target: Target, event: JSONObject) -> Delivery:
        delivery = Delivery(len(self.deliveries) + 1, key, event, target, self._now())
        self.deliveries.append(delivery)
        if not target.url:
            delivery.status = "skipped"
        else:
            self._pending.append(delivery)
        return delivery

    async def idle(self) -> None:
        while self._pending:
            delivery = self._pending.popleft()
            self._handler(delivery.event)
            delivery.status = "delivered"

    async def close(self) -> None:
        self._pending.clear()


def _compile_route(route: Route) -> tuple[re.Pattern[str], Route]:
    pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(route.path))
    return re.compile(pattern + r"\Z"), route


_ROUTES = [_compile_route(route) for route in ROUTES]
_USER_PREFIX = re.compile(r"\A(?:/v1)?/users/[^/]+(?=/)")


class Harness:
    """One scenario's world. Build it, ``await setup()``, drive it, read what happened.

    Args:
        runtime: the runtime, behind the server's adapter protocol.
        numbers: the account's numbers (the flow's) to route to the application.
        canned: answers for the flow's HTTP requests.
        phones: how dialled numbers behave.
        transcription: what recordings transcribe to.
        transcription_seconds: how long transcribing takes (None: the simulator's default).
        recorder: records every callback and the commands it led to, as ``serve --record`` does.
    """

    def __init__(
        self,
        runtime: RuntimeAdapter,
        *,
        numbers: Sequence[str],
        canned: Sequence[CannedResponse] = (),
        phones: Mapping[str, Phone] | None = None,
        transcription: str = "",
        transcription_seconds: Seconds | None = None,
        recorder: CallRecorder | None = None,
    ) -> None:
        self.runtime = runtime
        self.recorder = recorder
        self._executed: list[JSONObject] = []
        self.clock = VirtualClock()
        config = SimConfig(user_id=USER_ID)
        if transcription_seconds is not None:
            config = replace(config, transcription_seconds=transcription_seconds)
        self.sim = Simulator(config, self.clock)
        self.sim.dispatcher = _InProcessCallbacks(self.clock.now, self._on_callback)
        self.numbers = list(numbers)
        self.canned = list(canned)
        self.sessions: dict[str, _Session] = {}
        self.routes: dict[str, str] = {}
        self.observations: list[Observation] = []
        self.visits: list[Visit] = []
        self.problems: list[str] = []
        """Things that went wrong outside the flow's control (no canned answer, a runtime crash)."""
        self.http_requests: list[JSONObject] = []
        self._work: deque[Callable[[], None]] = deque()
        self._busy = False
        for number, phone in (phones or {}).items():
            self.set_phone(number, phone)
        if transcription:
            self.sim.set_transcription(None, transcription)

    # ----------------------------------------------------------------------------------- set up, drive

    async def setup(self) -> None:
        """Create the application and put the flow's numbers on it."""
        reply = self.rest(
            "POST",
            "/applications",
            {
                "name": "flowengine-test",
                "incomingCallUrl": f"{CALLBACK_URL}/voice",
                "incomingMessageUrl": f"{CALLBACK_URL}/messages",
                "autoAnswer": False,
            },
        )
        application_id = _location_id(reply)
        for number in self.numbers:
            self.rest("POST", "/phoneNumbers", {"number": number, "applicationId": application_id})

    def set_phone(self, number: str, phone: Phone) -> None:
        self.sim.set_behaviour(number, phone.mode, phone.after or None, phone.hangup_after)

    async def settle(self) -> None:
        """Run everything due now (callbacks, the runtime's work, the sim's answers) until quiet."""
        await self.clock.advance(0, self.sim.settle)

    async def advance(self, seconds: Seconds) -> None:
        await self.clock.advance(seconds, self.sim.settle)

    def next_due(self) -> Seconds | None:
        return self.clock.next_due()

    async def close(self) -> None:
        await self.sim.close()

    def start_outbound(self, flow: str, to: str, from_: str, variables: JSONObject) -> None:
        """Start an execution of ``flow`` calling (or texting) ``to``."""
        step = self.runtime.start_outbound(flow, to, from_, variables, self.clock.now())
        self._adopt(step, routes=(), event_type="execution", data={})

    # ------------------------------------------------------------------------------------ reading

    def first_session(self) -> _Session | None:
        return next(iter(self.sessions.values()), None)

    def current_state(self) -> str | None:
        session = self.first_session()
        return None if session is None else session.state

    def all_ended(self) -> bool:
        return bool(self.sessions) and all(s.ended for s in self.sessions.values())

    # ----------------------------------------------------------------------------------- callbacks

    def _on_callback(self, event: JSONObject) -> None:
        self._run(lambda: self._callback(event))

    def _run(self, job: Callable[[], None]) -> None:
        """Run ``job`` now, or after the current one (jobs never nest: one event at a time)."""
        self._work.append(job)
        if self._busy:
            return
        self._busy = True
        try:
            while self._work:
                task = self._work.popleft()
                try:
                    task()
                except Exception as exc:  # a crash in the runtime fails the scenario, not the runner
                    self.problems.append(f"the runtime raised {type(exc).__name__}: {exc}")
        finally:
            self._busy = False

    def _callback(self, data: JSONObject) -> None:
        try:
            routed = self.runtime.parse(data)
        except BadCallback as exc:
            self.problems.append(f"the runtime refused a callback from the simulator: {exc}")
            return
        key = routed.route_key
        if key is None:
            return
        self._executed = []
        session_id = self.routes.get(key)
        if session_id is None:
            started = self.runtime.start(routed, self.clock.now())
            if started is None:
                return
            self._adopt(started, routes=(key,), event_type=routed.event_type, data=data)
            step = started
        else:
            session = self.sessions[session_id]
            if session.ended:
                return
            step = self.runtime.handle(session.snapshot, routed.event, self.clock.now())
            self._apply(step, routed.event_type, data)
        if self.recorder is not None:
            self.recorder.record(
                step.session_id, data, at=self.clock.now(), flow=step.flow, commands=list(self._executed)
            )

    def _adopt(
        self, step: Step, *, routes: Sequence[str], event_type: str, data: Mapping[str, object]
    ) -> None:
        session = _Session(step.snapshot, step.flow, "")
        self.sessions[step.session_id] = session
        for key in routes:
            self.routes[key] = step.session_id
        self._apply(step, event_type, data)

    def _apply(self, step: Step, event_type: str, data: Mapping[str, object]) -> None:
        session = self.sessions[step.session_id]
        self.visits.append(Visit(step.session_id, step.flow, session.state, step.state, event_type, data))
        session.snapshot = step.snapshot
        session.state = step.state
        session.flow = step.flow or session.flow
        for key in step.routes:
            self.routes[key] = step.session_id
        for key in step.timers_cancel:
            timer = session.timers.pop(key, None)
            if timer is not None:
                timer.cancel()
        for key, due in step.timers_set.items():
            old = session.timers.pop(key, None)
            if old is not None:
                old.cancel()
            session.timers[key] = self.clock.call_at(due, self._timer_job(step.session_id, key))
        if step.ended:
            session.ended = True
            for timer in session.timers.values():
                timer.cancel()
            session.timers.clear()
        self._execute(step.session_id, list(step.entries))

    def _timer_job(self, session_id: str, key: str) -> Callable[[], None]:
        def fire() -> None:
            session = self.sessions[session_id]
            session.timers.pop(key, None)
            if session.ended:
                return
            event = self.runtime.timer_event(key)
            self._run(lambda: self._feed(session_id, event, "timer", {"timer": key}))

        return fire

    def _feed(self, session_id: str, event: object, event_type: str, data: Mapping[str, object]) -> None:
        session = self.sessions[session_id]
        step = self.runtime.handle(session.snapshot, event, self.clock.now())
        self._apply(step, event_type, data)

    # ------------------------------------------------------------------------------------ executing

    def _execute(self, session_id: str, entries: list[JSONObject]) -> None:
        queue = deque(entries)
        while queue:
            entry = queue.popleft()
            kind = entry.get("kind")
            if kind == "rest":
                feedback, failed = self._run_rest(entry)
                if failed:
                    queue.clear()
                if feedback is not None:
                    self._feed(session_id, feedback, "result", {"operation": entry.get("operation")})
            elif kind == "http":
                self._run_http(session_id, entry)
            elif kind == "lookup":
                self._run_lookup(session_id, entry)
            else:
                self.problems.append(f"the runtime produced an outbox entry of unknown kind {kind!r}")

    def rest(self, method: str, path: str, body: JSON) -> Reply:
        """Call the simulator's REST API in-process.

        Raises:
            ApiProblem: the simulator's error answer.
        """
        relative = _USER_PREFIX.sub("", path, count=1)
        for pattern, route in _ROUTES:
            if route.method != method.upper():
                continue
            match = pattern.match(relative)
            if match is not None:
                request = ApiRequest(method.upper(), relative, match.groupdict(), {}, body)
                return route.handler(self.sim, request)
        raise ApiProblem(404, "not-found", "no-such-route", f"{method} {path} is not an operation of the API")

    def _run_rest(self, entry: JSONObject) -> tuple[object | None, bool]:
        executed = dict(entry)
        self._executed.append(executed)
        method = str(entry.get("method", "POST"))
        path = str(entry.get("path", ""))
        body = entry.get("body")
        self._observe_rest(method, _USER_PREFIX.sub("", path, count=1), body)
        try:
            reply = self.rest(method, path, body)
        except ApiProblem as problem:
            error: CatapultError = CatapultAPIError(
                status=problem.status,
                method=method,
                url=path,
                category=problem.category,
                code=problem.code,
                message=problem.message,
                details=problem.details,
            )
            return self.runtime.result_event(entry, None, error), True
        resource = _location_id(reply) or None
        if resource is not None:
            executed["resource_id"] = resource
        return self.runtime.result_event(entry, resource, None), False

    def _run_lookup(self, session_id: str, entry: JSONObject) -> None:
        """A ``lookup_caller``: the simulator's CNAM table answers, in-process."""
        from flowengine.sim.resources.number_info import get_number_info

        number = str(entry.get("number", ""))
        self._executed.append(dict(entry))
        path = f"/phoneNumbers/numberInfo/{number}"
        try:
            reply = get_number_info(self.sim, ApiRequest("GET", path, {"number": number}, {}, None))
            result = HttpResult(200, json=reply.body)
        except ApiProblem as problem:
            result = HttpResult(problem.status, error=f"{problem.code}: {problem.message}")
        self._feed(session_id, self.runtime.http_event(entry, result), "lookup", {"number": number})

    def _run_http(self, session_id: str, entry: JSONObject) -> None:
        method = str(entry.get("method", "GET")).upper()
        url = str(entry.get("url", ""))
        self.http_requests.append(entry)
        self._executed.append(dict(entry))
        self._observe("http", f"{method} {url}", {"method": method, "url": url, "json": entry.get("json")})
        canned = next((c for c in self.canned if c.matches(method, url)), None)
        if canned is None:
            self.problems.append(f"the flow requested {method} {url} and no canned `http` answer matches it")
            result = HttpResult(0, error="no canned answer in the scenario")
        elif canned.fail is not None:
            result = HttpResult(0, error=canned.fail)
        else:
            text = canned.body
            if canned.has_json:
                text = orjson.dumps(canned.json).decode()
            result = HttpResult(
                canned.status,
                text=text,
                json=canned.json if canned.has_json else None,
                headers=dict(canned.headers),
            )
        event = self.runtime.http_event(entry, result)
        delay = canned.delay if canned is not None else 0.0
        if delay > 0:
            self.clock.call_later(delay, lambda: self._run(lambda: self._feed(session_id, event, "http", {})))
        else:
            self._feed(session_id, event, "http", {})

    # --------------------------------------------------------------------------------- observations

    def _observe(self, kind: ObservationKind, text: str, data: JSONObject) -> None:
        self.observations.append(Observation(kind, self.clock.now(), text, data))

    def _observe_rest(self, method: str, path: str, body: JSON) -> None:
        if method.upper() != "POST":
            return
        parts = path.strip("/").split("/")
        fields = body if isinstance(body, dict) else {}
        if parts == ["calls"]:
            to = str(fields.get("to", ""))
            self._observe("dial", to, {"to": to, "from": fields.get("from")})
        elif len(parts) == 2 and parts[0] == "calls":
            if fields.get("state") == "transferring":
                to = str(fields.get("transferTo", ""))
                self._observe("transfer", to, {"to": to, "callId": parts[1]})
            if fields.get("recordingEnabled") in (True, "true"):
                self._observe("recording", parts[1], {"callId": parts[1]})
        elif parts[0] == "bridges" and isinstance(fields.get("callIds"), list):
            ids = [str(i) for i in cast(list[JSON], fields["callIds"])]
            numbers = [self._number_of(i) for i in ids]
            self._observe(
                "bridge", " ".join(numbers), {"callIds": cast(JSON, ids), "numbers": cast(JSON, numbers)}
            )
        elif len(parts) == 3 and parts[0] == "conferences" and parts[2] == "members":
            call_id = str(fields.get("callId", ""))
            self._observe("conference", parts[1], {"conferenceId": parts[1], "callId": call_id})
        elif parts == ["messages"]:
            for message in body if isinstance(body, list) else [fields]:
                if isinstance(message, dict):
                    media = message.get("media")
                    self._observe(
                        "sms",
                        str(message.get("text", "")),
                        {"to": message.get("to"), "from": message.get("from"), "media": media or []},
                    )

    def _number_of(self, call_id: str) -> str:
        call = self.sim.world.calls.get(call_id)
        if call is None:
            return call_id
        return call.to if call.direction == "out" else call.from_


def _location_id(reply: Reply) -> str:
    location = reply.headers.get("Location", "")
    return location.rstrip("/").rsplit("/", 1)[-1] if location else ""
