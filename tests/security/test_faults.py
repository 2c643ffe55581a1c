"""Faults: the API failing during a call's commands, the store failing mid-event: never a stuck call.

Uses the server tests' harness (real app, store and REST client; small fake runtime whose call answers, then
speaks). Each fault must be fed back to the session as an error (the fake flow then hangs up), be visible in
the metrics and the logs, and leave no command pending.
"""

from __future__ import annotations

import socket

import pytest
import structlog
from server.support import MakeHarness, dtmf, incoming

from flowengine.server.keys import STORE


async def metrics_text(h: object) -> str:
    return await (await h.client.get("/metrics")).text()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("status", "code"),
    [(500, "internal-server-error"), (400, "invalid-argument"), (404, "call-not-found"), (403, "forbidden")],
)
async def test_an_api_error_answer_during_a_command_ends_the_call_and_is_counted(
    make_harness: MakeHarness, status: int, code: str
) -> None:
    h = await make_harness()
    h.api.fail["/calls/c-f/audio"] = (status, {"category": "x", "code": code, "message": "injected"})
    with structlog.testing.capture_logs() as logs:
        assert (await (await h.post(incoming("c-f"))).json())["status"] == "started"
        await h.settle(
            lambda: any(
                label.startswith("result:") and not label.endswith(":None") for _, label in h.runtime.handled
            )
        )
        await h.settle(lambda: h.api.paths()[-1:] == ["POST /calls/c-f"])
    # the failure reached the flow, which hung up: the last request completes the call
    assert h.api.seen[-1].body == {"state": "completed"}
    record = await h.app[STORE].load("s-c-f")
    assert record is not None
    assert not record.outbox
    assert any(entry["event"] == "rest.failed" for entry in logs)
    text = await metrics_text(h)
    assert f'status="{status}"' in text
    assert 'flowengine_errors_total{kind="rest"}' in text


async def test_an_api_that_does_not_answer_in_time_is_a_timeout_fed_back(make_harness: MakeHarness) -> None:
    h = await make_harness(api_timeout=0.2)
    h.api.delay["/calls/c-t/audio"] = 1.0
    await h.post(incoming("c-t"))
    await h.settle(lambda: any(label.startswith("result:") for _, label in h.runtime.handled), timeout=10)
    assert any("result:" in label for _, label in h.runtime.handled)
    text = await metrics_text(h)
    assert 'status="connection-error"' in text


async def test_an_api_that_refuses_connections_is_fed_back_and_counted(make_harness: MakeHarness) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    h = await make_harness(api_url=f"http://127.0.0.1:{closed}/v1")
    await h.post(incoming("c-r"))
    await h.settle(lambda: any(label.startswith("result:") for _, label in h.runtime.handled), timeout=15)
    text = await metrics_text(h)
    assert 'status="connection-error"' in text
    assert 'flowengine_errors_total{kind="rest"}' in text


async def test_the_store_failing_mid_event_answers_503_and_the_call_goes_on_after(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness()
    await h.post(incoming("c-s"))
    await h.settle(lambda: len(h.api.seen) == 2)  # its commands ran (answer, speak)
    h.backend.available = False
    with structlog.testing.capture_logs() as logs:
        down = await h.post(dtmf("c-s", "9"))
    assert down.status == 503
    assert any("store" in entry["event"] for entry in logs)
    h.backend.available = True
    again = await h.post(dtmf("c-s", "9"))  # the API retries the callback
    assert again.status == 200, await again.text()
    assert (await again.json())["status"] == "handled"
    text = await metrics_text(h)
    assert 'flowengine_callbacks_total{outcome="unavailable"} 1.0' in text
    assert 'flowengine_errors_total{kind="store"}' in text
