"""The engine: the one facade the server drives. Pure and synchronous: events in, commands out.

``Engine`` holds the compiled flows (one per version, keyed by content hash) and runs sessions:

- :meth:`Engine.session_key` says how to find the session of a callback (tag, call id, conversation...);
- :meth:`Engine.start` starts a session for an inbound call or message on a flow's number;
- :meth:`Engine.start_outbound` starts an execution (an outbound call or conversation);
- :meth:`Engine.handle` feeds one event (callback or engine event) to a session and returns the commands.

``handle`` never raises for an unexpected event: it returns ``[]`` and notes it in the session's history.
See ``docs/architecture.md`` for the rules (prompt sequencing, hangups, errors, timers, messaging).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from flowengine.catapult.events import (
    AnswerEvent,
    CallbackEvent,
    ConferenceEvent,
    ConferenceMemberEvent,
    ConferencePlaybackEvent,
    ConferenceSpeakEvent,
    DtmfEvent,
    GatherEvent,
    HangupEvent,
    IncomingCallEvent,
    MessageEvent,
    PlaybackEvent,
    RecordingEvent,
    SpeakEvent,
    TimeoutEvent,
    TranscriptionEvent,
    UnknownEvent,
)
from flowengine.errors import TemplateError
from flowengine.flow import model, templates, vocabulary
from flowengine.flow.compiler import CompiledFlow, Trial, compile_flow, flow_hash
from flowengine.runtime import commands as cmd
from flowengine.runtime.events import Cancel, CommandResult, Event, HttpResult, TimerFired
from flowengine.runtime.session import TAG_SEPARATOR, Session, session_of_tag
from flowengine.typing import JSON, JSONObject, Seconds

MAX_STEPS = 256
"""The most actions and transitions one event may cause (a loop guard)."""

DRAIN_SECONDS = 600.0
"""How long a session whose caller hung up waits for its recording, transcription and HTTP results."""

_LIVE = ("ringing", "dialling", "up")

TRANSFER_ROLE = "transfer-to"
"""The role of the new call a ``transfer`` creates (a role a flow cannot name: it has a hyphen)."""


@dataclass(frozen=True, slots=True)
class RouteKey:
    """How to find a session: ``kind`` is ``session`` (from our tag), ``call``, ``conversation``
    (``<our number>|<their number>``), ``recording`` or ``conference``. ``str()`` gives ``kind:value``,
    the form :meth:`Session.route_keys` lists."""

    kind: str
    value: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"


class Engine:
    """Compiled flows and the rules that run sessions on them.

    Args:
        flows: flow name -> flow.
        callback_url: where the API should send the events of calls, conferences and messages we create.
        env: the environment (e.g. ``os.environ``); a flow's templates see, as ``env``, only the names its own
            ``env`` list allows.
        new_id: makes session ids (default: random UUIDs); a seam for tests.
        receipts: ``receiptRequested`` for messages we send.
    """

    def __init__(
        self,
        flows: Mapping[str, model.Flow],
        *,
        callback_url: str | None = None,
        env: Mapping[str, str] | None = None,
        new_id: Callable[[], str] | None = None,
        receipts: str = "all",
    ) -> None:
        self.callback_url = callback_url
        self.env: dict[str, str] = dict(env or {})
        self._new_id = new_id or (lambda: "s-" + uuid.uuid4().hex)
        self.receipts = receipts
        self._compiled: dict[str, CompiledFlow] = {}
        self._env_views: dict[str, dict[str, str]] = {}
        self._flows: dict[str, CompiledFlow] = {}
        self._numbers: dict[tuple[str, str], str] = {}
        self.replace_flows(flows)

    # -------------------------------------------------------------------------------- flows

    def replace_flows(self, flows: Mapping[str, model.Flow]) -> None:
        """Use ``flows`` for new sessions. Live sessions keep the version they started with.

        Raises:
            FlowCompileError: when a flow cannot be compiled (nothing is replaced then).
        """
        compiled: dict[str, CompiledFlow] = {}
        for name, flow in flows.items():
            key = flow_hash(flow)
            compiled[name] = self._compiled.get(key) or compile_flow(flow)
        numbers: dict[tuple[str, str], str] = {}
        for name, item in compiled.items():
            for number in item.flow.numbers:
                numbers[(item.flow.kind, number)] = name
        for item in compiled.values():
            self._compiled[item.source_hash] = item
        self._flows = compiled
        self._numbers = numbers

    def env_for(self, item: CompiledFlow) -> dict[str, str]:
        """The ``env`` a flow's templates see: only the names the flow lists in its ``env`` allow-list."""
        cached = self._env_views.get(item.source_hash)
        if cached is None:
            cached = {name: self.env[name] for name in item.flow.env if name in self.env}
            self._env_views[item.source_hash] = cached
        return cached

    @property
    def flows(self) -> Mapping[str, model.Flow]:
        return {name: item.flow for name, item in self._flows.items()}

    def _compiled_for(self, session: Session) -> CompiledFlow | None:
        item = self._compiled.get(session.flow_hash)
        if item is not None:
            return item
        current = self._flows.get(session.flow)
        if current is not None:
            session.note(session.updated_at, f"flow version {session.flow_hash} gone; using the current one")
            session.flow_hash = current.source_hash
        return current

    # ------------------------------------------------------------------------------ routing

    def session_key(self, event: CallbackEvent) -> RouteKey | None:
        """The key of the session an event belongs to; None for an event we cannot route."""
        session_id = session_of_tag(event.tag)
        if session_id is not None:
            return RouteKey("session", session_id)
        if isinstance(event, MessageEvent):
            ours, theirs = (event.to, event.from_) if event.inbound else (event.from_, event.to)
            return RouteKey("conversation", f"{ours}|{theirs}")
        if isinstance(event, TranscriptionEvent):
            return RouteKey("recording", event.recording_id)
        if isinstance(event, ConferenceEvent | ConferencePlaybackEvent | ConferenceSpeakEvent):
            return RouteKey("conference", event.conference_id)
        call_id = getattr(event, "call_id", None)
        if isinstance(call_id, str) and call_id:
            return RouteKey("call", call_id)
        return None

    def flow_for_number(self, kind: str, number: str) -> str | None:
        """The flow that answers ``number`` for ``kind`` (voice or messaging) events."""
        return self._numbers.get((kind, number))

    # ----------------------------------------------------------------------------- sessions

    def _new_session(self, item: CompiledFlow, now: Seconds, our: str, their: str) -> Session:
        flow = item.flow
        return Session(
            id=self._new_id(),
            flow=flow.name,
            flow_hash=item.source_hash,
            kind=flow.kind,
            state=flow.initial,
            vars=dict(templates.render_value(dict(flow.vars), {})) if flow.vars else {},
            our=our,
            their=their,
            started_at=now,
            updated_at=now,
        )

    def start(self, event: CallbackEvent, now: Seconds) -> tuple[Session, list[cmd.Command]] | None:
        """Start a session for an ``incomingcall`` or an inbound ``sms``/``mms`` on a flow's number.

        Returns None when the event does not start a session (not inbound, or no flow has the number).
        """
        if isinstance(event, IncomingCallEvent):
            name = self._numbers.get(("voice", event.to))
            if name is None:
                return None
            item = self._flows[name]
            session = self._new_session(item, now, event.to, event.from_)
            session.set_leg(model.CALLER, event.call_id, "ringing")
            run = _Run(self, session, item, now)
            run.note(f"incoming call {event.call_id} from {event.from_}")
            run.enter_initial()
            return session, run.finish()
        if isinstance(event, MessageEvent) and event.inbound:
            name = self._numbers.get(("messaging", event.to))
            if name is None:
                return None
            item = self._flows[name]
            session = self._new_session(item, now, event.to, event.from_)
            run = _Run(self, session, item, now)
            run.note(f"conversation with {event.from_}")
            run.enter_initial()
            run.on_callback(event)
            return session, run.finish()
        return None

    def start_outbound(
        self, flow: str, to: str, from_: str, vars: Mapping[str, JSON], now: Seconds
    ) -> tuple[Session, list[cmd.Command]]:
        """Start an execution of ``flow``: call ``to`` from ``from_`` (voice) or open a conversation
        (messaging). ``vars`` override the flow's defaults.

        Raises:
            KeyError: no flow has that name.
            ValueError: ``to`` or ``from_`` is empty.
        """
        item = self._flows[flow]
        if not to or not from_:
            raise ValueError("an execution needs both 'to' and 'from'")
        session = self._new_session(item, now, from_, to)
        session.vars.update(dict(vars))
        run = _Run(self, session, item, now)
        if item.flow.kind == "voice":
            command_id = session.next_id("c")
            session.set_leg(model.CALLER, "", "dialling")
            run.expect(command_id, "dial", model.CALLER)
            run.emit(
                cmd.CreateCall(
                    command_id=command_id,
                    from_=from_,
                    to=to,
                    call_timeout=_seconds(item.flow.defaults.dial_timeout),
                    callback_url=self.callback_url,
                    tag=_call_tag(session, model.CALLER),
                )
            )
            run.note(f"calling {to}")
        else:
            run.note(f"conversation with {to}")
        run.enter_initial()
        return session, run.finish()

    def handle(self, session: Session, event: Event | object, now: Seconds) -> list[cmd.Command]:
        """Feed one event to ``session``; returns the commands to execute, in order. Never raises for an
        unexpected event: it returns ``[]`` and notes it in the history."""
        if session.ended:
            session.note(now, f"event {_describe(event)} after the end ignored")
            return []
        item = self._compiled_for(session)
        if item is None:
            session.note(now, f"flow {session.flow!r} is not loaded; event {_describe(event)} ignored")
            return []
        run = _Run(self, session, item, now)
        if isinstance(event, CallbackEvent):
            run.on_callback(event)
        elif isinstance(event, TimerFired):
            run.on_timer(event.key)
        elif isinstance(event, CommandResult):
            run.on_result(event)
        elif isinstance(event, HttpResult):
            run.on_http(event)
        elif isinstance(event, Cancel):
            run.note(f"cancelled: {event.reason}")
            run.end(event.reason)
        else:
            run.note(f"unexpected event {_describe(event)}")
        return run.finish()

    def cancel(self, session: Session, now: Seconds) -> list[cmd.Command]:
        """End ``session`` at an operator's request (hangs up its legs)."""
        return self.handle(session, Cancel(), now)

    def describe(self, session: Session) -> JSONObject:
        """The session as the executions API shows it."""
        return {
            "id": session.id,
            "flow": session.flow,
            "flow_hash": session.flow_hash,
            "state": session.state,
            "variables": dict(session.vars),
            "legs": dict(session.legs or {}),
            "ended": session.ended,
            "end_reason": session.end_reason,
            "steps": list(session.history or []),
        }


# ---------------------------------------------------------------------------------------- helpers


def _seconds(value: float | None) -> int | None:
    return None if value is None else max(1, round(value))


def _call_tag(session: Session, role: str) -> str:
    return f"{session.id}{TAG_SEPARATOR}call:{role}"


def _tag_role(tag: str | None) -> str | None:
    if tag and f"{TAG_SEPARATOR}call:" in tag:
        return tag.rsplit(f"{TAG_SEPARATOR}call:", 1)[1]
    return None


EventData = Mapping[str, Any] | Callable[[], Mapping[str, Any]]

_KEYS: dict[tuple[str | None, str], tuple[str, ...]] = {}


def _handler_keys(role: str | None, name: str) -> tuple[str, ...]:
    keys = _KEYS.get((role, name))
    if keys is None:
        if len(_KEYS) > 4096:
            _KEYS.clear()
        keys = _KEYS[(role, name)] = vocabulary.handler_keys(role, name)
    return keys


def _describe(event: object) -> str:
    if isinstance(event, CallbackEvent):
        return event.event_type
    return type(event).__name__


_AUDIO = (model.Speak, model.Play)

_COMMITTED = 1
"""Marks an action frame (``["A", address, index, 1, event]``) of a transition with a target: it runs to its
end, even when the target takes another transition meanwhile. ``event`` is what the actions see as ``event``
(the event that took the transition), however long they wait for prompts."""


def _is_committed(frame: list[Any]) -> bool:
    kind = frame[0]
    if kind == "A":
        return len(frame) > 3 and frame[3] == _COMMITTED
    return kind in ("E", "S", "X")


class _Run:
    """Handling of one event for one session: collects commands and applies the rules."""

    def __init__(self, engine: Engine, session: Session, item: CompiledFlow, now: Seconds) -> None:
        self.engine = engine
        self.session = session
        self.item = item
        self.flow = item.flow
        self.now = now
        self.commands: list[cmd.Command] = []
        self.steps = 0
        self.errors = 0
        self.event_data: dict[str, Any] = {}
        self.error_data: dict[str, Any] | None = None
        self._ctx: dict[str, Any] | None = None
        session.updated_at = now

    # ---------------------------------------------------------------------------- plumbing

    def note(self, text: str) -> None:
        self.session.note(self.now, text)

    def finish(self) -> list[cmd.Command]:
        return self.commands

    def emit(self, command: cmd.Command) -> bool:
        """Queue a command, unless it acts on a leg that is gone (then note it and drop it)."""
        call_id = cmd.call_id_of(command)
        if call_id is not None:
            role = self.session.role_of_call(call_id)
            if role is not None and self.session.status_of(role) not in _LIVE:
                self.note(f"dropped {type(command).__name__} for {role} (call is over)")
                return False
        self.commands.append(command)
        return True

    def expect(self, command_id: str, what: str, *detail: str) -> None:
        if self.session.pending is None:
            self.session.pending = {}
        self.session.pending[command_id] = [what, *detail]

    def context(self) -> dict[str, Any]:
        """The template context (cached until :meth:`changed` says something it shows has changed)."""
        if self._ctx is not None:
            return self._ctx
        session = self.session
        variables = session.vars
        unset = [name for name in self.item.assigned if name not in variables]
        if unset:
            # A variable the flow sets somewhere but has not set yet reads as None (it renders as "").
            variables = {**dict.fromkeys(unset), **variables}
        ctx: dict[str, Any] = dict(variables)
        ctx["vars"] = variables
        ctx["event"] = self.event_data
        ctx["error"] = self.error_data
        ctx["env"] = self.engine.env_for(self.item)
        ctx["legs"] = dict(session.legs or {})
        ctx["call"] = {"id": session.leg_call(model.CALLER), "from": session.their, "to": session.our}
        ctx["session"] = {"id": session.id, "flow": session.flow, "state": session.state}
        self._ctx = ctx
        return ctx

    def changed(self) -> None:
        """Variables, legs, the state or the event changed: rebuild the template context when next needed."""
        self._ctx = None

    def render(self, text: str) -> str:
        return templates.render(text, self.context())

    def render_opt(self, text: str | None) -> str | None:
        return None if text is None else self.render(text)

    def live_call(self, role: str) -> str | None:
        """The call id of a leg that is still up (or ringing), else None."""
        if self.session.status_of(role) in _LIVE:
            return self.session.leg_call(role)
        return None

    # ------------------------------------------------------------------------- transitions

    def enter_initial(self) -> None:
        self.session.program = [["E", self.flow.initial]]
        self.run_program()

    def dispatch(self, role: str | None, name: str, data: EventData) -> bool:
        """Hand a flow event to the handlers of the current state; returns whether one took it.

        ``data`` (what templates see as ``event``) may be a function, called only when a handler listens.
        """
        session = self.session
        if session.ended:
            return False
        keys = _handler_keys(None if role in (None, model.CALLER) else role, name)
        state = self.flow.states.get(session.state)
        menu_event = None
        if (
            state is not None
            and state.menu is not None
            and role in (None, model.CALLER)
            and name in ("gather.done", "gather.noinput")
        ):
            menu_event = name
        elif not self.item.handles(session.state, keys):
            return False
        self.event_data = dict(data() if callable(data) else data)
        self.event_data.setdefault("name", name if role in (None, model.CALLER) else f"{role}.{name}")
        self.changed()
        counters = session.counters or {}
        trial = Trial(
            self.context,
            digits=str(self.event_data.get("digits", "")),
            noinput=counters.get(f"{session.state}.noinput", 0),
            nomatch=counters.get(f"{session.state}.nomatch", 0),
        )
        choice = self.item.select(session.state, keys, trial, menu_event=menu_event)
        for text in trial.notes:
            self.note(text)
        if choice is None:
            return False
        label = self.event_data["name"]
        self.take(choice.kind, choice.address, choice.target, label)
        return True

    def take(self, kind: str, address: str | None, target: str | None, label: str) -> None:
        session = self.session
        self.steps += 1
        if self.steps > MAX_STEPS:
            self.note("too many steps for one event; ending the session")
            self.end("loop")
            return
        if kind in ("noinput", "nomatch"):
            if session.counters is None:
                session.counters = {}
            counter = f"{session.state}.{kind}"
            session.counters[counter] = session.counters.get(counter, 0) + 1
        if target is None:
            self.note(f"{label} (stay)")
            if address is not None:
                if session.program is None:
                    session.program = []
                session.program.insert(0, ["A", address, 0, 0, self.event_data])
        else:
            self.note(f"{label} -> {target}")
            self.leave()
            program = self.committed()
            if address is not None:
                program.append(["A", address, 0, _COMMITTED, self.event_data])
            session.program = program
            if target == model.END:
                # Ending is not a state: the session ends once the transition's actions have run.
                program.append(["E", target])
            else:
                # The target is entered at once, so the events that arrive while the transition's prompts
                # still play are handled by its handlers; its entry actions queue behind those prompts.
                self.enter(target)
        self.run_program()

    def committed(self) -> list[list[Any]]:
        """What of the program survives leaving the state: the rest of earlier transitions' actions (a
        transition's actions always run to their end, in order), an ending or an error's apology, and the
        wait for a prompt they started (so what follows never cuts it short, unless it loops). The left
        state's own entry actions, stays and retries are dropped."""
        program = self.session.program
        if not program:
            return []
        kept: list[list[Any]] = []
        for index, frame in enumerate(program):
            if frame[0] == "W":
                owner = program[index + 1] if index + 1 < len(program) else None
                if owner is not None and _is_committed(owner) and not (len(frame) > 2 and frame[2]):
                    kept.append(frame)
            elif _is_committed(frame):
                kept.append(frame)
        return kept

    def leave(self) -> None:
        """Leave the current state: cancel its timers and stop a gather in progress."""
        session = self.session
        if session.timers:
            for key in [k for k in session.timers if k.startswith("after:")]:
                del session.timers[key]
                self.emit(cmd.CancelTimer(key=key))
        for tag, entry in self.gathers():
            gather_id = entry[2]
            call_id = self.live_call(entry[1])
            if gather_id and call_id:
                self.emit(
                    cmd.StopGather(command_id=session.next_id("g"), call_id=call_id, gather_id=gather_id)
                )
            self.forget(tag)

    def gathers(self, role: str | None = None) -> list[tuple[str, list[str]]]:
        """Gathers in progress (of ``role``): (tag, ``["gather", role, gather id or "", into]``)."""
        pending = self.session.pending
        if not pending:
            return []
        return [
            (tag, entry)
            for tag, entry in pending.items()
            if entry[0] == "gather" and (role is None or entry[1] == role)
        ]

    def forget(self, command_id: str) -> None:
        pending = self.session.pending
        if pending is not None:
            pending.pop(command_id, None)
            if not pending:
                self.session.pending = None

    def enter(self, name: str) -> None:
        session = self.session
        if name == model.END:
            self.end("end")
            return
        state = self.flow.states.get(name)
        if state is None:
            self.note(f"unknown state {name!r}; ending")
            self.end("error")
            return
        previous = session.state
        session.state = name
        session.entries += 1
        self.changed()
        if state.menu is not None and previous != name and session.counters:
            session.counters.pop(f"{name}.noinput", None)
            session.counters.pop(f"{name}.nomatch", None)
        for number, timer in enumerate(state.after):
            key = f"after:{name}:{number}:{session.entries}"
            if session.timers is None:
                session.timers = {}
            at = self.now + timer.seconds
            session.timers[key] = at
            self.emit(cmd.StartTimer(key=key, at=at))
        program = session.program if session.program is not None else []
        if f"do:{name}" in self.item.actions:
            program.append(["A", f"do:{name}", 0, 0, self.event_data])
        if state.final:
            program.append(["F"])
        session.program = program

    def run_program(self) -> None:
        """Run queued actions until the queue is empty or waits for audio to finish."""
        session = self.session
        while session.program and not session.ended:
            frame = session.program[0]
            kind = frame[0]
            if kind == "W":
                if session.busy and frame[1] in session.busy.values():
                    return
                session.program.pop(0)
            elif kind == "E":
                session.program.pop(0)
                self.enter(frame[1])
            elif kind == "F":
                session.program.pop(0)
                self.finish_flow()
            elif kind == "X":
                session.program.pop(0)
                self.end(frame[1])
            elif kind == "S":
                if self.audio_busy(model.CALLER):
                    return
                session.program.pop(0)
                self.say(frame[1])
            else:
                actions = self.item.actions.get(frame[1], ())
                index = frame[2]
                if index >= len(actions):
                    session.program.pop(0)
                    continue
                action = actions[index]
                if self.must_wait(action):
                    return
                if len(frame) > 4:
                    self.restore_event(frame[4])
                frame[2] = index + 1
                self.steps += 1
                if self.steps > MAX_STEPS:
                    self.note("too many steps for one event; ending the session")
                    self.end("loop")
                    return
                try:
                    self.execute(action)
                except TemplateError as exc:
                    self.fail("template-error", str(exc), type(action).__name__)
                    return
        if session.program is not None and not session.program:
            session.program = None

    def restore_event(self, data: Any) -> None:
        """Let a queued action see the event that queued it (not the ``speak`` done that let it run)."""
        if data is self.event_data or not isinstance(data, dict) or data == self.event_data:
            return
        self.event_data = data
        if data.get("name") == "error":
            self.error_data = {key: data.get(key) for key in ("code", "message", "operation")}
        self.changed()

    def must_wait(self, action: model.ActionType) -> bool:
        if isinstance(action, _AUDIO):
            return self.audio_busy(action.leg)
        if isinstance(action, model.Gather) and action.prompt is not None:
            return self.audio_busy(action.leg)
        return False

    def audio_busy(self, role: str) -> bool:
        busy = self.session.busy
        return busy is not None and role in busy and self.live_call(role) is not None

    # --------------------------------------------------------------------------- actions

    def execute(self, action: model.ActionType) -> None:
        handler = _EXECUTORS.get(type(action))
        if handler is None:
            self.note(f"action {type(action).__name__} is not supported")
            return
        handler(self, action)

    def prompt_fields(self, prompt: model.Prompt) -> dict[str, Any]:
        defaults = self.flow.defaults
        text = self.render_opt(prompt.text)
        return {
            "sentence": text,
            "file_url": self.render_opt(prompt.url),
            "voice": (self.render_opt(prompt.voice) or defaults.voice) if text is not None else None,
            "gender": (prompt.gender or defaults.gender) if text is not None else None,
            "locale": (self.render_opt(prompt.locale) or defaults.locale) if text is not None else None,
        }

    def play(self, role: str, prompt: model.Prompt) -> None:
        call_id = self.live_call(role)
        if call_id is None:
            self.note(f"no live {role} leg to play to")
            return
        fields = self.prompt_fields(prompt)
        # The tag says what plays ("a": a sentence, "p": a file), so stop_audio can stop it later.
        tag = self.session.next_id("a" if fields["sentence"] is not None else "p")
        sent = self.emit(
            cmd.PlayAudio(
                command_id=tag,
                call_id=call_id,
                tag=tag,
                loop_enabled=prompt.loop,
                volume=prompt.volume,
                **fields,
            )
        )
        if sent:
            self.mark_busy(role, tag, loop=prompt.loop)

    def mark_busy(self, role: str, tag: str, *, loop: bool = False) -> None:
        """``role``'s leg plays the audio item ``tag``: what follows in the program waits for its end
        (``["W", tag]``; ``["W", tag, 1]`` for a loop, which a later transition never waits for)."""
        session = self.session
        if session.busy is None:
            session.busy = {}
        session.busy[role] = tag
        if session.program is None:
            session.program = []
        session.program.insert(0, ["W", tag, 1] if loop else ["W", tag])

    def say(self, text: str) -> None:
        if text:
            self.play(model.CALLER, model.Prompt(text=text))

    def finish_flow(self) -> None:
        """A final state's actions are done: return to the parent flow, or end the session."""
        session = self.session
        if session.stack:
            frame = session.stack.pop()
            if not session.stack:
                session.stack = None
            child_vars = dict(session.vars)
            session.flow = str(frame["flow"])
            session.flow_hash = str(frame["flow_hash"])
            session.state = str(frame["state"])
            parent_vars = frame["vars"]
            session.vars = dict(parent_vars) if isinstance(parent_vars, dict) else {}
            parent = self.engine._compiled.get(session.flow_hash)
            if parent is None:
                self.note(f"parent flow {session.flow!r} is gone; ending")
                self.end("error")
                return
            self.item, self.flow = parent, parent.flow
            self.changed()
            self.note(f"sub-flow done; back in {session.flow}")
            self.dispatch(None, "flow.done", {"vars": child_vars})
            return
        self.end("final")

    def end(self, reason: str) -> None:
        """End the session: cancel timers, hang up legs that are still up, and say so."""
        session = self.session
        if session.ended:
            return
        if session.timers:
            for key in list(session.timers):
                self.emit(cmd.CancelTimer(key=key))
        session.timers = None
        if session.legs:
            for role, call_id in session.legs.items():
                if call_id and session.status_of(role) in _LIVE:
                    self.emit(
                        cmd.UpdateCallState(
                            command_id=session.next_id("h"), call_id=call_id, state="completed"
                        )
                    )
                    session.set_status(role, "gone")
        session.program = None
        session.busy = None
        session.deferred = None
        session.ended = True
        session.end_reason = reason
        self.note(f"ended ({reason})")
        self.commands.append(cmd.EndSession(session_id=session.id, reason=reason))

    def fail(self, code: str, message: str, operation: str) -> None:
        """A REST operation or a template failed: the flow's ``error`` handler, or the safe default."""
        session = self.session
        self.errors += 1
        self.note(f"error {code}: {message}")
        session.program = None
        session.busy = None
        if self.errors > 3:
            self.end("error")
            return
        self.error_data = {"code": code, "message": message, "operation": operation}
        self.changed()
        if self.dispatch(None, "error", self.error_data):
            return
        text = self.flow.defaults.on_error
        if self.live_call(model.CALLER) is not None and self.flow.kind == "voice":
            session.program = [["S", text], ["X", "error"]] if text else [["X", "error"]]
            self.run_program()
        else:
            self.end("error")

    # ------------------------------------------------------------------------ callbacks

    def transfer_leg_event(self, event: CallbackEvent) -> bool:
        """An event of the call a transfer created: its hangup (or timeout) ends the session, others are
        noted. Known by the call id the transfer's result gave, or by the caller's tag, which that call
        inherits, on another call id."""
        session = self.session
        call_id = getattr(event, "call_id", None)
        if not isinstance(call_id, str) or not call_id:
            return False
        role = session.role_of_call(call_id)
        inherited = _tag_role(event.tag) == model.CALLER and call_id != session.leg_call(model.CALLER)
        if role is None and inherited and not session.leg_call(TRANSFER_ROLE):
            session.set_leg(TRANSFER_ROLE, call_id, "transferred")
            role = TRANSFER_ROLE
        if role != TRANSFER_ROLE:
            return False
        if isinstance(event, HangupEvent | TimeoutEvent):
            session.set_status(TRANSFER_ROLE, "gone")
            self.note(f"the transferred call ended ({event.event_type})")
            self.end("transferred")
        else:
            self.note(f"{event.event_type} of the transferred call")
        return True

    def role_for(self, event: CallbackEvent) -> str | None:
        session = self.session
        call_id = getattr(event, "call_id", None)
        role = session.role_of_call(call_id) if isinstance(call_id, str) else None
        if role is None:
            role = _tag_role(event.tag)
            if role is not None and isinstance(call_id, str) and session.legs is not None:
                if role in session.legs and not session.legs[role]:
                    session.legs[role] = call_id
                    self.changed()
                else:
                    role = None
        return role

    def on_callback(self, event: CallbackEvent) -> None:
        if self.session.status_of(model.CALLER) == "transferred" and self.transfer_leg_event(event):
            return
        handler = _CALLBACKS.get(type(event))
        if handler is None:
            self.note(f"ignored {event.event_type} event")
            return
        handler(self, event)

    def flow_event(self, role: str | None, name: str, data: EventData, *, quiet: bool = False) -> None:
        if not self.dispatch(role, name, data) and not quiet:
            label = name if role in (None, model.CALLER) else f"{role}.{name}"
            self.note(f"{label} (no handler)")

    def on_answer(self, event: AnswerEvent) -> None:
        role = self.role_for(event)
        if role is None:
            self.note(f"answer for unknown call {event.call_id}")
            return
        if self.session.status_of(role) not in _LIVE:
            self.note(f"answer for {role} after its end ignored")  # a late or repeated callback
            return
        self.session.set_status(role, "up")
        self.flow_event(role, "answer", event.to_context)
        self.try_deferred()

    def on_timeout(self, event: TimeoutEvent) -> None:
        role = self.role_for(event)
        if role is None:
            self.note(f"timeout for unknown call {event.call_id}")
            return
        self.session.set_status(role, "gone")
        self.flow_event(role, "timeout", event.to_context)
        self.after_leg_gone(role, "timeout")

    def on_hangup(self, event: HangupEvent) -> None:
        session = self.session
        role = self.role_for(event)
        if role is None:
            self.note(f"hangup for unknown call {event.call_id}")
            return
        was = session.status_of(role)
        if was == "gone" and role != model.CALLER:
            return  # already reported (e.g. after a timeout)
        session.set_status(role, "gone")
        if session.busy:
            session.busy.pop(role, None)
        for tag, _entry in self.gathers(role):
            self.forget(tag)
        name = vocabulary.HANGUP_CAUSES.get(event.cause, "hangup.failed")
        data = event.to_context()
        if role == model.CALLER and was == "transferred":
            self.note("transferred call ended")
            self.end("transferred")
            return
        if role == model.CALLER and self.awaiting():
            self.run_program()  # what was waiting for the caller's audio goes on (its call commands dropped)
            if session.ended:
                return
            if session.deferred is None:
                session.deferred = []
            session.deferred.append({"kind": "hangup", "name": name, "data": data})
            if session.timers is None:
                session.timers = {}
            session.timers["drain"] = self.now + DRAIN_SECONDS
            self.emit(cmd.StartTimer(key="drain", at=self.now + DRAIN_SECONDS))
            self.note(f"{name}: waiting for recordings and requests before ending")
            return
        self.flow_event(role, name, data)
        self.after_leg_gone(role, name)

    def after_leg_gone(self, role: str, why: str) -> None:
        if role == model.CALLER and not self.session.ended:
            self.end(why)
        else:
            self.run_program()

    def awaiting(self) -> bool:
        """Whether results are still due that a flow handles after the caller hangs up."""
        session = self.session
        if session.recording:
            return True
        return any(entry[0] in ("http", "transcription") for entry in (session.pending or {}).values())

    def drain_check(self) -> None:
        session = self.session
        if session.ended or not session.deferred or self.awaiting():
            return
        for entry in list(session.deferred):
            if entry.get("kind") == "hangup":
                session.deferred.remove(entry)
                if session.timers and session.timers.pop("drain", None) is not None:
                    self.emit(cmd.CancelTimer(key="drain"))
                data = entry.get("data")
                self.flow_event(model.CALLER, str(entry["name"]), data if isinstance(data, dict) else {})
                if not session.ended:
                    self.end(str(entry["name"]))
                return

    def on_audio(self, event: SpeakEvent | PlaybackEvent) -> None:
        session = self.session
        role = self.role_for(event)
        if role is None:
            self.note(f"{event.event_type} for unknown call {event.call_id}")
            return
        kind = "speak" if isinstance(event, SpeakEvent) else "playback"
        if event.status == "started":
            self.flow_event(role, f"{kind}.started", event.to_context, quiet=True)
            return
        if event.status != "done":
            self.note(f"{kind} status {event.status!r} ignored")
            return
        busy = session.busy or {}
        current = busy.get(role)
        if current is None or (event.tag is not None and event.tag != current):
            if event.tag is not None and session_of_tag(event.tag) == session.id:
                return  # a stopped or gather prompt item finishing: not the one we wait for
            if current is None:
                self.note(f"{kind}.done with nothing playing ignored")
                return
        busy.pop(role, None)
        if not busy:
            session.busy = None
        self.run_program()
        if session.ended or session.program or (session.busy and role in session.busy):
            return
        self.flow_event(role, f"{kind}.done", event.to_context, quiet=True)

    def on_dtmf(self, event: DtmfEvent) -> None:
        role = self.role_for(event)
        if role is None:
            return
        data = event.to_context()
        data["digit"] = event.dtmf_digit
        self.flow_event(role, "dtmf", data, quiet=True)

    def on_gather(self, event: GatherEvent) -> None:
        session = self.session
        role = self.role_for(event)
        if role is None:
            self.note(f"gather for unknown call {event.call_id}")
            return
        current = self.gathers(role)
        if not current or (event.tag is not None and event.tag != current[0][0]):
            self.note("stale gather event ignored")
            return
        tag, entry = current[0]
        self.forget(tag)
        into = entry[3] if len(entry) > 3 else ""
        if event.reason == "hung-up":
            name = "gather.hungup"
        elif event.digits:
            name = "gather.done"
        else:
            name = "gather.noinput"
        if into and name == "gather.done":
            session.vars[into] = event.digits
            self.changed()
        self.flow_event(role, name, event.to_context)

    def on_recording(self, event: RecordingEvent) -> None:
        session = self.session
        role = self.role_for(event) or model.CALLER
        settings = (session.recording or {}).pop(role, None)
        if session.recording is not None and not session.recording:
            session.recording = None
        if session.timers and session.timers.pop(f"record:{role}", None) is not None:
            self.emit(cmd.CancelTimer(key=f"record:{role}"))
        if session.recordings is None:
            session.recordings = {}
        session.recordings[event.recording_id] = role
        status = "complete" if event.status in ("complete", "completed") else "error"
        if status == "complete" and settings and settings.get("transcribe"):
            command_id = session.next_id("t")
            self.expect(command_id, "transcription", role, event.recording_id)
            self.commands.append(
                cmd.CreateTranscription(command_id=command_id, recording_id=event.recording_id)
            )
        data = event.to_context()
        # The callback has no media link of its own; the recording resource is where its media is found.
        data["media_url"] = event.recording_uri
        self.flow_event(role, f"recording.{status}", data)
        self.drain_check()

    def on_transcription(self, event: TranscriptionEvent) -> None:
        session = self.session
        role = (session.recordings or {}).get(event.recording_id, model.CALLER)
        if session.pending:
            for key, entry in list(session.pending.items()):
                if entry[0] == "transcription" and entry[-1] == event.recording_id:
                    del session.pending[key]
        status = "completed" if event.status in ("completed", "complete") else "error"
        self.flow_event(role, f"transcription.{status}", event.to_context)
        self.drain_check()

    def on_conference(self, event: ConferenceEvent) -> None:
        if event.status not in ("created", "completed"):
            self.note(f"conference status {event.status!r} ignored")
            return
        self.flow_event(None, f"conference.{event.status}", event.to_context, quiet=True)

    def on_member(self, event: ConferenceMemberEvent) -> None:
        session = self.session
        role = self.role_for(event)
        if role is None:
            return
        conference = session.conference
        if conference is not None and event.state == "active":
            members = conference.setdefault("members", {})
            if isinstance(members, dict):
                members[role] = event.member_id
        if conference is not None and event.state == "completed":
            members = conference.get("members")
            if isinstance(members, dict):
                members.pop(role, None)
        data = event.to_context()
        self.flow_event(role, f"conference-member.{event.state}", data, quiet=True)

    def on_message(self, event: MessageEvent) -> None:
        data = event.to_context()
        if event.inbound:
            self.flow_event(None, "message", data)
            return
        if event.state == "error" or event.delivery_state == "not-delivered":
            data["code"] = event.delivery_code
            data["description"] = event.delivery_description
            self.flow_event(None, "delivery.error", data, quiet=True)
        elif event.delivery_state == "delivered":
            self.flow_event(None, "delivery.delivered", data, quiet=True)
        elif event.state == "sent":
            self.flow_event(None, "delivery.sent", data, quiet=True)

    def on_incoming(self, event: IncomingCallEvent) -> None:
        self.note(f"repeated incomingcall for {event.call_id} ignored")

    def on_unknown(self, event: UnknownEvent) -> None:
        self.note(f"unknown event type {event.event_type!r} ignored")

    def on_conference_audio(self, event: ConferencePlaybackEvent | ConferenceSpeakEvent) -> None:
        """Audio played to the whole conference: ``conference-speak.started|done`` and
        ``conference-playback.started|done`` for the session's own conference."""
        kind = event.event_type
        conference = self.session.conference or {}
        if not conference.get("id") or event.conference_id != conference.get("id"):
            self.note(f"{kind} of conference {event.conference_id} (not ours) ignored")
            return
        if event.status not in ("started", "done"):
            self.note(f"{kind} status {event.status!r} ignored")
            return
        self.flow_event(None, f"{kind}.{event.status}", event.to_context, quiet=event.status == "started")

    # ----------------------------------------------------------------------- engine events

    def on_timer(self, key: str) -> None:
        session = self.session
        timers = session.timers or {}
        if key not in timers:
            self.note(f"stale timer {key} ignored")
            return
        del timers[key]
        if not timers:
            session.timers = None
        if key == "drain":
            session.recording = None
            if session.pending:
                session.pending = {
                    k: v for k, v in session.pending.items() if v[0] not in ("http", "transcription")
                }
            self.drain_check()
            return
        if key.startswith("record:"):
            role = key.split(":", 1)[1]
            self.stop_recording(role)
            return
        parts = key.split(":")
        if parts[0] == "after" and len(parts) == 4 and parts[1] == session.state:
            trial = Trial(self.context)
            choice = self.item.fire(session.state, f"t:{parts[2]}", trial)
            for text in trial.notes:
                self.note(text)
            if choice is not None:
                self.event_data = {"name": "after", "timer": int(parts[2])}
                self.changed()
                self.take(choice.kind, choice.address, choice.target, f"after {parts[2]}")
                return
        self.note(f"timer {key} had no transition")

    def on_result(self, result: CommandResult) -> None:
        session = self.session
        pending = session.pending or {}
        if result.error is None and pending.get(result.command_id, [""])[0] == "transcription":
            return  # created: still awaited, until its `transcription` event arrives
        self.changed()
        entry = pending.pop(result.command_id, None)
        if session.pending is not None and not session.pending:
            session.pending = None
        if result.error is not None:
            failure = result.error
            operation = entry[0] if entry else "rest"
            if entry and entry[0] == "dial" and len(entry) > 1:
                session.set_status(entry[1], "gone")
            if entry and entry[0] == "transfer" and session.status_of(model.CALLER) == "transferred":
                session.set_status(model.CALLER, "up")  # not transferred: the flow's error handling goes on
            if entry and entry[0] == "transcription":
                self.drain_check()
            dialled_caller = entry is not None and entry[0] == "dial" and entry[1:2] == [model.CALLER]
            if (
                session.status_of(model.CALLER) not in _LIVE
                and self.flow.kind == "voice"
                and not dialled_caller
            ):
                self.note(f"{operation} failed after the call ended: {failure.code or failure.status}")
                self.drain_check()
                return
            self.fail(failure.code or f"http-{failure.status}", failure.message, operation)
            return
        if entry is None:
            return
        what = entry[0]
        resource = result.resource_id or ""
        if what == "dial":
            role = entry[1]
            legs = session.legs or {}
            if not legs.get(role):
                session.set_leg(role, resource, session.status_of(role) or "dialling")
        elif what == "gather":
            # Still in progress until its `gather` event: keep it, now with its id (to stop it if need be).
            if session.pending is None:
                session.pending = {}
            session.pending[result.command_id] = ["gather", entry[1], resource, *entry[3:]]
        elif what == "bridge":
            session.bridge = resource or None
        elif what == "transfer":
            if resource and not session.leg_call(TRANSFER_ROLE):
                # "transferred", not live: nothing the session does (ending included) acts on this call.
                session.set_leg(TRANSFER_ROLE, resource, "transferred")
        elif what == "conference":
            if session.conference is not None:
                session.conference["id"] = resource
            role = entry[1]
            self.add_member(role)
        elif what == "member":
            conference = session.conference
            if conference is not None:
                members = conference.setdefault("members", {})
                if isinstance(members, dict):
                    members[entry[1]] = resource
        self.drain_check()

    def on_http(self, result: HttpResult) -> None:
        session = self.session
        entry = (session.pending or {}).pop(result.command_id, None)
        if session.pending is not None and not session.pending:
            session.pending = None
        if entry is None:
            self.note("unexpected HTTP result ignored")
            return
        into = entry[1] if len(entry) > 1 else ""
        if entry[0] == "lookup":
            self.on_lookup(result, into, entry[2] if len(entry) > 2 else "")
            self.drain_check()
            return
        data: dict[str, Any] = {
            "status": result.status,
            "json": result.json,
            "text": result.text,
            "headers": dict(result.headers),
            "error": result.error,
        }
        if result.ok:
            if into:
                session.vars[into] = result.json if result.json is not None else result.text
                self.changed()
            self.flow_event(None, "http.ok", data)
        else:
            self.flow_event(None, "http.error", data)
        self.drain_check()

    def on_lookup(self, result: HttpResult, into: str, number: str) -> None:
        """A caller-id lookup answered: the name (or "" when the number has none), else ``lookup.error``."""
        answer = result.json if isinstance(result.json, dict) else {}
        name = answer.get("name")
        found = result.ok and isinstance(name, str)
        if found or result.status == 404:
            text = str(name) if found else ""
            if into:
                self.session.vars[into] = text
                self.changed()
            self.flow_event(None, "lookup.done", {"name": text, "number": number, "found": found})
        else:
            data = {"status": result.status, "error": result.error or result.text, "number": number}
            self.flow_event(None, "lookup.error", data)

    # --------------------------------------------------------------------- deferred work

    def try_deferred(self) -> None:
        session = self.session
        if not session.deferred:
            return
        for entry in list(session.deferred):
            if entry.get("kind") != "bridge":
                continue
            legs = entry.get("legs")
            if not isinstance(legs, list):
                continue
            if all(session.status_of(str(role)) == "up" for role in legs):
                session.deferred.remove(entry)
                self.bridge([str(role) for role in legs], bool(entry.get("audio", True)))
        if not session.deferred:
            session.deferred = None

    def bridge(self, roles: list[str], audio: bool) -> None:
        session = self.session
        call_ids = [self.live_call(role) for role in roles]
        if any(call_id is None for call_id in call_ids):
            self.note(f"cannot bridge {roles}: a leg is not connected")
            return
        ids = tuple(call_id for call_id in call_ids if call_id is not None)
        command_id = session.next_id("b")
        if session.bridge:
            self.emit(
                cmd.UpdateBridge(
                    command_id=command_id, bridge_id=session.bridge, call_ids=ids, bridge_audio=audio
                )
            )
        else:
            self.expect(command_id, "bridge")
            self.emit(cmd.CreateBridge(command_id=command_id, call_ids=ids, bridge_audio=audio))

    def add_member(self, role: str) -> None:
        session = self.session
        conference = session.conference or {}
        call_id = self.live_call(role)
        conference_id = conference.get("id")
        if call_id is None or not isinstance(conference_id, str) or not conference_id:
            return
        settings = conference.get("settings")
        options = settings.get(role, {}) if isinstance(settings, dict) else {}
        options = options if isinstance(options, dict) else {}
        command_id = session.next_id("m")
        self.expect(command_id, "member", role)
        self.emit(
            cmd.AddConferenceMember(
                command_id=command_id,
                conference_id=conference_id,
                call_id=call_id,
                join_tone=bool(options.get("join_tone", True)),
                leaving_tone=bool(options.get("leave_tone", True)),
                mute=bool(options.get("mute", False)),
                hold=bool(options.get("hold", False)),
            )
        )

    def stop_recording(self, role: str) -> None:
        session = self.session
        call_id = self.live_call(role)
        if session.timers and session.timers.pop(f"record:{role}", None) is not None:
            self.emit(cmd.CancelTimer(key=f"record:{role}"))
        if call_id is not None:
            self.emit(cmd.SetCallRecording(command_id=session.next_id("r"), call_id=call_id, enabled=False))


# ------------------------------------------------------------------------------------- executors


def _do_answer(run: _Run, action: model.Answer) -> None:
    call_id = run.live_call(model.CALLER)
    if call_id is None:
        run.note("answer: no call to answer")
        return
    if run.session.status_of(model.CALLER) == "up":
        run.note("answer: the call is already answered")
        return
    run.emit(cmd.UpdateCallState(command_id=run.session.next_id("u"), call_id=call_id, state="active"))
    # The executor runs commands in order and reports a failure as an error event, so the call counts as
    # answered from here (the `answer` callback confirms it later).
    run.session.set_status(model.CALLER, "up")


def _do_reject(run: _Run, action: model.Reject) -> None:
    call_id = run.live_call(model.CALLER)
    if call_id is None:
        return
    run.emit(cmd.UpdateCallState(command_id=run.session.next_id("u"), call_id=call_id, state="rejected"))
    run.session.set_status(model.CALLER, "gone")
    run.end("rejected")


def _do_hangup(run: _Run, action: model.Hangup) -> None:
    call_id = run.live_call(action.leg)
    if call_id is None:
        run.note(f"hangup: {action.leg} is not connected")
        return
    run.emit(cmd.UpdateCallState(command_id=run.session.next_id("h"), call_id=call_id, state="completed"))
    run.session.set_status(action.leg, "gone")
    if run.session.busy:
        run.session.busy.pop(action.leg, None)
    if action.leg == model.CALLER:
        run.end("hangup")


def _do_speak(run: _Run, action: model.Speak | model.Play) -> None:
    run.play(action.leg, action.prompt)


def _do_stop_audio(run: _Run, action: model.StopAudio) -> None:
    session = run.session
    call_id = run.live_call(action.leg)
    busy = session.busy or {}
    tag = busy.pop(action.leg, None)
    if not busy:
        session.busy = None
    if call_id is None or tag is None:
        return
    run.emit(cmd.StopAudio(command_id=session.next_id("s"), call_id=call_id, kind=_audio_kind(tag)))


def _audio_kind(tag: str) -> Literal["speak", "playback"]:
    """What the audio item ``tag`` plays, from the prefix :meth:`_Run.play` gave it."""
    return "playback" if tag.rsplit(TAG_SEPARATOR, 1)[-1].startswith("p") else "speak"


def _do_gather(run: _Run, action: model.Gather) -> None:
    session = run.session
    call_id = run.live_call(action.leg)
    if call_id is None:
        run.note(f"gather: {action.leg} is not connected")
        return
    defaults = run.flow.defaults.gather
    fields: dict[str, Any] = {}
    if action.prompt is not None:
        prompt = run.prompt_fields(action.prompt)
        fields = {
            "prompt_sentence": prompt["sentence"],
            "prompt_file_url": prompt["file_url"],
            "prompt_gender": prompt["gender"],
            "prompt_locale": prompt["locale"],
            "prompt_loop_enabled": action.prompt.loop,
        }
    tag = session.next_id("g")
    max_digits = action.max_digits if action.max_digits is not None else defaults.max_digits
    sent = run.emit(
        cmd.CreateGather(
            command_id=tag,
            call_id=call_id,
            tag=tag,
            max_digits=max_digits,
            inter_digit_timeout=(
                action.inter_digit_timeout
                if action.inter_digit_timeout is not None
                else defaults.inter_digit_timeout
            ),
            terminating_digits=(
                action.terminating_digits
                if action.terminating_digits is not None
                else defaults.terminating_digits
            ),
            **fields,
        )
    )
    if sent:
        run.expect(tag, "gather", action.leg, "", action.into or "")


def _do_send_dtmf(run: _Run, action: model.SendDtmf) -> None:
    call_id = run.live_call(action.leg)
    if call_id is None:
        return
    digits = run.render(action.digits)
    run.emit(cmd.SendDtmf(command_id=run.session.next_id("d"), call_id=call_id, dtmf_out=digits))


def _do_record(run: _Run, action: model.Record) -> None:
    session = run.session
    call_id = run.live_call(action.leg)
    if call_id is None:
        run.note(f"record: {action.leg} is not connected")
        return
    run.emit(
        cmd.SetCallRecording(
            command_id=session.next_id("r"), call_id=call_id, enabled=True, file_format=action.file_format
        )
    )
    if session.recording is None:
        session.recording = {}
    session.recording[action.leg] = {"transcribe": action.transcribe}
    if action.max_duration is not None:
        key = f"record:{action.leg}"
        if session.timers is None:
            session.timers = {}
        session.timers[key] = run.now + action.max_duration
        run.emit(cmd.StartTimer(key=key, at=run.now + action.max_duration))


def _do_stop_recording(run: _Run, action: model.StopRecording) -> None:
    run.stop_recording(action.leg)


def _whisper(run: _Run, prompt: model.Prompt | None) -> dict[str, JSON] | None:
    if prompt is None:
        return None
    fields = run.prompt_fields(prompt)
    out: dict[str, JSON] = {
        "sentence": fields["sentence"],
        "fileUrl": fields["file_url"],
        "gender": fields["gender"],
        "locale": fields["locale"],
        "voice": fields["voice"],
    }
    return {key: value for key, value in out.items() if value is not None}


def _do_transfer(run: _Run, action: model.Transfer) -> None:
    session = run.session
    call_id = run.live_call(model.CALLER)
    if call_id is None:
        run.note("transfer: the caller is not connected")
        return
    command_id = session.next_id("x")
    # The result's Location is the new call: its events (sent to the transfer's callbackUrl) then route here.
    run.expect(command_id, "transfer")
    run.emit(
        cmd.TransferCall(
            command_id=command_id,
            call_id=call_id,
            transfer_to=model.sip_address(run.render(action.to)),
            transfer_caller_id=run.render_opt(action.caller_id),
            whisper_audio=_whisper(run, action.whisper),
            callback_url=run.engine.callback_url,
        )
    )
    session.set_status(model.CALLER, "transferred")


def _do_dial(run: _Run, action: model.Dial) -> None:
    session = run.session
    if session.status_of(action.role) in _LIVE:
        run.note(f"dial: {action.role} is already connected")
        return
    command_id = session.next_id("c")
    session.set_leg(action.role, "", "dialling")
    run.expect(command_id, "dial", action.role)
    timeout = action.timeout if action.timeout is not None else run.flow.defaults.dial_timeout
    run.emit(
        cmd.CreateCall(
            command_id=command_id,
            from_=run.render_opt(action.from_) or session.our,
            to=model.sip_address(run.render(action.to)),
            call_timeout=_seconds(timeout),
            callback_url=run.engine.callback_url,
            tag=_call_tag(session, action.role),
        )
    )


def _do_bridge(run: _Run, action: model.Bridge) -> None:
    session = run.session
    roles = list(action.legs)
    if all(session.status_of(role) == "up" for role in roles):
        run.bridge(roles, action.audio)
        return
    if any(session.status_of(role) not in _LIVE for role in roles):
        run.note(f"bridge {roles}: a leg is gone")
        return
    if session.deferred is None:
        session.deferred = []
    legs: list[JSON] = list(roles)
    session.deferred.append({"kind": "bridge", "legs": legs, "audio": action.audio})
    run.note(f"bridge {roles} waits for both legs to answer")


def _do_conference(run: _Run, action: model.Conference) -> None:
    session = run.session
    name = run.render(action.name)
    call_id = run.live_call(action.leg)
    if call_id is None:
        run.note(f"conference: {action.leg} is not connected")
        return
    conference = session.conference
    if conference is not None and conference.get("name") != name:
        run.note(f"conference {name!r}: already in {conference.get('name')!r}")
        return
    if conference is None:
        conference = session.conference = {"name": name, "id": "", "members": {}, "settings": {}}
    settings = conference.setdefault("settings", {})
    if isinstance(settings, dict):
        settings[action.leg] = {
            "mute": action.mute,
            "hold": action.hold,
            "join_tone": action.join_tone,
            "leave_tone": action.leave_tone,
        }
    members = conference.get("members")
    member_id = members.get(action.leg) if isinstance(members, dict) else None
    conference_id = conference.get("id")
    if isinstance(member_id, str) and member_id and isinstance(conference_id, str):
        run.emit(
            cmd.UpdateConferenceMember(
                command_id=session.next_id("m"),
                conference_id=conference_id,
                member_id=member_id,
                mute=action.mute,
                hold=action.hold,
            )
        )
        return
    if conference_id:
        run.add_member(action.leg)
        return
    if any(entry[0] == "conference" for entry in (session.pending or {}).values()):
        return  # the conference is being created; the member is added when it exists
    command_id = session.next_id("k")
    run.expect(command_id, "conference", action.leg)
    run.emit(
        cmd.CreateConference(
            command_id=command_id,
            name=name,
            from_=session.our,
            callback_url=run.engine.callback_url,
            tag=f"{session.id}{TAG_SEPARATOR}conference",
        )
    )


def _do_leave_conference(run: _Run, action: model.LeaveConference) -> None:
    session = run.session
    conference = session.conference or {}
    members = conference.get("members")
    member_id = members.get(action.leg) if isinstance(members, dict) else None
    conference_id = conference.get("id")
    if not isinstance(member_id, str) or not member_id or not isinstance(conference_id, str):
        run.note(f"leave_conference: {action.leg} is not a member")
        return
    run.emit(
        cmd.UpdateConferenceMember(
            command_id=session.next_id("m"), conference_id=conference_id, member_id=member_id, remove=True
        )
    )


def _do_send_message(run: _Run, action: model.SendMessage) -> None:
    session = run.session
    to = run.render_opt(action.to) or session.their
    from_ = run.render_opt(action.from_) or session.our
    text = run.render(action.text)
    media = tuple(run.render(url) for url in action.media)
    command_id = session.next_id("t")
    run.expect(command_id, "message")
    receipts = run.engine.receipts
    run.emit(
        cmd.SendMessage(
            command_id=command_id,
            from_=from_,
            to=to,
            text=text,
            media=media,
            receipt_requested=receipts if receipts in ("none", "all", "error") else None,  # type: ignore[arg-type]
            callback_url=run.engine.callback_url,
            tag=command_id,
        )
    )


def _do_http(run: _Run, action: model.HttpRequest) -> None:
    session = run.session
    context = run.context()
    command_id = session.next_id("w")
    run.expect(command_id, "http", action.into or "")
    run.emit(
        cmd.HttpCall(
            command_id=command_id,
            method=action.method,
            url=templates.render_url(action.url, context),
            headers={key: templates.render(value, context) for key, value in action.headers.items()},
            json=templates.render_value(action.json, context),
            body=None if action.body is None else templates.render(action.body, context),
            timeout=action.timeout if action.timeout is not None else run.flow.defaults.http_timeout,
        )
    )


def _do_lookup_caller(run: _Run, action: model.LookupCaller) -> None:
    command_id = run.session.next_id("w")
    number = run.render(action.number)
    run.expect(command_id, "lookup", action.into, number)
    run.emit(cmd.LookupCaller(command_id=command_id, number=number))


def _do_set(run: _Run, action: model.SetVars) -> None:
    context = run.context()
    for name, value in action.values.items():
        rendered = templates.render_value(value, context)
        run.session.vars[name] = rendered
        context[name] = rendered
        context["vars"] = run.session.vars
    run.changed()


def _do_log(run: _Run, action: model.Log) -> None:
    session = run.session
    run.commands.append(
        cmd.Log(
            level=action.level,
            message=run.render(action.message),
            session_id=session.id,
            flow=session.flow,
            state=session.state,
        )
    )


def _do_start_flow(run: _Run, action: model.StartFlow) -> None:
    session = run.session
    child = run.engine._flows.get(action.flow)
    if child is None:
        raise TemplateError(f"start_flow: no flow called {action.flow!r} is loaded")
    values = templates.render_value(dict(action.vars), run.context())
    if session.stack is None:
        session.stack = []
    if len(session.stack) >= 8:
        raise TemplateError("start_flow: sub-flows nested more than 8 deep")
    remaining = session.program or []
    session.stack.append(
        {
            "flow": session.flow,
            "flow_hash": session.flow_hash,
            "state": session.state,
            "vars": dict(session.vars),
        }
    )
    # The parent's remaining actions are dropped: it resumes through its `flow.done` handler.
    del remaining[:]
    session.flow = child.flow.name
    session.flow_hash = child.source_hash
    session.vars = {**(dict(child.flow.vars) if child.flow.vars else {}), **dict(values or {})}
    run.item, run.flow = child, child.flow
    run.changed()
    run.note(f"sub-flow {child.flow.name}")
    session.program = [["E", child.flow.initial]]


_EXECUTORS: dict[type, Callable[[_Run, Any], None]] = {
    model.Answer: _do_answer,
    model.Reject: _do_reject,
    model.Hangup: _do_hangup,
    model.Speak: _do_speak,
    model.Play: _do_speak,
    model.StopAudio: _do_stop_audio,
    model.Gather: _do_gather,
    model.SendDtmf: _do_send_dtmf,
    model.Record: _do_record,
    model.StopRecording: _do_stop_recording,
    model.Transfer: _do_transfer,
    model.Dial: _do_dial,
    model.Bridge: _do_bridge,
    model.Conference: _do_conference,
    model.LeaveConference: _do_leave_conference,
    model.SendMessage: _do_send_message,
    model.HttpRequest: _do_http,
    model.LookupCaller: _do_lookup_caller,
    model.SetVars: _do_set,
    model.Log: _do_log,
    model.StartFlow: _do_start_flow,
}

_CALLBACKS: dict[type, Callable[[_Run, Any], None]] = {
    IncomingCallEvent: _Run.on_incoming,
    AnswerEvent: _Run.on_answer,
    TimeoutEvent: _Run.on_timeout,
    HangupEvent: _Run.on_hangup,
    SpeakEvent: _Run.on_audio,
    PlaybackEvent: _Run.on_audio,
    DtmfEvent: _Run.on_dtmf,
    GatherEvent: _Run.on_gather,
    RecordingEvent: _Run.on_recording,
    TranscriptionEvent: _Run.on_transcription,
    ConferenceEvent: _Run.on_conference,
    ConferenceMemberEvent: _Run.on_member,
    ConferencePlaybackEvent: _Run.on_conference_audio,
    ConferenceSpeakEvent: _Run.on_conference_audio,
    MessageEvent: _Run.on_message,
    UnknownEvent: _Run.on_unknown,
}
