"""Available numbers: search local numbers (by state, ZIP, area code, city, local number, pattern) and
toll-free numbers (by pattern), and search-and-order them. Served under ``/v1/availableNumbers``.

The simulator's inventory is a fixed table of rate centres; every valid number of their area codes
that the account does not own is available. Candidates come in a fixed scrambled order, so the same
search gives the same answer. A pattern matches the whole 10-digit national number: ``?`` is one
digit, ``*`` any run of digits, and letters stand for their keypad digits.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flowengine.sim.problems import ApiProblem, validation
from flowengine.sim.rest import ApiRequest, Reply, Route
from flowengine.sim.state import PhoneNumber
from flowengine.typing import JSON, JSONObject

if TYPE_CHECKING:
    from flowengine.sim.simulator import Simulator


@dataclass(frozen=True, slots=True)
class RateCenter:
    """Where local numbers come from: an area code in a city."""

    area_code: str
    city: str
    state: str
    rate_center: str
    lata: str
    zip: str


RATE_CENTERS: tuple[RateCenter, ...] = (
    RateCenter("919", "RALEIGH", "NC", "RALEIGH", "426", "27601"),
    RateCenter("984", "CARY", "NC", "CARY", "426", "27511"),
    RateCenter("910", "WILMINGTON", "NC", "WILMINGTON", "424", "28401"),
    RateCenter("212", "NEW YORK", "NY", "NWYRCYZN01", "132", "10001"),
    RateCenter("415", "SAN FRANCISCO", "CA", "SNFC CNTRL", "722", "94103"),
    RateCenter("323", "LOS ANGELES", "CA", "LSAN DA 01", "730", "90012"),
    RateCenter("512", "AUSTIN", "TX", "AUSTIN", "558", "78701"),
    RateCenter("206", "SEATTLE", "WA", "SEATTLE", "674", "98101"),
    RateCenter("312", "CHICAGO", "IL", "CHICAGO", "358", "60601"),
    RateCenter("303", "DENVER", "CO", "DENVER", "656", "80202"),
    RateCenter("617", "BOSTON", "MA", "BOSTON", "128", "02108"),
    RateCenter("435", "ST GEORGE", "UT", "ST GEORGE", "660", "84770"),
)

TOLL_FREE_CODES: tuple[str, ...] = ("800", "833", "844", "855", "866", "877", "888")
LOCAL_PRICE = "0.35"
TOLL_FREE_PRICE = "2.00"

SEARCH_MAX = 5000
ORDER_MAX = 10
SCAN_LIMIT = 200_000
"""At most this many candidates are tried per area code, so a rare pattern answers quickly (and short)."""

_KEYPAD = {letter: str(digit) for digit, letters in (
    (2, "ABC"), (3, "DEF"), (4, "GHI"), (5, "JKL"), (6, "MNO"), (7, "PQRS"), (8, "TUV"), (9, "WXYZ")
) for letter in letters}  # fmt: skip
_PATTERN_CHARS = re.compile(r"^[0-9A-Za-z?*]{1,20}$")
_NATIONAL_DIGIT_AT = (1, 2, 3, 6, 7, 8, 10, 11, 12, 13)
"""Where each of the 10 national digits sits in ``(919) 555-1212``."""


def national(number: str) -> str:
    """``+19195551212`` as ``(919) 555-1212``."""
    digits = number.removeprefix("+1")
    return f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"


def is_toll_free(number: str) -> bool:
    return number.startswith("+1") and number[2:5] in TOLL_FREE_CODES


def _search_problem(message: str) -> ApiProblem:
    return ApiProblem(400, "bad-request", "invalid-available-number-search", message)


def _order_problem(message: str) -> ApiProblem:
    return ApiProblem(400, "bad-request", "invalid-available-number-search-order", message)


@dataclass(frozen=True, slots=True)
class _Pattern:
    regex: re.Pattern[str]
    shown: str
    """The pattern's characters as written (letters upper-cased), for ``patternMatch``."""

    def match_display(self, digits: str) -> str | None:
        """``patternMatch`` for a 10-digit national number: the national format with only the pattern's
        own characters shown, or None when the number does not match."""
        found = self.regex.fullmatch(digits)
        if found is None:
            return None
        shown = [" "] * 14
        for group, char in enumerate(self.shown, start=1):
            shown[_NATIONAL_DIGIT_AT[found.start(group)]] = char
        return "".join(shown)


def _pattern(raw: str | None) -> _Pattern | None:
    if raw is None:
        return None
    if not _PATTERN_CHARS.match(raw):
        raise _search_problem(
            f"The pattern {raw!r} may only hold digits, letters, '?' and '*' (at most 20 characters)"
        )
    parts: list[str] = []
    shown: list[str] = []
    for char in raw.upper():
        if char == "?":
            parts.append(r"\d")
        elif char == "*":
            parts.append(r"\d*")
        else:
            parts.append(f"({_KEYPAD.get(char, char)})")
            shown.append(char)
    return _Pattern(re.compile("".join(parts)), "".join(shown))


def _quantity(query: Mapping[str, str], default: int, maximum: int, *, order: bool) -> int:
    raw = query.get("quantity")
    if raw is None:
        return default
    try:
        quantity = int(raw)
    except ValueError:
        raise validation(
            f"The query parameter 'quantity' must be a whole number, not {raw!r}", "quantity"
        ) from None
    if quantity <= 0:
        raise validation("Quantity must be greater than zero.", "quantity")
    if quantity > maximum:
        if order:
            raise _order_problem(f"The maximum quantity of numbers searching and ordering is {maximum}")
        raise _search_problem(f"The maximum quantity of numbers is {maximum}")
    return quantity


def _subscribers(area_code: str, prefix: str) -> Iterator[str]:
    """The 7-digit subscriber numbers of an area code starting with ``prefix``, in a fixed scrambled order
    (a multiplicative permutation, so every one comes exactly once)."""
    free = 7 - len(prefix)
    space = 10**free
    offset = int(area_code) * 7_919 % space if space > 1 else 0
    for index in range(min(space, SCAN_LIMIT)):
        rest = (index * 7_919 + offset) % space if space > 1 else 0
        subscriber = prefix + (f"{rest:0{free}d}" if free else "")
        if subscriber[0] in "01" or subscriber[1:3] == "11":
            continue  # an exchange code starts with 2-9 and is never N11
        yield subscriber


def _exact(pattern: _Pattern | None) -> str | None:
    """The one national number a pattern without wildcards names."""
    if pattern is None or not pattern.regex.pattern.replace("(", "").replace(")", "").isdigit():
        return None
    digits = pattern.regex.pattern.replace("(", "").replace(")", "")
    return digits if len(digits) == 10 else None


def _find(
    sim: Simulator,
    area_codes: list[str],
    pattern: _Pattern | None,
    prefix: str,
    quantity: int,
) -> list[tuple[str, str | None]]:
    """Up to ``quantity`` available numbers of these area codes, each with its ``patternMatch``."""
    owned = {record.number for record in sim.world.numbers.values()}
    found: list[tuple[str, str | None]] = []
    exact = _exact(pattern)
    for area_code in area_codes:
        if exact is not None:
            candidates: Iterator[str] = iter([exact[3:]] if exact[:3] == area_code else [])
        else:
            candidates = _subscribers(area_code, prefix)
        for subscriber in candidates:
            if not subscriber.startswith(prefix) or subscriber[0] in "01" or subscriber[1:3] == "11":
                continue
            digits = area_code + subscriber
            shown = pattern.match_display(digits) if pattern is not None else None
            if pattern is not None and shown is None:
                continue
            number = "+1" + digits
            if number in owned:
                continue
            found.append((number, shown))
            if len(found) >= quantity:
                return found
    return found


def _local_centers(query: Mapping[str, str]) -> tuple[list[RateCenter], str]:
    """The rate centres a local search covers, and the local-number prefix; checks the combinations the
    reference forbids."""
    state, zip_code, area_code = query.get("state"), query.get("zip"), query.get("areaCode")
    city, local = query.get("city"), query.get("localNumber")
    if city is not None and zip_code is not None:
        raise _search_problem("A query cannot combine City with ZIP Code.")
    if city is not None and (area_code is not None or local is not None):
        raise _search_problem("A query cannot combine City with Area Code or Local Number.")
    if zip_code is not None and state is not None and (area_code is not None or local is not None):
        raise _search_problem("A query cannot combine ZIP Code and State with Area Code or Local Number.")
    if zip_code is not None and (area_code is not None or local is not None):
        raise _search_problem("A query cannot combine ZIP Code with Area Code or Local Number.")
    if zip_code is not None and state is not None:
        raise _search_problem("A query cannot combine ZIP Code with State.")
    if state is not None and (area_code is not None or local is not None):
        raise _search_problem("A query cannot combine State with Area Code or Local Number.")
    if city is not None and state is None:
        raise _search_problem("For searching by City the State is also required.")
    if state is None and zip_code is None and area_code is None:
        raise _search_problem("Specify a State ZIP Code or Area Code with your query.")
    if local is not None:
        if not local.isdigit() or len(local) < 3:
            raise _search_problem("Local Number must contains at least 3 digits.")
        if len(local) > 4:
            raise _search_problem("localNumber must contain a maximum of 4 digits")
    in_area = query.get("inLocalCallingArea")
    if in_area is not None and in_area.lower() not in ("true", "false"):
        raise validation(
            f"The query parameter 'inLocalCallingArea' must be true or false, not {in_area!r}",
            "inLocalCallingArea",
        )
    if area_code is not None:
        if not (len(area_code) == 3 and area_code.isdigit()):
            raise _search_problem("An Area Code must be 3 digits.")
        return [c for c in RATE_CENTERS if c.area_code == area_code], local or ""
    if zip_code is not None:
        centers = [c for c in RATE_CENTERS if c.zip == zip_code]
        if not centers:
            raise ApiProblem(
                400,
                "bad-request",
                "invalid-zip-code",
                f"The ZIP code {zip_code} did not map to a location where telephone numbers are available",
            )
        return centers, ""
    assert state is not None
    centers = [c for c in RATE_CENTERS if c.state == state.upper()]
    if city is not None:
        centers = [c for c in centers if c.city == city.upper()]
        if not centers:
            raise ApiProblem(
                403, "forbidden", "invalid-rate-center", f"The city {city} in the state {state} was not found"
            )
    return centers, ""


def _local(sim: Simulator, query: Mapping[str, str], quantity: int) -> list[JSONObject]:
    centers, prefix = _local_centers(query)
    pattern = _pattern(query.get("pattern"))
    by_code = {c.area_code: c for c in centers}
    results: list[JSONObject] = []
    for number, shown in _find(sim, list(by_code), pattern, prefix, quantity):
        center = by_code[number[2:5]]
        item: dict[str, JSON] = {"number": number, "nationalNumber": national(number)}
        if shown is not None:
            item["patternMatch"] = shown
        item.update(
            city=center.city,
            lata=center.lata,
            rateCenter=center.rate_center,
            state=center.state,
            price=LOCAL_PRICE,
        )
        results.append(item)
    return results


def _toll_free(sim: Simulator, query: Mapping[str, str], quantity: int) -> list[JSONObject]:
    pattern = _pattern(query.get("pattern"))
    results: list[JSONObject] = []
    for number, shown in _find(sim, list(TOLL_FREE_CODES), pattern, "", quantity):
        item: dict[str, JSON] = {"number": number, "nationalNumber": national(number)}
        if shown is not None:
            item["patternMatch"] = shown
        item["price"] = TOLL_FREE_PRICE
        results.append(item)
    return results


def search_local(sim: Simulator, req: ApiRequest) -> Reply:
    quantity = _quantity(req.query, 10, SEARCH_MAX, order=False)
    return Reply(body=list(_local(sim, req.query, quantity)))


def search_toll_free(sim: Simulator, req: ApiRequest) -> Reply:
    quantity = _quantity(req.query, 10, SEARCH_MAX, order=False)
    return Reply(body=list(_toll_free(sim, req.query, quantity)))


def _order(sim: Simulator, found: list[JSONObject], quantity: int) -> Reply:
    from flowengine.sim.resources.account import balance

    if len(found) < quantity:
        raise ApiProblem(
            404,
            "not-found",
            "order-number-quantity-unavailable",
            f"Only a partial quantity of the total telephone numbers ordered could be fulfilled "
            f"({len(found)} of {quantity}); nothing was ordered",
        )
    total = sum(float(str(item["price"])) for item in found)
    available = balance(sim)
    if total > available:
        raise ApiProblem(
            403,
            "credit",
            "insufficient-available-balance",
            f"Your account's available balance of {available:.2f} is insufficient for this transaction "
            f"in the amount of {total:.2f}.",
        )
    ordered: list[JSON] = []
    for item in found:
        number = str(item["number"])
        record = PhoneNumber(
            id=sim.world.ids.new("n"),
            number=number,
            created_time=sim.clock.now(),
            city=str(item["city"]).title() if "city" in item else None,
            state=str(item["state"]) if "state" in item else None,
            price=str(item["price"]),
        )
        sim.world.numbers[record.id] = record
        ordered.append(
            {
                "number": number,
                "nationalNumber": item["nationalNumber"],
                "price": item["price"],
                "location": sim.urls.of("phoneNumbers", record.id),
            }
        )
    return Reply(201, ordered)


def order_local(sim: Simulator, req: ApiRequest) -> Reply:
    if "pattern" in req.query:
        raise _order_problem("A query and order numbers cannot contain pattern")
    quantity = _quantity(req.query, 10, ORDER_MAX, order=True)
    return _order(sim, _local(sim, req.query, quantity), quantity)


def order_toll_free(sim: Simulator, req: ApiRequest) -> Reply:
    if "pattern" in req.query:
        raise _order_problem("A query and order numbers cannot contain pattern")
    quantity = _quantity(req.query, 1, ORDER_MAX, order=True)
    return _order(sim, _toll_free(sim, req.query, quantity), quantity)


ROUTES: tuple[Route, ...] = (
    Route("GET", "/availableNumbers/local", search_local, root=True),
    Route("POST", "/availableNumbers/local", order_local, root=True),
    Route("GET", "/availableNumbers/tollFree", search_toll_free, root=True),
    Route("POST", "/availableNumbers/tollFree", order_toll_free, root=True),
)
