"""Compile a flow once into a :class:`transitions.Machine` plus the tables the runtime needs.

One machine per flow version (``auto_transitions=False``, callables only). Sessions stay plain data: before
a trigger, the engine sets the state of the machine's single reusable cursor from the session, and the
machine decides the transition: it tries the transitions of the trigger in the order they were written,
checks their sandboxed ``when`` guards, and records the one it took. At run time the same decision is made
from a table read once off the machine's own ``Transition`` objects at compile time (per state and trigger:
each candidate's conditions, in order, and what it records): the machine's bookkeeping for one trigger (event
data, callbacks resolved by name, state lookups) costs ten times the guards themselves.
``CompiledFlow.fire_machine`` still asks the machine; a test holds the two to the same answers.

Triggers are namespaced so that the engine can ask in a fixed order (see :meth:`CompiledFlow.select`):

- ``m:gather.done`` / ``m:gather.noinput``: a menu's choices and its noinput/nomatch counting;
- ``t:<i>``: the state's ``after`` timer number ``i``;
- ``s:<handler key>``: the state's own ``on`` handlers;
- ``f:<handler key>``: the flow-wide ``on`` handlers (any state).

Action lists are addressed by strings (``do:<state>``, ``on:<state>:<key>:<i>`` ...) so that a session can
store where it is in a list as plain data.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from transitions import Machine

from flowengine.errors import Diagnostic, FlowCompileError, TemplateError
from flowengine.flow import model, templates
from flowengine.flow.templates import CompiledExpression


@dataclass(frozen=True, slots=True)
class Choice:
    """The transition the machine took.

    Attributes:
        address: the action list to run (None: no actions).
        target: the state to enter (None: stay without re-entering).
        kind: ``on``, ``flow``, ``timer``, ``choice``, ``noinput``/``nomatch`` (retry) or
            ``noinput-then``/``nomatch-then`` (the limit was reached).
    """

    address: str | None
    target: str | None
    kind: str


class Trial:
    """The argument of one trigger: the template context for guards (a mapping, or a function that builds
    it when a guard first needs it), the menu's digits and counters, and the transition chosen."""

    __slots__ = ("_context", "choice", "digits", "noinput", "nomatch", "notes")

    def __init__(
        self,
        context: Mapping[str, Any] | Callable[[], Mapping[str, Any]],
        *,
        digits: str = "",
        noinput: int = 0,
        nomatch: int = 0,
    ) -> None:
        self._context = context
        self.digits = digits
        self.noinput = noinput
        self.nomatch = nomatch
        self.choice: Choice | None = None
        self.notes: list[str] = []

    @property
    def context(self) -> Mapping[str, Any]:
        context = self._context
        if callable(context):
            context = self._context = context()
        return context


class _Cursor:
    """The machine's single model; its state is set from a session before each trigger."""

    state: str


def flow_hash(flow: model.Flow) -> str:
    """The flow's ``source_hash``, or a stable hash of its content when it was built in code."""
    if flow.source_hash:
        return flow.source_hash
    return "sha256:" + hashlib.sha256(repr(flow).encode()).hexdigest()[:32]


def menu_gather(state: model.State) -> model.Gather:
    """The gather a menu state issues (its prompt is part of the gather)."""
    menu = state.menu
    assert menu is not None
    return model.Gather(
        max_digits=menu.max_digits if menu.max_digits is not None else max(len(k) for k in menu.choices),
        inter_digit_timeout=menu.inter_digit_timeout,
        terminating_digits=menu.terminating_digits,
        prompt=menu.prompt,
        into=menu.into,
        pos=state.pos,
    )


MAX_SENTENCE = 1000
"""The longest sentence the API speaks."""


def retry_steps(state: model.State, retry: model.Retry, gather: model.Gather) -> tuple[model.ActionType, ...]:
    """What a menu does to ask again: the gather, after the retry's ``reprompt`` if it has one.

    When the reprompt and the menu's prompt are both sentences that sound alike (same voice, gender and
    locale, no loop or volume of their own), the reprompt becomes the start of the gather's prompt sentence:
    the gather's prompt is bargeable, so a caller can press a key while the reprompt is still spoken. Otherwise
    (an audio file on either side, different voices, too long) the reprompt is played first and the gather
    starts when it has finished: keys pressed during the reprompt are not collected.
    """
    reprompt = retry.reprompt
    if reprompt is None:
        return (gather,)
    joined = _joined_prompt(reprompt, gather.prompt)
    if joined is not None:
        return (replace(gather, prompt=joined),)
    return (_prompt_action(reprompt, state.pos), gather)


def _joined_prompt(reprompt: model.Prompt, prompt: model.Prompt | None) -> model.Prompt | None:
    if prompt is None or reprompt.text is None or prompt.text is None:
        return None
    if reprompt.url is not None or prompt.url is not None or reprompt.loop or prompt.loop:
        return None
    if reprompt.volume is not None or reprompt.voice not in (None, prompt.voice):
        return None
    if (reprompt.gender, reprompt.locale) != (prompt.gender, prompt.locale):
        return None
    first, second = reprompt.text.rstrip(), prompt.text.lstrip()
    if first.endswith(("-}}", "-%}", "-#}")) or second.startswith(("{{-", "{%-", "{#-")):
        return None  # whitespace control would eat the space between the two sentences
    text = f"{first} {second}"
    if len(text) > MAX_SENTENCE:
        return None
    return replace(prompt, text=text)


def _prompt_action(prompt: model.Prompt, pos: model.Position) -> model.ActionType:
    if prompt.url is not None and prompt.text is None:
        return model.Play(prompt=prompt, pos=pos)
    return model.Speak(prompt=prompt, pos=pos)


_Candidate = tuple[tuple[tuple[Callable[[Trial], Any], bool], ...], Choice]
"""One of the machine's transitions for a trigger: its conditions (function, expected result) and its choice."""


class CompiledFlow:
    """A flow compiled for the runtime. Not thread-safe: the engine triggers one event at a time."""

    def __init__(self, flow: model.Flow) -> None:
        self.flow = flow
        self.source_hash = flow_hash(flow)
        self.actions: dict[str, tuple[model.ActionType, ...]] = {}
        self.roles: frozenset[str] = frozenset({model.CALLER, *_dial_roles(flow)})
        self.final_states: frozenset[str] = frozenset(name for name, s in flow.states.items() if s.final)
        self._cursor = _Cursor()
        names = list(flow.states)
        if model.END not in flow.states:
            names.append(model.END)
        self.machine = Machine(
            model=self._cursor,
            states=names,
            initial=flow.initial if flow.initial in flow.states else names[0],
            auto_transitions=False,
            send_event=False,
            ignore_invalid_triggers=True,
            model_override=False,
        )
        self._triggers: dict[str, set[str]] = {}
        self._events: dict[str, Any] = {}
        self._choice_of: dict[Any, Choice] = {}  # the machine's Transition objects -> what they record
        problems: list[Diagnostic] = []
        self._check_targets(problems)
        for state in flow.states.values():
            self._compile_state(state, problems)
        for key, transitions_ in flow.on.items():
            for index, transition in enumerate(transitions_):
                address = self._add_actions(f"flow:{key}:{index}", transition.actions)
                self._add("*", f"f:{key}", transition, Choice(address, transition.target, "flow"), problems)
        self._check_templates(problems)
        self.assigned: frozenset[str] = frozenset(self._assigned_names()) - set(flow.vars)
        """Variables without a default that some action sets (``set``, ``into``); they read as None until set."""
        if any(p.is_error for p in problems):
            raise FlowCompileError(problems)
        self._events = dict(self.machine.events)
        # Per state: every trigger it answers (its own and the flow-wide ones), and the handler keys.
        wildcard = self._triggers.get("*", set())
        self._answers: dict[str, frozenset[str]] = {
            state: frozenset(self._triggers.get(state, set()) | wildcard) for state in names
        }
        self._listens: dict[str, frozenset[str]] = {
            state: frozenset(t[2:] for t in triggers if t[:2] in ("s:", "f:"))
            for state, triggers in self._answers.items()
        }
        # state -> trigger -> the machine's candidate transitions, in its order: (conditions, choice).
        self._candidates: dict[str, dict[str, tuple[_Candidate, ...]]] = {state: {} for state in names}
        for trigger, event in self._events.items():
            for state, transitions_ in event.transitions.items():
                if transitions_:
                    self._candidates[state][trigger] = tuple(
                        (tuple((cond.func, cond.target) for cond in t.conditions), self._choice_of[t])
                        for t in transitions_
                    )

    # ------------------------------------------------------------------------------ compiling

    def _check_targets(self, problems: list[Diagnostic]) -> None:
        known = set(self.flow.states) | {model.END}
        for transition in self._all_transitions():
            if transition.target is not None and transition.target not in known:
                pos = transition.pos
                problems.append(
                    Diagnostic(
                        pos.path,
                        pos.line,
                        pos.column,
                        "error",
                        f"unknown target state {transition.target!r}",
                        "compile",
                    )
                )
        if self.flow.initial not in self.flow.states:
            pos = self.flow.pos
            problems.append(
                Diagnostic(
                    pos.path, pos.line, pos.column, "error", f"unknown initial state {self.flow.initial!r}"
                )
            )

    def _all_transitions(self) -> Iterator[model.Transition]:
        for state in self.flow.states.values():
            for transitions_ in state.on.values():
                yield from transitions_
            for timer in state.after:
                yield from timer.transitions
            if state.menu is not None:
                yield from state.menu.choices.values()
                yield state.menu.noinput.then
                yield state.menu.nomatch.then
        for transitions_ in self.flow.on.values():
            yield from transitions_

    def _add_actions(self, address: str, actions: tuple[model.ActionType, ...]) -> str | None:
        if not actions:
            return None
        self.actions[address] = actions
        return address

    def _compile_state(self, state: model.State, problems: list[Diagnostic]) -> None:
        name = state.name
        entry = state.actions
        menu = state.menu
        if menu is not None:
            gather = menu_gather(state)
            entry = (*entry, gather)
            self._compile_menu(state, menu, gather, problems)
        self._add_actions(f"do:{name}", entry)
        for key, transitions_ in state.on.items():
            for index, transition in enumerate(transitions_):
                address = self._add_actions(f"on:{name}:{key}:{index}", transition.actions)
                self._add(name, f"s:{key}", transition, Choice(address, transition.target, "on"), problems)
        for number, timer in enumerate(state.after):
            for index, transition in enumerate(timer.transitions):
                address = self._add_actions(f"after:{name}:{number}:{index}", transition.actions)
                choice = Choice(address, transition.target, "timer")
                self._add(name, f"t:{number}", transition, choice, problems)

    def _compile_menu(
        self, state: model.State, menu: model.Menu, gather: model.Gather, problems: list[Diagnostic]
    ) -> None:
        name = state.name
        for key, transition in menu.choices.items():
            address = self._add_actions(f"choice:{name}:{key}", transition.actions)
            guard = self._guard(transition, problems)
            wanted = str(key)

            def matches(trial: Trial, wanted: str = wanted, guard: Callable[[Trial], bool] = guard) -> bool:
                return trial.digits == wanted and guard(trial)

            self._add_raw(
                name,
                "m:gather.done",
                transition.target,
                [matches],
                Choice(address, transition.target, "choice"),
            )
        for kind, retry, trigger in (
            ("nomatch", menu.nomatch, "m:gather.done"),
            ("noinput", menu.noinput, "m:gather.noinput"),
        ):
            steps = retry_steps(state, retry, gather)
            address = self._add_actions(f"{kind}:{name}", steps)

            def below(trial: Trial, kind: str = kind, limit: int = retry.max) -> bool:
                count: int = getattr(trial, kind)
                return count + 1 < limit

            self._add_raw(name, trigger, None, [below], Choice(address, None, kind))
            then = retry.then
            then_address = self._add_actions(f"{kind}-then:{name}", then.actions)
            self._add_raw(name, trigger, then.target, [], Choice(then_address, then.target, f"{kind}-then"))

    def _guard(self, transition: model.Transition, problems: list[Diagnostic]) -> Callable[[Trial], bool]:
        source = transition.when
        if source is None:
            return _always
        try:
            expression = templates.compile_expression(source)
        except TemplateError as exc:
            pos = transition.pos
            problems.append(Diagnostic(pos.path, pos.line, pos.column, "error", f"when: {exc}", "compile"))
            return _always
        return _make_guard(expression)

    def _add(
        self,
        source: str,
        trigger: str,
        transition: model.Transition,
        choice: Choice,
        problems: list[Diagnostic],
    ) -> None:
        guard = self._guard(transition, problems)
        conditions = [] if guard is _always else [guard]
        self._add_raw(source, trigger, transition.target, conditions, choice)

    def _add_raw(
        self,
        source: str,
        trigger: str,
        target: str | None,
        conditions: list[Callable[[Trial], bool]],
        choice: Choice,
    ) -> None:
        def record(trial: Trial, choice: Choice = choice) -> None:
            trial.choice = choice

        self.machine.add_transition(trigger, source, target, conditions=list(conditions), before=[record])
        self._triggers.setdefault(source, set()).add(trigger)
        added = self.machine.events[trigger].transitions
        for state in self.machine.states if source == "*" else (source,):
            self._choice_of[added[state][-1]] = choice  # the one just appended for that state

    def _assigned_names(self) -> Iterator[str]:
        for actions in self.actions.values():
            for action in actions:
                if isinstance(action, model.SetVars):
                    yield from action.values
                elif (
                    isinstance(action, model.Gather | model.HttpRequest | model.LookupCaller) and action.into
                ):
                    yield action.into

    def _check_templates(self, problems: list[Diagnostic]) -> None:
        for actions in self.actions.values():
            for action in actions:
                for text in _action_templates(action):
                    try:
                        templates.check_template(text)
                    except TemplateError as exc:
                        pos = action.pos
                        problems.append(
                            Diagnostic(pos.path, pos.line, pos.column, "error", f"template: {exc}", "compile")
                        )

    # -------------------------------------------------------------------------------- running

    def has_trigger(self, state: str, trigger: str) -> bool:
        """Whether ``trigger`` has any transition from ``state`` (or from any state)."""
        answers = self._answers.get(state)
        return answers is not None and trigger in answers

    def fire(self, state: str, trigger: str, trial: Trial) -> Choice | None:
        """The transition of ``trigger`` from ``state``, chosen as the machine would (see the module doc):
        the first candidate whose conditions all hold; None when none applies."""
        by_trigger = self._candidates.get(state)
        candidates = by_trigger.get(trigger) if by_trigger is not None else None
        trial.choice = None
        if candidates is None:
            return None
        for conditions, choice in candidates:
            for condition, expected in conditions:
                if condition(trial) != expected:  # as ``transitions.Condition.check`` compares
                    break
            else:
                trial.choice = choice
                return choice
        return None

    def fire_machine(self, state: str, trigger: str, trial: Trial) -> Choice | None:
        """Let the machine choose the transition of ``trigger`` from ``state``; None when none applies."""
        if not self.has_trigger(state, trigger):
            return None
        event = self._events.get(trigger)
        if event is None:
            return None
        trial.choice = None
        self._cursor.state = state
        event.trigger(self._cursor, trial)
        return trial.choice

    def select(
        self, state: str, keys: tuple[str, ...], trial: Trial, *, menu_event: str | None = None
    ) -> Choice | None:
        """Choose the transition for a flow event whose handler keys are ``keys`` (most specific first).

        Order: the menu's own handling of ``menu_event`` (``gather.done``/``gather.noinput`` of the
        caller), the state's handlers, then the flow-wide ones.
        """
        if menu_event is not None:
            choice = self.fire(state, f"m:{menu_event}", trial)
            if choice is not None:
                return choice
        for key in keys:
            choice = self.fire(state, f"s:{key}", trial)
            if choice is not None:
                return choice
        for key in keys:
            choice = self.fire(state, f"f:{key}", trial)
            if choice is not None:
                return choice
        return None

    def handles(self, state: str, keys: tuple[str, ...]) -> bool:
        """Whether any handler (state or flow-wide) listens for one of ``keys`` in ``state``."""
        listens = self._listens.get(state)
        return listens is not None and any(key in listens for key in keys)


def _always(trial: Trial) -> bool:
    return True


def _make_guard(expression: CompiledExpression) -> Callable[[Trial], bool]:
    def guard(trial: Trial) -> bool:
        try:
            return bool(expression.evaluate(trial.context))
        except TemplateError as exc:
            trial.notes.append(f"guard {expression.source!r} failed: {exc}")
            return False

    return guard


def _dial_roles(flow: model.Flow) -> Iterator[str]:
    def walk(actions: tuple[model.ActionType, ...]) -> Iterator[str]:
        for action in actions:
            if isinstance(action, model.Dial):
                yield action.role

    for state in flow.states.values():
        yield from walk(state.actions)
        for transitions_ in state.on.values():
            for transition in transitions_:
                yield from walk(transition.actions)
        for timer in state.after:
            for transition in timer.transitions:
                yield from walk(transition.actions)
        if state.menu is not None:
            for transition in state.menu.choices.values():
                yield from walk(transition.actions)
    for transitions_ in flow.on.values():
        for transition in transitions_:
            yield from walk(transition.actions)


def _prompt_templates(prompt: model.Prompt | None) -> Iterator[str]:
    if prompt is not None:
        for value in (prompt.text, prompt.url, prompt.voice, prompt.locale):
            if value is not None:
                yield value


def _action_templates(action: model.ActionType) -> Iterator[str]:
    """Every template string of an action."""
    if isinstance(action, model.Speak | model.Play | model.Gather):
        yield from _prompt_templates(action.prompt)
    elif isinstance(action, model.SendDtmf):
        yield action.digits
    elif isinstance(action, model.Transfer):
        yield action.to
        if action.caller_id is not None:
            yield action.caller_id
        yield from _prompt_templates(action.whisper)
    elif isinstance(action, model.Dial):
        yield action.to
        if action.from_ is not None:
            yield action.from_
    elif isinstance(action, model.Conference):
        yield action.name
    elif isinstance(action, model.SendMessage):
        yield action.text
        for value in (action.to, action.from_, *action.media):
            if value is not None:
                yield value
    elif isinstance(action, model.LookupCaller):
        yield action.number
    elif isinstance(action, model.HttpRequest):
        yield action.url
        yield from action.headers.values()
        yield from templates.iter_template_strings(action.json)
        if action.body is not None:
            yield action.body
    elif isinstance(action, model.SetVars):
        yield from templates.iter_template_strings(action.values)
    elif isinstance(action, model.Log):
        yield action.message
    elif isinstance(action, model.StartFlow):
        yield from templates.iter_template_strings(action.vars)


def compile_flow(flow: model.Flow) -> CompiledFlow:
    """Compile ``flow``.

    Raises:
        FlowCompileError: with a diagnostic per unknown target, bad guard or bad template.
    """
    return CompiledFlow(flow)
