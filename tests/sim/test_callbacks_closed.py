"""After the callback dispatcher is closed, events are recorded as skipped and no new HTTP session is made."""

from __future__ import annotations

from flowengine.sim.callbacks import CallbackDispatcher, Target


async def test_an_event_sent_after_close_is_skipped_without_a_new_session() -> None:
    dispatcher = CallbackDispatcher(lambda: 0.0)
    await dispatcher.close()
    delivery = dispatcher.send("c-1", Target(url="http://127.0.0.1:9/cb"), {"eventType": "hangup"})
    assert delivery.status == "skipped"
    await dispatcher.idle()
    assert dispatcher._session is None
