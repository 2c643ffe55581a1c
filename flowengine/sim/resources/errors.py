"""User errors (``GET /errors``, ``GET /errors/{errorId}``): every error the simulator answered a REST
request with, and every callback it could not deliver (after the fallback URL, when there is one).

Newest first. Ids are stable: ``ue-a{n}`` for the n-th error answered, ``ue-c{n}`` for the callback
delivery number n. Credentials in callback URLs are never shown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowengine.catapult.client import redact_url
from flowengine.sim.callbacks import Delivery
from flowengine.sim.clock import iso8601
from flowengine.sim.problems import ApiProblem
from flowengine.sim.rest import ApiRequest, Reply, Route, page
from flowengine.typing import JSON, JSONObject, Seconds

if TYPE_CHECKING:
    from flowengine.sim.simulator import Simulator

_RESOURCE_IDS = ("callId", "conferenceId", "memberId", "messageId", "bridgeId", "recordingId")


def _redact(url: str | None) -> str:
    return redact_url(url) if url else ""


def _with_ids(error_id: str, details: list[tuple[str, str]]) -> list[JSON]:
    return [
        {"id": f"{error_id}-d{index}", "name": name, "value": value}
        for index, (name, value) in enumerate(details, start=1)
    ]


def _answered(index: int, recorded: JSONObject) -> tuple[Seconds, JSONObject]:
    error_id = f"ue-a{index}"
    details: list[tuple[str, str]] = []
    raw_details = recorded.get("details")
    for item in raw_details if isinstance(raw_details, list) else []:
        if isinstance(item, dict):
            details.append((str(item.get("name", "")), str(item.get("value", ""))))
    moment = recorded.get("time")
    time = float(moment) if isinstance(moment, int | float) else 0.0
    return time, {
        "id": error_id,
        "time": iso8601(time),
        "category": recorded.get("category"),
        "code": recorded.get("code"),
        "message": recorded.get("message"),
        "details": _with_ids(error_id, details),
    }


def _undelivered(delivery: Delivery) -> tuple[Seconds, JSONObject]:
    error_id = f"ue-c{delivery.id}"
    event = delivery.event
    event_type = str(event.get("eventType", "event"))
    url = _redact(delivery.target.url)
    reason = delivery.attempts[-1].error if delivery.attempts else "not sent"
    details = [(name, str(event[name])) for name in _RESOURCE_IDS if isinstance(event.get(name), str)]
    details.append(("eventType", event_type))
    details += [(f"attempt{n}", f"{_redact(a.url)}: {a.error}") for n, a in enumerate(delivery.attempts, 1)]
    fallback = (
        f" and its fallbackUrl {_redact(delivery.target.fallback_url)}"
        if delivery.target.fallback_url
        else ""
    )
    return delivery.queued_at, {
        "id": error_id,
        "time": iso8601(delivery.queued_at),
        "category": "unavailable",
        "code": "callback-delivery-failed",
        "message": f"The {event_type} event could not be delivered to {url}{fallback}: {reason}",
        "details": _with_ids(error_id, details),
    }


def user_errors(sim: Simulator) -> list[JSONObject]:
    """Every recorded error, newest first."""
    found = [_answered(index, item) for index, item in enumerate(sim.api_errors, start=1)]
    found += [_undelivered(d) for d in sim.dispatcher.deliveries if d.status == "failed"]
    order = sorted(range(len(found)), key=lambda i: (found[i][0], i), reverse=True)
    return [found[i][1] for i in order]


def list_errors(sim: Simulator, req: ApiRequest) -> Reply:
    return Reply(body=list(page(user_errors(sim), req.query)))


def get_error(sim: Simulator, req: ApiRequest) -> Reply:
    wanted = req.params["errorId"]
    for error in user_errors(sim):
        if error["id"] == wanted:
            return Reply(body=error)
    raise ApiProblem(404, "not-found", "user-error-not-found", f"The user error {wanted} could not be found")


ROUTES: tuple[Route, ...] = (
    Route("GET", "/errors", list_errors),
    Route("GET", "/errors/{errorId}", get_error),
)
