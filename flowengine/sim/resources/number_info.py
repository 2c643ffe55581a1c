"""Number info (``GET /v1/phoneNumbers/numberInfo/{number}``): the CNAM (caller-id name) of a number.

Answers come from a table the control API sets (``PUT /sim/cnam/{number}``) or, in-process,
:func:`set_caller_name`. A number not in the table is ``404 cnam-not-found``; one that is not E.164 is
``403 invalid-cnam-search``, as the reference's error table has it. Each answered lookup is billed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import unquote

from aiohttp import web

from flowengine.sim.params import E164, Field, read_body
from flowengine.sim.problems import ApiProblem
from flowengine.sim.rest import ApiRequest, Reply, Route
from flowengine.sim.state import CallerName
from flowengine.typing import JSON, JSONObject

if TYPE_CHECKING:
    from flowengine.sim.simulator import Simulator

CNAM_MAX = 15
"""Caller-id names carry at most 15 characters."""


def _e164(raw: str) -> str:
    number = unquote(raw).strip()
    if number and number[0].isdigit():
        number = "+" + number  # a '+' sent unencoded in a path arrives as a space
    return number


def set_caller_name(sim: Simulator, number: str, name: str) -> CallerName:
    """Make CNAM lookups of ``number`` answer ``name``.

    Raises:
        ApiProblem: the number is not E.164 or the name is empty or longer than 15 characters.
    """
    if not E164.match(number):
        raise ApiProblem(
            400, "bad-request", "validation-error", f"{number!r} is not an E.164 number like +19195551212"
        )
    if not name.strip() or len(name) > CNAM_MAX:
        raise ApiProblem(
            400,
            "bad-request",
            "validation-error",
            f"A caller-id name has 1 to {CNAM_MAX} characters, not {name!r}",
            details=[{"name": "property", "value": "name"}],
        )
    entry = sim.world.caller_names.get(number)
    if entry is None:
        entry = CallerName(number, name, sim.clock.now())
        sim.world.caller_names[number] = entry
    else:
        entry.name, entry.updated = name, sim.clock.now()
    return entry


def get_number_info(sim: Simulator, req: ApiRequest) -> Reply:
    number = _e164(req.params["number"])
    if not E164.match(number):
        raise ApiProblem(
            403,
            "forbidden",
            "invalid-cnam-search",
            f"Invalid number formatting: {req.params['number']}. Use E.164 formatted numbers",
        )
    entry = sim.world.caller_names.get(number)
    if entry is None:
        raise ApiProblem(404, "not-found", "cnam-not-found", f"Couldn't find CNAM for number {number}")
    now = sim.clock.now()
    if entry.created is None:
        entry.created = now
    sim.world.cnam_lookups.append((now, number))
    return Reply(body=entry.to_json())


ROUTES: tuple[Route, ...] = (
    Route("GET", "/phoneNumbers/numberInfo/{number}", get_number_info, family="numberInfo", root=True),
)


CNAM = (Field("name", required=True, max_length=CNAM_MAX),)


async def put_cnam(sim: Simulator, request: web.Request, body: JSONObject) -> tuple[int, JSON]:
    """Control API: set the caller-id name of a number."""
    fields = read_body("cnam", CNAM, body)
    entry = set_caller_name(sim, _e164(request.match_info["number"]), str(fields["name"]))
    return 200, {"number": entry.number, "name": entry.name}


async def delete_cnam(sim: Simulator, request: web.Request, body: JSONObject) -> tuple[int, JSON]:
    """Control API: forget a number's caller-id name (lookups answer ``cnam-not-found`` again)."""
    number = _e164(request.match_info["number"])
    if sim.world.caller_names.pop(number, None) is None:
        raise ApiProblem(404, "not-found", "cnam-not-found", f"Couldn't find CNAM for number {number}")
    return 200, {"number": number}


async def list_cnam(sim: Simulator, request: web.Request, body: JSONObject) -> tuple[int, JSON]:
    """Control API: the CNAM table."""
    return 200, {number: entry.name for number, entry in sorted(sim.world.caller_names.items())}


CONTROL_ROUTES = (
    ("GET", "/sim/cnam", list_cnam),
    ("PUT", "/sim/cnam/{number}", put_cnam),
    ("DELETE", "/sim/cnam/{number}", delete_cnam),
)
