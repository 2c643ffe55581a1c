"""Secrets never leak: a whole deployment runs with known secrets, and everything it shows is searched.

``flowengine sim`` and ``flowengine serve`` run as processes (debug logs, JSON lines). The test places a
call into a flow that posts to a webhook with a bearer token (also in the URL's query),
runs an execution, sends callbacks with wrong credentials, then searches the server's whole output (stdout
and stderr), its metrics, every execution's history and every answer it gave for the API token and secret,
the callback password (also base64-encoded), the executions token and the flow's bearer token. A second run with
``--mask-numbers`` checks that the caller's number appears only masked.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from e2e.support import Phones, Process, free_port, start, wait_for_http, wait_for_output

from flowengine.catapult.client import CatapultClient

pytestmark = pytest.mark.slow

USER = "u-secret"
TOKEN = "t-tok3n-SECRET-api"
SECRET = "s-s3cret-SECRET-api"
CALLBACK_USER = "bandwidth"
CALLBACK_PASSWORD = "cb-pa55-SECRET-word"
EXEC_TOKEN = "ex-b3arer-SECRET-token"
HOOK_TOKEN = "hk-b3arer-SECRET-flow"
SECRETS = [TOKEN, SECRET, CALLBACK_PASSWORD, EXEC_TOKEN, HOOK_TOKEN]
CALLER = "+15555550142"
FLOWS = Path(__file__).resolve().parent / "flows"


def leaks(text: str) -> list[str]:
    """The secrets found in ``text``, also base64-encoded in Basic headers."""
    found = [s for s in SECRETS if s in text]
    for user, password in ((TOKEN, SECRET), (CALLBACK_USER, CALLBACK_PASSWORD)):
        if base64.b64encode(f"{user}:{password}".encode()).decode() in text:
            found.append(f"base64 of {user}:***")
    return found


@pytest.fixture(scope="module")
def hook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            received.append({"auth": self.headers.get("Authorization"), "path": self.path, "body": raw})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


def deploy(tmp: Path, hook_url: str, *extra: str) -> tuple[Process, Process]:
    flows = tmp / "flows"
    flows.mkdir()
    shutil.copy(FLOWS / "secret-hook.yaml", flows)
    examples = Path(__file__).resolve().parents[2] / "flows"
    shutil.copy(examples / "ivr.yaml", flows)
    shutil.copytree(examples / "common", flows / "common")
    sim_port, serve_port = free_port(), free_port()
    sim = start(
        "sim",
        [
            "sim",
            "--port",
            str(sim_port),
            "--virtual-clock",
            "--user-id",
            USER,
            "--token",
            TOKEN,
            "--secret",
            SECRET,
        ],
        tmp / "sim.log",
        f"http://127.0.0.1:{sim_port}",
    )
    wait_for_http(sim, "/sim")
    serve = start(
        "serve",
        [
            "serve",
            str(flows),
            "--port",
            str(serve_port),
            "--api-url",
            f"{sim.url}/v1",
            "--user-id",
            USER,
            "--store",
            f"sqlite://{tmp / 'state.db'}",
            "--log-format",
            "json",
            "--log-level",
            "debug",
            "--reload-interval",
            "0",
            "--public-url",
            f"http://127.0.0.1:{serve_port}",
            *extra,
        ],
        tmp / "serve.log",
        f"http://127.0.0.1:{serve_port}",
        # secrets through the environment, as the deployment guide does
        env={
            "FLOWENGINE_TOKEN": TOKEN,
            "FLOWENGINE_SECRET": SECRET,
            "FLOWENGINE_CALLBACK_USER": CALLBACK_USER,
            "FLOWENGINE_CALLBACK_PASSWORD": CALLBACK_PASSWORD,
            "FLOWENGINE_EXECUTIONS_TOKEN": EXEC_TOKEN,
            "HOOK_URL": hook_url,
            "HOOK_TOKEN": HOOK_TOKEN,
        },
    )
    wait_for_http(serve, "/healthz")
    wait_for_output(serve, "configure your Bandwidth application")
    return sim, serve


async def provision(sim: Process, serve: Process) -> None:
    async with aiohttp.ClientSession() as http:
        client = CatapultClient(http, user_id=USER, token=TOKEN, secret=SECRET, base_url=f"{sim.url}/v1")
        host = serve.url.removeprefix("http://")
        base = f"http://{CALLBACK_USER}:{CALLBACK_PASSWORD}@{host}"
        app_id = await client.create_application(
            {
                "name": "secrets",
                "incomingCallUrl": f"{base}/callbacks/voice",
                "incomingMessageUrl": f"{base}/callbacks/messaging",
                "autoAnswer": False,
            }
        )
        for number in ("+19195559900", "+19195551000", "+19195550000"):
            await client.create_phone_number({"number": number, "applicationId": app_id})


async def exercise(sim: Process, serve: Process) -> str:
    """Run calls, an execution and hostile requests; return every answer the server gave, concatenated."""
    answers: list[str] = []
    auth = {"Authorization": f"Bearer {EXEC_TOKEN}"}
    async with aiohttp.ClientSession() as http:
        phones = Phones(http, sim.url, virtual=True)
        call = await phones.call(CALLER, "+19195559900")
        await phones.until("the hook call ends", lambda: _ended(phones, call), timeout=30)
        ivr = await phones.call(CALLER, "+19195551000")
        await phones.advance(2)
        await phones.press(ivr, "9")
        await phones.advance(2)
        await phones.hangup(ivr)
        await phones.advance(1)
        async with http.post(
            f"{serve.url}/v1/executions",
            json={"flow": "secret-hook", "to": CALLER, "from": "+19195550000", "variables": {}},
            headers=auth,
        ) as response:
            answers.append(await response.text())
        await phones.advance(5)
        for headers in (
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": "Basic " + base64.b64encode(f"{CALLBACK_USER}:nope".encode()).decode()},
        ):
            for method, path in (("GET", "/v1/executions"), ("POST", "/callbacks/voice")):
                async with http.request(
                    method, serve.url + path, headers=headers, json={"eventType": "x"}
                ) as r:
                    answers.append(f"{r.status} {dict(r.headers)} {await r.text()}")
        async with http.get(f"{serve.url}/v1/executions?limit=1000", headers=auth) as response:
            listing = await response.json()
            answers.append(json.dumps(listing))
        for execution in listing["executions"]:
            async with http.get(f"{serve.url}/v1/executions/{execution['id']}", headers=auth) as response:
                answers.append(await response.text())
        async with http.get(f"{serve.url}/metrics") as response:
            answers.append(await response.text())
        async with http.get(f"{serve.url}/readyz") as response:
            answers.append(await response.text())
    return "\n".join(answers)


async def _ended(phones: Phones, call: str) -> bool:
    return any(e["kind"] == "event" and e["text"] == "hangup" for e in await phones.transcript(call))


def test_no_secret_reaches_logs_answers_metrics_or_history(
    tmp_path: Path, hook: tuple[str, list[dict[str, Any]]]
) -> None:
    hook_url, received = hook
    sim, serve = deploy(tmp_path, hook_url)
    try:
        asyncio.run(provision(sim, serve))
        answers = asyncio.run(exercise(sim, serve))
    finally:
        serve.stop()
        sim.stop()
    output = serve.output()
    # the run did what it should: the webhook got the bearer token, calls and callbacks were logged
    assert any(r["auth"] == f"Bearer {HOOK_TOKEN}" for r in received), received
    assert "session.started" in output
    assert "callback.unauthorized" in output
    assert "flowengine_callbacks_total" in answers
    assert leaks(output) == [], "a secret reached the server's output"
    assert leaks(answers) == [], "a secret reached an answer, the metrics or an execution's history"


def test_mask_numbers_leaves_only_the_last_four_digits_in_logs(
    tmp_path: Path, hook: tuple[str, list[dict[str, Any]]]
) -> None:
    hook_url, _ = hook
    sim, serve = deploy(tmp_path, hook_url, "--mask-numbers")
    try:
        asyncio.run(provision(sim, serve))

        async def one_call() -> None:
            async with aiohttp.ClientSession() as http:
                phones = Phones(http, sim.url, virtual=True)
                call = await phones.call(CALLER, "+19195559900")
                await phones.until("the hook call ends", lambda: _ended(phones, call), timeout=30)

        asyncio.run(one_call())
    finally:
        serve.stop()
        sim.stop()
    logs = [line for line in serve.output().splitlines() if line.startswith("{")]
    assert any("0142" in line for line in logs), "the call was logged"
    assert not [line for line in logs if CALLER in line or CALLER[1:] in line]
