"""The command-line dispatcher: help, version and usage errors return codes instead of exiting."""

import io

from flowengine import __version__
from flowengine.cli import main


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


def test_no_command_prints_help_and_returns_usage() -> None:
    code, out, _ = run()
    assert code == 2
    assert "validate" in out


def test_unknown_command_is_a_usage_error() -> None:
    code, _, err = run("frobnicate")
    assert code == 2
    assert "invalid choice" in err


def test_version(capsys: object) -> None:
    code, _, _ = run("--version")
    assert code == 0
    assert __version__
