"""Replay a recorded call against another version of its flow and report where the commands diverge.

The recording (from :class:`flowengine.testing.record.CallRecorder`) holds each callback the server handled
and the commands it decided. Replaying feeds the same callbacks, at the same times, to the runtime built from
the new flow (no simulator: the point is to compare decisions), feeding back the recorded results of created
resources so later events find their legs. For every event the commands are compared by their shape: method,
path with ids replaced by ``{id}``, and body without tags and callback URLs, which differ between runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import orjson

from flowengine.errors import FlowEngineError, FlowError
from flowengine.typing import JSON, JSONObject, SnapshotData

_ID = re.compile(r"/(?:c|b|conf|m|rec|t|member|g|a|n|ev)-[A-Za-z0-9-]+")
_VOLATILE = frozenset({"tag", "callbackUrl", "fallbackUrl", "callbackHttpMethod", "callbackTimeout"})


@dataclass(frozen=True, slots=True)
class Divergence:
    """At event ``index`` (1-based line of the recording), the old and the new commands differ."""

    index: int
    event: str
    old: list[str]
    new: list[str]


@dataclass(slots=True)
class ReplayReport:
    events: int = 0
    divergences: list[Divergence] = field(default_factory=list)

    @property
    def same(self) -> bool:
        return not self.divergences


def shape(entry: JSONObject) -> str:
    """A command as compared across versions: method, path with ids as ``{id}``, body without volatile keys."""
    if entry.get("kind") == "http":
        body = entry.get("json")
        return f"http {entry.get('method')} {entry.get('url')}" + ("" if body is None else f" {_dump(body)}")
    path = _ID.sub("/{id}", str(entry.get("path", "")))
    path = re.sub(r"^/v1/users/[^/]+", "", path)
    body = entry.get("body")
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k not in _VOLATILE}
    return f"{entry.get('method')} {path}" + ("" if body is None else f" {_dump(body)}")


def _dump(value: JSON) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def replay_file(path: str, flow_path: str) -> ReplayReport:
    """Replay the recording at ``path`` against the flow at ``flow_path``.

    Raises:
        FlowEngineError: the recording is unreadable or not a recording; FlowError: the flow is invalid.
    """
    from flowengine.testing.runner import default_flow_loader, default_runtime_factory

    lines = _read(path)
    flows = default_flow_loader(flow_path)
    runtime = default_runtime_factory(flows, {})
    report = ReplayReport()
    snapshot: SnapshotData | None = None
    for index, line in enumerate(lines, start=1):
        event_data = line.get("event")
        if not isinstance(event_data, dict):
            raise FlowEngineError(f"{path}:{index}: a recording line needs an 'event' object")
        at = float(line.get("at", 0.0))  # type: ignore[arg-type]
        recorded = [c for c in line.get("commands", []) if isinstance(c, dict)]  # type: ignore[union-attr]
        routed = runtime.parse(event_data)
        if snapshot is None:
            step = runtime.start(routed, at)
            if step is None:
                report.divergences.append(
                    Divergence(
                        index,
                        routed.event_type,
                        [shape(c) for c in recorded],
                        ["(the new flow does not start)"],
                    )
                )
                break
        else:
            step = runtime.handle(snapshot, routed.event, at)
        entries = list(step.entries)
        snapshot = step.snapshot
        produced: list[JSONObject] = []
        position = 0
        while entries:
            entry = entries.pop(0)
            produced.append(entry)
            old = recorded[position] if position < len(recorded) else {}
            position += 1
            if entry.get("kind") == "rest":
                resource = old.get("resource_id") if shape(old) == shape(entry) else None
                feedback = runtime.result_event(
                    entry, str(resource) if resource else f"r-{index}-{position}", None
                )
                if feedback is not None:
                    follow = runtime.handle(snapshot, feedback, at)
                    snapshot = follow.snapshot
                    entries.extend(follow.entries)
        report.events += 1
        old_shapes = [shape(c) for c in recorded]
        new_shapes = [shape(c) for c in produced]
        if old_shapes != new_shapes:
            report.divergences.append(Divergence(index, _describe(event_data), old_shapes, new_shapes))
    return report


def _describe(event: JSONObject) -> str:
    details = [str(event.get("eventType", "?"))]
    for key in ("digits", "dtmfDigit", "status", "state", "cause", "text"):
        if key in event:
            details.append(f"{key}={event[key]!r}")
    return " ".join(details)


def _read(path: str) -> list[JSONObject]:
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise FlowEngineError(f"{path}: cannot read the recording: {exc.strerror or exc}") from None
    lines: list[JSONObject] = []
    for number, text in enumerate(raw.splitlines(), start=1):
        if not text.strip():
            continue
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise FlowEngineError(f"{path}:{number}: not a JSON line: {exc}") from None
        if not isinstance(value, dict):
            raise FlowEngineError(f"{path}:{number}: a recording line must be a JSON object")
        lines.append(value)
    if not lines:
        raise FlowEngineError(f"{path}: the recording is empty")
    return lines


def replay_command(recording: str, flow_path: str, stdout: TextIO, stderr: TextIO) -> int:
    """``flowengine test --replay FILE --flow FLOW``: 0 same commands, 1 divergence, 2 unusable input."""
    try:
        report = replay_file(recording, flow_path)
    except FlowError as exc:
        stderr.write(f"{exc}\n")
        return 2
    except FlowEngineError as exc:
        stderr.write(f"flowengine test: error: {exc}\n")
        return 2
    if report.same:
        stdout.write(
            f"replayed {report.events} events of {recording} against {flow_path}: the commands are the same\n"
        )
        return 0
    stdout.write(
        f"replayed {report.events} events of {recording} against {flow_path}: the commands diverge\n"
    )
    for item in report.divergences:
        stdout.write(f"  event {item.index} ({item.event}):\n")
        for line in item.old:
            stdout.write(f"    - {line}\n")
        for line in item.new:
            stdout.write(f"    + {line}\n")
    return 1
