"""``flowengine validate``: every problem of every file, three output formats, and its exit codes."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest

from flowengine.cli import main

ROOT = Path(__file__).resolve().parents[2]
INVALID = ROOT / "tests" / "flows" / "invalid"
GOOD = (
    "flow: good\nnumbers: ['+19195550001']\ninitial: a\non: {hangup: end}\nstates:\n  a:\n    do: [answer]\n"
)


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["validate", *argv], out, err)
    return code, out.getvalue(), err.getvalue()


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_valid_file_exits_0_with_a_summary(tmp_path: Path) -> None:
    code, out, err = _run(str(_write(tmp_path / "good.yaml", GOOD)))
    assert (code, out, err) == (0, "1 file checked: 0 errors, 0 warnings\n", "")


def test_the_example_flows_directory_is_valid() -> None:
    code, out, _ = _run(str(ROOT / "flows"), "--strict")
    assert code == 0, out


def test_one_run_reports_every_problem_of_every_file_sorted(tmp_path: Path) -> None:
    broken = _write(tmp_path / "a-broken.yaml", "flow: x\nstates: [\n")
    many = shutil.copy(INVALID / "many-problems.yaml", tmp_path / "b-many.yaml")
    code, out, _ = _run(str(tmp_path))
    lines = out.splitlines()
    assert code == 1
    assert lines[0].startswith(f"{broken}:3:1: error: YAML syntax error")
    located = [line.split(": ")[0] + ": " + line.split(": ")[1] for line in lines[1:-1]]
    assert located == [
        f"{many}:15:16: error",  # undefined template variable
        f"{many}:16:27: error",  # unknown key
        f"{many}:17:30: error",  # wrong type
        f"{many}:19:20: error",  # unknown target
        f"{many}:21:3: error",  # duplicate key
        f"{many}:22:3: warning",  # unreachable state
    ]
    assert lines[-1] == "2 files checked: 6 errors, 1 warning"


def test_strict_turns_warnings_into_errors(tmp_path: Path) -> None:
    path = _write(tmp_path / "w.yaml", "flow: w\ninitial: a\nstates:\n  a:\n    do: [answer]\n")
    assert _run(str(path))[0] == 0
    code, out, _ = _run(str(path), "--strict")
    assert code == 1
    assert ":4:3: error: states.a: state 'a' has no way out" in out


def test_json_format_lists_every_diagnostic(tmp_path: Path) -> None:
    path = _write(tmp_path / "bad.yaml", "flow: bad\ninitial: nowhere\nstates:\n  a: {final: true}\n")
    code, out, _ = _run(str(path), "--format", "json")
    document = json.loads(out)
    assert code == 1
    assert (document["files"], document["errors"], document["warnings"]) == (1, 1, 0)
    first = document["diagnostics"][0]
    assert first == {
        "path": str(path),
        "line": 2,
        "column": 10,
        "severity": "error",
        "code": "unknown-target",
        "message": "initial: unknown target state 'nowhere'",
    }


def test_github_format_writes_workflow_commands_with_escaping(tmp_path: Path) -> None:
    path = _write(tmp_path / "bad,name.yaml", "flow: bad\ninitial: a\nstates:\n  a: {final: 'yes%'}\n")
    code, out, _ = _run(str(path), "--format", "github")
    assert code == 1
    escaped = str(path).replace(",", "%2C").replace(":", "%3A")
    assert out == (
        f"::error file={escaped},line=4,col=14::states.a.final: expected true or false, got the string 'yes%25'\n"
    )


def test_directories_are_searched_recursively_for_yaml_and_yml(tmp_path: Path) -> None:
    _write(tmp_path / "one.yaml", GOOD)
    _write(tmp_path / "deeper" / "two.yml", GOOD.replace("good", "other").replace("0001", "0002"))
    _write(tmp_path / "notes.txt", "not a flow")
    code, out, _ = _run(str(tmp_path))
    assert (code, out) == (0, "2 files checked: 0 errors, 0 warnings\n")


def test_a_number_claimed_twice_in_a_directory_fails(tmp_path: Path) -> None:
    _write(tmp_path / "one.yaml", GOOD)
    _write(tmp_path / "two.yaml", GOOD.replace("flow: good", "flow: other"))
    code, out, _ = _run(str(tmp_path))
    assert code == 1
    assert "two.yaml:2:11: error: numbers[0]: +19195550001 is already claimed by flow 'good'" in out


def test_a_file_named_twice_is_checked_once(tmp_path: Path) -> None:
    path = str(_write(tmp_path / "good.yaml", GOOD))
    assert _run(path, path, str(tmp_path))[1] == "1 file checked: 0 errors, 0 warnings\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["missing.yaml"], "'missing.yaml' does not exist", id="missing-path"),
        pytest.param(["--format", "xml", "f.yaml"], "invalid choice: 'xml'", id="bad-format"),
        pytest.param([], "the following arguments are required: PATH", id="no-paths"),
    ],
)
def test_usage_errors_exit_2_with_a_message(
    argv: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = _run(*argv)
    assert code == 2
    assert message in err


def test_a_directory_without_flows_exits_2(tmp_path: Path) -> None:
    code, _, err = _run(str(tmp_path))
    assert code == 2
    assert "no *.yaml or *.yml files" in err


def test_an_unreadable_file_in_a_directory_exits_2_without_a_traceback(tmp_path: Path) -> None:
    _write(tmp_path / "good.yaml", GOOD)
    (tmp_path / "dangling.yaml").symlink_to(tmp_path / "gone.yaml")
    code, out, _ = _run(str(tmp_path))
    assert code == 2
    assert f"{tmp_path / 'dangling.yaml'}:1:1: error: cannot read file: No such file or directory" in out


def test_valid_and_usage_problems_together_still_report_the_files(tmp_path: Path) -> None:
    path = _write(tmp_path / "bad.yaml", "flow: bad\n")
    code, out, err = _run(str(path), str(tmp_path / "nope"))
    assert code == 2
    assert "missing required key 'initial'" in out
    assert "does not exist" in err


def test_scenario_files_beside_flows_are_skipped(tmp_path: Path) -> None:
    _write(tmp_path / "good.yaml", GOOD)
    _write(tmp_path / "scenarios" / "one.yaml", "scenario: calls in\nflow: ../good.yaml\nsteps: [end]\n")
    code, out, err = _run(str(tmp_path))
    assert (code, out) == (0, "1 file checked: 0 errors, 0 warnings\n")
    assert "skipped 1 scenario file" in err


def test_print_schema_writes_the_packaged_schema() -> None:
    code, out, _ = _run("--print-schema")
    assert code == 0
    assert json.loads(out) == json.loads((ROOT / "schemas" / "flow.schema.json").read_text(encoding="utf-8"))
