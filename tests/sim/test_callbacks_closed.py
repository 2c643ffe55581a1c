"""The callback dispatcher: events sent after it closed are skipped without a new HTTP session, and failed
deliveries are logged without the credentials of their URLs."""

from __future__ import annotations

from flowengine.sim.callbacks import CallbackDispatcher, Target


async def test_an_event_sent_after_close_is_skipped_without_a_new_session() -> None:
    dispatcher = CallbackDispatcher(lambda: 0.0)
    await dispatcher.close()
    delivery = dispatcher.send("c-1", Target(url="http://127.0.0.1:9/cb"), {"eventType": "hangup"})
    assert delivery.status == "skipped"
    await dispatcher.idle()
    assert dispatcher._session is None


async def test_a_failed_delivery_is_logged_without_the_credentials_in_its_url() -> None:
    import structlog

    dispatcher = CallbackDispatcher(lambda: 0.0)
    try:
        with structlog.testing.capture_logs() as logs:
            dispatcher.send(
                "c-1",
                Target(
                    url="http://user:hunter2@127.0.0.1:9/cb",
                    timeout_ms=500,
                    fallback_url="http://u:pw2@127.0.0.1:9/f",
                ),
                {"eventType": "hangup"},
            )
            await dispatcher.idle()
    finally:
        await dispatcher.close()
    failed = [entry for entry in logs if entry["event"] == "callback_failed"]
    assert failed
    assert "hunter2" not in repr(failed)
    assert "pw2" not in repr(failed)
    assert failed[0]["url"] == "http://127.0.0.1:9/cb"
