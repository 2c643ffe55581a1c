"""``flowengine call`` driven through a pseudo-terminal: through the menu to a transfer."""

from __future__ import annotations

import sys
from pathlib import Path

import pexpect
import pytest

FLOW = Path(__file__).resolve().parents[1] / "testing" / "flows" / "ivr.yaml"


def _spawn(*args: str) -> pexpect.spawn:
    code = "import sys; from flowengine.cli import main; sys.exit(main(sys.argv[1:]))"
    return pexpect.spawn(
        sys.executable, ["-c", code, "call", *args], encoding="utf-8", timeout=15, echo=False
    )


def test_calling_through_the_menu_reaches_the_transfer() -> None:
    child = _spawn(str(FLOW), "--speed", "20")
    child.expect(r"ivr \(voice\) at \+19195551212")
    child.expect(r"<< Thanks for calling Acme\.")
    child.expect(r"<< Press 1 for sales, 2 for support\.")
    child.sendline("1")
    child.expect(r"-- pressed 1")
    child.expect(r"-- transfer \+19195550100")
    child.sendline("q")
    child.expect("bye")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_hanging_up_ends_the_call() -> None:
    child = _spawn(str(FLOW), "--speed", "20")
    child.expect(r"<< Press 1")
    child.sendline("h")
    child.expect(r"hung up")
    child.expect("the call has ended")
    child.sendline("q")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--speed", "0"], "--speed must be positive", id="speed"),
        pytest.param(["--http", "nope"], "--http takes NAME=VALUE", id="http-rule"),
        pytest.param(["--http", "*=99"], "status must be 100..599", id="http-status"),
    ],
)
def test_bad_options_are_usage_errors(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from flowengine.cli import main

    assert main(["call", str(FLOW), *args]) == 2
    assert message in capsys.readouterr().err


def test_a_missing_flow_file_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from flowengine.cli import main

    assert main(["call", str(tmp_path / "none.yaml")]) == 2
    assert "none.yaml" in capsys.readouterr().err
