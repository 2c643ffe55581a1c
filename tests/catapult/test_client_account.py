"""The REST client's account, available-number, phone-number import, domain, endpoint, error and number-info
operations, each driven against the simulator over loopback HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from flowengine.catapult.client import CatapultClient, RetryPolicy
from flowengine.errors import CatapultAPIError
from flowengine.sim import SIM_KEY, SimConfig, Simulator, VirtualClock, create_app
from flowengine.sim.resources.number_info import set_caller_name

CALLER = "+13235550100"


@dataclass
class Rig:
    sim: Simulator
    client: CatapultClient


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    app = create_app(SimConfig(user_id="u-acct", token="t-acct", secret="s-acct"), VirtualClock())
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession() as http:
        client = CatapultClient(
            http,
            user_id="u-acct",
            token="t-acct",
            secret="s-acct",
            base_url=str(server.make_url("/v1")),
            retry=RetryPolicy(attempts=1),
        )
        yield Rig(app[SIM_KEY], client)
    await server.close()


async def test_account_balance_and_transactions(rig: Rig) -> None:
    assert await rig.client.get_account() == {"balance": "100.00000", "accountType": "pre-pay"}
    await rig.client.create_phone_number({"number": "+19195550001"})
    lines = await rig.client.list_account_transactions({"type": "charge"})
    assert [(t["productType"], t["amount"], t["number"]) for t in lines] == [
        ("local-number-per-month", "0.35000", "+19195550001")
    ]
    assert (await rig.client.get_account())["balance"] == "99.65000"


async def test_searching_spends_nothing_and_ordering_owns_the_numbers(rig: Rig) -> None:
    found = await rig.client.search_available_numbers("local", {"areaCode": "919", "quantity": "2"})
    assert len(found) == 2
    toll_free = await rig.client.search_available_numbers("tollFree", {"pattern": "8??555*", "quantity": "1"})
    assert toll_free[0]["number"][2:5] in ("800", "855", "866", "877", "888")
    assert await rig.client.list_phone_numbers() == []
    ordered = await rig.client.order_available_numbers("local", {"areaCode": "919", "quantity": "2"})
    assert [item["number"] for item in ordered] == [item["number"] for item in found]
    owned = await rig.client.list_phone_numbers()
    assert {n["number"] for n in owned} == {item["number"] for item in found}
    [free] = await rig.client.order_available_numbers("tollFree", {})
    assert (await rig.client.get_phone_number(free["number"]))["price"] == "2.00"


async def test_a_refused_search_raises_the_documented_error(rig: Rig) -> None:
    with pytest.raises(CatapultAPIError) as caught:
        await rig.client.search_available_numbers("local", {"city": "Cary"})
    assert (caught.value.status, caught.value.code) == (400, "invalid-available-number-search")
    assert caught.value.url.endswith("/v1/availableNumbers/local")
    with pytest.raises(ValueError, match="'local' or 'tollFree'"):
        await rig.client.search_available_numbers("mobile")


async def test_importing_a_number_owns_it(rig: Rig) -> None:
    number_id = await rig.client.import_phone_number(
        {
            "number": "+14352154439",
            "name": "text messaging TN",
            "provider": {
                "providerName": "bandwidth-dashboard",
                "properties": {"accountId": "9999999", "userName": "wileCoyote", "password": "catchThatBird"},
            },
        }
    )
    assert (await rig.client.get_phone_number(number_id))["number"] == "+14352154439"


async def test_domains_and_endpoints_round_trip_without_passwords(rig: Rig) -> None:
    app_id = await rig.client.create_application({"name": "sip", "incomingCallUrl": "http://127.0.0.1:9/cb"})
    domain_id = await rig.client.create_domain({"name": "office", "description": "desk phones"})
    assert [d["name"] for d in await rig.client.list_domains()] == ["office"]
    endpoint_id = await rig.client.create_endpoint(
        domain_id, {"name": "alice", "applicationId": app_id, "credentials": {"password": "s3cret!"}}
    )
    endpoint = await rig.client.get_endpoint(domain_id, endpoint_id)
    assert endpoint["sipUri"] == "alice@office.bwapp.bwsipp.io"
    assert endpoint["credentials"] == {"realm": "office.bwapp.bwsipp.io", "username": "alice"}
    await rig.client.update_endpoint(domain_id, endpoint_id, {"enabled": False, "description": "away"})
    [listed] = await rig.client.list_endpoints(domain_id)
    assert (listed["enabled"], listed["description"]) == ("false", "away")
    assert "s3cret" not in str(listed)
    await rig.client.delete_endpoint(domain_id, endpoint_id)
    assert await rig.client.list_endpoints(domain_id) == []
    await rig.client.delete_domain(domain_id)
    assert await rig.client.list_domains() == []


async def test_errors_list_and_get(rig: Rig) -> None:
    with pytest.raises(CatapultAPIError):
        await rig.client.get_call("c-missing")
    [error] = await rig.client.list_errors()
    assert error["code"] == "call-not-found"
    assert await rig.client.get_error(str(error["id"])) == error


async def test_number_info_answers_the_callers_name(rig: Rig) -> None:
    set_caller_name(rig.sim, CALLER, "JANE DOE")
    info = await rig.client.get_number_info(CALLER)
    assert (info["name"], info["number"]) == ("JANE DOE", CALLER)
    with pytest.raises(CatapultAPIError) as caught:
        await rig.client.get_number_info("+13235550199")
    assert (caught.value.status, caught.value.code) == (404, "cnam-not-found")
