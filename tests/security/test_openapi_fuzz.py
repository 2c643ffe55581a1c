"""schemathesis against ``docs/openapi.yaml``: generated requests to every endpoint of a real server.

The server runs the example flows (``flows/``) on a memory store, in a thread on loopback; its REST API
points at a closed port, so every command it decides fails and is fed back as the flows' ``error`` events
(more hostile than a working API). For every generated request (valid and invalid bodies, query strings,
credentials), the answer must not be a 5xx, its status must be documented for the operation, and its body
must match the documented schema.

schemathesis is a test tool (the dev extra); CI budget: ``FLOWENGINE_FUZZ_EXAMPLES`` examples per operation
(default 25). A long run by hand: ``FLOWENGINE_FUZZ_EXAMPLES=1000 python -m pytest tests/security/test_openapi_fuzz.py``.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from flowengine.config import ServeConfig
from flowengine.server.app import create_app
from flowengine.store import MemoryBackend, MemoryStore

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = int(os.environ.get("FLOWENGINE_FUZZ_EXAMPLES", "25"))
TOKEN = "openapi-fuzz-token"
SCHEMA = schemathesis.openapi.from_path(ROOT / "docs" / "openapi.yaml")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # closed again: connections to it are refused


@pytest.fixture(scope="module")
def live_server() -> Iterator[str]:
    config = ServeConfig(
        flows_dir=ROOT / "flows",
        api_url=f"http://127.0.0.1:{_closed_port()}/v1",
        user_id="u-fuzz",
        token="t-fuzz",
        secret="s-fuzz",
        executions_token=TOKEN,
        reload_interval=0,
        max_body=16 * 1024,
        api_timeout=0.5,
    )
    app = create_app(config, store=MemoryStore(MemoryBackend()))
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=15)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=5)
    loop.close()


def not_a_server_error(ctx: object, response: object, case: object) -> None:
    status = response.status_code  # type: ignore[attr-defined]
    assert status < 500 or status == 503, f"{status}: {response.text}"  # type: ignore[attr-defined]


# schemathesis's strategies for string patterns use `random` (a hypothesis deprecation, not our code)
@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")
@SCHEMA.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
)
def test_every_answer_is_documented_and_never_a_server_error(case: object, live_server: str) -> None:
    case.call_and_validate(  # type: ignore[attr-defined]
        base_url=live_server,
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
            response_headers_conformance,
        ],
        excluded_checks=[],
    )
