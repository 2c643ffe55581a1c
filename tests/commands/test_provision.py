"""``flowengine provision`` against the simulator over loopback: the plan, applying it, a second run that
changes nothing, dry runs, numbers not owned (ordered only with ``--order``), confirmation, and errors."""

from __future__ import annotations

import argparse
import io
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowengine.catapult.client import CatapultClient
from flowengine.cli import main
from flowengine.commands import provision
from flowengine.typing import JSONObject

from .sim_in_thread import SimThread

FLOWS = Path(__file__).parent.parent.parent / "flows"
PUBLIC = "https://flows.example.com"
IVR, VOICEMAIL, FORWARDING = "+19195551000", "+19195551001", "+19195551002"
CLAIMED = [f"+1919555100{i}" for i in range(6)]


@pytest.fixture
def sim_thread() -> Iterator[SimThread]:
    served = SimThread()
    try:
        yield served
    finally:
        served.close()


def invoke(
    sim_thread: SimThread,
    *extra: str,
    flows: Path = FLOWS,
    stdin: str = "",
    environ: dict[str, str] | None = None,
) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser()
    provision.configure(parser)
    args = parser.parse_args([str(flows), "--public-url", PUBLIC, *sim_thread.flags(), *extra])
    out, err = io.StringIO(), io.StringIO()
    code = provision.provision_command(args, out, err, io.StringIO(stdin), environ or {})
    return code, out.getvalue(), err.getvalue()


def account(sim_thread: SimThread) -> tuple[list[JSONObject], list[JSONObject]]:
    async def read(client: CatapultClient) -> tuple[list[JSONObject], list[JSONObject]]:
        return await client.list_applications(), await client.list_phone_numbers()

    return sim_thread.with_client(read)


def own(sim_thread: SimThread, *numbers: str, application: JSONObject | None = None) -> str:
    async def setup(client: CatapultClient) -> str:
        app_id = ""
        if application is not None:
            app_id = await client.create_application(application)
        for number in numbers:
            await client.create_phone_number(
                {"number": number, **({"applicationId": app_id} if app_id else {})}
            )
        return app_id

    return sim_thread.with_client(setup)


def our_app(sim_thread: SimThread) -> JSONObject:
    [app] = [a for a in account(sim_thread)[0] if a["name"] == "flowengine-production"]
    return app


def test_the_plan_is_applied_and_a_second_run_changes_nothing(sim_thread: SimThread) -> None:
    own(sim_thread, IVR)
    other = own(
        sim_thread, VOICEMAIL, application={"name": "legacy", "incomingCallUrl": "http://old.example/cb"}
    )
    code, out, err = invoke(sim_thread, "--yes", "--order")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "environment 'production': application 'flowengine-production'"
    assert lines[1:6] == [
        "  + create application 'flowengine-production'",
        f"      incomingCallUrl: {PUBLIC}/callbacks/voice",
        f"      incomingMessageUrl: {PUBLIC}/callbacks/messaging",
        "      callbackHttpMethod: POST",
        "      autoAnswer: false",
    ]
    assert f"  ~ assign {IVR} (ivr-main-line) to 'flowengine-production' (now unassigned)" in lines
    assert (
        f"  ~ assign {VOICEMAIL} (voicemail-box) to 'flowengine-production' (now on application 'legacy')"
        in lines
    )
    assert f"  + order {FORWARDING} (call-forwarding): RALEIGH NC, $0.35/month" in lines
    assert "Plan: 1 to create, 2 to assign, 4 to order." in lines
    assert lines[-1] == "Applied 7 change(s)."
    app = our_app(sim_thread)
    assert (app["incomingCallUrl"], app["incomingMessageUrl"]) == (
        f"{PUBLIC}/callbacks/voice",
        f"{PUBLIC}/callbacks/messaging",
    )
    assert app["autoAnswer"] is False
    numbers = {n["number"]: n.get("applicationId") for n in account(sim_thread)[1]}
    assert numbers == dict.fromkeys(CLAIMED, app["id"])
    assert other != app["id"]

    before = account(sim_thread)
    code, out, _ = invoke(sim_thread, "--yes", "--order")
    assert (code, out.splitlines()[1:]) == (0, ["No changes: the account matches the flows."])
    assert account(sim_thread) == before


def test_a_dry_run_prints_the_plan_and_changes_nothing(sim_thread: SimThread) -> None:
    own(sim_thread, *CLAIMED)
    before = account(sim_thread)
    code, out, _ = invoke(sim_thread, "--dry-run")
    assert code == 0
    assert "Plan: 1 to create, 6 to assign." in out
    assert out.endswith("Dry run: nothing was changed.\n")
    assert account(sim_thread) == before


def test_a_claimed_number_not_owned_is_reported_and_not_ordered_without_order(sim_thread: SimThread) -> None:
    own(sim_thread, *CLAIMED[1:])
    balance = sim_thread.with_client(lambda c: c.get_account())["balance"]
    code, out, _ = invoke(sim_thread, "--yes")
    assert code == 1
    assert (
        f"  ! {IVR} (ivr-main-line) is not on the account: run again with --order to order it"
        in out.splitlines()
    )
    assert "order" not in out.split("Plan:")[1].split("\n")[0]
    numbers = {n["number"] for n in account(sim_thread)[1]}
    assert IVR not in numbers
    assert sim_thread.with_client(lambda c: c.get_account())["balance"] == balance
    code, out, _ = invoke(sim_thread, "--yes")
    assert code == 1
    assert "No changes: the account matches the flows." in out
    assert f"! {IVR} (ivr-main-line) is not on the account" in out


def test_a_number_nobody_sells_cannot_be_ordered(sim_thread: SimThread, tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    text = (FLOWS / "sms-auto-reply.yaml").read_text().replace("+19195551004", "+15555550123")
    (flows / "reply.yaml").write_text(text)
    code, out, _ = invoke(sim_thread, "--yes", "--order", flows=flows)
    assert code == 1
    assert (
        "  ! +15555550123 (sms-auto-reply) is not on the account and cannot be ordered: "
        "it is not available to order"
    ) in out.splitlines()
    assert account(sim_thread)[1] == []


def test_a_changed_public_url_and_callback_auth_update_the_application(sim_thread: SimThread) -> None:
    own(sim_thread, *CLAIMED)
    assert invoke(sim_thread, "--yes")[0] == 0
    code, out, _ = invoke(sim_thread, "--yes", "--callback-user", "bw", "--callback-password", "hunter2")
    assert code == 0
    assert "  ~ update application 'flowengine-production'" in out
    assert (
        f"      incomingCallUrl: {PUBLIC}/callbacks/voice -> https://bw:***@flows.example.com/callbacks/voice"
        in out
    )
    assert "hunter2" not in out
    assert our_app(sim_thread)["incomingCallUrl"] == "https://bw:hunter2@flows.example.com/callbacks/voice"


def test_an_unclaimed_number_on_the_application_is_left_alone(sim_thread: SimThread) -> None:
    own(sim_thread, *CLAIMED)
    invoke(sim_thread, "--yes")
    app_id = our_app(sim_thread)["id"]
    own_extra: Any = lambda c: c.create_phone_number({"number": "+19195557777", "applicationId": app_id})  # noqa: E731
    sim_thread.with_client(own_extra)
    code, out, _ = invoke(sim_thread, "--yes")
    assert code == 0
    assert (
        "  = +19195557777 is assigned to 'flowengine-production': no flow claims it; left alone"
    ) in out.splitlines()
    assert "No changes" in out
    assert {n["number"]: n.get("applicationId") for n in account(sim_thread)[1]}["+19195557777"] == app_id


def test_each_environment_has_its_own_application(sim_thread: SimThread) -> None:
    own(sim_thread, *CLAIMED)
    invoke(sim_thread, "--yes")
    code, out, _ = invoke(
        sim_thread, "--yes", "--environment", "staging", "--public-url", "https://staging.example.com"
    )
    assert code == 0
    assert "+ create application 'flowengine-staging'" in out
    assert sorted(a["name"] for a in account(sim_thread)[0]) == [
        "flowengine-production",
        "flowengine-staging",
    ]


@pytest.mark.parametrize(
    ("answer", "applied"), [("yes\n", True), ("y\n", True), ("no\n", False), ("", False)]
)
def test_the_plan_is_applied_only_when_confirmed(sim_thread: SimThread, answer: str, applied: bool) -> None:
    own(sim_thread, *CLAIMED)
    code, out, err = invoke(sim_thread, stdin=answer)
    assert "Apply these changes? Type 'yes' to go on: " in out
    assert (code == 0) is applied
    assert any(a["name"] == "flowengine-production" for a in account(sim_thread)[0]) is applied
    if not applied:
        assert "not applied (answer 'yes', or pass --yes)" in err


def test_two_applications_with_the_environments_name_stop_the_run(sim_thread: SimThread) -> None:
    for _ in range(2):
        own(
            sim_thread,
            application={"name": "flowengine-production", "incomingCallUrl": "http://x.example/cb"},
        )
    code, _, err = invoke(sim_thread, "--yes")
    assert code == 1
    assert "2 applications are named 'flowengine-production'" in err
    assert "delete all but one" in err


def test_invalid_flows_change_nothing(sim_thread: SimThread, tmp_path: Path) -> None:
    shutil.copy(FLOWS / "ivr.yaml", tmp_path / "ivr.yaml")
    (tmp_path / "broken.yaml").write_text("flow: broken\nkind: voice\ninitial: nowhere\nstates: {}\n")
    code, _, err = invoke(sim_thread, "--yes", flows=tmp_path)
    assert code == 1
    assert "broken.yaml:" in err
    assert "nothing was changed" in err
    assert account(sim_thread) == ([], [])


def test_wrong_credentials_are_reported_as_the_apis_refusal(sim_thread: SimThread) -> None:
    code, _, err = invoke(sim_thread, "--yes", "--secret", "wrong")
    assert code == 1
    assert "the API refused" in err
    assert "401" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["flows"], "needs API credentials", id="no-credentials"),
        pytest.param(
            ["flows", "--user-id", "u", "--token", "t", "--secret", "s"],
            "needs the URL at which the API reaches flowengine serve",
            id="no-public-url",
        ),
        pytest.param(
            ["nowhere", "--user-id", "u", "--token", "t", "--secret", "s", "--public-url", PUBLIC],
            "is not a directory",
            id="no-directory",
        ),
        pytest.param(
            [str(FLOWS), "--user-id", "u", "--token", "t", "--secret", "s", "--public-url", PUBLIC,
             "--environment", "prod env"],
            "environment 'prod env'",
            id="bad-environment",
        ),
        pytest.param(
            [str(FLOWS), "--user-id", "u", "--token", "t", "--secret", "s", "--public-url", "flows.example.com"],
            "public URL 'flows.example.com'",
            id="bad-public-url",
        ),
    ],
)  # fmt: skip
def test_usage_errors_exit_2_with_the_fix(argv: list[str], message: str) -> None:
    parser = argparse.ArgumentParser()
    provision.configure(parser)
    out, err = io.StringIO(), io.StringIO()
    assert provision.provision_command(parser.parse_args(argv), out, err, io.StringIO(), {}) == 2
    assert message in err.getvalue()


def test_the_command_is_on_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["provision", "--help"]) == 0
    shown = capsys.readouterr().out
    for flag in ("--dry-run", "--yes", "--order", "--environment", "--public-url", "--api-url", "--user-id"):
        assert flag in shown
