"""Every request example of the reference's ``methods/`` pages is accepted by the simulator.

The examples live in ``tests/fixtures/catapult/methods/examples.json`` with the page each comes from.
Each runs against a fresh account holding one of everything its placeholders can name.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from .support import HarnessFactory, account

FIXTURE = Path(__file__).parent.parent / "fixtures" / "catapult" / "methods" / "examples.json"
EXAMPLES: list[dict[str, Any]] = json.loads(FIXTURE.read_text())["examples"]
PLACEHOLDER = re.compile(r"\{\{?[A-Za-z][\w.:@/-]*\}?\}")


def fill(text: str, values: dict[str, str], context: dict[str, str]) -> str:
    for placeholder, name in context.items():
        text = text.replace(f"{{{placeholder}}}", values.get(name, values.get(f"{{{name}}}", name)))
    for placeholder in sorted(values, key=len, reverse=True):
        if placeholder.startswith(("{", "%")):
            text = text.replace(placeholder, values[placeholder])
    return text


@pytest.mark.parametrize(
    "example", EXAMPLES, ids=[f"{e['page'].split('/', 1)[1][:-3]}:{e['title'][:40]}" for e in EXAMPLES]
)
async def test_the_reference_example_is_accepted(
    make_harness: HarnessFactory, example: dict[str, Any]
) -> None:
    harness = await make_harness()
    values = await account(harness)
    context = example.get("context", {})
    path = fill(example.get("fixed_path", example["path"]), values, context)
    documented_body = example["body"]
    body = example.get("fixed_body", documented_body)
    raw = fill(body, values, context).encode() if body is not None else None
    if example["method"] == "PUT":
        raw = b"ID3 example upload"
    leftovers = PLACEHOLDER.findall(path + (raw or b"").decode())
    assert not leftovers, f"unfilled placeholders {leftovers} in {example['page']}"
    tail = path.split(f"/v1/users/{harness.config.user_id}", 1)[1]
    status, _, reply = await harness.rest(example["method"], tail, raw=raw)
    assert status in (200, 201, 202), (example["page"], example["title"], status, reply)
    if "documented_answer" in example:
        broken = fill(documented_body, values, context).encode()
        status, _, reply = await harness.rest(example["method"], tail, raw=broken)
        assert [status, reply["code"]] == example["documented_answer"]
