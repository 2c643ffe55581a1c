"""``flowengine graph``: diagrams of real flow files, errors, and the docs page kept current."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from flowengine.cli import main

ROOT = Path(__file__).resolve().parents[2]
FLOWS = sorted((ROOT / "flows").glob("*.yaml"))


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


def test_mermaid_of_the_ivr_example_shows_every_menu_choice() -> None:
    code, out, err = run("graph", str(ROOT / "flows" / "ivr.yaml"))
    assert (code, err) == (0, "")
    assert out.startswith("stateDiagram-v2\n")
    assert "    main_menu --> sales: press 1\n" in out
    assert "    main_menu --> support: press 2\n" in out
    assert "    main_menu --> voicemail: press 3\n" in out


def test_dot_output_is_a_digraph() -> None:
    code, out, _ = run("graph", "--format", "dot", str(ROOT / "flows" / "sms-survey.yaml"))
    assert code == 0
    assert out.startswith('digraph "sms-survey" {')


def test_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    code, _, err = run("graph", str(tmp_path / "nope.yaml"))
    assert code == 2
    assert "nope.yaml' is not a readable file" in err


def test_an_invalid_flow_reports_its_problems_and_fails(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("flow: bad\nkind: voice\ninitial: nowhere\nstates: {}\n", encoding="utf-8")
    code, out, err = run("graph", str(bad))
    assert code == 1
    assert out == ""
    assert f"{bad}:" in err


def test_output_file_is_written(tmp_path: Path) -> None:
    target = tmp_path / "ivr.dot"
    code, out, _ = run("graph", "--format", "dot", "-o", str(target), str(ROOT / "flows" / "ivr.yaml"))
    assert (code, out) == (0, "")
    assert target.read_text(encoding="utf-8").startswith('digraph "ivr-main-line"')


def test_docs_diagrams_are_current(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    code, out, err = run("graph", "--markdown", *(p.relative_to(ROOT).as_posix() for p in FLOWS))
    assert (code, err) == (0, "")
    current = (ROOT / "docs" / "diagrams.md").read_text(encoding="utf-8")
    assert current == out, (
        "docs/diagrams.md is stale: flowengine graph --markdown -o docs/diagrams.md flows/*.yaml"
    )
