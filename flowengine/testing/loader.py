"""Read scenario files: YAML with positions, checked against ``scenario.schema.json``, built into the model.

Every problem of a file is reported at once, each at its ``file:line:col``, through ``ScenarioError``. The
YAML is read by the flow loader (``flowengine.flow.loader.read_yaml``), so scenario files get the same
guarantees as flows: duplicate keys refused, ``on``/``yes``/``no`` kept as strings, alias bombs stopped.
"""

from __future__ import annotations

import difflib
import functools
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, cast

import jsonschema
import jsonschema.exceptions

from flowengine.errors import Diagnostic, FlowSyntaxError, ScenarioError
from flowengine.flow.loader import JsonPath, LoadedFile, read_yaml
from flowengine.flow.model import Position
from flowengine.testing import scenario as sc
from flowengine.typing import JSON, Seconds

SCENARIO_SUFFIXES = (".yaml", ".yml")

_DURATION_PART = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


@functools.cache
def scenario_schema() -> dict[str, Any]:
    """The scenario JSON Schema shipped with the package."""
    text = (resources.files("flowengine") / "schemas" / "scenario.schema.json").read_text("utf-8")
    return cast(dict[str, Any], json.loads(text))


@functools.cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(scenario_schema())


def parse_duration(value: JSON) -> Seconds:
    """Seconds in a duration written as a number or as ``500ms``, ``5s``, ``2m``, ``1h``, ``1m30s``.

    Raises:
        ValueError: not a duration (the schema rejects those first).
    """
    if isinstance(value, bool) or value is None:
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"not a duration: {value!r}")
    total, end = 0.0, 0
    for match in _DURATION_PART.finditer(value):
        if match.start() != end:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        end = match.end()
    if end == 0 or value[end:].strip():
        raise ValueError(f"not a duration: {value!r}")
    return total


_SCENARIO_KEY = re.compile(r"^scenario\s*:", re.MULTILINE)


def looks_like_scenario(path: Path) -> bool:
    """Whether ``path`` is a YAML file with a top-level ``scenario:`` key (flows beside scenarios are not)."""
    if not path.is_file() or path.suffix not in SCENARIO_SUFFIXES:
        return False
    try:
        head = path.read_text(encoding="utf-8", errors="replace")[:65536]
    except OSError:
        return False
    return _SCENARIO_KEY.search(head) is not None


def find_scenarios(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Scenario files under ``paths``: files as given; in directories, recursively, the YAML files with a
    top-level ``scenario:`` key (so flows may sit beside their scenarios). Sorted per path.

    Raises:
        ScenarioError: a path does not exist.
    """
    found: list[Path] = []
    missing: list[Diagnostic] = []
    for entry in paths:
        path = Path(entry)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if looks_like_scenario(p)))
        elif path.is_file():
            found.append(path)
        else:
            missing.append(Diagnostic(str(path), 1, 1, "error", "no such file or directory", "io"))
    if missing:
        raise ScenarioError(missing)
    return found


def read_scenario(path: str | os.PathLike[str]) -> sc.Scenario:
    """Read, check and build one scenario file.

    Raises:
        ScenarioError: with every problem of the file, each at its line and column.
    """
    shown = os.fspath(path)
    try:
        loaded = read_yaml(path, shown)
    except FlowSyntaxError as exc:
        raise ScenarioError(exc.diagnostics) from None
    problems = list(_schema_problems(loaded))
    if problems:
        raise ScenarioError(problems)
    builder = _Builder(loaded)
    scenario = builder.scenario()
    if builder.problems:
        raise ScenarioError(builder.problems)
    return scenario


# ------------------------------------------------------------------------------------------ schema


def _schema_problems(loaded: LoadedFile) -> Iterator[Diagnostic]:
    for error in _validator().iter_errors(loaded.data):
        yield _diagnostic(loaded, _most_relevant(error))


def _most_relevant(error: jsonschema.exceptions.ValidationError) -> jsonschema.exceptions.ValidationError:
    """For a failed ``oneOf``, the alternative's error that went deepest: usually the one the author meant."""
    while error.validator in ("oneOf", "anyOf") and error.context:
        deepest = max(error.context, key=lambda e: (len(e.absolute_path), -_rank(e)))
        if len(deepest.absolute_path) <= len(error.absolute_path) and deepest.validator in (
            "type",
            "enum",
            "const",
        ):
            break
        error = deepest
    return error


def _rank(error: jsonschema.exceptions.ValidationError) -> int:
    # Prefer a named unknown key over a type mismatch of the other alternatives.
    ranks = {"additionalProperties": 0, "required": 1, "maxProperties": 1, "minProperties": 1, "pattern": 2}
    return ranks.get(str(error.validator), 5)


def _diagnostic(loaded: LoadedFile, error: jsonschema.exceptions.ValidationError) -> Diagnostic:
    where: JsonPath = tuple(error.absolute_path)
    shown = "/".join(str(p) for p in where) or "(top level)"
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(cast(dict[str, Any], error.schema).get("properties", {}))
        extra = sorted(k for k in error.instance if k not in allowed)
        key = extra[0] if extra else ""
        mark = loaded.key_mark((*where, key))
        hint = difflib.get_close_matches(key, sorted(allowed), n=1)
        suffix = (
            f" (did you mean {hint[0]!r}?)" if hint else f"; expected one of: {', '.join(sorted(allowed))}"
        )
        return Diagnostic(*mark, "error", f"{shown}: unknown key {key!r}{suffix}", "schema")
    if error.validator == "required":
        mark = loaded.value_mark(where)
        return Diagnostic(*mark, "error", f"{shown}: {error.message}", "schema")
    mark = loaded.value_mark(where)
    message = error.message
    if error.validator in ("maxProperties", "minProperties") and isinstance(error.instance, dict):
        message = "a step is a mapping with exactly one key, such as `hear:` or `press:`"
    return Diagnostic(*mark, "error", f"{shown}: {message}", "schema")


# ------------------------------------------------------------------------------------------ builder


class _Builder:
    """Builds the model from schema-valid data; records the few problems the schema cannot see."""

    def __init__(self, loaded: LoadedFile) -> None:
        self.loaded = loaded
        self.data = loaded.data
        self.problems: list[Diagnostic] = []

    def pos(self, where: JsonPath) -> Position:
        return Position(*self.loaded.value_mark(where))

    def problem(self, where: JsonPath, message: str) -> None:
        self.problems.append(Diagnostic(*self.loaded.value_mark(where), "error", message, "scenario"))

    def duration(self, value: JSON, where: JsonPath) -> Seconds:
        try:
            return parse_duration(value)
        except ValueError:
            self.problem(where, f"{value!r} is not a duration (write 500ms, 5s, 2m or 1m30s)")
            return 0.0

    def scenario(self) -> sc.Scenario:
        data = self.data
        base = Path(self.loaded.path).parent
        flow = cast(str, data["flow"])
        flow_path = os.path.normpath(base / flow)
        if not Path(flow_path).is_file():
            self.problem(("flow",), f"flow file {flow!r} does not exist (looked for {flow_path!r})")
        outbound_raw = data.get("outbound", False)
        outbound_vars: Mapping[str, JSON] = {}
        if isinstance(outbound_raw, dict):
            outbound_vars = cast(dict[str, JSON], outbound_raw.get("vars", {}))
        phones = {
            number: self.phone(cast(dict[str, JSON], spec), ("phones", number))
            for number, spec in cast(dict[str, JSON], data.get("phones", {})).items()
        }
        canned = tuple(
            self.canned(cast(dict[str, JSON], item), ("http", index))
            for index, item in enumerate(cast(list[JSON], data.get("http", [])))
        )
        steps = tuple(
            self.step(item, ("steps", index)) for index, item in enumerate(cast(list[JSON], data["steps"]))
        )
        timeout = self.duration(data["timeout"], ("timeout",)) if "timeout" in data else sc.DEFAULT_TIMEOUT
        raw_transcription = data.get("transcription", "")
        transcription_seconds: Seconds | None = None
        if isinstance(raw_transcription, dict):
            transcription = cast(str, raw_transcription["text"])
            if "after" in raw_transcription:
                transcription_seconds = self.duration(raw_transcription["after"], ("transcription", "after"))
        else:
            transcription = cast(str, raw_transcription)
        return sc.Scenario(
            name=cast(str, data["scenario"]),
            path=self.loaded.path,
            flow_path=flow_path,
            steps=steps,
            pos=self.pos(("scenario",)),
            description=cast(str, data.get("description", "")),
            caller=cast(str, data.get("caller", sc.DEFAULT_CALLER)),
            number=cast("str | None", data.get("number")),
            outbound=bool(outbound_raw),
            outbound_vars=outbound_vars,
            env=cast(dict[str, str], data.get("env", {})),
            timeout=timeout,
            phones=phones,
            http=canned,
            transcription=transcription,
            transcription_seconds=transcription_seconds,
        )

    def phone(self, spec: Mapping[str, JSON], where: JsonPath) -> sc.Phone:
        hangup_after = spec.get("hangup_after")
        return sc.Phone(
            mode=cast(sc.PhoneMode, spec.get("mode", "answer")),
            after=self.duration(spec.get("after", 0), (*where, "after")),
            hangup_after=None
            if hangup_after is None
            else self.duration(hangup_after, (*where, "hangup_after")),
        )

    def canned(self, spec: Mapping[str, JSON], where: JsonPath) -> sc.CannedResponse:
        headers = cast(dict[str, str], spec.get("headers", {}))
        fail = spec.get("fail")
        return sc.CannedResponse(
            url=cast(str, spec["url"]),
            pos=self.pos(where),
            method=cast("sc.HttpMethod | None", spec.get("method")),
            status=cast(int, spec.get("status", 200)),
            json=spec.get("json"),
            has_json="json" in spec,
            body=cast(str, spec.get("body", "")),
            headers=dict(headers),
            delay=self.duration(spec.get("delay", 0), (*where, "delay")),
            fail=cast("str | None", fail),
        )

    def matcher(self, value: JSON, where: JsonPath) -> sc.Matcher:
        if isinstance(value, str):
            return sc.Matcher("exact", value)
        spec = cast(dict[str, str], value)
        kind, pattern = next(iter(spec.items()))
        if kind == "regex":
            try:
                re.compile(pattern)
            except re.error as exc:
                self.problem((*where, "regex"), f"regex {pattern!r} does not compile: {exc}")
        return sc.Matcher(cast(sc.MatchKind, kind), pattern)

    def step(self, item: JSON, where: JsonPath) -> sc.StepType:
        pos = self.pos(where)
        if item == "hangup":
            return sc.HangUp(pos=pos)
        if item == "end":
            return sc.ExpectEnd(pos=pos)
        key, value = next(iter(cast(dict[str, JSON], item).items()))
        at = (*where, key)
        if key == "hear":
            if isinstance(value, dict) and "audio" in value:
                return sc.Hear(pos=pos, audio=cast(str, value["audio"]))
            return sc.Hear(pos=pos, text=self.matcher(value, at))
        if key == "press":
            return sc.Press(pos=pos, digits=str(value))
        if key == "silence":
            return sc.Silence(pos=pos, seconds=self.duration(value, at))
        if key == "wait":
            return sc.Wait(pos=pos, seconds=self.duration(value, at))
        if key == "reply":
            if isinstance(value, str):
                return sc.Reply(pos=pos, text=value)
            spec = cast(dict[str, JSON], value)
            media = tuple(cast(list[str], spec.get("media", [])))
            return sc.Reply(pos=pos, text=cast(str, spec["text"]), media=media)
        if key == "hangup":
            return sc.HangUp(pos=pos)
        if key == "phone":
            spec = cast(dict[str, JSON], value)
            return sc.SetPhone(pos=pos, number=cast(str, spec["number"]), phone=self.phone(spec, at))
        if key == "transfer":
            return sc.ExpectTransfer(pos=pos, to=cast(str, value))
        if key == "dial":
            return sc.ExpectDial(pos=pos, to=cast(str, value))
        if key == "bridge":
            return sc.ExpectBridge(pos=pos, to=cast(str, value))
        if key == "conference":
            return sc.ExpectConference(pos=pos)
        if key == "recording":
            return sc.ExpectRecording(pos=pos)
        if key == "sms":
            return self.sms(value, at, pos)
        if key == "http":
            return self.http(value, pos)
        if key == "state":
            return sc.ExpectState(pos=pos, name=cast(str, value))
        return sc.ExpectEnd(pos=pos)  # "end": the only key left once the schema has passed

    def sms(self, value: JSON, where: JsonPath, pos: Position) -> sc.ExpectSms:
        if isinstance(value, dict) and not ({"exact", "contains", "glob", "regex"} & value.keys()):
            text = value.get("text")
            return sc.ExpectSms(
                pos=pos,
                to=cast("str | None", value.get("to")),
                text=None if text is None else self.matcher(text, (*where, "text")),
                media=tuple(cast(list[str], value.get("media", []))),
            )
        return sc.ExpectSms(pos=pos, text=self.matcher(value, where))

    def http(self, value: JSON, pos: Position) -> sc.ExpectHttp:
        if isinstance(value, str):
            return sc.ExpectHttp(pos=pos, url=value)
        spec = cast(dict[str, JSON], value)
        return sc.ExpectHttp(
            pos=pos,
            method=cast("sc.HttpMethod | None", spec.get("method")),
            url=cast(str, spec.get("url", "*")),
            json=spec.get("json"),
            has_json="json" in spec,
        )
