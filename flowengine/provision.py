"""Make a Bandwidth v1 account match a directory of flows, and nothing more.

One application per environment (``flowengine-{environment}``) sends voice and messaging events to the
engine's callback URLs; every number a flow claims is assigned to it. Numbers the account does not own
are searched and ordered only when asked to (``order=True``); numbers on the application that no flow
claims any more are left alone and reported. Planning reads the account and changes nothing; applying
runs exactly the planned changes, so a second run finds nothing to do.

``plan_account`` is pure (desired state + what the account holds -> :class:`Plan`); ``read_account``,
``check_availability`` and ``apply_plan`` are the I/O around it, through a :class:`CatapultClient`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal
from urllib.parse import quote, urlsplit, urlunsplit

from flowengine.errors import ConfigError
from flowengine.typing import JSON, JSONObject

if TYPE_CHECKING:
    from flowengine.catapult.client import CatapultClient
    from flowengine.flow.model import Flow

ENVIRONMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")
TOLL_FREE_CODES = frozenset({"800", "833", "844", "855", "866", "877", "888"})
PAGE_SIZE = 1000

ChangeKind = Literal["create-application", "update-application", "order-number", "assign-number"]
NoteKind = Literal["not-owned", "unavailable", "unclaimed"]


def application_name(environment: str) -> str:
    """The name of the environment's application.

    Raises:
        ConfigError: the environment name is not 1-40 letters, digits, '-' or '_'.
    """
    if not ENVIRONMENT.match(environment):
        raise ConfigError(
            f"environment {environment!r} must be 1 to 40 letters, digits, '-' or '_' (e.g. 'production')"
        )
    return f"flowengine-{environment}"


def callback_url(public_url: str, kind: str, auth: tuple[str, str] | None) -> str:
    """The engine's callback URL for ``kind`` (voice, messaging), with ``user:password@`` when callbacks
    need Basic auth (the API sends the credentials it finds in the URL)."""
    url = f"{public_url.rstrip('/')}/callbacks/{kind}"
    if auth is None:
        return url
    parts = urlsplit(url)
    user, password = (quote(part, safe="") for part in auth)
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{parts.netloc}"))


def redact(url: str) -> str:
    """``url`` with its password (if any) shown as ``***``, for plans and logs."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    credentials, host = parts.netloc.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


@dataclass(frozen=True, slots=True)
class Desired:
    """What the flows need of the account."""

    environment: str
    application: JSONObject
    numbers: Mapping[str, tuple[str, ...]]
    """Each claimed number with the flows that claim it."""

    @property
    def application_name(self) -> str:
        return str(self.application["name"])


def desired_account(
    flows: Mapping[str, Flow], public_url: str, auth: tuple[str, str] | None, environment: str
) -> Desired:
    """The application and numbers the flows of a directory need.

    Raises:
        ConfigError: bad environment name or public URL.
    """
    parts = urlsplit(public_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"public URL {public_url!r} must be an http:// or https:// URL")
    numbers: dict[str, list[str]] = {}
    for name, flow in sorted(flows.items()):
        for number in flow.numbers:
            numbers.setdefault(number, []).append(name)
    application: JSONObject = {
        "name": application_name(environment),
        "incomingCallUrl": callback_url(public_url, "voice", auth),
        "incomingMessageUrl": callback_url(public_url, "messaging", auth),
        "callbackHttpMethod": "POST",
        "autoAnswer": False,
    }
    return Desired(environment, application, {n: tuple(f) for n, f in sorted(numbers.items())})


@dataclass(frozen=True, slots=True)
class Observed:
    """What the account holds: its applications and numbers as the API lists them."""

    applications: tuple[JSONObject, ...]
    numbers: tuple[JSONObject, ...]


@dataclass(frozen=True, slots=True)
class Change:
    """One change the plan makes.

    ``fields`` holds (old, new) per application field for an update; ``offer`` the search result of a
    number to order; ``number_id``/``previous`` the number record and its current application for an
    assignment.
    """

    kind: ChangeKind
    target: str
    flows: tuple[str, ...] = ()
    fields: Mapping[str, tuple[JSON, JSON]] = field(default_factory=dict)
    offer: JSONObject = field(default_factory=dict)
    number_id: str = ""
    previous: str = ""


@dataclass(frozen=True, slots=True)
class Note:
    """Something the plan reports without changing it; ``problem`` notes make the run fail."""

    kind: NoteKind
    number: str
    flows: tuple[str, ...] = ()
    problem: bool = True
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Plan:
    """The changes that make the account match the flows, and what is left as it is."""

    application_name: str
    application_id: str | None
    changes: tuple[Change, ...]
    notes: tuple[Note, ...]

    @property
    def problems(self) -> tuple[Note, ...]:
        return tuple(note for note in self.notes if note.problem)


class ProvisionError(ConfigError):
    """The account is in a state provisioning cannot sort out on its own (it says what to do)."""


def _same(left: JSON, right: JSON) -> bool:
    """Field equality that tolerates the API's strings for booleans (``"true"``) and method case."""
    if isinstance(left, bool) or isinstance(right, bool):
        return str(left).lower() == str(right).lower()
    if isinstance(left, str) and isinstance(right, str) and left.upper() in ("GET", "POST"):
        return left.upper() == right.upper()
    return left == right


def plan_account(
    desired: Desired,
    observed: Observed,
    *,
    order: bool,
    offers: Mapping[str, JSONObject | None] | None = None,
) -> Plan:
    """Compare the desired state with the account's and list the changes, in the order they must run.

    Args:
        desired: what the flows need.
        observed: what the account holds.
        order: whether numbers the account does not own may be ordered.
        offers: for each number not owned, its available-numbers search result (None: not available);
            only consulted with ``order``.

    Raises:
        ProvisionError: several applications carry the environment's name.
    """
    name = desired.application_name
    matching = [a for a in observed.applications if a.get("name") == name]
    if len(matching) > 1:
        ids = ", ".join(str(a.get("id")) for a in matching)
        raise ProvisionError(
            f"{len(matching)} applications are named {name!r} ({ids}); delete all but one, then run again"
        )
    changes: list[Change] = []
    notes: list[Note] = []
    app_id: str | None = None
    if not matching:
        changes.append(Change("create-application", name))
    else:
        current = matching[0]
        app_id = str(current.get("id", ""))
        differing = {
            key: (current.get(key), wanted)
            for key, wanted in desired.application.items()
            if key != "name" and not _same(current.get(key), wanted)
        }
        if differing:
            changes.append(Change("update-application", name, fields=differing))
    app_names = {str(a.get("id")): str(a.get("name")) for a in observed.applications}
    owned = {
        str(n.get("number")): n for n in observed.numbers if n.get("numberState", "enabled") == "enabled"
    }
    for number, flows in desired.numbers.items():
        record = owned.get(number)
        if record is None:
            if not order:
                notes.append(Note("not-owned", number, flows, reason="run again with --order to order it"))
                continue
            offer = (offers or {}).get(number)
            if offer is None:
                notes.append(Note("unavailable", number, flows, reason="it is not available to order"))
                continue
            changes.append(Change("order-number", number, flows, offer=offer))
            continue
        assigned = str(record.get("applicationId") or "")
        if app_id is None or assigned != app_id:
            previous = app_names.get(assigned, assigned) if assigned else ""
            changes.append(
                Change("assign-number", number, flows, number_id=str(record.get("id", "")), previous=previous)
            )
    for number, record in sorted(owned.items()):
        if app_id is not None and record.get("applicationId") == app_id and number not in desired.numbers:
            notes.append(Note("unclaimed", number, problem=False, reason="no flow claims it; left alone"))
    return Plan(name, app_id, tuple(changes), tuple(notes))


async def _all_pages(client: CatapultClient, kind: Literal["applications", "numbers"]) -> list[JSONObject]:
    found: list[JSONObject] = []
    page = 0
    while True:
        params = {"page": str(page), "size": str(PAGE_SIZE)}
        if kind == "applications":
            batch = await client.list_applications(params)
        else:
            batch = await client.list_phone_numbers(params)
        found += batch
        if len(batch) < PAGE_SIZE:
            return found
        page += 1


async def read_account(client: CatapultClient) -> Observed:
    """Every application and number of the account (all pages)."""
    applications = await _all_pages(client, "applications")
    numbers = await _all_pages(client, "numbers")
    return Observed(tuple(applications), tuple(numbers))


def _search_for(number: str) -> tuple[str, dict[str, str]] | None:
    """The available-numbers search that finds exactly ``number`` (North American numbers only)."""
    if not re.fullmatch(r"\+1[2-9]\d{9}", number):
        return None
    digits = number[2:]
    if digits[:3] in TOLL_FREE_CODES:
        return "tollFree", {"pattern": digits, "quantity": "1"}
    return "local", {"areaCode": digits[:3], "pattern": digits, "quantity": "1"}


async def check_availability(client: CatapultClient, numbers: list[str]) -> dict[str, JSONObject | None]:
    """Search each number (a search spends nothing): its offer, or None when it cannot be ordered."""
    offers: dict[str, JSONObject | None] = {}
    for number in numbers:
        search = _search_for(number)
        if search is None:
            offers[number] = None
            continue
        kind, params = search
        found = await client.search_available_numbers(kind, params)
        offers[number] = next((item for item in found if item.get("number") == number), None)
    return offers


async def make_plan(client: CatapultClient, desired: Desired, *, order: bool) -> Plan:
    """Read the account (and, with ``order``, search the numbers it lacks) and plan."""
    observed = await read_account(client)
    owned = {str(n.get("number")) for n in observed.numbers if n.get("numberState", "enabled") == "enabled"}
    offers: dict[str, JSONObject | None] = {}
    if order:
        offers = await check_availability(client, [n for n in desired.numbers if n not in owned])
    return plan_account(desired, observed, order=order, offers=offers)


async def apply_plan(client: CatapultClient, plan: Plan, desired: Desired) -> list[str]:
    """Run the plan's changes in order; returns one line per change made.

    Raises:
        CatapultError: a request failed (the changes before it stay made; a new run picks up from there).
    """
    done: list[str] = []
    app_id = plan.application_id
    for change in plan.changes:
        if change.kind == "create-application":
            app_id = await client.create_application(dict(desired.application))
            done.append(f"created application {change.target!r} ({app_id})")
        elif change.kind == "update-application":
            assert app_id is not None
            await client.update_application(app_id, {key: new for key, (_, new) in change.fields.items()})
            done.append(f"updated application {change.target!r}: {', '.join(change.fields)}")
        elif change.kind == "order-number":
            assert app_id is not None
            body: JSONObject = {
                "number": change.target,
                "applicationId": app_id,
                "name": f"{plan.application_name}: {', '.join(change.flows)}"[:256],
            }
            number_id = await client.create_phone_number(body)
            done.append(f"ordered {change.target} ({number_id})")
        else:
            assert app_id is not None
            await client.update_phone_number(change.number_id or change.target, {"applicationId": app_id})
            done.append(f"assigned {change.target} to {plan.application_name!r}")
    return done


def _flows(flows: tuple[str, ...]) -> str:
    return f" ({', '.join(flows)})" if flows else ""


def _show(value: JSON) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    return redact(value) if isinstance(value, str) and "://" in value else str(value)


def render_plan(plan: Plan, desired: Desired) -> list[str]:
    """The plan as lines of text, like ``terraform plan``: ``+`` create or order, ``~`` change, ``!`` a
    problem, ``=`` left alone. Passwords in URLs show as ``***``."""
    lines = [f"environment {desired.environment!r}: application {plan.application_name!r}"]
    for change in plan.changes:
        if change.kind == "create-application":
            lines.append(f"  + create application {change.target!r}")
            for key, value in desired.application.items():
                if key != "name":
                    lines.append(f"      {key}: {_show(value)}")
        elif change.kind == "update-application":
            lines.append(f"  ~ update application {change.target!r} ({plan.application_id})")
            for key, (old, new) in change.fields.items():
                lines.append(f"      {key}: {_show(old)} -> {_show(new)}")
        elif change.kind == "order-number":
            offer = change.offer
            where = " ".join(str(offer[k]) for k in ("city", "state") if offer.get(k))
            price = f", ${offer['price']}/month" if offer.get("price") else ""
            lines.append(
                f"  + order {change.target}{_flows(change.flows)}{': ' + where if where else ''}{price}"
            )
        else:
            now = f"now on application {change.previous!r}" if change.previous else "now unassigned"
            lines.append(
                f"  ~ assign {change.target}{_flows(change.flows)} to {plan.application_name!r} ({now})"
            )
    for note in plan.notes:
        sign = "!" if note.problem else "="
        what = {
            "not-owned": "is not on the account",
            "unavailable": "is not on the account and cannot be ordered",
            "unclaimed": f"is assigned to {plan.application_name!r}",
        }[note.kind]
        lines.append(f"  {sign} {note.number}{_flows(note.flows)} {what}: {note.reason}")
    if not plan.changes:
        lines.append("No changes: the account matches the flows.")
    else:
        counts: dict[str, int] = {}
        for change in plan.changes:
            counts[change.kind] = counts.get(change.kind, 0) + 1
        words = {
            "create-application": "to create",
            "update-application": "to update",
            "order-number": "to order",
            "assign-number": "to assign",
        }
        summary = ", ".join(f"{count} {words[kind]}" for kind, count in counts.items())
        lines.append(f"Plan: {summary}.")
    return lines
