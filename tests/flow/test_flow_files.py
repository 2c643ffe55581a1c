"""Data-driven: every file in tests/flows/valid is clean; every file in tests/flows/invalid reports exactly
the diagnostics its ``# expect: [file:]line:col severity: message`` header lines name."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from flowengine.flow import check_file

ROOT = Path(__file__).resolve().parents[2]
VALID = ROOT / "tests" / "flows" / "valid"
INVALID = ROOT / "tests" / "flows" / "invalid"
_EXPECT = re.compile(
    r"# expect: (?:(?P<file>[^:\s]+\.ya?ml):)?(?P<line>\d+):(?P<col>\d+) (?P<sev>error|warning): (?P<msg>.*)"
)


def _relative(path: Path) -> str:
    return os.path.relpath(path, ROOT)


@pytest.fixture(autouse=True)
def _at_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    # Expected messages name files relative to the repository root, as `flowengine validate` run there would.
    monkeypatch.chdir(ROOT)


@pytest.mark.parametrize("path", sorted(VALID.rglob("*.yaml")), ids=lambda p: _relative(p))
def test_valid_file_has_no_diagnostics(path: Path) -> None:
    report = check_file(_relative(path))
    assert [str(d) for d in report.diagnostics] == []


def _expectations(path: Path) -> list[tuple[str, int, int, str, str]]:
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _EXPECT.fullmatch(line)
        if match:
            file = match["file"]
            shown = _relative(path.parent / file) if file else _relative(path)
            found.append(
                (os.path.normpath(shown), int(match["line"]), int(match["col"]), match["sev"], match["msg"])
            )
    return found


@pytest.mark.parametrize("path", sorted(INVALID.glob("*.yaml")), ids=lambda p: p.name)
def test_invalid_file_reports_exactly_what_it_expects(path: Path) -> None:
    expected = _expectations(path)
    assert expected, f"{path.name} names no '# expect:' lines"
    report = check_file(_relative(path))
    actual = [(os.path.normpath(d.path), d.line, d.column, d.severity, d.message) for d in report.diagnostics]
    assert actual == expected
    assert report.flow is None
