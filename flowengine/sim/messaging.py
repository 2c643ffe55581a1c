"""The messaging side of the platform: outbound messages going through their states, receipts,
and inbound messages delivered to the number's application.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowengine.sim.callbacks import Target
from flowengine.sim.clock import iso8601
from flowengine.sim.state import Message
from flowengine.typing import JSONObject

if TYPE_CHECKING:
    from flowengine.sim.simulator import Simulator


class Messaging:
    """Sends and receives messages on the simulator's clock."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.world = sim.world

    def key(self, message: Message) -> str:
        """Events of one conversation (our number and theirs) are delivered in order."""
        ours, theirs = (
            (message.from_, message.to) if message.direction == "out" else (message.to, message.from_)
        )
        return f"messages:{ours}:{theirs}"

    def event(self, message: Message) -> JSONObject:
        event: JSONObject = {
            "eventType": message.event_type,
            "direction": message.direction,
            "messageId": message.id,
            "messageUri": self.sim.urls.of("messages", message.id),
            "from": message.from_,
            "to": message.to,
            "text": message.text,
            "time": iso8601(message.time),
            "state": message.state,
            "segmentCount": message.segment_count,
        }
        if message.media:
            event["media"] = list(message.media)
        if message.application_id is not None:
            event["applicationId"] = message.application_id
        if message.delivery_state is not None:
            event["deliveryState"] = message.delivery_state
        if message.delivery_code is not None:
            event["deliveryCode"] = str(message.delivery_code)
        if message.delivery_description is not None:
            event["deliveryDescription"] = message.delivery_description
        if message.tag is not None:
            event["tag"] = message.tag
        return event

    def notify(self, message: Message) -> None:
        self.sim.dispatcher.send(self.key(message), message.target, self.event(message))

    def send(self, message: Message) -> None:
        """An accepted outbound message: queued now, sent (or failed) shortly, then its receipt."""
        self.world.messages[message.id] = message
        config = self.sim.config
        self.sim.clock.call_later(config.message_send_seconds, lambda: self._sent(message))

    def _sent(self, message: Message) -> None:
        rule = self.sim.controls.delivery(message.to)
        if rule.outcome == "error":
            message.state = "error"
            message.delivery_state = "not-delivered"
            message.delivery_code = rule.code
            message.delivery_description = rule.description()
            self.notify(message)
            return
        message.state = "sent"
        if message.receipt_requested != "none":
            message.delivery_state = "waiting"
        self.notify(message)
        if message.receipt_requested == "none":
            return
        self.sim.clock.call_later(self.sim.config.receipt_seconds, lambda: self._receipt(message))

    def _receipt(self, message: Message) -> None:
        rule = self.sim.controls.delivery(message.to)
        delivered = rule.outcome == "delivered"
        message.delivery_state = "delivered" if delivered else "not-delivered"
        message.delivery_code = 0 if delivered else rule.code
        message.delivery_description = "Message Delivered to Carrier" if delivered else rule.description()
        if message.receipt_requested == "all" or not delivered:
            self.notify(message)

    def receive(
        self, from_: str, to: str, text: str, media: list[str], application_id: str, target: Target
    ) -> Message:
        """A phone texts one of the account's numbers: an ``sms``/``mms`` event to the application."""
        message = Message(
            id=self.world.ids.new("m"),
            sort_key=next(self.world.message_keys),
            direction="in",
            from_=from_,
            to=to,
            text=text,
            time=self.sim.clock.now(),
            target=target,
            media=media,
            state="received",
            application_id=application_id,
        )
        self.world.messages[message.id] = message
        self.notify(message)
        return message
