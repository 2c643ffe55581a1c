"""Validate the server's answers against ``docs/openapi.yaml`` with jsonschema (OpenAPI 3.1 schemas are
JSON Schema 2020-12)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

OPENAPI = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
_URI = "urn:flowengine:openapi"


@cache
def document() -> dict[str, Any]:
    loaded = yaml.safe_load(OPENAPI.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


@cache
def _registry() -> Registry:
    resource = Resource.from_contents(document(), default_specification=DRAFT202012)
    return Registry().with_resource(_URI, resource)


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        pointer = node["$ref"].removeprefix("#/")
        target: Any = document()
        for part in pointer.split("/"):
            target = target[part]
        node = target
    return node


def response_schema(path: str, method: str, status: int) -> dict[str, Any] | None:
    """The JSON schema the document gives for this answer (None for a non-JSON answer)."""
    operation = document()["paths"][path][method.lower()]
    response = _resolve(operation["responses"][str(status)])
    content = response.get("content", {})
    if "application/json" not in content:
        return None
    schema: dict[str, Any] = content["application/json"]["schema"]
    return schema


def validate(instance: Any, schema: dict[str, Any]) -> None:
    """Validate with ``#/components/...`` references resolved inside the OpenAPI document."""
    wrapper = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": _URI + "/check", **schema}
    if "$ref" in schema:
        wrapper["$ref"] = _URI + schema["$ref"]
    validator = jsonschema.Draft202012Validator(wrapper, registry=_registry())
    validator.validate(instance)


async def check(response: aiohttp.ClientResponse, path: str, method: str) -> Any:
    """Assert the answer is documented for (path, method) and matches its schema; return the JSON body."""
    operation = document()["paths"][path][method.lower()]
    assert str(response.status) in operation["responses"], (
        f"{method} {path} answered {response.status}, which docs/openapi.yaml does not document"
    )
    schema = response_schema(path, method, response.status)
    if schema is None:
        return await response.text()
    body = await response.json()
    validate(body, schema)
    return body
