"""Draw a flow as a state diagram: Mermaid (``stateDiagram-v2``) or Graphviz DOT.

States are nodes (final states marked); every way out of a state is an edge labelled by what takes it: the
event and its ``when`` condition, a menu choice, a menu's noinput/nomatch limit, or a timer. Flow-wide
handlers are drawn once, from a node that stands for "any state".
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

from flowengine.flow.model import END, Flow, State, Transition

GraphFormat = Literal["mermaid", "dot"]

ANY_STATE = "(any state)"


@dataclass(frozen=True, slots=True)
class Edge:
    """One arrow of the diagram: from a state (or ANY_STATE) to a state (or END), with its label."""

    source: str
    target: str
    label: str
    kind: Literal["event", "choice", "retry", "timer", "global"]


def edges_of(flow: Flow) -> list[Edge]:
    """Every arrow of ``flow``'s diagram, in the order the flow file defines them.

    A transition without ``goto`` stays in its state; it is drawn as a loop only when it runs actions
    (otherwise it changes nothing anyone would want to see).
    """
    edges: list[Edge] = []
    for state in flow.states.values():
        edges.extend(_state_edges(state))
    for event, transitions in flow.on.items():
        edges.extend(_transition_edges(ANY_STATE, event, transitions, "global"))
    return edges


def _state_edges(state: State) -> Iterator[Edge]:
    if state.menu is not None:
        menu = state.menu
        for key, transition in menu.choices.items():
            yield from _transition_edges(state.name, f"press {key}", (transition,), "choice")
        yield from _transition_edges(
            state.name, f"noinput x{menu.noinput.max}", (menu.noinput.then,), "retry"
        )
        yield from _transition_edges(
            state.name, f"nomatch x{menu.nomatch.max}", (menu.nomatch.then,), "retry"
        )
    for event, transitions in state.on.items():
        yield from _transition_edges(state.name, event, transitions, "event")
    for timer in state.after:
        yield from _transition_edges(
            state.name, f"after {_seconds(timer.seconds)}", timer.transitions, "timer"
        )


def _transition_edges(
    source: str,
    trigger: str,
    transitions: tuple[Transition, ...],
    kind: Literal["event", "choice", "retry", "timer", "global"],
) -> Iterator[Edge]:
    for transition in transitions:
        if transition.target is None and not transition.actions:
            continue
        target = source if transition.target is None else transition.target
        label = trigger if transition.when is None else f"{trigger} [{transition.when}]"
        yield Edge(source, target, label, kind)


def _seconds(value: float) -> str:
    if value >= 60 and value % 60 == 0:
        return f"{int(value // 60)}m"
    if value == int(value):
        return f"{int(value)}s"
    return f"{int(value * 1000)}ms"


def render_graph(flow: Flow, fmt: GraphFormat = "mermaid") -> str:
    """Return the diagram of ``flow`` as Mermaid or DOT source text, ending with a newline."""
    if fmt == "mermaid":
        return _mermaid(flow)
    if fmt == "dot":
        return _dot(flow)
    raise ValueError(f"unknown graph format {fmt!r}; expected 'mermaid' or 'dot'")


# ---------------------------------------------------------------------------------------------- mermaid


def _mermaid_ids(flow: Flow) -> dict[str, str]:
    ids: dict[str, str] = {}
    used: set[str] = set()
    for name in [*flow.states, ANY_STATE]:
        base = re.sub(r"\W", "_", name).strip("_") or "state"
        candidate, n = base, 1
        while candidate in used or candidate in {"end", "state", "note", "direction"}:
            n += 1
            candidate = f"{base}_{n}"
        used.add(candidate)
        ids[name] = candidate
    return ids


def _mermaid_label(text: str) -> str:
    # Mermaid reads `#`, `;` and `:` inside labels as syntax; its entity codes are the documented escape.
    return "".join(f"#{ord(ch)};" if ch in '#;:"<>' else ch for ch in text)


def _mermaid(flow: Flow) -> str:
    ids = _mermaid_ids(flow)
    edges = edges_of(flow)
    lines = ["stateDiagram-v2"]
    if flow.description:
        lines.append(f"    %% {flow.name}: {flow.description}")
    for name, state in flow.states.items():
        if ids[name] != name:
            lines.append(f'    state "{_mermaid_label(name)}" as {ids[name]}')
        if state.menu is not None:
            lines.append(f"    {ids[name]}: {_mermaid_label(name)} (menu)")
    if any(edge.kind == "global" for edge in edges):
        lines.append(f'    state "{ANY_STATE}" as {ids[ANY_STATE]}')
    lines.append(f"    [*] --> {ids[flow.initial]}")
    for edge in edges:
        target = "[*]" if edge.target == END else ids.get(edge.target, edge.target)
        lines.append(f"    {ids[edge.source]} --> {target}: {_mermaid_label(edge.label)}")
    for name, state in flow.states.items():
        if state.final:
            lines.append(f"    {ids[name]} --> [*]")
    return "\n".join(lines) + "\n"


# -------------------------------------------------------------------------------------------------- dot


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


_DOT_STYLE: Mapping[str, str] = {
    "event": "",
    "choice": ' color="#1f6feb"',
    "retry": ' style=dashed color="#9a6700"',
    "timer": " style=dotted",
    "global": ' style=dashed color="#6e7781"',
}


def _dot(flow: Flow) -> str:
    edges = edges_of(flow)
    lines = [
        f"digraph {_dot_quote(flow.name)} {{",
        "    rankdir=LR;",
        '    node [shape=box style=rounded fontname="Helvetica"];',
        '    edge [fontname="Helvetica" fontsize=10];',
        '    "__start__" [shape=point width=0.2 label=""];',
    ]
    for name, state in flow.states.items():
        attributes = ["peripheries=2"] if state.final else []
        if state.menu is not None:
            attributes.append(f"label={_dot_quote(name + chr(10) + '(menu)')}")
        suffix = f" [{' '.join(attributes)}]" if attributes else ""
        lines.append(f"    {_dot_quote(name)}{suffix};")
    if any(edge.target == END for edge in edges):
        lines.append(f'    {_dot_quote(END)} [shape=doublecircle label="end" width=0.3];')
    if any(edge.kind == "global" for edge in edges):
        lines.append(f"    {_dot_quote(ANY_STATE)} [shape=note style=dashed];")
    lines.append(f'    "__start__" -> {_dot_quote(flow.initial)};')
    for edge in edges:
        lines.append(
            f"    {_dot_quote(edge.source)} -> {_dot_quote(edge.target)} "
            f"[label={_dot_quote(edge.label)}{_DOT_STYLE[edge.kind]}];"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"
