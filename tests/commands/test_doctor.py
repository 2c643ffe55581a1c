"""``flowengine doctor`` against the simulator and a running callback server over loopback: a healthy
deployment passes, and each kind of breakage fails its own check with what to do."""

from __future__ import annotations

import argparse
import io
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowengine.catapult.client import CatapultClient
from flowengine.cli import main
from flowengine.commands import doctor, provision
from flowengine.commands.doctor import _unreachable_host

from .sim_in_thread import SimThread

FLOWS = Path(__file__).parent.parent.parent / "flows"
CLAIMED = [f"+1919555100{i}" for i in range(6)]


@pytest.fixture
def sim_thread() -> Iterator[SimThread]:
    served = SimThread()
    try:
        yield served
    finally:
        served.close()


def run_command(module: object, sim_thread: SimThread, public_url: str, *extra: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser()
    module.configure(parser)  # type: ignore[attr-defined]
    args = parser.parse_args([str(FLOWS), "--public-url", public_url, *sim_thread.flags(), *extra])
    out, err = io.StringIO(), io.StringIO()
    if module is doctor:
        code = doctor.doctor_command(args, out, err, {})
    else:
        code = provision.provision_command(args, out, err, io.StringIO(), {})
    return code, out.getvalue(), err.getvalue()


def lines_of(out: str, verdict: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith(verdict)]


def deployed(sim_thread: SimThread, auth: tuple[str, str] | None = None) -> str:
    public = sim_thread.start_engine(FLOWS, auth)
    extra = ["--callback-user", auth[0], "--callback-password", auth[1]] if auth else []
    code, _, err = run_command(provision, sim_thread, public, "--yes", "--order", *extra)
    assert code == 0, err
    return public


def test_a_provisioned_and_running_deployment_passes(sim_thread: SimThread) -> None:
    public = deployed(sim_thread, ("bandwidth", "s3cret"))
    code, out, _ = run_command(
        doctor, sim_thread, public, "--callback-user", "bandwidth", "--callback-password", "s3cret"
    )
    assert code == 0, out
    checks = [line.split(":", 1)[0] for line in lines_of(out, "ok")]
    assert checks == [
        "ok   credentials",
        "ok   application",
        "ok   numbers",
        "ok   errors",
        "ok   public URL",
        "ok   callbacks",
    ]
    assert "all 6 claimed number(s) are on 'flowengine-production'" in out
    assert "s3cret" not in out
    assert out.splitlines()[-1] == "0 failed, 0 warning(s), 6 ok"


def test_wrong_credentials_fail_and_the_public_url_is_still_checked(sim_thread: SimThread) -> None:
    public = deployed(sim_thread)
    code, out, _ = run_command(doctor, sim_thread, public, "--secret", "wrong")
    assert code == 1
    [failed] = lines_of(out, "FAIL")
    assert failed.startswith("FAIL credentials: the API refused them (401 unauthorized)")
    assert "ok   public URL" in out


def test_no_application_points_to_provision(sim_thread: SimThread) -> None:
    public = sim_thread.start_engine(FLOWS)
    code, out, _ = run_command(doctor, sim_thread, public)
    assert code == 1
    assert (
        "FAIL application: there is no application 'flowengine-production': "
        "run `flowengine provision` with --environment production"
    ) in out.splitlines()
    assert sum("is not on the account" in line for line in lines_of(out, "FAIL")) == 6


def test_an_application_pointing_elsewhere_and_a_moved_number_fail(sim_thread: SimThread) -> None:
    public = deployed(sim_thread)

    async def break_it(client: CatapultClient) -> None:
        [app] = await client.list_applications()
        await client.update_application(str(app["id"]), {"incomingCallUrl": "https://old.example.com/cb"})
        other = await client.create_application(
            {"name": "other", "incomingCallUrl": "https://x.example.com/cb"}
        )
        await client.update_phone_number(CLAIMED[0], {"applicationId": other})

    sim_thread.with_client(break_it)
    code, out, _ = run_command(doctor, sim_thread, public)
    assert code == 1
    failed = lines_of(out, "FAIL")
    assert any(
        line.startswith(
            "FAIL application: incomingCallUrl of 'flowengine-production' is https://old.example.com/cb"
        )
        for line in failed
    )
    assert any(
        line.startswith(f"FAIL numbers: {CLAIMED[0]} (ivr-main-line) is on application 'other'")
        for line in failed
    )


def test_an_unreachable_public_url_fails(sim_thread: SimThread) -> None:
    deployed(sim_thread)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    provisioned = run_command(provision, sim_thread, closed, "--yes")
    assert provisioned[0] == 0
    code, out, _ = run_command(doctor, sim_thread, closed)
    assert code == 1
    [failed] = lines_of(out, "FAIL")
    assert failed.startswith(f"FAIL public URL: {closed}/healthz cannot be reached from here")


def test_callback_credentials_the_server_refuses_fail(sim_thread: SimThread) -> None:
    public = deployed(sim_thread, ("bandwidth", "s3cret"))
    provision_again = run_command(
        provision, sim_thread, public, "--yes", "--callback-user", "bandwidth", "--callback-password", "other"
    )
    assert provision_again[0] == 0
    code, out, _ = run_command(
        doctor, sim_thread, public, "--callback-user", "bandwidth", "--callback-password", "other"
    )
    assert code == 1
    assert (
        f"FAIL callbacks: {public}/callbacks/voice refused this configuration's callback credentials (401)"
        in out
    )


def test_recent_errors_are_a_warning_with_the_latest(sim_thread: SimThread) -> None:
    public = deployed(sim_thread)

    async def fail_once(client: CatapultClient) -> None:
        try:
            await client.get_call("c-gone")
        except Exception:
            return

    sim_thread.with_client(fail_once)
    code, out, _ = run_command(doctor, sim_thread, public)
    assert code == 0
    [warning] = lines_of(out, "warn")
    assert warning.startswith("warn errors: 1 error(s) in the last 24 hours; latest: call-not-found")


@pytest.mark.parametrize(
    ("host", "local"),
    [("127.0.0.1", True), ("localhost", True), ("10.1.2.3", True), ("192.168.0.9", True), ("::1", True),
     ("flows.example.com", False), ("8.8.8.8", False), ("100.64.0.1", True), ("box.internal", True)],
)  # fmt: skip
def test_local_addresses_are_ones_the_real_api_cannot_reach(host: str, local: bool) -> None:
    assert _unreachable_host(host) is local


def test_the_command_is_on_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--help"]) == 0
    shown = capsys.readouterr().out
    for flag in ("--environment", "--public-url", "--api-url", "--callback-user"):
        assert flag in shown
