"""Messages: send one or a batch (up to 50), read, list with filters and paging, redact the text."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from flowengine.sim.params import E164, Field, query_int, read_body
from flowengine.sim.problems import ApiProblem, not_found, validation
from flowengine.sim.rest import CALLBACK_FIELDS, ApiRequest, Reply, Route, created, read_target
from flowengine.sim.state import Message
from flowengine.typing import JSON, JSONObject

if TYPE_CHECKING:
    from flowengine.sim.simulator import Simulator

MAX_BATCH = 50
FIELDS = (
    Field("from", required=True, pattern=E164, pattern_hint="an E.164 number like +19195551212"),
    Field("to", required=True, pattern=E164, pattern_hint="an E.164 number like +19195551212"),
    Field("text", max_length=2048),
    Field("media", "strlist"),
    Field("receiptRequested", choices=("none", "all", "error")),
    *CALLBACK_FIELDS,
    Field("tag", max_length=256),
)


def _accept(sim: Simulator, body: JSON) -> Message:
    fields = read_body("message", FIELDS, body)
    from_ = str(fields["from"])
    if sim.world.number(from_) is None:
        raise validation(f"The number {from_} is not a phone number owned by user", "from")
    media = [str(m) for m in fields.get("media", [])]  # type: ignore[union-attr]
    if "text" not in fields and not media:
        raise ApiProblem(
            400,
            "bad-request",
            "missing-property",
            "The 'message' resource property 'text' is required but was not specified",
            details=[{"name": "property", "value": "text"}],
        )
    receipt = str(fields.get("receiptRequested", "none"))
    if media and receipt != "none":
        raise validation(
            "Delivery receipts ('receiptRequested') cannot be requested for media messages",
            "receiptRequested",
        )
    tag = fields.get("tag")
    message = Message(
        id=sim.world.ids.new("m"),
        sort_key=next(sim.world.message_keys),
        direction="out",
        from_=from_,
        to=str(fields["to"]),
        text=str(fields.get("text", "")),
        time=sim.clock.now(),
        target=read_target(fields),
        media=media,
        receipt_requested=receipt,
        tag=tag if isinstance(tag, str) else None,
    )
    sim.messaging.send(message)
    return message


def send_messages(sim: Simulator, req: ApiRequest) -> Reply:
    if not isinstance(req.body, list):
        message = _accept(sim, req.body)
        return created(sim.urls.of("messages", message.id))
    if len(req.body) > MAX_BATCH:
        raise ApiProblem(
            403,
            "forbidden",
            "multi-message-limit",
            f"A batch holds at most {MAX_BATCH} messages, not {len(req.body)}",
        )
    results: list[JSON] = []
    for item in req.body:
        try:
            message = _accept(sim, item)
        except ApiProblem as problem:
            error: JSONObject = {
                "category": problem.category,
                "code": problem.code,
                "message": problem.message,
            }
            results.append({"result": "error", "error": error})
        else:
            results.append({"result": "accepted", "location": sim.urls.of("messages", message.id)})
    return Reply(202, results)


def _message(sim: Simulator, req: ApiRequest) -> Message:
    message = sim.world.messages.get(req.params["messageId"])
    if message is None:
        raise not_found("message", req.params["messageId"])
    return message


def get_message(sim: Simulator, req: ApiRequest) -> Reply:
    return Reply(body=_message(sim, req).to_json(sim.urls))


def _moment(query: dict[str, str], name: str) -> float | None:
    raw = query.get(name)
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise validation(
            f"The query parameter '{name}' must be a date like '2012-10-05 20:37:39', not {raw!r}", name
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def list_messages(sim: Simulator, req: ApiRequest) -> Reply:
    query = dict(req.query)
    found = list(sim.world.messages.values())
    for name, attr in (
        ("from", "from_"),
        ("to", "to"),
        ("direction", "direction"),
        ("state", "state"),
        ("deliveryState", "delivery_state"),
    ):
        if name in query:
            found = [m for m in found if getattr(m, attr) == query[name]]
    after, before = _moment(query, "fromDateTime"), _moment(query, "toDateTime")
    if after is not None:
        found = [m for m in found if m.time >= after]
    if before is not None:
        found = [m for m in found if m.time <= before]
    order = query.get("sortOrder", "asc")
    if order not in ("asc", "desc"):
        raise validation(
            f"The query parameter 'sortOrder' must be 'asc' or 'desc', not {order!r}", "sortOrder"
        )
    desc = order == "desc"
    found.sort(key=lambda m: m.sort_key, reverse=desc)
    if "sortKeyLT" in query:
        below = query_int(query, "sortKeyLT", 0, 2**62)
        found = [m for m in found if m.sort_key < below]
    if "sortKeyGT" in query:
        above = query_int(query, "sortKeyGT", 0, 2**62)
        found = [m for m in found if m.sort_key > above]
    size = query_int(query, "size", 25, 1000)
    shown = found[:size]
    reply = Reply(body=[m.to_json(sim.urls) for m in shown])
    if len(found) > size:
        following = {k: v for k, v in query.items() if k not in ("sortKeyLT", "sortKeyGT")}
        following["sortKeyLT" if desc else "sortKeyGT"] = str(shown[-1].sort_key)
        reply.headers["Link"] = f'<{sim.urls.of("messages")}?{urlencode(following)}>; rel="next"'
    return reply


def redact_message(sim: Simulator, req: ApiRequest) -> Reply:
    message = _message(sim, req)
    if req.body != {"text": ""}:
        raise validation('Only {"text": ""} may be sent to redact a message', "text")
    message.text = ""
    return Reply()


ROUTES: tuple[Route, ...] = (
    Route("POST", "/messages", send_messages),
    Route("GET", "/messages", list_messages),
    Route("GET", "/messages/{messageId}", get_message),
    Route("PATCH", "/messages/{messageId}", redact_message),
)
