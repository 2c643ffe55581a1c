"""Phone numbers of the account: add, read (by id or E.164), list, update (assign to an
application) and release. A number routes inbound calls and messages to its application."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import unquote

from flowengine.sim.params import E164, Field, read_body
from flowengine.sim.problems import ApiProblem, not_found
from flowengine.sim.rest import ApiRequest, Reply, Route, created, page
from flowengine.sim.state import PhoneNumber

if TYPE_CHECKING:
    from flowengine.sim.simulator import Simulator

CREATE = (
    Field("number", required=True, pattern=E164, pattern_hint="an E.164 number like +19195551212"),
    Field("name", max_length=256),
    Field("applicationId"),
    Field("fallbackNumber", pattern=E164, pattern_hint="an E.164 number like +19195551212"),
)
UPDATE = CREATE[1:]


def _check_application(sim: Simulator, application_id: object) -> str | None:
    if application_id in (None, ""):
        return None
    assert isinstance(application_id, str)
    if application_id not in sim.world.applications:
        raise not_found("application", application_id)
    return application_id


def add_number(sim: Simulator, req: ApiRequest) -> Reply:
    body = read_body("phoneNumber", CREATE, req.body)
    number = str(body["number"])
    if sim.world.number(number) is not None:
        raise ApiProblem(
            409, "conflict", "number-already-owned", f"The number {number} is already on this account"
        )
    record = PhoneNumber(
        id=sim.world.ids.new("n"),
        number=number,
        created_time=sim.clock.now(),
        name=_str(body.get("name")),
        application_id=_check_application(sim, body.get("applicationId")),
        fallback_number=_str(body.get("fallbackNumber")),
    )
    sim.world.numbers[record.id] = record
    return created(sim.urls.of("phoneNumbers", record.id))


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _number(sim: Simulator, req: ApiRequest) -> PhoneNumber:
    key = unquote(req.params["numberId"]).strip()
    if key and key[0].isdigit() and len(key) > 7:
        key = "+" + key  # a '+' sent unencoded in a query-style path arrives as a space
    record = sim.world.numbers.get(key) or sim.world.number(key)
    if record is None:
        raise not_found("number", key)
    return record


def get_number(sim: Simulator, req: ApiRequest) -> Reply:
    return Reply(body=_number(sim, req).to_json(sim.urls))


def list_numbers(sim: Simulator, req: ApiRequest) -> Reply:
    numbers = [n for n in sim.world.numbers.values() if n.number_state == "enabled"]
    for name in ("applicationId", "state", "name", "city", "numberState"):
        if name in req.query:
            attr = {"applicationId": "application_id", "numberState": "number_state"}.get(name, name)
            numbers = [n for n in numbers if getattr(n, attr) == req.query[name]]
    return Reply(body=[n.to_json(sim.urls) for n in page(numbers, req.query)])


def update_number(sim: Simulator, req: ApiRequest) -> Reply:
    record = _number(sim, req)
    body = read_body("phoneNumber", UPDATE, req.body)
    if "applicationId" in body:
        record.application_id = _check_application(sim, body["applicationId"])
    if "name" in body:
        record.name = _str(body["name"])
    if "fallbackNumber" in body:
        record.fallback_number = _str(body["fallbackNumber"])
    return Reply()


def release_number(sim: Simulator, req: ApiRequest) -> Reply:
    record = _number(sim, req)
    del sim.world.numbers[record.id]
    return Reply()


ROUTES: tuple[Route, ...] = (
    Route("POST", "/phoneNumbers", add_number),
    Route("GET", "/phoneNumbers", list_numbers),
    Route("GET", "/phoneNumbers/{numberId}", get_number),
    Route("POST", "/phoneNumbers/{numberId}", update_number),
    Route("DELETE", "/phoneNumbers/{numberId}", release_number),
)
