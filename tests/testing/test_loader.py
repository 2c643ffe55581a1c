"""Scenario files: every problem reported at its line and column; valid files build the model."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowengine.errors import ScenarioError
from flowengine.testing import scenario as sc
from flowengine.testing.loader import find_scenarios, parse_duration, read_scenario


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "flow.yaml").write_text("flow: x\n")
    path = tmp_path / "case.yaml"
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str) -> list[tuple[int, int, str]]:
    with pytest.raises(ScenarioError) as info:
        read_scenario(write(tmp_path, text))
    return [(d.line, d.column, d.message) for d in info.value.diagnostics]


def test_a_valid_file_builds_every_kind_of_step(tmp_path: Path) -> None:
    scenario = read_scenario(
        write(
            tmp_path,
            """\
scenario: all steps
flow: flow.yaml
timeout: 1m30s
phones: {"+19195550100": {mode: busy, after: 2s}}
http:
  - {method: POST, url: "https://x.test/*", status: 201, json: {ok: true}, delay: 500ms}
steps:
  - hear: Hello.
  - hear: {regex: "^Press \\\\d"}
  - hear: {audio: "*/beep.wav"}
  - press: 1
  - silence: 5s
  - wait: 2
  - reply: {text: hi, media: ["https://x.test/a.png"]}
  - phone: {number: "+19195550101", mode: no-answer}
  - transfer: "+1919*"
  - dial: "+19195550100"
  - bridge: "*"
  - conference: true
  - recording: true
  - sms: {to: "+15555550100", text: {contains: link}}
  - http: {method: POST, url: "https://x.test/a", json: {a: 1}}
  - state: menu
  - hangup
  - end
""",
        )
    )
    assert scenario.timeout == 90.0
    assert scenario.phones["+19195550100"] == sc.Phone("busy", 2.0)
    assert scenario.http[0].delay == 0.5
    assert scenario.http[0].has_json
    kinds = [type(step).__name__ for step in scenario.steps]
    assert kinds[:5] == ["Hear", "Hear", "Hear", "Press", "Silence"]
    assert kinds[-2:] == ["HangUp", "ExpectEnd"]
    press = scenario.steps[3]
    assert isinstance(press, sc.Press)
    assert press.digits == "1"
    assert (press.pos.line, press.pos.column) == (11, 5)


def test_an_unknown_step_key_is_reported_at_the_key_with_a_suggestion(tmp_path: Path) -> None:
    found = problems(tmp_path, "scenario: x\nflow: flow.yaml\nsteps:\n  - pres: 1\n")
    assert found == [(4, 5, "steps/0: unknown key 'pres' (did you mean 'press'?)")]


def test_every_problem_of_a_file_is_reported_sorted(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        "scenario: x\nflow: flow.yaml\ncaller: 12345\nsteps:\n  - wait: soon\n  - {hear: a, press: 1}\n",
    )
    assert [(line, column) for line, column, _ in found] == [(3, 9), (5, 11), (6, 5)]
    assert "a step is a mapping with exactly one key" in found[2][2]


def test_a_missing_flow_and_a_bad_regex_are_reported_where_written(tmp_path: Path) -> None:
    found = problems(tmp_path, "scenario: x\nflow: none.yaml\nsteps:\n  - hear: {regex: '(a'}\n")
    assert found[0][:2] == (2, 7)
    assert "flow file 'none.yaml' does not exist" in found[0][2]
    assert found[1][:2] == (4, 19)
    assert "does not compile" in found[1][2]


def test_yaml_errors_and_duplicate_keys_keep_their_positions(tmp_path: Path) -> None:
    found = problems(tmp_path, "scenario: x\nscenario: y\nflow: flow.yaml\nsteps: [end]\n")
    assert found[0][:2] == (2, 1)
    assert "duplicate key 'scenario'" in found[0][2]


def test_required_keys_are_named(tmp_path: Path) -> None:
    found = problems(tmp_path, "scenario: x\n")
    assert [message for _, _, message in found] == [
        "(top level): 'flow' is a required property",
        "(top level): 'steps' is a required property",
    ]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("5s", 5.0), ("2m", 120.0), ("1h", 3600.0), ("1m30s", 90.0), (2.5, 2.5), (3, 3.0)],
)
def test_durations(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["soon", "5", "5 s x", "", True])
def test_bad_durations_raise(text: object) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("matcher", "text", "expected"),
    [
        (sc.Matcher("exact", "Hello  there."), "Hello there.", True),
        (sc.Matcher("exact", "Hello"), "Hello there.", False),
        (sc.Matcher("contains", "there"), "Hello there.", True),
        (sc.Matcher("glob", "Hello *."), "Hello there.", True),
        (sc.Matcher("glob", "Press [1]"), "Press [1]", True),
        (sc.Matcher("regex", r"\bthere\b"), "Hello there.", True),
        (sc.Matcher("regex", r"^there"), "Hello there.", False),
    ],
)
def test_matchers(matcher: sc.Matcher, text: str, expected: bool) -> None:
    assert matcher.matches(text) is expected


def test_directories_yield_only_files_that_are_scenarios(tmp_path: Path) -> None:
    write(tmp_path, "scenario: x\nflow: flow.yaml\nsteps: [end]\n")
    (tmp_path / "notes.txt").write_text("scenario: no\n")
    assert find_scenarios([tmp_path]) == [tmp_path / "case.yaml"]
