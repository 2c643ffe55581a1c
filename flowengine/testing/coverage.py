"""Coverage of flows by scenarios: which states were entered, which transitions taken, which menu choices made.

Computed from the visits a harness records (state before and after each event, and the API callback that
caused it), so it measures what really ran. The denominators come from the flow model:

- states: every state of the flow;
- menu choices: every choice of every ``menu``;
- transitions: every event handler of every state (``on`` keys), every timer (``after``), a menu's ``noinput``
  and ``nomatch`` paths, and the flow-wide ``on`` handlers. A handler counts as taken when an event it
  catches arrived in its state and the session then was where one of its transitions leads.

``--fail-under`` applies to states and menu choices (the "Done when" of every example flow); transitions are
reported beside them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import orjson

from flowengine.flow import vocabulary
from flowengine.flow.model import END, Flow, State, Transition
from flowengine.testing.harness import Visit

if TYPE_CHECKING:
    from flowengine.testing.runner import ScenarioResult


@dataclass(slots=True)
class FlowCoverage:
    """What the scenarios of one flow exercised, against everything the flow has."""

    flow: str
    states: set[str] = field(default_factory=set)
    covered_states: set[str] = field(default_factory=set)
    choices: set[str] = field(default_factory=set)
    covered_choices: set[str] = field(default_factory=set)
    transitions: set[str] = field(default_factory=set)
    covered_transitions: set[str] = field(default_factory=set)
    scenarios: int = 0

    @property
    def state_percent(self) -> float:
        return _percent(self.covered_states, self.states)

    @property
    def choice_percent(self) -> float:
        return _percent(self.covered_choices, self.choices)

    @property
    def transition_percent(self) -> float:
        return _percent(self.covered_transitions, self.transitions)

    @property
    def gated_percent(self) -> float:
        """The figure ``--fail-under`` checks: the lower of states and menu choices."""
        return min(self.state_percent, self.choice_percent)

    def missing(self) -> list[str]:
        """What was never exercised, as readable items."""
        return [
            *(f"state {name}" for name in sorted(self.states - self.covered_states)),
            *(f"choice {name}" for name in sorted(self.choices - self.covered_choices)),
            *(f"transition {name}" for name in sorted(self.transitions - self.covered_transitions)),
        ]


def _percent(covered: set[str], total: set[str]) -> float:
    return 100.0 if not total else 100.0 * len(covered & total) / len(total)


def inventory(flow: Flow) -> FlowCoverage:
    """Everything ``flow`` has that a scenario can exercise."""
    report = FlowCoverage(flow.name, states=set(flow.states))
    for name, state in flow.states.items():
        for key in state.on:
            report.transitions.add(f"{name} on {key}")
        for timer in state.after:
            report.transitions.add(f"{name} after {timer.seconds:g}s")
        if state.menu is not None:
            for key in state.menu.choices:
                report.choices.add(f"{name}:{key}")
            report.transitions.add(f"{name} menu noinput")
            report.transitions.add(f"{name} menu nomatch")
    for key in flow.on:
        report.transitions.add(f"* on {key}")
    return report


def flow_event(visit: Visit, legs: Mapping[str, str]) -> str | None:
    """The flow event name (with a leg prefix) of the callback behind ``visit``, when it is one."""
    data = visit.data
    kind = visit.event_type
    status = str(data.get("status", data.get("state", "")))
    name: str | None
    if kind == "answer":
        name = "answer"
    elif kind == "timeout":
        name = "timeout"
    elif kind == "hangup":
        name = vocabulary.HANGUP_CAUSES.get(str(data.get("cause", "")), "hangup.failed")
    elif kind in ("speak", "playback"):
        name = f"{kind}.{status}" if status in ("started", "done") else None
    elif kind == "gather":
        reason = str(data.get("reason", ""))
        digits = str(data.get("digits", "") or "")
        name = "gather.hungup" if reason == "hung-up" else ("gather.done" if digits else "gather.noinput")
    elif kind == "dtmf":
        name = "dtmf"
    elif kind in ("recording", "transcription", "conference", "conference-member"):
        name = f"{kind}.{status}" if status else kind
    elif kind in ("sms", "mms"):
        name = "message" if data.get("direction") == "in" else _delivery(data)
    else:
        name = None
    if name is None:
        return None
    call_id = str(data.get("callId", ""))
    for role, leg in legs.items():
        if leg == call_id and role != "caller":
            return f"{role}.{name}"
    return name


def _delivery(data: Mapping[str, object]) -> str:
    if data.get("deliveryState") == "delivered":
        return "delivery.delivered"
    if data.get("state") == "error" or data.get("deliveryState") == "not-delivered":
        return "delivery.error"
    return "delivery.sent"


def _leads_to(transitions: Iterable[Transition], before: str, after: str) -> bool:
    for transition in transitions:
        if transition.target is None and after == before:
            return True
        if transition.target == after or (transition.target == END and after == END):
            return True
    return False


def record(report: FlowCoverage, flow: Flow, visits: Iterable[Visit], legs: Mapping[str, str]) -> None:
    """Add what ``visits`` (of sessions of ``flow``) exercised to ``report``."""
    report.covered_states.add(flow.initial)
    for visit in visits:
        for name in (visit.before, visit.after):
            if name in flow.states:
                report.covered_states.add(name)
        state = flow.states.get(visit.before or flow.initial)
        if state is None:
            continue
        if visit.event_type == "timer":
            for timer in state.after:
                report.covered_transitions.add(f"{state.name} after {timer.seconds:g}s")
            continue
        event = flow_event(visit, legs)
        if event is None:
            continue
        if state.menu is not None and event == "gather.done":
            _menu(report, state, str(visit.data.get("digits", "")))
            continue
        if state.menu is not None and event == "gather.noinput":
            report.covered_transitions.add(f"{state.name} menu noinput")
            continue
        _handler(report, flow, state, event, visit)


def _menu(report: FlowCoverage, state: State, digits: str) -> None:
    assert state.menu is not None
    if digits in state.menu.choices:
        report.covered_choices.add(f"{state.name}:{digits}")
    else:
        report.covered_transitions.add(f"{state.name} menu nomatch")


def _handler(report: FlowCoverage, flow: Flow, state: State, event: str, visit: Visit) -> None:
    for key in vocabulary.candidate_keys(event):
        if key in state.on:
            if _leads_to(state.on[key], visit.before, visit.after):
                report.covered_transitions.add(f"{state.name} on {key}")
            return
    for key in vocabulary.candidate_keys(event):
        if key in flow.on:
            report.covered_transitions.add(f"* on {key}")
            return


def legs_of(snapshot: Mapping[str, object] | bytes | str) -> dict[str, str]:
    """The legs (role -> call id) a runtime snapshot (an object or its JSON text) records, when it records
    them under ``legs``."""
    if isinstance(snapshot, bytes | str):
        snapshot = orjson.loads(snapshot)
        if not isinstance(snapshot, dict):
            return {}
    legs = snapshot.get("legs")
    if isinstance(legs, dict):
        return {str(role): str(call) for role, call in legs.items() if isinstance(call, str)}
    return {}


def format_coverage(reports: Iterable[FlowCoverage], *, show_missing: bool = True) -> str:
    """A table: per flow, states, menu choices and transitions covered, then what is missing."""
    rows = sorted(reports, key=lambda r: r.flow)
    width = max([len(r.flow) for r in rows] + [4])
    lines = [f"{'flow':<{width}}  {'states':>13}  {'menu choices':>13}  {'transitions':>13}"]
    for r in rows:
        lines.append(
            f"{r.flow:<{width}}  "
            f"{_cell(r.covered_states, r.states, r.state_percent):>13}  "
            f"{_cell(r.covered_choices, r.choices, r.choice_percent):>13}  "
            f"{_cell(r.covered_transitions, r.transitions, r.transition_percent):>13}"
        )
    if show_missing:
        for r in rows:
            gaps = [item for item in r.missing() if not item.startswith("transition")]
            if gaps:
                lines.append(f"{r.flow}: not covered: {', '.join(gaps)}")
    return "\n".join(lines)


def _cell(covered: set[str], total: set[str], percent: float) -> str:
    return f"{len(covered & total)}/{len(total)} {percent:3.0f}%"


def collect(results: Sequence[ScenarioResult]) -> dict[str, FlowCoverage]:
    """Coverage per flow (by name) over every result whose flow could be loaded."""
    reports: dict[str, FlowCoverage] = {}
    for result in results:
        flow = result.flow
        if flow is None:
            continue
        report = reports.get(flow.name)
        if report is None:
            report = reports[flow.name] = inventory(flow)
        report.scenarios += 1
        by_session: dict[str, list[Visit]] = {}
        for visit in result.visits:
            by_session.setdefault(visit.session_id, []).append(visit)
        for session_id, visits in by_session.items():
            mine = [v for v in visits if v.flow in ("", flow.name)]
            record(report, flow, mine, result.legs.get(session_id, {}))
    return reports
