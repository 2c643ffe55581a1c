"""Run a scenario: play its steps on a :class:`~flowengine.testing.harness.Harness` and judge the outcome.

Caller actions act at the current virtual time. An expectation looks forward through what has happened
since the last match of its kind (like ``pexpect``: earlier, unmatched items are skipped); when nothing
matches yet it moves the virtual clock to the next scheduled moment and looks again, until the scenario's
``timeout`` has passed or nothing is scheduled any more. So ``hear: "Goodbye."`` after a menu waits through the
menu's timeouts and reprompts in a few milliseconds of real time.

A failure names the step and its ``file:line:col``, what was expected and what happened instead, next to the
caller's transcript.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from flowengine.errors import FlowEngineError, FlowError
from flowengine.flow.model import Flow
from flowengine.server.dispatcher import RuntimeAdapter
from flowengine.sim.problems import ApiProblem
from flowengine.testing import scenario as sc
from flowengine.testing.coverage import legs_of
from flowengine.testing.harness import Harness, Observation, ObservationKind, Visit
from flowengine.typing import Seconds


class RuntimeFactory(Protocol):
    """Builds the runtime for a scenario from its flows (by name) and the scenario's ``env`` values."""

    def __call__(self, flows: Mapping[str, Flow], env: Mapping[str, str]) -> RuntimeAdapter: ...


FlowLoader = Callable[[str], Mapping[str, Flow]]
"""Reads the flow file at a path; returns the flows it needs by name, the flow under test first."""


def default_runtime_factory(flows: Mapping[str, Flow], env: Mapping[str, str]) -> RuntimeAdapter:
    """The server's adapter over ``flowengine.runtime.engine.Engine``, configured for the harness."""
    from flowengine.testing.engine import make_runtime

    return make_runtime(flows, env)


def default_flow_loader(path: str) -> Mapping[str, Flow]:
    """The flow at ``path`` first, then the other flows of its directory (for ``start_flow``)."""
    from flowengine.flow import read_flow  # type: ignore[attr-defined,unused-ignore]

    flow: Flow = read_flow(path)
    flows: dict[str, Flow] = {flow.name: flow}
    directory = Path(path).parent
    for other in sorted(directory.glob("*.y*ml")):
        if other.resolve() == Path(path).resolve():
            continue
        try:
            extra: Flow = read_flow(other)
        except (FlowEngineError, OSError):
            continue  # only the flow under test must be valid; a sub-flow that is broken fails when used
        flows.setdefault(extra.name, extra)
    return flows


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a scenario failed: the step (None for a problem of the whole run), expected and actual."""

    message: str
    step: sc.StepType | None = None
    index: int = -1
    actual: str = ""


@dataclass(slots=True)
class ScenarioResult:
    """The outcome of one scenario."""

    scenario: sc.Scenario
    failure: Failure | None = None
    steps_run: int = 0
    transcript: list[str] = field(default_factory=list)
    visits: list[Visit] = field(default_factory=list)
    legs: dict[str, dict[str, str]] = field(default_factory=dict)
    """Per session, its legs (role -> call id) as its last snapshot recorded them."""
    flow: Flow | None = None
    wall_seconds: Seconds = 0.0
    virtual_seconds: Seconds = 0.0

    @property
    def passed(self) -> bool:
        return self.failure is None


class _StepFailed(Exception):
    def __init__(self, message: str, actual: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.actual = actual


class ScenarioRun:
    """One scenario being played. ``await run()`` returns its result."""

    def __init__(
        self,
        scenario: sc.Scenario,
        *,
        runtime_factory: RuntimeFactory = default_runtime_factory,
        flow_loader: FlowLoader = default_flow_loader,
    ) -> None:
        self.scenario = scenario
        self.runtime_factory = runtime_factory
        self.flow_loader = flow_loader
        self.harness: Harness | None = None
        self.caller_call: str | None = None
        self._heard_seen = 0
        self._seen: dict[ObservationKind, int] = {}

    async def run(self) -> ScenarioResult:
        started = time.perf_counter()
        result = ScenarioResult(self.scenario)
        try:
            flows = self.flow_loader(self.scenario.flow_path)
        except FlowError as exc:
            lines = "\n".join(f"  {d}" for d in exc.diagnostics)
            result.failure = Failure(f"the flow {self.scenario.flow_path!r} is not valid:\n{lines}")
            return result
        except (FlowEngineError, OSError) as exc:
            result.failure = Failure(f"the flow {self.scenario.flow_path!r} cannot be read: {exc}")
            return result
        flow = next(iter(flows.values()))
        result.flow = flow
        number = self.scenario.number or (flow.numbers[0] if flow.numbers else sc.DEFAULT_NUMBER)
        numbers = list(dict.fromkeys([number, *flow.numbers]))
        harness = Harness(
            self.runtime_factory(flows, self.scenario.env),
            numbers=numbers,
            canned=self.scenario.http,
            phones=self.scenario.phones,
            transcription=self.scenario.transcription,
            transcription_seconds=self.scenario.transcription_seconds,
        )
        self.harness = harness
        start_time = harness.clock.now()
        try:
            await harness.setup()
            await self._start(flow, number)
            for index, step in enumerate(self.scenario.steps):
                result.steps_run = index + 1
                try:
                    await self._step(step)
                except _StepFailed as failed:
                    result.failure = Failure(failed.message, step, index, failed.actual)
                    break
                if harness.problems:
                    result.failure = Failure(harness.problems[0], step, index)
                    break
        finally:
            result.transcript = self.transcript()
            result.visits = list(harness.visits)
            result.legs = {sid: legs_of(s.snapshot) for sid, s in harness.sessions.items()}
            result.virtual_seconds = harness.clock.now() - start_time
            await harness.close()
            result.wall_seconds = time.perf_counter() - started
        return result

    # ----------------------------------------------------------------------------------- starting

    async def _start(self, flow: Flow, number: str) -> None:
        harness = self._harness
        scenario = self.scenario
        if scenario.outbound:
            harness.start_outbound(flow.name, scenario.caller, number, dict(scenario.outbound_vars))
        elif flow.kind == "voice":
            try:
                call = harness.sim.place_call(scenario.caller, number)
            except ApiProblem as problem:
                raise FlowEngineError(f"the simulator refused the call: {problem.message}") from None
            self.caller_call = call.id
        await harness.settle()

    @property
    def _harness(self) -> Harness:
        assert self.harness is not None
        return self.harness

    # ------------------------------------------------------------------------------------- steps

    async def _step(self, step: sc.StepType) -> None:
        harness = self._harness
        if isinstance(step, sc.Press):
            call = self._live_call(step)
            try:
                harness.sim.press(call, step.digits)
            except ApiProblem as problem:
                raise _StepFailed(f"cannot press {step.digits!r}: {problem.message}") from None
            await harness.settle()
        elif isinstance(step, sc.Silence | sc.Wait):
            await harness.advance(step.seconds)
        elif isinstance(step, sc.Reply):
            number = self._number()
            try:
                harness.sim.send_sms(self.scenario.caller, number, step.text, list(step.media))
            except ApiProblem as problem:
                raise _StepFailed(f"cannot text {number}: {problem.message}") from None
            await harness.settle()
        elif isinstance(step, sc.HangUp):
            call = self._live_call(step)
            harness.sim.hangup(call)
            await harness.settle()
        elif isinstance(step, sc.SetPhone):
            harness.set_phone(step.number, step.phone)
        elif isinstance(step, sc.Hear):
            await self._wait_for(step, self._hear(step))
        elif isinstance(step, sc.ExpectState):
            await harness.settle()
            state = harness.current_state()
            if state != step.name:
                raise _StepFailed(f"expected state {step.name!r}", f"the session is in state {state!r}")
        elif isinstance(step, sc.ExpectEnd):
            await self._wait_for(step, self._ended)
        else:
            await self._wait_for(step, self._observed(step))

    def _live_call(self, step: sc.StepType) -> str:
        call = self._caller_call()
        if call is None:
            raise _StepFailed(f"cannot {step.label}: the caller has no call")
        if self._harness.sim.voice.call(call).ended:
            raise _StepFailed(f"cannot {step.label}: the call has already ended")
        return call

    def _caller_call(self) -> str | None:
        if self.caller_call is None:
            for call in self._harness.sim.world.calls.values():
                if call.direction == "out" and call.to == self.scenario.caller:
                    self.caller_call = call.id
                    break
        return self.caller_call

    def _number(self) -> str:
        return self._harness.numbers[0]

    async def _wait_for(self, step: sc.StepType, check: Callable[[], bool]) -> None:
        harness = self._harness
        deadline = harness.clock.now() + self.scenario.timeout
        await harness.settle()
        while not check():
            due = harness.next_due()
            if due is None or due > deadline:
                waited = "nothing more happened" if due is None else f"not within {self.scenario.timeout:g}s"
                raise _StepFailed(f"expected {step.label}", self._missing(step, waited))
            await harness.advance(due - harness.clock.now())

    def _hear(self, step: sc.Hear) -> Callable[[], bool]:
        def check() -> bool:
            heard = self._heard()
            for offset, (kind, content) in enumerate(heard[self._heard_seen :]):
                if _heard_matches(step, kind, content):
                    self._heard_seen += offset + 1
                    return True
            return False

        return check

    def _heard(self) -> list[tuple[str, str]]:
        call = self._caller_call()
        if call is None:
            return []
        return [
            (str(entry.get("audio", "sentence")), str(entry.get("text", "")))
            for entry in self._harness.sim.transcript(call)
            if entry.get("kind") == "heard"
        ]

    def _ended(self) -> bool:
        harness = self._harness
        call = self._caller_call()
        if call is not None:
            return harness.sim.voice.call(call).ended
        return harness.all_ended()

    def _observed(self, step: sc.StepType) -> Callable[[], bool]:
        kind = _KIND_OF[type(step)]

        def check() -> bool:
            items = [o for o in self._harness.observations if o.kind == kind]
            start = self._seen.get(kind, 0)
            for offset, item in enumerate(items[start:]):
                if self._matches(step, item):
                    self._seen[kind] = start + offset + 1
                    return True
            return False

        return check

    def _matches(self, step: sc.StepType, item: Observation) -> bool:
        if isinstance(step, sc.ExpectTransfer | sc.ExpectDial):
            return sc.glob_matches(step.to, item.text)
        if isinstance(step, sc.ExpectBridge):
            numbers = item.data.get("numbers")
            return isinstance(numbers, list) and any(sc.glob_matches(step.to, str(n)) for n in numbers)
        if isinstance(step, sc.ExpectConference):
            return item.data.get("callId") == self._caller_call()
        if isinstance(step, sc.ExpectRecording):
            return True
        if isinstance(step, sc.ExpectSms):
            to = step.to or self.scenario.caller
            if item.data.get("to") != to and item.data.get("to") != [to]:
                return False
            if step.text is not None and not step.text.matches(item.text):
                return False
            media = item.data.get("media")
            sent = [str(m) for m in media] if isinstance(media, list) else []
            return all(any(sc.glob_matches(want, got) for got in sent) for want in step.media)
        if isinstance(step, sc.ExpectHttp):
            method = item.data.get("method")
            if step.method is not None and method != step.method:
                return False
            if not sc.glob_matches(step.url, str(item.data.get("url", ""))):
                return False
            return not step.has_json or _contains(item.data.get("json"), step.json)
        return False

    # ---------------------------------------------------------------------------------- reporting

    def _missing(self, step: sc.StepType, waited: str) -> str:
        if isinstance(step, sc.Hear):
            rest = [content for _, content in self._heard()[self._heard_seen :]]
            heard = "; ".join(repr(text) for text in rest) or "nothing"
            return f"{waited}; since the last match the caller heard: {heard}"
        if isinstance(step, sc.ExpectEnd):
            return f"{waited}; the call is still up (state {self._harness.current_state()!r})"
        kind = _KIND_OF.get(type(step))
        if kind is None:
            return waited
        items = [o for o in self._harness.observations if o.kind == kind][self._seen.get(kind, 0) :]
        if not items:
            return f"{waited}; no {_NOUNS[kind]} since the last match"
        shown = "; ".join(_describe(o) for o in items)
        return f"{waited}; {_NOUNS[kind]} seen: {shown}"

    def transcript(self) -> list[str]:
        """The caller's transcript with the flow's observable actions, in time order, as readable lines."""
        harness = self.harness
        if harness is None:
            return []
        start = harness.clock.now() if not harness.visits else None
        rows: list[tuple[float, int, str]] = []
        call = self._caller_call()
        if call is not None:
            for order, entry in enumerate(harness.sim.voice.call(call).transcript):
                if entry.kind in ("event", "rest"):
                    continue
                rows.append((entry.time, order, f"{entry.kind:<14} {entry.text}"))
        for order, item in enumerate(harness.observations):
            if item.kind in ("sms", "http") or call is None:
                rows.append((item.time, 10_000 + order, f"{item.kind:<14} {_describe(item)}"))
        rows.sort(key=lambda row: (row[0], row[1]))
        origin = rows[0][0] if rows else (start or 0.0)
        return [f"{time_ - origin:8.3f}s  {text}" for time_, _, text in rows]


_KIND_OF: dict[type, ObservationKind] = {
    sc.ExpectTransfer: "transfer",
    sc.ExpectDial: "dial",
    sc.ExpectBridge: "bridge",
    sc.ExpectConference: "conference",
    sc.ExpectRecording: "recording",
    sc.ExpectSms: "sms",
    sc.ExpectHttp: "http",
}

_NOUNS: dict[ObservationKind, str] = {
    "transfer": "transfers",
    "dial": "dialled numbers",
    "bridge": "bridges",
    "conference": "conference joins",
    "recording": "recordings",
    "sms": "messages",
    "http": "HTTP requests",
}


def _describe(item: Observation) -> str:
    if item.kind == "sms":
        return f"to {item.data.get('to')}: {item.text!r}"
    if item.kind == "http":
        body = item.data.get("json")
        return item.text + ("" if body is None else f" {body!r}")
    return item.text


def _heard_matches(step: sc.Hear, kind: str, content: str) -> bool:
    if step.audio is not None:
        return kind == "file" and sc.glob_matches(step.audio, content)
    return kind != "file" and step.text is not None and step.text.matches(content)


def _contains(actual: object, expected: object) -> bool:
    """Whether ``actual`` JSON contains ``expected``: objects may have more keys, other values are equal."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and _contains(actual[k], v) for k, v in expected.items()
        )
    return actual == expected


async def run_scenario(
    scenario: sc.Scenario,
    *,
    runtime_factory: RuntimeFactory = default_runtime_factory,
    flow_loader: FlowLoader = default_flow_loader,
) -> ScenarioResult:
    """Play ``scenario`` and return its result; never raises for a failing or broken scenario."""
    run = ScenarioRun(scenario, runtime_factory=runtime_factory, flow_loader=flow_loader)
    try:
        return await run.run()
    except FlowEngineError as exc:
        return ScenarioResult(scenario, Failure(str(exc)))


def format_failure(result: ScenarioResult) -> str:
    """The failure of ``result`` as a readable block: the step and its position, expected, actual, transcript."""
    failure = result.failure
    if failure is None:
        return ""
    scenario = result.scenario
    lines: list[str] = []
    if failure.step is not None:
        for index, step in enumerate(scenario.steps):
            mark = "ok" if index < failure.index else ("FAIL" if index == failure.index else "--")
            lines.append(f"    {mark:>4}  {step.pos.line:>4}  {step.label}")
        lines.insert(0, "  steps:")
        head = [
            f"  - expected ({failure.step.pos}): {failure.message.removeprefix('expected ')}",
            f"  + actual: {failure.actual or failure.message}",
        ]
        if not failure.actual:
            head = [f"  at {failure.step.pos}: {failure.step.label}", f"  {failure.message}"]
        lines = head + lines
    else:
        lines = [f"  {scenario.path}: {failure.message}"]
    if result.transcript:
        lines.append("  transcript (what actually happened):")
        lines.extend(f"    {line}" for line in result.transcript)
    return "\n".join(lines)


def relative(path: str) -> str:
    """``path`` relative to the working directory when it is below it (for shorter reports)."""
    try:
        shown = os.path.relpath(path)
    except ValueError:
        return path
    return path if shown.startswith("..") else shown


__all__: Sequence[str] = [
    "Failure",
    "RuntimeFactory",
    "ScenarioResult",
    "ScenarioRun",
    "format_failure",
    "run_scenario",
]
