"""Every request example of the reference's account, available numbers, domains, endpoints, errors and number
info pages is accepted by the simulator (``tests/fixtures/catapult/methods/more_examples.json``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from flowengine.sim.callbacks import basic_auth
from flowengine.sim.resources.number_info import set_caller_name

from .support import OURS, Harness, HarnessFactory

FIXTURE = Path(__file__).parent.parent / "fixtures" / "catapult" / "methods" / "more_examples.json"
EXAMPLES: list[dict[str, Any]] = json.loads(FIXTURE.read_text())["examples"]


async def send(harness: Harness, method: str, path: str, raw: bytes | None) -> tuple[int, Any]:
    headers = {"Authorization": basic_auth(harness.config.token, harness.config.secret)}
    async with harness.client.request(method, path, data=raw, headers=headers) as response:
        body = await response.json() if response.content_type == "application/json" else None
        return response.status, body


async def placeholders(harness: Harness) -> dict[str, str]:
    """One of everything the examples name."""
    app_id = await harness.own(OURS)
    domain_id = await harness.ok("POST", "/domains", {"name": "examples", "description": "for the examples"})
    endpoint_id = await harness.ok(
        "POST", f"/domains/{domain_id}/endpoints", {"name": "desk", "credentials": {"password": "s3cret!"}}
    )
    await harness.rest("GET", "/calls/c-missing")  # leaves a user error behind
    [error] = await harness.ok("GET", "/errors")
    set_caller_name(harness.sim, OURS, "ACME CORP")
    user = harness.config.user_id
    return {
        "{{userId}}": user,
        "{userId}": user,
        "{user-id}": user,
        "{domainId}": domain_id,
        "{domain-id}": domain_id,
        "{endpoint-id}": endpoint_id,
        "{application-id}": app_id,
        "{userErrorId}": error["id"],
        "{number}": OURS.replace("+", "%2B"),
    }


def fill(text: str, values: dict[str, str]) -> str:
    for placeholder in sorted(values, key=len, reverse=True):
        text = text.replace(placeholder, values[placeholder])
    return text


@pytest.mark.parametrize(
    "example", EXAMPLES, ids=[f"{e['page'].rsplit('/', 1)[1][:-3]}:{e['title'][:40]}" for e in EXAMPLES]
)
async def test_the_reference_example_is_accepted(
    make_harness: HarnessFactory, example: dict[str, Any]
) -> None:
    harness = await make_harness()
    values = await placeholders(harness)
    path = fill(example.get("fixed_path", example["path"]), values)
    body = example.get("fixed_body", example["body"])
    raw = fill(body, values).encode() if body is not None else None
    assert "{" not in path
    assert raw is None or b"{{" not in raw
    status, reply = await send(harness, example["method"], path, raw)
    assert status in (200, 201), (example["title"], status, reply)
    if "documented_status" in example:
        broken_body = example["body"]
        broken = fill(broken_body, values).encode() if broken_body is not None else None
        status, _ = await send(harness, example["method"], fill(example["path"], values), broken)
        assert status == example["documented_status"]
