"""``flowengine sim``: runs standalone, prints its base URL and credentials, serves the API, stops cleanly."""

from __future__ import annotations

import base64
import io
import json
import signal
import subprocess
import sys
import urllib.request

from flowengine.cli import main


def test_the_simulator_prints_its_address_and_serves_until_stopped() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flowengine.cli",
            "sim",
            "--port",
            "0",
            "--user-id",
            "u-1",
            "--token",
            "tok",
            "--secret",
            "sec",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("flowengine sim listening on http://127.0.0.1:")
        origin = first.rsplit(" ", 1)[1].strip()
        lines = [process.stdout.readline().strip() for _ in range(6)]
        assert lines[0] == f"base URL:    {origin}/v1"
        assert lines[1:4] == ["user id:     u-1", "token:       tok", "secret:      sec"]
        request = urllib.request.Request(
            f"{origin}/v1/users/u-1/calls",
            headers={"Authorization": "Basic " + base64.b64encode(b"tok:sec").decode()},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert (response.status, json.load(response)) == (200, [])
        with urllib.request.urlopen(f"{origin}/sim", timeout=5) as response:
            assert json.load(response)["clock"] == "real"
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert "flowengine sim stopped" in out


def test_a_bad_fault_rate_is_a_usage_error() -> None:
    out, err = io.StringIO(), io.StringIO()
    assert main(["sim", "--fault-rate", "1.5"], out, err) == 2
    assert "fault_rate must be between 0 and 1" in err.getvalue()


def test_a_port_in_use_is_a_failure_with_a_message() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out, err = io.StringIO(), io.StringIO()
        assert main(["sim", "--port", str(port)], out, err) == 1
    assert f"cannot listen on 127.0.0.1:{port}" in err.getvalue()
