"""The account: its balance and its transactions (``GET /account``, ``GET /account/transactions``).

The simulator keeps a ledger: an opening credit, then one charge for each thing the reference's product
types bill (a number's first month, each message, each call once it ended, each transcription, each CNAM
lookup) at the prices of :data:`PRICES`. The ledger is brought up to date from the account's records
whenever it is read, and its lines stay when the resource behind them is deleted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from flowengine.sim.params import query_int
from flowengine.sim.problems import validation
from flowengine.sim.rest import ApiRequest, Reply, Route, page
from flowengine.sim.state import Transaction
from flowengine.typing import Seconds

if TYPE_CHECKING:
    from flowengine.sim.simulator import Simulator

OPENING_CREDIT = 100.0
"""Dollars the simulated account starts with (a ``credit`` transaction)."""

PRICES: Mapping[str, float] = {
    "sms-in": 0.0075,
    "sms-out": 0.0075,
    "mms-in": 0.015,
    "mms-out": 0.015,
    "call-in": 0.01,
    "call-out": 0.01,
    "sip-call-in": 0.004,
    "sip-call-out": 0.004,
    "transcription": 0.05,
    "cnam-search": 0.004,
}
"""Dollars per unit (a message segment, a started minute, a CNAM lookup); numbers cost their ``price``."""

TYPES = ("charge", "payment", "credit", "auto-recharge")


def _charge(
    ledger: dict[str, Transaction],
    key: str,
    time: Seconds,
    product: str,
    units: int,
    number: str | None,
    resource_id: str | None,
    amount: float | None = None,
) -> None:
    if key in ledger:
        return
    cost = amount if amount is not None else PRICES[product] * units
    ledger[key] = Transaction(f"t-{key}", time, cost, "charge", units, product, number, resource_id)


def sync_ledger(sim: Simulator) -> dict[str, Transaction]:
    """Add the charges of everything billable that happened since the last read; return the ledger."""
    from flowengine.sim.resources.available_numbers import is_toll_free

    world = sim.world
    ledger = world.ledger
    opening = "credit" not in ledger
    for record in world.numbers.values():
        product = "toll-free-number-per-month" if is_toll_free(record.number) else "local-number-per-month"
        _charge(
            ledger,
            f"{record.id}-month",
            record.created_time,
            product,
            1,
            record.number,
            record.id,
            amount=float(record.price),
        )
    for message in world.messages.values():
        kind = "mms" if message.media else "sms"
        ours = message.from_ if message.direction == "out" else message.to
        product = f"{kind}-{message.direction}"
        _charge(ledger, message.id, message.time, product, message.segment_count, ours, message.id)
    for call in world.calls.values():
        if call.active_time is None or call.end_time is None:
            continue
        far = call.to if call.direction == "out" else call.from_
        product = ("sip-" if far.startswith("sip:") else "") + f"call-{call.direction}"
        minutes = max(1, math.ceil((call.end_time - call.active_time) / 60))
        ours = call.from_ if call.direction == "out" else call.to
        _charge(ledger, call.id, call.end_time, product, minutes, ours, call.id)
    for transcription in world.transcriptions.values():
        if transcription.state != "completed":
            continue
        minutes = max(1, math.ceil(transcription.chargeable_duration / 60))
        _charge(
            ledger, transcription.id, transcription.time, "transcription", minutes, None, transcription.id
        )
    for index, (moment, number) in enumerate(world.cnam_lookups):
        _charge(ledger, f"cnam-{index + 1}", moment, "cnam-search", 1, number, None)
    if opening:  # the credit came first: it dates from before anything it paid for
        first = min([sim.clock.now(), *(line.time for line in ledger.values())])
        ledger["credit"] = Transaction("t-credit", first, OPENING_CREDIT, "credit", 0)
    return ledger


def balance(sim: Simulator) -> float:
    """The available balance in dollars: credits and payments less charges."""
    total = 0.0
    for line in sync_ledger(sim).values():
        total += -line.amount if line.type == "charge" else line.amount
    return total


def get_account(sim: Simulator, req: ApiRequest) -> Reply:
    return Reply(body={"balance": f"{balance(sim):.5f}", "accountType": "pre-pay"})


def _moment(query: Mapping[str, str], name: str) -> Seconds | None:
    raw = query.get(name)
    if raw is None:
        return None
    text = raw.strip().replace(" ", "+")  # a '+' of an offset sent unencoded arrives as a space
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise validation(
            f"The query parameter '{name}' must be a date like 2013-02-21T13:38:00Z, not {raw!r}", name
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def list_transactions(sim: Simulator, req: ApiRequest) -> Reply:
    query = req.query
    since, until = _moment(query, "fromDate"), _moment(query, "toDate")
    kind = query.get("type")
    if kind is not None and kind.lower() not in TYPES:
        allowed = ", ".join(TYPES)
        raise validation(f"The query parameter 'type' must be one of {allowed}, not {kind!r}", "type")
    max_items = query_int(query, "maxItems", 1000, 1000) if "maxItems" in query else None
    lines = sorted(sync_ledger(sim).values(), key=lambda t: (t.time, t.id), reverse=True)
    if since is not None:
        lines = [t for t in lines if t.time > since]
    if until is not None:
        lines = [t for t in lines if t.time < until]
    if kind is not None:
        lines = [t for t in lines if t.type == kind.lower()]
    if "number" in query:
        wanted = query["number"].strip().replace(" ", "+")
        wanted = wanted if wanted.startswith("+") else "+" + wanted
        lines = [t for t in lines if t.number == wanted]
    if max_items is not None:
        lines = lines[:max_items]
    return Reply(body=[t.to_json() for t in page(lines, query)])


ROUTES: tuple[Route, ...] = (
    Route("GET", "/account", get_account),
    Route("GET", "/account/transactions", list_transactions),
)
