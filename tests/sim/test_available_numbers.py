"""Available numbers: local and toll-free searches with every documented filter, the documented errors for
the combinations the reference forbids, and search-and-order (which makes the numbers the account's own)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from flowengine.sim.callbacks import basic_auth

from .support import Harness, HarnessFactory


async def root(harness: Harness, method: str, path: str, *, auth: bool = True) -> tuple[int, Any]:
    headers = {"Authorization": basic_auth(harness.config.token, harness.config.secret)} if auth else {}
    async with harness.client.request(method, "/v1" + path, headers=headers) as response:
        return response.status, await response.json() if response.content_type == "application/json" else None


LOCAL_FIELDS = {"number", "nationalNumber", "city", "lata", "rateCenter", "state", "price"}


async def test_a_local_search_by_area_code_answers_documented_fields_the_same_way_twice(
    harness: Harness,
) -> None:
    status, found = await root(harness, "GET", "/availableNumbers/local?areaCode=910&quantity=3")
    assert status == 200
    assert len(found) == 3
    for item in found:
        assert set(item) == LOCAL_FIELDS
        assert re.fullmatch(r"\+1910[2-9]\d{6}", item["number"])
        digits = item["number"][2:]
        assert item["nationalNumber"] == f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"
        assert (item["city"], item["state"], item["price"]) == ("WILMINGTON", "NC", "0.35")
    assert len({item["number"] for item in found}) == 3
    assert (await root(harness, "GET", "/availableNumbers/local?areaCode=910&quantity=3"))[1] == found


async def test_a_pattern_matches_the_whole_national_number_and_is_shown_in_pattern_match(
    harness: Harness,
) -> None:
    status, found = await root(
        harness, "GET", "/availableNumbers/local?city=Raleigh&state=NC&pattern=*2%3F9*&quantity=2"
    )
    assert status == 200
    assert len(found) == 2
    for item in found:
        assert re.fullmatch(r"\d*2\d9\d*", item["number"][2:])
        shown = item["patternMatch"]
        assert len(shown) == 14
        assert shown.replace(" ", "") == "29"
        assert item["nationalNumber"][shown.index("2")] == "2"
        assert item["nationalNumber"][shown.index("9")] == "9"


async def test_letters_in_a_pattern_stand_for_their_keypad_digits(harness: Harness) -> None:
    status, found = await root(
        harness, "GET", "/availableNumbers/local?areaCode=919&pattern=*CALL&quantity=1"
    )
    assert status == 200
    [item] = found
    assert item["number"].endswith("2255")
    assert item["patternMatch"].endswith("CALL")


async def test_an_exact_pattern_finds_that_number_until_the_account_owns_it(harness: Harness) -> None:
    path = "/availableNumbers/local?areaCode=919&pattern=9195551000&quantity=1"
    assert [n["number"] for n in (await root(harness, "GET", path))[1]] == ["+19195551000"]
    await harness.ok("POST", "/phoneNumbers", {"number": "+19195551000"})
    assert (await root(harness, "GET", path)) == (200, [])


async def test_a_search_by_state_and_by_zip_stays_in_their_rate_centers(harness: Harness) -> None:
    _, by_state = await root(harness, "GET", "/availableNumbers/local?state=CA&quantity=20")
    assert len(by_state) == 20
    assert {item["state"] for item in by_state} == {"CA"}
    _, by_zip = await root(harness, "GET", "/availableNumbers/local?zip=78701&quantity=2")
    assert [item["city"] for item in by_zip] == ["AUSTIN", "AUSTIN"]
    _, by_prefix = await root(
        harness, "GET", "/availableNumbers/local?areaCode=206&localNumber=555&quantity=4"
    )
    assert all(item["number"].startswith("+1206555") for item in by_prefix)
    assert len(by_prefix) == 4


async def test_a_toll_free_search_answers_number_national_number_pattern_match_and_price(
    harness: Harness,
) -> None:
    status, found = await root(harness, "GET", "/availableNumbers/tollFree?pattern=*2%3F9*&quantity=2")
    assert status == 200
    assert len(found) == 2
    for item in found:
        assert set(item) == {"number", "nationalNumber", "patternMatch", "price"}
        assert item["number"][2:5] in ("800", "833", "844", "855", "866", "877", "888")
        assert item["price"] == "2.00"


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        pytest.param("", 400, "invalid-available-number-search", id="no-location"),
        pytest.param("city=Cary", 400, "invalid-available-number-search", id="city-without-state"),
        pytest.param("city=Cary&zip=27511", 400, "invalid-available-number-search", id="city-and-zip"),
        pytest.param("state=NC&areaCode=919", 400, "invalid-available-number-search", id="state-and-area"),
        pytest.param("zip=27511&state=NC", 400, "invalid-available-number-search", id="zip-and-state"),
        pytest.param("areaCode=91", 400, "invalid-available-number-search", id="short-area-code"),
        pytest.param("areaCode=919&localNumber=55", 400, "invalid-available-number-search", id="short-local"),
        pytest.param(
            "areaCode=919&localNumber=55512", 400, "invalid-available-number-search", id="long-local"
        ),
        pytest.param("areaCode=919&quantity=5001", 400, "invalid-available-number-search", id="too-many"),
        pytest.param("areaCode=919&quantity=0", 400, "validation-error", id="zero"),
        pytest.param("areaCode=919&quantity=lots", 400, "validation-error", id="not-a-number"),
        pytest.param("areaCode=919&pattern=9%25", 400, "invalid-available-number-search", id="bad-pattern"),
        pytest.param("zip=00000", 400, "invalid-zip-code", id="unknown-zip"),
        pytest.param("city=Nowhere&state=NC", 403, "invalid-rate-center", id="unknown-city"),
    ],
)
async def test_a_forbidden_search_gets_the_documented_error(
    harness: Harness, query: str, status: int, code: str
) -> None:
    got_status, body = await root(harness, "GET", f"/availableNumbers/local?{query}")
    assert (got_status, body["code"]) == (status, code)
    assert body["category"]
    assert body["message"]


async def test_ordering_local_numbers_makes_them_the_accounts_and_charges_the_account(
    harness: Harness,
) -> None:
    status, ordered = await root(harness, "POST", "/availableNumbers/local?city=Cary&state=NC&quantity=2")
    assert status == 201
    assert len(ordered) == 2
    owned = {n["number"]: n for n in await harness.ok("GET", "/phoneNumbers")}
    for item in ordered:
        assert set(item) == {"number", "nationalNumber", "price", "location"}
        number_id = item["location"].rsplit("/", 1)[1]
        assert owned[item["number"]]["id"] == number_id
        assert owned[item["number"]]["city"] == "Cary"
    account = await harness.ok("GET", "/account")
    assert account["balance"] == "99.30000"
    searched = (await root(harness, "GET", "/availableNumbers/local?city=Cary&state=NC&quantity=50"))[1]
    assert not {item["number"] for item in ordered} & {item["number"] for item in searched}


async def test_ordering_toll_free_takes_one_number_by_default(harness: Harness) -> None:
    status, ordered = await root(harness, "POST", "/availableNumbers/tollFree")
    assert status == 201
    assert len(ordered) == 1
    assert ordered[0]["price"] == "2.00"


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        pytest.param(
            "/availableNumbers/local?areaCode=919&pattern=*1*",
            400,
            "invalid-available-number-search-order",
            id="pattern",
        ),
        pytest.param(
            "/availableNumbers/local?areaCode=919&quantity=11",
            400,
            "invalid-available-number-search-order",
            id="too-many",
        ),
        pytest.param(
            "/availableNumbers/tollFree?quantity=11",
            400,
            "invalid-available-number-search-order",
            id="toll-free-too-many",
        ),
        pytest.param(
            "/availableNumbers/local?areaCode=999&quantity=1",
            404,
            "order-number-quantity-unavailable",
            id="none-left",
        ),
    ],
)
async def test_an_order_the_reference_refuses_orders_nothing(
    harness: Harness, path: str, status: int, code: str
) -> None:
    got_status, body = await root(harness, "POST", path)
    assert (got_status, body["code"]) == (status, code)
    assert await harness.ok("GET", "/phoneNumbers") == []


async def test_an_order_beyond_the_balance_is_refused_for_credit(harness: Harness) -> None:
    for _ in range(5):
        assert (await root(harness, "POST", "/availableNumbers/tollFree?quantity=10"))[0] == 201
    status, body = await root(harness, "POST", "/availableNumbers/tollFree?quantity=10")
    assert (status, body["category"], body["code"]) == (403, "credit", "insufficient-available-balance")


async def test_available_numbers_need_the_api_credentials(harness: Harness) -> None:
    status, body = await root(harness, "GET", "/availableNumbers/local?areaCode=919", auth=False)
    assert (status, body["code"]) == (401, "unauthorized")


async def test_a_rare_pattern_across_a_state_still_finds_matching_numbers(
    make_harness: HarnessFactory,
) -> None:
    harness = await make_harness()
    status, found = await root(harness, "GET", "/availableNumbers/local?state=NC&pattern=*99999*&quantity=3")
    assert status == 200
    assert all("99999" in item["number"] for item in found)
