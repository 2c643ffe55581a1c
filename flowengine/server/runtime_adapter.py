"""The server's side of the runtime facade: turns ``flowengine.runtime.engine.Engine``'s typed events, sessions
and commands into the plain data the dispatcher stores and executes (:class:`RuntimeAdapter`).

* callbacks are parsed with ``flowengine.catapult.events.parse_callback``; their route key is
  ``Engine.session_key``;
* a session is stored as ``Session.to_bytes()`` (JSON text, encoded once per event and kept as it is by
  the stores) and restored with ``Session.from_bytes``;
* REST commands become ``{"kind": "rest", ...}`` outbox entries built from ``command.request(user_id)``; a
  creation without a ``callbackUrl`` gets this server's callback URL (with the callback credentials), so the
  events of every call, conference and message we create come back here;
* ``HttpCall`` becomes a ``{"kind": "http", ...}`` entry; ``StartTimer``/``CancelTimer`` become the store's
  timers; ``Log`` lines are logged by the dispatcher; ``EndSession`` ends the session;
* outcomes return as ``CommandResult``/``HttpResult``/``TimerFired``/``Cancel`` events.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import uuid
from collections.abc import Mapping, Sequence
from typing import cast
from urllib.parse import quote, urlsplit, urlunsplit

import orjson

from flowengine.catapult.events import CallbackEvent, UnknownEvent, parse_callback
from flowengine.config import ServeConfig
from flowengine.errors import CallbackParseError, CatapultError
from flowengine.flow.model import Flow
from flowengine.runtime import commands as cmd
from flowengine.runtime.engine import Engine
from flowengine.runtime.events import Cancel, CommandFailure, CommandResult, Event, TimerFired
from flowengine.runtime.events import HttpResult as RuntimeHttpResult
from flowengine.runtime.session import Session
from flowengine.server.dispatcher import (
    CONFERENCE_NAME_ROUTE,
    BadCallback,
    HttpResult,
    NoSuchFlow,
    Routed,
    Step,
)
from flowengine.typing import JSONObject, Seconds, SnapshotData

_CREATIONS_WITH_CALLBACKS = {
    "createCall": "voice",
    "transferCall": "voice",
    "createConference": "voice",
    "sendMessage": "messaging",
}


def callback_urls(public_url: str, auth: tuple[str, str] | None) -> dict[str, str]:
    """This server's callback URLs by kind, with ``user:password@`` when callback auth is on."""
    urls = {}
    for kind in ("voice", "messaging"):
        url = f"{public_url.rstrip('/')}/callbacks/{kind}"
        if auth is not None:
            parts = urlsplit(url)
            user, password = (quote(part, safe="") for part in auth)
            url = urlunsplit(parts._replace(netloc=f"{user}:{password}@{parts.netloc}"))
        urls[kind] = url
    return urls


def session_id(time: str, digest: str) -> str:
    """A session id: ``s-``, the digits of ``time`` (to the millisecond: ``2012-11-14T16:21:59.616Z`` gives
    ``20121114162159616``), ``-`` and 24 hex digits of ``digest``; ``s-`` and 32 of them without a time."""
    digits = "".join(char for char in time if char.isdigit())[:17]
    if len(digits) < 14:  # not even to the second: no time worth sorting by
        return f"s-{digest[:32]}"
    return f"s-{digits}-{digest[:24]}"


class EngineAdapter:
    """:class:`~flowengine.server.dispatcher.RuntimeAdapter` over the runtime's ``Engine``."""

    def __init__(
        self,
        flows: Mapping[str, Flow],
        config: ServeConfig,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._user_id = config.user_id
        public_url = config.public_url or f"http://{config.host}:{config.port}"
        self._callbacks = callback_urls(public_url, config.callback_auth)
        self._environ = dict(os.environ if environ is None else environ)
        self._next_id: str | None = None
        self._engine = Engine(
            flows, callback_url=self._callbacks["voice"], env=self._environ, new_id=self._make_id
        )
        self._flows = dict(flows)

    def _make_id(self) -> str:
        """Session ids: derived from the first event's route key for inbound sessions (so that instances
        receiving the same first callback at once contend for one session lock), random for executions.

        Both start with the time they began (the first callback's own ``time``, the same at every instance),
        so that the ids of new sessions sort together: a store's indexes by session id then take each new
        session on the same few pages instead of one page per session (with SQLite, half the pages a new
        call writes). See ``session_id``.
        """
        chosen, self._next_id = self._next_id, None
        if chosen:
            return chosen
        started = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d%H%M%S%f")
        return session_id(started, uuid.uuid4().hex)

    def replace_flows(self, flows: Mapping[str, Flow]) -> None:
        self._engine.replace_flows(flows)
        self._flows = dict(flows)

    # ------------------------------------------------------------------------------------ protocol

    def parse(self, data: Mapping[str, object]) -> Routed:
        try:
            event = parse_callback(data)
        except CallbackParseError as exc:
            raise BadCallback(str(exc)) from None
        call_id = getattr(event, "call_id", "") or ""
        if isinstance(event, UnknownEvent):
            return Routed(event, event.event_type, None, call_id)
        key = self._engine.session_key(event)
        return Routed(event, event.event_type, str(key) if key else None, call_id)

    def start(self, routed: Routed, now: Seconds) -> Step | None:
        assert isinstance(routed.event, CallbackEvent)
        if routed.route_key:
            # The same first callback gives the same id at every instance (they then contend for one lock);
            # a new conversation on an old conversation key gets a new id (its first message differs).
            seed = f"{routed.route_key}\n{routed.event!r}".encode()
            self._next_id = session_id(routed.event.time or "", hashlib.sha256(seed).hexdigest())
        try:
            started = self._engine.start(routed.event, now)
        finally:
            self._next_id = None
        if started is None:
            return None
        session, commands = started
        return self._step(session, commands)

    def start_outbound(self, flow: str, to: str, from_: str, variables: JSONObject, now: Seconds) -> Step:
        if flow not in self._flows:
            known = ", ".join(sorted(self._flows)) or "none"
            raise NoSuchFlow(f"no flow {flow!r} is loaded (loaded: {known})")
        session, commands = self._engine.start_outbound(flow, to, from_, variables, now)
        return self._step(session, commands)

    def handle(self, snapshot: SnapshotData, event: object, now: Seconds) -> Step:
        if isinstance(event, CommandResult):
            quick = _gather_started(snapshot, event, now)
            if quick is not None:
                return quick
        session = _restore(snapshot)
        known = _routes(session)  # committed with the snapshot: the step names only new ones
        commands = self._engine.handle(session, cast(Event, event), now)
        return self._step(session, commands, known)

    def timer_event(self, key: str) -> object:
        return TimerFired(key)

    def result_event(
        self, entry: JSONObject, resource_id: str | None, error: CatapultError | None
    ) -> object | None:
        command_id = entry.get("command_id")
        if not isinstance(command_id, str):
            return None
        if error is not None:
            return CommandResult(command_id, None, CommandFailure.from_exception(error))
        if not entry.get("result"):
            return None  # nothing waits for this outcome: skip a commit
        return CommandResult(command_id, resource_id, None)

    def http_event(self, entry: JSONObject, result: HttpResult) -> object:
        return RuntimeHttpResult(
            command_id=str(entry.get("command_id", "")),
            status=result.status,
            text=result.text,
            json=result.json,
            headers=dict(result.headers),
            error=result.error,
        )

    def cancel(self, snapshot: SnapshotData, now: Seconds) -> Step:
        return self.handle(snapshot, Cancel(), now)

    def describe(self, snapshot: SnapshotData) -> JSONObject:
        return self._engine.describe(_restore(snapshot))

    # -------------------------------------------------------------------------------------- helpers

    def _step(self, session: Session, commands: list[cmd.Command], known: Sequence[str] = ()) -> Step:
        """The step of ``session`` after ``commands``; ``known`` are route keys already committed."""
        entries: list[JSONObject] = []
        timers_set: dict[str, Seconds] = {}
        timers_cancel: list[str] = []
        logs: list[tuple[str, str]] = []
        ended = session.ended
        pending = session.pending or {}
        for command in commands:
            if isinstance(command, cmd.RestCommand):
                request = command.request(self._user_id)
                body: JSONObject | None = dict(request.json) if request.json is not None else None
                kind = _CREATIONS_WITH_CALLBACKS.get(command.operation)
                if kind is not None and body is not None and not body.get("callbackUrl"):
                    body["callbackUrl"] = self._callbacks[kind]
                entry: JSONObject = {
                    "kind": "rest",
                    "method": request.method,
                    "path": request.path,
                    "body": body,
                    "operation": command.operation,
                    "command_id": command.command_id,
                    "result": command.command_id in pending,
                }
                if isinstance(command, cmd.CreateConference):
                    entry["conference_name"] = command.name
                entries.append(entry)
            elif isinstance(command, cmd.HttpCall):
                entries.append(
                    {
                        "kind": "http",
                        "method": command.method,
                        "url": command.url,
                        "headers": dict(command.headers),
                        "json": command.json,
                        "body": command.body,
                        "timeout": command.timeout,
                        "command_id": command.command_id,
                    }
                )
            elif isinstance(command, cmd.LookupCaller):
                entries.append({"kind": "lookup", "number": command.number, "command_id": command.command_id})
            elif isinstance(command, cmd.StartTimer):
                timers_set[command.key] = command.at
            elif isinstance(command, cmd.CancelTimer):
                timers_set.pop(command.key, None)
                timers_cancel.append(command.key)
            elif isinstance(command, cmd.Log):
                logs.append((command.level, command.message))
            elif isinstance(command, cmd.EndSession):
                ended = True
        return Step(
            session_id=session.id,
            snapshot=session.to_bytes(),
            entries=entries,
            timers_set=timers_set,
            timers_cancel=timers_cancel,
            routes=[route for route in _routes(session) if route not in known] if known else _routes(session),
            ended=ended,
            logs=logs,
            flow=session.flow,
            state=session.state,
        )


def _restore(snapshot: SnapshotData) -> Session:
    return Session.from_json(snapshot) if isinstance(snapshot, dict) else Session.from_bytes(snapshot)


def _gather_started(stored: SnapshotData, result: CommandResult, now: Seconds) -> Step | None:
    """The step of a gather's id coming back from the API, made on the snapshot itself; None for any
    other result (those go through the engine).

    About half the callbacks of a menu-driven flow create a gather, and the engine then only records the
    new id beside the gather it waits for (``Engine`` ``on_result``). Doing that here spares restoring the
    session and saving it again; ``tests/server/test_runtime_adapter.py`` checks both give the same step.
    """
    if result.error is not None or not result.resource_id:
        return None
    snapshot = stored if isinstance(stored, dict) else orjson.loads(stored)
    if not isinstance(snapshot, dict) or snapshot.get("ended"):
        return None
    pending = snapshot.get("pending")
    entry = pending.get(result.command_id) if isinstance(pending, dict) else None
    if not isinstance(entry, list) or len(entry) < 3 or entry[0] != "gather":
        return None
    assert isinstance(pending, dict)
    updated = dict(snapshot)
    updated["pending"] = {**pending, result.command_id: ["gather", entry[1], result.resource_id, *entry[3:]]}
    updated["updated_at"] = now
    return Step(
        session_id=str(snapshot["id"]),
        snapshot=orjson.dumps(updated),
        flow=str(snapshot["flow"]),
        state=str(snapshot["state"]),
    )


def _routes(session: Session) -> list[str]:
    """The session's route keys, plus ``conference-name:<name>`` once it is in a conference, so that other
    sessions joining a conference of that name find its id (see the dispatcher)."""
    routes = session.route_keys()
    conference = session.conference
    if conference and conference.get("name") and conference.get("id"):
        routes.append(f"{CONFERENCE_NAME_ROUTE}{conference['name']}")
    return routes
