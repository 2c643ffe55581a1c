"""Semantic checks of a built flow: the rules a JSON Schema cannot express, each with ``file:line:col``.

Errors: unknown targets (with a did-you-mean), an unknown ``initial``, states with no way out, unknown event
names and legs, templates and ``when`` expressions that do not parse or read undefined names, environment
variables missing from the ``env`` allow-list, voice actions in a messaging flow, reserved variable names.
Warnings: unreachable states, events a state can never receive, menu choices that can never be pressed.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, cast

from flowengine.errors import Diagnostic, Severity, TemplateSyntaxError
from flowengine.flow import model, templates, vocabulary
from flowengine.flow.loader import JsonPath, LoadedDocument
from flowengine.flow.schema import dotted

CONTEXT_NAMES = frozenset({"vars", "call", "event", "legs", "env", "error"})
"""Names every template can read besides the flow's variables."""

_JINJA_WORDS = frozenset(
    {"true", "false", "none", "True", "False", "None", "not", "and", "or", "in", "is", "if", "else"}
)
_CONSTANTS = frozenset({"true", "false", "none", "True", "False", "None"})
# The tokens of a "simple" expression: operands joined by comparison, arithmetic and boolean operators.
# Any sequence of them that alternates operand/operator is valid Jinja, so it needs no parser.
_SIMPLE_TOKEN = re.compile(
    r"""\s*(?:
        (?P<ref>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*|\[[0-9]+\])*)
      | (?P<number>[0-9]+(?:\.[0-9]+)?)
      | (?P<string>'[^'\\{}%]*'|"[^"\\{}%]*")
      | (?P<op>==|!=|<=|>=|//|[<>+\-*/%~])
    )""",
    re.VERBOSE,
)
_TEMPLATE_PART = re.compile(r"\{\{-?(.*?)-?\}\}", re.DOTALL)
_ENV_ATTR = re.compile(r"\benv\s*(?:\.\s*([A-Za-z_][A-Za-z0-9_]*)|\[\s*['\"]([^'\"]+)['\"]\s*\])")

# Actions that only make sense on a call.
_VOICE_ACTIONS: tuple[type[model.Action], ...] = (
    model.Answer,
    model.Reject,
    model.Hangup,
    model.Speak,
    model.Play,
    model.StopAudio,
    model.Gather,
    model.SendDtmf,
    model.Record,
    model.StopRecording,
    model.Transfer,
    model.Dial,
    model.Bridge,
    model.Conference,
    model.LeaveConference,
)
# Caller-leg events that can arrive without any action of the flow (outbound executions, the caller leaving).
_ALWAYS_ON_CALLER = ("answer", "timeout", "hangup")


@dataclass(frozen=True, slots=True)
class _Analysis:
    names: frozenset[str]
    env: frozenset[str]
    error: str | None
    line: int = 1


def _simple_names(src: str) -> frozenset[str] | None:
    """The names a simple expression reads, or None when it is not simple (then Jinja must parse it)."""
    names: set[str] = set()
    position, expect_operand = 0, True
    while True:
        match = _SIMPLE_TOKEN.match(src, position)
        if match is None:
            break
        position = match.end()
        ref, op = match["ref"], match["op"]
        if expect_operand:
            if ref == "not":
                continue
            if op is not None or ref in ("and", "or", "in", "is", "if", "else"):
                return None
            if ref is not None and ref not in _CONSTANTS:
                names.add(ref.split(".", 1)[0].split("[", 1)[0])
            expect_operand = False
        else:
            if op is None and ref not in ("and", "or"):
                return None
            expect_operand = True
    if src[position:].strip() or expect_operand:
        return None
    return frozenset(names)


@functools.lru_cache(maxsize=16384)
def analyze_template(src: str) -> _Analysis:
    """Names and ``env`` keys a template reads, or why it does not parse (cached by source text)."""
    env_keys = frozenset(a or b for a, b in _ENV_ATTR.findall(src))
    if "{%" not in src and "{#" not in src:
        parts = _TEMPLATE_PART.findall(src)
        if parts and len(parts) == src.count("{{") == src.count("}}"):
            found = [_simple_names(part) for part in parts]
            if all(names is not None for names in found):
                return _Analysis(frozenset().union(*(n for n in found if n is not None)), env_keys, None)
    try:
        templates.check_template(src)
        names = templates.template_names(src)
    except TemplateSyntaxError as exc:
        return _Analysis(frozenset(), env_keys, exc.reason, exc.line)
    return _Analysis(names, env_keys, None)


@functools.lru_cache(maxsize=16384)
def analyze_expression(src: str) -> _Analysis:
    """Names and ``env`` keys a ``when`` expression reads, or why it does not parse (cached by source)."""
    env_keys = frozenset(a or b for a, b in _ENV_ATTR.findall(src))
    names = _simple_names(src)
    if names is not None:
        return _Analysis(names, env_keys, None)
    try:
        templates.check_expression(src)
        names = templates.expression_names(src)
    except TemplateSyntaxError as exc:
        return _Analysis(frozenset(), env_keys, exc.reason, exc.line)
    return _Analysis(names, env_keys, None)


def lint_flow(flow: model.Flow, document: LoadedDocument) -> list[Diagnostic]:
    """Every semantic problem of ``flow`` (built from ``document``), errors and warnings, sorted."""
    return sorted(_Linter(flow, document).run())


class _Linter:
    def __init__(self, flow: model.Flow, document: LoadedDocument) -> None:
        self.flow = flow
        self.document = document
        self.data = document.data
        self.found: list[Diagnostic] = []
        # Read from the data rather than the model: a partial flow (the schema failed) may lack some actions.
        self.walk = _Walk(self.data)
        self.roles = {role for _, role in _roles(self.walk)}
        self.variables = set(flow.vars) | {name for _, name in _assignments(self.walk)}
        self.targets = _state_targets_in(self.walk)

    def report(
        self, path: JsonPath, severity: Severity, message: str, code: str, *, at_key: bool = False
    ) -> None:
        mark = self.document.key_mark(path) if at_key else self.document.value_mark(path)
        where = dotted(path)
        self.found.append(Diagnostic(*mark, severity, f"{where}: {message}" if where else message, code))

    def run(self) -> list[Diagnostic]:
        if self.document.is_fragment:
            self.check_templates()
            return self.found
        self.check_names()
        self.check_targets()
        self.check_reachability()
        self.check_events()
        self.check_legs_and_kinds()
        self.check_menus()
        self.check_templates()
        return self.found

    # -------------------------------------------------------------------------------- names

    def check_names(self) -> None:
        if model.END in self.flow.states:
            self.report(
                ("states", model.END),
                "error",
                "'end' is the built-in final target; name the state otherwise",
                "reserved",
                at_key=True,
            )
        for name in self.flow.vars:
            if name in CONTEXT_NAMES:
                self.report(("vars", name), "error", _reserved_var(name), "reserved", at_key=True)
        for path, name in _assignments(self.walk):
            if name in CONTEXT_NAMES:
                self.report(path, "error", _reserved_var(name), "reserved", at_key=path[-1] == name)
        for path, role in _roles(self.walk):
            if role == model.CALLER or role in vocabulary.HANDLER_NAMES:
                message = f"the role {role!r} is taken ({'the first leg' if role == model.CALLER else 'an event name'}); choose another name for the leg"
                self.report(path, "error", message, "role")

    # ------------------------------------------------------------------------------ targets

    def check_targets(self) -> None:
        known = set(self.flow.states)
        if self.flow.initial not in known:
            self.report(("initial",), "error", self._unknown_state(self.flow.initial), "unknown-target")
        for path, target in _targets(self.walk):
            if target != model.END and target not in known:
                self.report(path, "error", self._unknown_state(target), "unknown-target")

    def _unknown_state(self, name: str) -> str:
        match = difflib.get_close_matches(name, [*self.flow.states, model.END], n=1, cutoff=0.6)
        hint = f" (did you mean {match[0]!r}?)" if match else ""
        return f"unknown target state {name!r}{hint}"

    # ------------------------------------------------------------------------- reachability

    def edges(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {name: set() for name in self.flow.states}
        global_targets = self.targets.get(None, set())
        for name in self.flow.states:
            out[name] |= {t for t in self.targets.get(name, set()) if t in self.flow.states}
            out[name] |= {t for t in global_targets if t in self.flow.states}
        return out

    def check_reachability(self) -> None:
        if self.flow.initial not in self.flow.states:
            return
        edges = self.edges()
        reached = {self.flow.initial}
        todo = [self.flow.initial]
        while todo:
            for target in edges[todo.pop()]:
                if target not in reached:
                    reached.add(target)
                    todo.append(target)
        for name in self.flow.states:
            if name not in reached and self.document.file_for(("states", name)) is self.document.root:
                message = (
                    f"state {name!r} is unreachable: no transition leads to it from {self.flow.initial!r}"
                )
                self.report(("states", name), "warning", message, "unreachable", at_key=True)
        if self.document.partial or self.targets.get(None):
            return  # flow-wide handlers lead out of every state (or the flow is only partly built)
        for name, state in self.flow.states.items():
            if state.final or state.menu is not None:
                continue
            if not any(target != name for target in self.targets.get(name, set())):
                advice = "add a transition (`on`, `after`) to another state, or mark it `final: true`"
                if self.flow.kind == "voice":
                    # The runtime ends a call's session when the caller hangs up, so this is not a trap.
                    message = f"state {name!r} has no way out but the caller hanging up: {advice} (or `on: {{hangup: end}}`)"
                    self.report(("states", name), "warning", message, "dead-end", at_key=True)
                else:
                    message = f"state {name!r} has no way out, so the conversation would never end: {advice}"
                    self.report(("states", name), "error", message, "dead-end", at_key=True)

    # ------------------------------------------------------------------------------- events

    def check_events(self) -> None:
        # A partial flow lacks some actions, so "can never arrive" would be guesswork: names only.
        available = None if self.document.partial else self.available_causes()
        for name, state in self.flow.states.items():
            causes = available.get(name, set()) if available is not None else None
            for event in state.on:
                self.check_event(("states", name, "on", event), event, causes)
        everywhere = set().union(*available.values()) if available else None
        for event in self.flow.on:
            self.check_event(("on", event), event, everywhere)

    def check_event(self, path: JsonPath, event: str, causes: set[str] | None) -> None:
        leg, name = vocabulary.split_leg(event, self.roles)
        head, _, rest = event.partition(".")
        if head == model.CALLER and rest:
            message = f"the caller's events have no prefix: write {rest!r} instead of {event!r}"
            self.report(path, "error", message, "unknown-event", at_key=True)
            return
        if name not in vocabulary.HANDLER_NAMES:
            options = sorted(vocabulary.HANDLER_NAMES | {f"{r}.{e}" for r in self.roles for e in _LEG_EVENTS})
            match = difflib.get_close_matches(event, options, n=1, cutoff=0.6)
            hint = f" (did you mean {match[0]!r}?)" if match else ""
            head = event.partition(".")[0]
            extra = (
                f"; {head!r} is not a leg (legs are named by a dial's `as`)"
                if "." in event and head not in vocabulary.HANDLER_NAMES and not hint
                else ""
            )
            self.report(path, "error", f"unknown event {event!r}{hint}{extra}", "unknown-event", at_key=True)
            return
        specs = _specs_under(name)
        if leg is not None:
            specs = [spec for spec in specs if spec.per_leg]
            if not specs:
                message = f"{name!r} is not an event of a leg; handle it without the {leg!r} prefix"
                self.report(path, "error", message, "unknown-event", at_key=True)
                return
        if causes is None:
            return
        kinds = [spec for spec in specs if self.flow.kind in spec.kinds]
        if not kinds:
            message = f"{event!r} never happens in a {self.flow.kind} flow"
            self.report(path, "warning", message, "never-received", at_key=True)
            return
        if any(self.can_receive(spec, leg, causes) for spec in kinds):
            return
        makers = sorted({_ACTION_NAMES[t] for spec in kinds for t in spec.caused_by if t in _ACTION_NAMES})
        what = f"after a {leg!r} leg is dialled and " if leg is not None else ""
        message = f"{event!r} can never arrive here: it follows {what}{' or '.join(makers)}, and no state leading here does that"
        self.report(path, "warning", message, "never-received", at_key=True)

    def can_receive(self, spec: vocabulary.EventSpec, leg: str | None, causes: set[str]) -> bool:
        if leg is not None:
            if f"dial:{leg}" not in causes:
                return False
            if spec.name.split(".")[0] in _ALWAYS_ON_CALLER:
                return True
        elif spec.name.split(".")[0] in _ALWAYS_ON_CALLER and self.flow.kind == "voice":
            return True
        if not spec.caused_by:
            return True
        return any(cause.__name__ in causes for cause in spec.caused_by)

    def available_causes(self) -> dict[str, set[str]]:
        """For each state, what actions may have run by the time it handles an event."""
        everywhere = set()
        for transitions in self.flow.on.values():
            for transition in transitions:
                everywhere |= _causes(transition.actions)
        own = {name: _own_causes(state) | everywhere for name, state in self.flow.states.items()}
        edges = self.edges()
        changed = True
        while changed:
            changed = False
            for source, targets in edges.items():
                for target in targets:
                    if not own[source] <= own[target]:
                        own[target] |= own[source]
                        changed = True
        return own

    # ------------------------------------------------------------------------ legs and kinds

    def check_legs_and_kinds(self) -> None:
        legs = self.roles | {model.CALLER}
        for path, leg in _leg_refs(self.walk):
            if leg not in legs:
                match = difflib.get_close_matches(leg, sorted(legs), n=1, cutoff=0.6)
                hint = f" (did you mean {match[0]!r}?)" if match else ""
                message = f"unknown leg {leg!r}{hint}: use caller or a role named by a dial's `as`"
                self.report(path, "error", message, "unknown-leg")
        if self.flow.kind == "messaging":
            for path, name in _action_items(self.walk):
                if _MAKER_TYPES.get(name) in _VOICE_ACTIONS:
                    message = f"{name!r} is a call action; a messaging flow can use send_message, reply, http, lookup_caller, set, log and start_flow"
                    self.report(path, "error", message, "kind")

    def check_menus(self) -> None:
        for name, state in self.flow.states.items():
            menu = state.menu
            if menu is None:
                continue
            # A partly built menu (the schema failed) may hold values of the wrong type: check, not trust.
            terminators: object = menu.terminating_digits or self.flow.defaults.gather.terminating_digits
            max_digits: object = menu.max_digits
            if not isinstance(terminators, str) or not (max_digits is None or isinstance(max_digits, int)):
                continue
            for key in menu.choices:
                path: JsonPath = ("states", name, "menu", "choices", key)
                if max_digits is not None and len(key) > max_digits:
                    message = f"choice {key!r} can never be pressed: max_digits is {max_digits}"
                    self.report(path, "warning", message, "choice", at_key=True)
                elif any(ch in terminators for ch in key):
                    message = f"choice {key!r} can never be pressed: {terminators!r} ends the gather (set terminating_digits)"
                    self.report(path, "warning", message, "choice", at_key=True)

    # ---------------------------------------------------------------------------- templates

    def check_templates(self) -> None:
        allowed = CONTEXT_NAMES | self.variables
        env = set(self.flow.env)
        for path, src, is_expression in _template_strings(self.walk):
            analysis = analyze_expression(src) if is_expression else analyze_template(src)
            what = "expression" if is_expression else "template"
            if analysis.error is not None:
                # An expression is parsed wrapped in parentheses, so its line numbers are not the author's.
                line = (
                    f" (line {analysis.line} of the {what})"
                    if analysis.line > 1 and not is_expression
                    else ""
                )
                self.report(path, "error", f"{what} does not parse: {analysis.error}{line}", "template")
                continue
            if self.document.is_fragment:
                continue  # a fragment's names are checked in the flows that include it
            for name in sorted(analysis.names - allowed):
                match = difflib.get_close_matches(name, sorted(allowed), n=1, cutoff=0.6)
                hint = f" (did you mean {match[0]!r}?)" if match else ""
                message = f"{what} reads undefined variable {name!r}{hint}; declare it in `vars` or set it with `set`/`into`"
                self.report(path, "error", message, "undefined")
            for key in sorted(analysis.env - env):
                message = f"{what} reads env.{key}, which is not in the flow's `env` allow-list"
                self.report(path, "error", message, "env")


def _reserved_var(name: str) -> str:
    return f"{name!r} is a reserved name in templates ({', '.join(sorted(CONTEXT_NAMES))}); name the variable otherwise"


@functools.cache
def _specs_under(handler: str) -> list[vocabulary.EventSpec]:
    """The events a handler name catches (``hangup`` catches ``hangup.busy`` and the rest)."""
    return [spec for spec in vocabulary.EVENTS if spec.name == handler or spec.name.startswith(handler + ".")]


_LEG_EVENTS = sorted({spec.name for spec in vocabulary.EVENTS if spec.per_leg})

_MAKER_TYPES: dict[str, type[model.Action]] = {
    "answer": model.Answer,
    "reject": model.Reject,
    "hangup": model.Hangup,
    "speak": model.Speak,
    "play": model.Play,
    "stop_audio": model.StopAudio,
    "gather": model.Gather,
    "send_dtmf": model.SendDtmf,
    "record": model.Record,
    "stop_recording": model.StopRecording,
    "transfer": model.Transfer,
    "dial": model.Dial,
    "bridge": model.Bridge,
    "conference": model.Conference,
    "leave_conference": model.LeaveConference,
    "send_message": model.SendMessage,
    "reply": model.SendMessage,
    "http": model.HttpRequest,
    "lookup_caller": model.LookupCaller,
    "set": model.SetVars,
    "log": model.Log,
    "start_flow": model.StartFlow,
}
_ACTION_NAMES: dict[type[model.Action], str] = {}
for _name, _type in _MAKER_TYPES.items():
    _ACTION_NAMES.setdefault(_type, _name)


# ------------------------------------------------------------------------------- model walkers


def _transitions_of(state: model.State) -> Iterator[model.Transition]:
    for transitions in state.on.values():
        yield from transitions
    for timer in state.after:
        yield from timer.transitions
    if state.menu is not None:
        yield from state.menu.choices.values()
        yield state.menu.noinput.then
        yield state.menu.nomatch.then


def _causes(actions: tuple[model.ActionType, ...]) -> set[str]:
    found = set()
    for action in actions:
        found.add(type(action).__name__)
        if isinstance(action, model.Dial):
            found.add(f"dial:{action.role}")
    return found


def _own_causes(state: model.State) -> set[str]:
    found = _causes(state.actions)
    for transition in _transitions_of(state):
        found |= _causes(transition.actions)
    if state.menu is not None:
        found |= {"Gather", "Speak", "Play"}
    return found


# -------------------------------------------------------------------------------- data walkers
# These walk the (schema-valid) data rather than the model, to point at the exact key or value.


def _obj(value: Any) -> dict[str, Any]:
    return cast(dict[str, Any], value) if isinstance(value, dict) else {}


def _states(data: Mapping[str, Any]) -> Iterator[tuple[JsonPath, Mapping[str, Any]]]:
    for name, body in _obj(data.get("states")).items():
        yield ("states", name), _obj(body)


def _transition_nodes(data: Mapping[str, Any]) -> Iterator[tuple[JsonPath, Any]]:
    """Every transition value (string or mapping) with its path, including menu choices and retries."""
    for path, state in _states(data):
        for key in ("on", "after"):
            for event, value in _obj(state.get(key)).items():
                yield from _expand((*path, key, event), value)
        menu = state.get("menu")
        if isinstance(menu, dict):
            for key, value in _obj(menu.get("choices")).items():
                yield (*path, "menu", "choices", key), value
            for retry in ("noinput", "nomatch"):
                body = menu.get(retry)
                if isinstance(body, dict) and "then" in body:
                    yield (*path, "menu", retry, "then"), body["then"]
    for event, value in _obj(data.get("on")).items():
        yield from _expand(("on", event), value)


class _Walk:
    """One pass over the data, collecting what the checks look at (each check used to walk it again)."""

    __slots__ = ("action_bodies", "action_lists", "data", "transitions")

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data
        self.transitions = list(_transition_nodes(data))
        self.action_lists: list[tuple[JsonPath, list[Any]]] = []
        for path, state in _states(data):
            if isinstance(state.get("do"), list):
                self.action_lists.append(((*path, "do"), state["do"]))
        for path, value in self.transitions:
            if isinstance(value, dict) and isinstance(value.get("do"), list):
                self.action_lists.append(((*path, "do"), value["do"]))
        self.action_bodies: list[tuple[JsonPath, str, Any]] = []
        for path, actions in self.action_lists:
            for index, item in enumerate(actions):
                if isinstance(item, dict) and item:
                    name, body = next(iter(item.items()))
                    self.action_bodies.append(((*path, index, name), name, body))


def _expand(path: JsonPath, value: Any) -> Iterator[tuple[JsonPath, Any]]:
    if isinstance(value, list):
        for index, item in enumerate(value):
            yield (*path, index), item
    else:
        yield path, value


def _targets(walk: _Walk) -> Iterator[tuple[JsonPath, str]]:
    for path, value in walk.transitions:
        if isinstance(value, str):
            yield path, value
        elif isinstance(value, dict) and isinstance(value.get("goto"), str):
            yield (*path, "goto"), value["goto"]


def _state_targets_in(walk: _Walk) -> dict[str | None, set[str]]:
    """Targets by state name (None: the flow-wide handlers)."""
    out: dict[str | None, set[str]] = {}
    for path, target in _targets(walk):
        owner = cast(str, path[1]) if path[0] == "states" else None
        out.setdefault(owner, set()).add(target)
    return out


def _action_items(walk: _Walk) -> Iterator[tuple[JsonPath, str]]:
    """``(path, action name)`` of every action, the path pointing at the action's list item."""
    for path, actions in walk.action_lists:
        for index, item in enumerate(actions):
            if isinstance(item, str):
                yield (*path, index), item
            elif isinstance(item, dict) and item:
                yield (*path, index), next(iter(item))


def _assignments(walk: _Walk) -> Iterator[tuple[JsonPath, str]]:
    for path, name, body in walk.action_bodies:
        if name == "set" and isinstance(body, dict):
            for key in body:
                yield (*path, key), key
        elif isinstance(body, dict) and isinstance(body.get("into"), str):
            yield (*path, "into"), body["into"]
        elif name == "lookup_caller" and isinstance(body, str):
            yield path, body  # the short form names the variable
    for path, state in _states(walk.data):
        menu = state.get("menu")
        if isinstance(menu, dict) and isinstance(menu.get("into"), str):
            yield (*path, "menu", "into"), menu["into"]


def _roles(walk: _Walk) -> Iterator[tuple[JsonPath, str]]:
    for path, name, body in walk.action_bodies:
        if name == "dial" and isinstance(body, dict) and isinstance(body.get("as"), str):
            yield (*path, "as"), body["as"]


def _leg_refs(walk: _Walk) -> Iterator[tuple[JsonPath, str]]:
    for path, name, body in walk.action_bodies:
        if name == "bridge":
            legs = body.get("legs") if isinstance(body, dict) else body
            if isinstance(legs, list):
                legs_path = (*path, "legs") if isinstance(body, dict) else path
                for index, leg in enumerate(legs):
                    if isinstance(leg, str):
                        yield (*legs_path, index), leg
        elif isinstance(body, dict):
            leg = body.get("leg")
            if isinstance(leg, str):
                yield (*path, "leg"), leg


_NOT_TEMPLATES = frozenset({"goto", "as", "leg", "into", "method", "level", "file_format", "description"})


def _template_strings(walk: _Walk) -> Iterator[tuple[JsonPath, str, bool]]:
    """``(path, source, is_expression)`` for every template and ``when`` expression of the flow."""
    data = walk.data
    for path, value in walk.transitions:
        if isinstance(value, dict) and isinstance(value.get("when"), str):
            yield (*path, "when"), value["when"], True
    for path, actions in walk.action_lists:
        yield from _strings(path, actions)
    for path, state in _states(data):
        menu = state.get("menu")
        if isinstance(menu, dict):
            if "prompt" in menu:
                yield from _strings((*path, "menu", "prompt"), menu["prompt"])
            for retry in ("noinput", "nomatch"):
                body = menu.get(retry)
                if isinstance(body, dict) and "reprompt" in body:
                    yield from _strings((*path, "menu", retry, "reprompt"), body["reprompt"])
    defaults = data.get("defaults")
    if isinstance(defaults, dict) and isinstance(defaults.get("on_error"), str):
        yield from _strings(("defaults", "on_error"), defaults["on_error"])


def _strings(path: JsonPath, value: Any) -> Iterator[tuple[JsonPath, str, bool]]:
    if isinstance(value, str):
        if templates.is_template(value):
            yield path, value, False
    elif isinstance(value, dict):
        for key, item in value.items():
            if key not in _NOT_TEMPLATES:
                yield from _strings((*path, key), item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings((*path, index), item)
