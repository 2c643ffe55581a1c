"""The callback server end to end over loopback, with a fake runtime and a fake API: answers, ordering,
commits, execution, result feedback, timers, errors, health and metrics."""

from __future__ import annotations

import asyncio
import base64

import pytest
import structlog

from flowengine.server.keys import STORE

from .support import MakeHarness, dtmf, incoming


class TestAnswers:
    async def test_an_incoming_call_starts_a_session_and_its_commands_run_in_order(
        self, make_harness: MakeHarness
    ) -> None:
        h = await make_harness()
        response = await h.post(incoming("c-1"))
        assert response.status == 200
        assert await response.json() == {"status": "started", "session": "s-c-1"}
        await h.settle(lambda: len(h.api.seen) == 2)
        assert h.api.paths() == ["POST /calls/c-1", "POST /calls/c-1/audio"]
        assert h.api.seen[0].body == {"state": "active"}

    async def test_a_get_callback_with_query_parameters_is_handled_like_a_post(
        self, make_harness: MakeHarness
    ) -> None:
        h = await make_harness()
        response = await h.client.get("/callbacks/voice", params=incoming("c-2"))
        assert response.status == 200
        assert (await response.json())["status"] == "started"

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            pytest.param(b"{not json", "not valid JSON", id="broken-json"),
            pytest.param(b"[1, 2]", "JSON list, expected an object", id="array"),
            pytest.param(b"", "the body is empty", id="empty"),
            pytest.param(b'{"callId": "c-1"}', "eventType: missing", id="no-event-type"),
        ],
    )
    async def test_a_malformed_body_gets_400_with_a_json_error_and_the_server_keeps_serving(
        self, make_harness: MakeHarness, body: bytes, message: str
    ) -> None:
        h = await make_harness()
        response = await h.client.post(
            "/callbacks/voice", data=body, headers={"Content-Type": "application/json"}
        )
        assert response.status == 400
        error = (await response.json())["error"]
        assert message in error["message"]
        assert error["code"] in ("malformed-body", "invalid-event")
        assert (await h.post(incoming("c-3"))).status == 200

    async def test_an_unknown_call_gets_200_ignored_and_is_logged(self, make_harness: MakeHarness) -> None:
        h = await make_harness()
        with structlog.testing.capture_logs() as logs:
            response = await h.post(dtmf("c-nobody", "1"))
        assert response.status == 200
        assert (await response.json())["status"] == "ignored"
        assert any(e["event"] == "callback.unknown_call" and e["call_id"] == "c-nobody" for e in logs)
        assert h.api.seen == []

    async def test_an_inbound_call_to_a_number_no_flow_claims_is_ignored(
        self, make_harness: MakeHarness
    ) -> None:
        h = await make_harness()
        response = await h.post(incoming("c-4", to="+15550000999"))
        assert (response.status, (await response.json())["status"]) == (200, "ignored")

    async def test_an_unknown_event_type_gets_200_ignored(self, make_harness: MakeHarness) -> None:
        h = await make_harness()
        with structlog.testing.capture_logs() as logs:
            response = await h.post({"eventType": "teleport", "callId": "c-1"})
        assert response.status == 200
        assert "teleport" in (await response.json())["reason"]
        assert any(e["event"] == "callback.unknown_event" for e in logs)

    async def test_a_body_above_the_limit_gets_413(self, make_harness: MakeHarness) -> None:
        h = await make_harness(max_body=1024)
        big = incoming("c-5") | {"padding": "x" * 5000}
        response = await h.post(big)
        assert response.status == 413
        assert (await response.json())["error"]["code"] == "body-too-large"
        assert (await h.post(incoming("c-5"))).status == 200

    async def test_a_duplicated_callback_has_one_effect(self, make_harness: MakeHarness) -> None:
        h = await make_harness()
        await h.post(incoming("c-6"))
        first = await h.post(dtmf("c-6", "9"))
        second = await h.post(dtmf("c-6", "9"))
        assert (await first.json())["status"] == "handled"
        assert (await second.json())["status"] == "duplicate"
        # the duplicate released the session's lock: the next event is handled at once
        third = await asyncio.wait_for(h.post(dtmf("c-6", "8")), timeout=2)
        assert (await third.json())["status"] == "handled"
        record = await h.app[STORE].load("s-c-6")
        assert record is not None
        assert record.snapshot["seen"] == ["dtmf:9", "dtmf:8"]  # the duplicate changed nothing

    async def test_events_after_the_session_ended_are_ignored(self, make_harness: MakeHarness) -> None:
        h = await make_harness()
        await h.post(incoming("c-7"))
        await h.post({"eventType": "hangup", "callId": "c-7", "cause": "NORMAL_CLEARING", "time": "t1"})
        for n in range(3):  # each answer releases the lock: none waits for the others
            response = await asyncio.wait_for(h.post(dtmf("c-7", "1", n)), timeout=2)
        assert (await response.json()) == {
            "status": "ignored",
            "reason": "the session has ended",
            "session": "s-c-7",
        }


class TestCallbackAuth:
    @staticmethod
    def basic(user: str, password: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}

    @pytest.mark.parametrize(
        "headers",
        [
            pytest.param({}, id="missing"),
            pytest.param({"Authorization": "Basic " + base64.b64encode(b"api:wrong").decode()}, id="wrong"),
            pytest.param({"Authorization": "Basic !!notbase64"}, id="garbled"),
            pytest.param({"Authorization": "Bearer api:pw"}, id="other-scheme"),
        ],
    )
    async def test_bad_credentials_get_401_and_the_server_keeps_serving(
        self, make_harness: MakeHarness, headers: dict[str, str]
    ) -> None:
        h = await make_harness(callback_user="api", callback_password="pw")
        response = await h.post(incoming("c-1"), headers=headers)
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Basic")
        assert h.api.seen == []
        good = await h.post(incoming("c-1"), headers=self.basic("api", "pw"))
        assert good.status == 200

    async def test_get_callbacks_with_credentials_in_the_url_are_accepted(
        self, make_harness: MakeHarness
    ) -> None:
        h = await make_harness(callback_user="api", callback_password="pw")
        response = await h.client.get(
            "/callbacks/voice", params=incoming("c-2"), headers=self.basic("api", "pw")
        )
        assert response.status == 200


class TestOrdering:
    async def test_events_of_one_call_are_handled_one_at_a_time_in_arrival_order(
        self, make_harness: MakeHarness
    ) -> None:
        h = await make_harness()
        await h.post(incoming("c-1"))
        h.api.delay["/calls/c-1"] = 0.01  # every REST request of this call is slow
        sends = [h.post(dtmf("c-1", "9", n)) for n in range(20)]
        # Requests are issued in order; the server must keep that order through its lanes.
        tasks = []
        for coroutine in sends:
            tasks.append(asyncio.ensure_future(coroutine))
            await asyncio.sleep(0.002)
        await asyncio.gather(*tasks)
        events = [e for s, e in h.runtime.handled if s == "s-c-1"]
        assert events == ["start"] + ["dtmf:9"] * 20

    async def test_a_slow_call_does_not_hold_up_another_call(self, make_harness: MakeHarness) -> None:
        h = await make_harness()
        h.api.delay["/calls/c-slow"] = 0.5
        await h.post(incoming("c-slow"))
        started = asyncio.get_running_loop().time()
        await h.post(incoming("c-fast"))
        await h.settle(lambda: "POST /calls/c-fast/audio" in h.api.paths())
        assert asyncio.get_running_loop().time() - started < 0.4
        assert "POST /calls/c-slow/audio" not in h.api.paths()


class TestExecution:
    async def test_a_rest_failure_drops_the_rest_of_its_batch_and_is_fed_back(
        self, make_harness: MakeHarness
    ) -> None:
        h = await make_harness()
        await h.post(incoming("c-1"))
        h.api.fail["/calls/c-1/gather"] = (
            409,
            {"category": "conflict", "code": "call-duplicate-gather-error"},
        )
        await h.post(dtmf("c-1", "3"))
        await h.settle(lambda: h.api.paths()[-1:] == ["POST /calls/c-1"] and len(h.api.seen) > 3)
        assert h.api.paths()[2:] == ["POST /calls/c-1/gather", "POST /calls/c-1"]
        assert ("s-c-1", "result:g:None:call-duplicate-gather-error") in h.runtime.handled
        record = await h.app[STORE].load("s-c-1")
        assert record is not None
        assert record.outbox == ()

    async def test_a_timer_fires_its_event_once(self, make_harness: MakeHarness) -> None:
        h = await make_harness()
        await h.post(incoming("c-1"))
        await h.post(dtmf("c-1", "1"))
        await h.settle(lambda: ("s-c-1", "timer:t1") in h.runtime.handled)
        await asyncio.sleep(0.1)
        assert h.runtime.handled.count(("s-c-1", "timer:t1")) == 1
        await h.settle(lambda: h.api.paths()[-1] == "POST /calls/c-1/audio" and len(h.api.seen) == 3)

    async def test_a_flow_http_action_runs_and_its_answer_is_fed_back(
        self, make_harness: MakeHarness, fake_api: object
    ) -> None:
        h = await make_harness()
        h.runtime.http_url = str(h.client.make_url("/healthz"))
        await h.post(incoming("c-1"))
        await h.post(dtmf("c-1", "2"))
        await h.settle(lambda: any(e.startswith("http:") for _, e in h.runtime.handled))
        assert ("s-c-1", "http:200:{'status': 'ok'}:") in h.runtime.handled

    @pytest.mark.parametrize(
        ("url", "error"),
        [
            pytest.param("file:///etc/passwd", "only http and https", id="file-scheme"),
            pytest.param("http://127.0.0.1:1/nothing", "ClientConnectorError", id="refused"),
        ],
    )
    async def test_a_failed_http_action_is_fed_back_as_status_0(
        self, make_harness: MakeHarness, url: str, error: str
    ) -> None:
        h = await make_harness()
        h.runtime.http_url = url
        await h.post(incoming("c-1"))
        await h.post(dtmf("c-1", "2"))
        await h.settle(lambda: any(e.startswith("http:") for _, e in h.runtime.handled))
        (event,) = [e for _, e in h.runtime.handled if e.startswith("http:")]
        assert event.startswith("http:0:None:")
        assert error in event

    async def test_flow_log_lines_are_logged_with_the_session_context(
        self, make_harness: MakeHarness
    ) -> None:
        h = await make_harness()
        await h.post(incoming("c-1"))
        with structlog.testing.capture_logs() as logs:
            await h.post(dtmf("c-1", "4"))
        (line,) = [e for e in logs if e["event"] == "flow.log"]
        assert line["message"] == "caller pressed 4"
        assert (line["log_level"], line["session_id"], line["flow"]) == ("warning", "s-c-1", "echo")
        assert line["event_type"] == "dtmf"  # the callback's type (structlog's "event" is the line's name)


class TestStoreOutage:
    async def test_callbacks_get_503_while_the_store_is_down_and_work_again_after(
        self, make_harness: MakeHarness
    ) -> None:
        h = await make_harness()
        h.backend.available = False
        response = await h.post(incoming("c-1"))
        assert response.status == 503
        assert (await response.json())["error"]["code"] == "store-unavailable"
        ready = await h.client.get("/readyz")
        assert ready.status == 503
        h.backend.available = True
        assert (await h.post(incoming("c-1"))).status == 200
        assert (await h.client.get("/readyz")).status == 200


class TestOperations:
    async def test_healthz_and_readyz(self, make_harness: MakeHarness) -> None:
        h = await make_harness()
        health = await h.client.get("/healthz")
        assert (health.status, await health.json()) == (200, {"status": "ok"})
        ready = await h.client.get("/readyz")
        assert (await ready.json()) == {"status": "ready", "checks": {"store": "ok", "flows": 1}}

    async def test_metrics_count_callbacks_events_and_rest_requests(self, make_harness: MakeHarness) -> None:
        h = await make_harness()
        await h.post(incoming("c-1"))
        await h.post({"eventType": "teleport"})
        await h.settle(lambda: len(h.api.seen) == 2)
        await asyncio.sleep(0.02)
        response = await h.client.get("/metrics")
        text = await response.text()
        assert response.headers["Content-Type"].startswith("text/plain")
        assert 'flowengine_callbacks_total{outcome="started"} 1.0' in text
        assert 'flowengine_callbacks_total{outcome="unknown-event"} 1.0' in text
        assert 'flowengine_rest_requests_total{operation="post /calls/c-1",status="200"} 1.0' in text
        assert "flowengine_active_sessions 1.0" in text
        assert "flowengine_event_handling_seconds_count 1.0" in text


class TestReload:
    async def test_a_changed_file_is_reloaded_and_a_broken_one_keeps_the_old_version(
        self, make_harness: MakeHarness
    ) -> None:
        from flowengine.server.app import reload_flows

        h = await make_harness()
        (h.flows_dir / "echo.yaml").write_text("echo v2 longer\n")
        report = await reload_flows(h.app)
        assert report.replaced == ("echo",)
        assert h.runtime.replaced == 1
        assert h.runtime.flows["echo"].source_hash == "echo v2 longer\n"
        (h.flows_dir / "echo.yaml").write_text("echo broken!\n")
        with structlog.testing.capture_logs() as logs:
            report = await reload_flows(h.app)
        assert [p.message for p in report.rejected] == [
            f"{h.flows_dir / 'echo.yaml'}:1:1: error: this flow is broken"
        ]
        assert h.runtime.flows["echo"].source_hash == "echo v2 longer\n"
        assert any(e["event"] == "flows.rejected" for e in logs)
        assert (await h.post(incoming("c-9"))).status == 200

    async def test_the_watcher_picks_up_a_new_file_by_itself(self, make_harness: MakeHarness) -> None:
        h = await make_harness(reload_interval=0.02)
        (h.flows_dir / "other.yaml").write_text("other v1\n")
        await h.settle(lambda: "other" in h.runtime.flows)
        assert sorted(h.runtime.flows) == ["echo", "other"]
