"""End to end: ``flowengine serve`` on its embedded simulator (the README's "run the main job" command),
reloading flows on SIGHUP and on file change, graceful shutdown, and bad callbacks against the running
server."""

from __future__ import annotations

import json
import re
import resource
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from .conftest import E2E_FLOWS, Deployment
from .support import (
    EXEC_TOKEN,
    SIM_SECRET,
    Phones,
    Process,
    free_port,
    start,
    wait_for_http,
    wait_for_output,
)

pytestmark = pytest.mark.slow

GREETING = "Welcome to the test line."


def _serve_embedded(
    tmp_path: Path, *extra: str, preexec: Callable[[], None] | None = None
) -> tuple[Process, Path]:
    flows = tmp_path / "flows"
    flows.mkdir()
    shutil.copy(E2E_FLOWS / "e2e-ivr.yaml", flows / "e2e-ivr.yaml")
    port = free_port()
    process = start(
        "serve",
        ["serve", str(flows), "--port", str(port), "--store", "memory", *extra],
        tmp_path / "serve.log",
        f"http://127.0.0.1:{port}",
        env={"FLOWENGINE_USER_ID": "", "FLOWENGINE_TOKEN": "", "FLOWENGINE_SECRET": ""},
        preexec=preexec,
    )
    wait_for_http(process, "/readyz")
    wait_for_output(process, "place a test call")
    return process, flows / "e2e-ivr.yaml"


def _sim_url(process: Process) -> str:
    match = re.search(r"curl -s -X POST (http://127\.0\.0\.1:\d+)/sim/calls", process.output())
    assert match, f"serve did not print how to place a test call:\n{process.output()}"
    return match.group(1)


async def _call_and_hear_greeting(phones: Phones, expected: str) -> None:
    call = await phones.call("+13235550500", "+19195559001")

    async def first_heard() -> str | None:
        heard = await phones.heard(call)
        return heard[0] if heard else None

    assert await phones.until("the greeting", first_heard, timeout=20) == expected
    await phones.hangup(call)


class TestEmbeddedSimulator:
    async def test_serve_prints_a_working_test_call_and_shuts_down_cleanly(self, tmp_path: Path) -> None:
        process, _ = _serve_embedded(tmp_path)
        try:
            output = process.output()
            assert "flow 'e2e-ivr' (voice): +19195559001" in output
            match = re.search(r"-d '(\{.*?\})'", output)
            assert match, output
            placed = json.loads(match.group(1))
            assert placed["to"] == "+19195559001"
            token = re.search(r"Authorization: Bearer (\S+)\)", output)
            assert token, output
            async with aiohttp.ClientSession() as http:
                headers = {"Authorization": f"Bearer {token.group(1)}"}
                async with http.get(f"{process.url}/v1/executions", headers=headers) as listed:
                    assert listed.status == 200  # the generated token printed is the one in force
                phones = Phones(http, _sim_url(process))
                call = await phones.call(placed["from"], placed["to"])

                async def menu() -> bool:
                    return "Press 1 to be transferred, or 2 to hang up." in await phones.heard(call)

                await phones.until("the menu", menu, timeout=20)
                await phones.press(call, "2")

                async def goodbye() -> bool:
                    return (await phones.heard(call))[-1:] == ["Goodbye."]

                await phones.until("the goodbye", goodbye, timeout=20)
        finally:
            code = process.stop()
        assert code == 0, process.output()
        assert "shutdown.done" in process.output()


def _open_files_limit(soft: int, hard: int) -> Callable[[], None]:
    def preexec() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return preexec


def _child_open_files(process: Process) -> tuple[int, int]:
    """The soft and hard 'Max open files' of a running child, from /proc."""
    for line in Path(f"/proc/{process.popen.pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError("no 'Max open files' line")


class TestOpenFiles:
    def test_serve_raises_a_low_soft_limit_to_the_hard_one(self, tmp_path: Path) -> None:
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or hard < 2048:
            pytest.skip("needs a finite hard limit on open files of at least 2048")
        process, _ = _serve_embedded(tmp_path, preexec=_open_files_limit(512, hard))
        try:
            assert _child_open_files(process) == (hard, hard)
            assert "open_files.raised" in process.output()
            assert "open_files.low" not in process.output()
        finally:
            process.stop()

    def test_serve_warns_at_start_up_when_the_limit_leaves_no_room_for_its_outbound_connections(
        self, tmp_path: Path
    ) -> None:
        process, _ = _serve_embedded(
            tmp_path, "--api-connections", "400", preexec=_open_files_limit(512, 512)
        )
        try:
            assert _child_open_files(process) == (512, 512)
            output = process.output()
            assert "open_files.low" in output
            assert "raise `ulimit -n`" in output
        finally:
            process.stop()


class TestReload:
    async def test_sighup_reloads_and_a_broken_file_keeps_the_old_version(self, tmp_path: Path) -> None:
        process, flow = _serve_embedded(tmp_path, "--reload-interval", "0")
        try:
            async with aiohttp.ClientSession() as http:
                phones = Phones(http, _sim_url(process))
                await _call_and_hear_greeting(phones, GREETING)
                flow.write_text(flow.read_text().replace(GREETING, "Welcome to version two."))
                process.popen.send_signal(signal.SIGHUP)
                await phones.until(
                    "the reload", lambda: _logged(process, "flows.loaded", "replaced=['e2e-ivr']")
                )
                await _call_and_hear_greeting(phones, "Welcome to version two.")
                flow.write_text(flow.read_text().replace("initial: greet", "initial: nowhere"))
                process.popen.send_signal(signal.SIGHUP)
                await phones.until(
                    "the rejection", lambda: _logged(process, "flows.rejected", "e2e-ivr.yaml")
                )
                await _call_and_hear_greeting(phones, "Welcome to version two.")
        finally:
            assert process.stop() == 0, process.output()

    async def test_a_changed_file_is_picked_up_without_a_signal(self, tmp_path: Path) -> None:
        process, flow = _serve_embedded(tmp_path, "--reload-interval", "0.1")
        try:
            async with aiohttp.ClientSession() as http:
                phones = Phones(http, _sim_url(process))
                flow.write_text(flow.read_text().replace(GREETING, "Welcome to the polled version."))
                await phones.until(
                    "the reload", lambda: _logged(process, "flows.loaded", "replaced=['e2e-ivr']")
                )
                await _call_and_hear_greeting(phones, "Welcome to the polled version.")
        finally:
            assert process.stop() == 0, process.output()


async def _logged(process: Process, event: str, needle: str) -> bool:
    return any(event in line and needle in line for line in process.output().splitlines())


class TestSecrets:
    def test_a_token_the_operator_chose_is_never_printed(self, deployment: Deployment) -> None:
        output = deployment.serve.output()
        assert "<your executions token>" in output
        assert EXEC_TOKEN not in output
        assert SIM_SECRET not in output


class TestBadCallbacks:
    async def test_bad_callbacks_get_their_documented_answers_and_the_server_keeps_serving(
        self, deployment: Deployment, phones: Phones
    ) -> None:
        url = f"{deployment.serve.url}/callbacks/voice"
        async with aiohttp.ClientSession() as http:
            async with http.post(url, data=b"{broken", headers={"Content-Type": "application/json"}) as r:
                assert r.status == 400
                assert (await r.json())["error"]["code"] == "malformed-body"
            async with http.post(url, json={"eventType": "answer", "callId": ["c-x"]}) as r:
                assert r.status == 400  # callId must be a string
                error = (await r.json())["error"]
                assert error["code"] == "invalid-event"
                assert "callId" in error["message"]
            async with http.post(url, json={"eventType": "hangup", "callId": "c-nobody", "cause": "X"}) as r:
                assert (r.status, (await r.json())["status"]) == (200, "ignored")
            async with http.post(url, json={"eventType": "teleport", "callId": "c-nobody"}) as r:
                assert (r.status, (await r.json())["status"]) == (200, "ignored")
            async with http.get(url, params={"eventType": "dtmf"}) as r:
                assert r.status == 400
        call = await phones.call("+13235550600", "+19195559001")

        async def greeted() -> bool:
            return GREETING in await phones.heard(call)

        await phones.until("a normal call", greeted)
        await phones.hangup(call)


class TestCommandLine:
    @pytest.mark.parametrize(
        ("argv", "code", "message"),
        [
            pytest.param(["serve", "/nonexistent/flows"], 2, "is not a directory of flow files", id="no-dir"),
            pytest.param(["serve", ".", "--user-id", "u-1"], 2, "also set --token, --secret", id="partial"),
            pytest.param(
                ["serve", ".", "--port", "http"], 2, "--port='http': expected a whole number", id="port"
            ),
            pytest.param(["serve"], 2, "the following arguments are required: FLOWS_DIR", id="no-args"),
        ],
    )
    def test_bad_invocations_exit_2_with_a_clear_message(
        self, argv: list[str], code: int, message: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        import io

        from flowengine.cli import main

        for name in ("FLOWENGINE_USER_ID", "FLOWENGINE_TOKEN", "FLOWENGINE_SECRET", "FLOWENGINE_PORT"):
            monkeypatch.delenv(name, raising=False)
        out, err = io.StringIO(), io.StringIO()
        assert main(argv, out, err) == code
        assert message in err.getvalue()

    def test_a_port_in_use_exits_1(self, tmp_path: Path) -> None:
        import socket as socketlib

        holder = socketlib.socket()
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        try:
            process = start(
                "serve",
                ["serve", str(E2E_FLOWS), "--port", str(port), "--store", "memory"],
                tmp_path / "serve.log",
                f"http://127.0.0.1:{port}",
                env={"FLOWENGINE_USER_ID": "", "FLOWENGINE_TOKEN": "", "FLOWENGINE_SECRET": ""},
            )
            assert process.popen.wait(20) == 1
            assert "Address already in use" in process.output()
        finally:
            holder.close()
